//! `cargo xtask`: the editor's entry point. Publishing lives in the herald library;
//! this only adds developer tasks (corpus generation, benchmarks, the test run).

mod bench;
mod corpus;
mod fuzz;
mod test;
mod tidy;

use std::process::ExitCode;

const HELP: &str = "cargo xtask <command>

  publish [--now RFC3339] [--dry-run]   publish what is due (same as `herald publish`)
  check                                 validate content (same as `herald check`)
  status                                what is published and what waits
  <any other herald command>            passed to herald as is (see `cargo xtask help`)
  corpus N DIR                          write N generated statements to DIR/content
  bench [--runs R] [--bin PATH] [N...]  time check/publish on generated corpora (release build)
  fuzz [parse|render] [--seconds S] [--keep-going] [-- LIBFUZZER_ARGS]
                                        run the cargo-fuzz targets (nightly; docs/fuzzing.md)
  test [ARGS...]                        install what the tests use (apt-get as root, Python
                                        packages in target/test-venv), then
                                        `cargo test --workspace ARGS` with that environment
  provision                             only the install step of `test`
  tidy                                  check the invariants ARCHITECTURE.md states
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("corpus") => {
            let (Some(n), Some(dir)) = (args.get(1).and_then(|n| n.parse().ok()), args.get(2))
            else {
                eprintln!("usage: cargo xtask corpus N DIR");
                return ExitCode::from(2);
            };
            match corpus::generate(n, std::path::Path::new(dir)) {
                Ok(files) => {
                    println!("wrote {n} statements ({files} files) to {dir}/content");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("corpus: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("bench") => bench::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("test") => test::run_tests(&args[1..]),
        Some("tidy") => tidy::run(&test::workspace()),
        Some("provision") => match test::provision(&test::workspace()) {
            Ok(venv) => {
                println!(
                    "ready: Debian tools present, Python packages in {}",
                    venv.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("xtask provision: {e}");
                ExitCode::FAILURE
            }
        },
        Some("-h" | "--help") | None => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        _ => herald::cli::main_from(std::iter::once("herald".to_string()).chain(args)),
    }
}
