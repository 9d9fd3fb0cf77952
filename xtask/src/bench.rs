//! `cargo xtask bench [N...]`: end-to-end timings of the release `herald` binary on
//! generated corpora, printed as a table. Targets live here, never in tests.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

fn herald_binary() -> Result<PathBuf, String> {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "herald"])
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("cargo build --release -p herald failed".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    Ok(target.join("release/herald"))
}

/// Run herald, return (seconds, peak RSS in MB as herald reports it).
fn time(bin: &Path, root: &Path, args: &[&str]) -> Result<(f64, f64), String> {
    // Start from a quiet disk: the last step's writeback is not this step's time.
    let _ = Command::new("sync").status();
    let t = Instant::now();
    let out = Command::new(bin)
        .arg("--root")
        .arg(root)
        .args(args)
        .env("HERALD_PEAK_MEMORY", "1")
        .output()
        .map_err(|e| e.to_string())?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "herald {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let peak = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak memory: "))
        .and_then(|l| l.trim_end_matches(" MB").parse().ok())
        .unwrap_or(f64::NAN);
    Ok((secs, peak))
}

pub fn run(args: &[String]) -> ExitCode {
    let sizes: Vec<usize> = if args.is_empty() {
        vec![1_000, 10_000]
    } else {
        args.iter().filter_map(|a| a.parse().ok()).collect()
    };
    let bin = match herald_binary() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!("| statements | files | step | seconds | peak MB |");
    println!("|---:|---:|---|---:|---:|");
    for n in sizes {
        let dir = std::env::temp_dir().join(format!("herald-bench-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        let files = match crate::corpus::generate(n, &dir) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("corpus: {e}");
                return ExitCode::FAILURE;
            }
        };
        let now = "2026-01-01T00:00:00Z";
        let steps: [(&str, Vec<&str>); 3] = [
            ("check", vec!["check"]),
            ("cold publish", vec!["publish", "--now", now]),
            ("no-change publish", vec!["publish", "--now", now]),
        ];
        for (name, a) in steps {
            match time(&bin, &dir, &a) {
                Ok((s, mb)) => println!("| {n} | {files} | {name} | {s:.3} | {mb:.0} |"),
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        // The site alone, as issue 2 measures it: the same corpus without PDFs and feeds.
        let site_only = std::env::temp_dir().join(format!("herald-bench-{n}-site"));
        let _ = std::fs::remove_dir_all(&site_only);
        let prepared = crate::corpus::generate(n, &site_only)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                let toml = site_only.join("content/herald.toml");
                let mut text = std::fs::read_to_string(&toml).map_err(|e| e.to_string())?;
                text.push_str("\n[pdf]\nenabled = false\n\n[feed]\nenabled = false\n");
                std::fs::write(&toml, text).map_err(|e| e.to_string())
            });
        if let Err(e) = prepared {
            eprintln!("corpus: {e}");
            return ExitCode::FAILURE;
        }
        match time(&bin, &site_only, &["publish", "--now", now]) {
            Ok((s, mb)) => {
                println!("| {n} | {files} | cold publish, site only | {s:.3} | {mb:.0} |")
            }
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
        let _ = std::fs::remove_dir_all(&site_only);
        let _ = std::fs::remove_dir_all(&dir);
    }
    ExitCode::SUCCESS
}
