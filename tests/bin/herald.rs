//! The `herald` binary the end-to-end tests run: the same entry point as the real one.

fn main() -> std::process::ExitCode {
    herald::cli::main_from(std::env::args_os())
}
