//! The operator's entry point. Exit codes: see `herald::exit` and the README.

// A publish makes and frees hundreds of thousands of small strings and maps;
// mimalloc serves them from thread-local pages (see the note in ARCHITECTURE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    herald::cli::main_from(std::env::args_os())
}
