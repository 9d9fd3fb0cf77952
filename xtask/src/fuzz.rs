//! `cargo xtask fuzz [TARGET] [--seconds S] [--keep-going] [-- LIBFUZZER_ARGS]`:
//! runs the cargo-fuzz targets in `fuzz/` (nightly toolchain, cargo-fuzz) for S
//! seconds each, then prints the corpus size, the speed and any crash found.
//!
//! The working corpus is `fuzz/corpus/TARGET` (git-ignored); the seeds kept in the
//! repository, `fuzz/seeds/TARGET`, are read but never written. Crashes land in
//! `fuzz/artifacts/TARGET`. See docs/fuzzing.md.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// Every target, in the order a bare `cargo xtask fuzz` runs them.
pub const TARGETS: &[&str] = &["parse", "render"];

const USAGE: &str =
    "usage: cargo xtask fuzz [parse|render] [--seconds S] [--keep-going] [-- LIBFUZZER_ARGS]";

struct Options {
    targets: Vec<String>,
    seconds: u64,
    keep_going: bool,
    extra: Vec<String>,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        targets: Vec::new(),
        seconds: 300,
        keep_going: false,
        extra: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                o.seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|&s| s > 0)
                    .ok_or("--seconds needs a whole number of seconds above 0")?;
            }
            "--keep-going" => o.keep_going = true,
            "--" => {
                o.extra = it.by_ref().cloned().collect();
            }
            t if TARGETS.contains(&t) => o.targets.push(t.to_string()),
            other => {
                return Err(format!(
                    "unknown argument {other:?}: targets are {}",
                    TARGETS.join(", ")
                ));
            }
        }
    }
    if o.targets.is_empty() {
        o.targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    Ok(o)
}

fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// Whether `cargo +nightly fuzz` works; installs cargo-fuzz when only it is missing.
fn tools() -> Result<(), String> {
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !nightly {
        return Err("the nightly toolchain is missing: rustup toolchain install nightly".into());
    }
    let has_fuzz = || {
        Command::new("cargo")
            .args(["+nightly", "fuzz", "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if has_fuzz() {
        return Ok(());
    }
    eprintln!("cargo-fuzz is missing; installing it: cargo install cargo-fuzz --locked");
    let installed = Command::new("cargo")
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .is_ok_and(|s| s.success());
    if installed && has_fuzz() {
        Ok(())
    } else {
        Err(
            "could not install cargo-fuzz; run `cargo install cargo-fuzz --locked` and retry"
                .into(),
        )
    }
}

/// Files and bytes in `dir`.
fn size(dir: &Path) -> (usize, u64) {
    std::fs::read_dir(dir).map_or((0, 0), |d| {
        d.filter_map(Result::ok)
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .fold((0, 0), |(n, b), m| (n + 1, b + m.len()))
    })
}

/// Crash, timeout and out-of-memory inputs in `dir`.
fn findings(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).map_or_else(
        |_| Vec::new(),
        |d| d.filter_map(Result::ok).map(|e| e.path()).collect(),
    );
    v.sort();
    v
}

/// What libFuzzer said about a run: executions and their rate.
#[derive(Default)]
struct Stats {
    execs: Option<u64>,
    per_sec: Option<u64>,
}

fn run_one(target: &str, o: &Options) -> Result<bool, String> {
    let root = root();
    let corpus = root.join("fuzz/corpus").join(target);
    let seeds = root.join("fuzz/seeds").join(target);
    // Where cargo fuzz tells libFuzzer to put what it finds.
    let artifacts = root.join("fuzz/artifacts").join(target);
    for dir in [&corpus, &artifacts] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let before = findings(&artifacts);
    let mut cmd = Command::new("cargo");
    // No sanitizer: the workspace forbids unsafe code, and without ASan a
    // render runs several times faster. Debug assertions catch overflows.
    cmd.current_dir(&root)
        .args(["+nightly", "fuzz", "run", "-s", "none", "-a"])
        .args(["--codegen-units", "16", target])
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={}", o.seconds))
        .arg(format!(
            "-dict={}",
            root.join("fuzz/statement.dict").display()
        ))
        // A statement is small; 10 s for one is a hang (issue 13: linear work).
        .args(["-max_len=16384", "-timeout=10", "-rss_limit_mb=2048"])
        .arg("-print_final_stats=1");
    if o.keep_going {
        cmd.args([
            "-fork=1",
            "-ignore_crashes=1",
            "-ignore_timeouts=1",
            "-ignore_ooms=1",
        ]);
    }
    cmd.args(&o.extra).stderr(Stdio::piped());
    eprintln!("fuzz {target}: {} s", o.seconds);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    let mut stats = Stats::default();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let num = |prefix: &str| {
                line.strip_prefix(prefix)
                    .and_then(|v| v.trim().parse::<u64>().ok())
            };
            if let Some(n) = num("stat::number_of_executed_units:") {
                stats.execs = Some(stats.execs.unwrap_or(0) + n);
            }
            if let Some(n) = num("stat::average_exec_per_sec:") {
                stats.per_sec = Some(n);
            }
            // Fork mode reports progress lines: "#12345: cov: ... exec/s: 40 ...".
            if o.keep_going
                && let Some(rest) = line.strip_prefix('#')
                && let Some((n, tail)) = rest.split_once(':')
                && let Ok(n) = n.parse::<u64>()
            {
                stats.execs = Some(n);
                stats.per_sec = tail
                    .split_once("exec/s: ")
                    .and_then(|(_, r)| r.split_whitespace().next()?.parse().ok())
                    .or(stats.per_sec);
            }
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let (files, bytes) = size(&corpus);
    let found = findings(&artifacts);
    println!(
        "fuzz {target}: {} executions, {} exec/s, corpus {files} inputs ({} KB), {} finding(s) in {}",
        stats.execs.map_or("?".into(), |n| n.to_string()),
        stats.per_sec.map_or("?".into(), |n| n.to_string()),
        bytes.div_ceil(1024),
        found.len(),
        artifacts.display()
    );
    let new: Vec<&PathBuf> = found.iter().filter(|f| !before.contains(f)).collect();
    for f in &new {
        println!("  new: {}", f.display());
    }
    if !new.is_empty() {
        println!(
            "  replay on stable: cargo run -p herald-e2e --bin fuzz-replay {target} FILE\n  \
             then keep it as a test: copy it to tests/fuzz-regressions/{target}/ (docs/fuzzing.md)"
        );
    }
    Ok(status.success() && new.is_empty())
}

pub fn run(args: &[String]) -> ExitCode {
    let o = match parse_args(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = tools() {
        eprintln!("fuzz: {e}");
        return ExitCode::FAILURE;
    }
    let mut clean = true;
    for t in &o.targets {
        match run_one(t, &o) {
            Ok(ok) => clean &= ok,
            Err(e) => {
                eprintln!("fuzz {t}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments() {
        let o = parse_args(&args(&[])).expect("ok");
        assert_eq!(o.targets, ["parse", "render"]);
        assert_eq!(o.seconds, 300);
        let o = parse_args(&args(&["render", "--seconds", "60", "--", "-jobs=1"])).expect("ok");
        assert_eq!(o.targets, ["render"]);
        assert_eq!(o.seconds, 60);
        assert_eq!(o.extra, ["-jobs=1"]);
        assert!(parse_args(&args(&["nope"])).is_err());
        assert!(parse_args(&args(&["--seconds", "0"])).is_err());
        assert!(parse_args(&args(&["--seconds"])).is_err());
    }

    #[test]
    fn every_target_has_seeds_and_a_binary() {
        for t in TARGETS {
            let (n, _) = size(&root().join("fuzz/seeds").join(t));
            assert!(n > 0, "fuzz/seeds/{t} is empty");
            assert!(
                root().join(format!("fuzz/fuzz_targets/{t}.rs")).is_file(),
                "fuzz/fuzz_targets/{t}.rs is missing"
            );
        }
    }
}
