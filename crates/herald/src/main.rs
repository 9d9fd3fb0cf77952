//! The operator's entry point. Exit codes: see `herald::exit` and the README.

fn main() -> std::process::ExitCode {
    herald::cli::main_from(std::env::args_os())
}
