//! `fuzz-replay parse|render FILE...`: run fuzz inputs through the same harness
//! as the cargo-fuzz targets, on stable, one outcome line per file. A broken
//! promise panics (exit 101); a stack overflow or abort shows as a signal.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((target, files)) = args.split_first() else {
        eprintln!("usage: fuzz-replay parse|render FILE...");
        return ExitCode::from(2);
    };
    for file in files {
        let data = match std::fs::read(file) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{file}: {e}");
                return ExitCode::from(2);
            }
        };
        match target.as_str() {
            "parse" => {
                herald_e2e::fuzz::parse(&data);
                println!("{file}: parsed");
            }
            "render" => println!("{file}: {:?}", herald_e2e::fuzz::render(&data)),
            _ => {
                eprintln!("unknown target {target:?}: parse or render");
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}
