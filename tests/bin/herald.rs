fn main() -> std::process::ExitCode {
    herald::cli::main_from(std::env::args_os())
}
