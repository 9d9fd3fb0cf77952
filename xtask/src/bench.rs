//! `cargo xtask bench [--runs R] [--bin PATH] [N...]`: end-to-end timings of the release `herald`
//! binary on generated corpora, printed as a table. Targets live here, never in tests.
//!
//! Each step runs R times (default 3), every cold step on a new copy of the corpus, the
//! edits and adds three times on each, and the table gives the median and the range:
//! on a shared 2-core VM one run can be twice as slow as the next, and a single
//! figure says little.

use std::collections::BTreeMap;
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

/// One run of herald: wall seconds, peak RSS in MB as herald reports it, and each
/// channel's own seconds from the publish report ("  pdf ... in 2.08 s").
struct Run {
    secs: f64,
    peak_mb: f64,
    channels: Vec<(String, f64)>,
}

fn time(bin: &Path, root: &Path, args: &[&str]) -> Result<Run, String> {
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
    let peak_mb = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak memory: "))
        .and_then(|l| l.trim_end_matches(" MB").parse().ok())
        .unwrap_or(f64::NAN);
    let channels = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let name = l.split_whitespace().next()?;
            let secs = l.rsplit_once(" in ")?.1.strip_suffix(" s")?.parse().ok()?;
            Some((name.to_string(), secs))
        })
        .collect();
    Ok(Run {
        secs,
        peak_mb,
        channels,
    })
}

/// The corpus of `n` statements in a new folder, with PDFs and feeds off when
/// `site_only` (the site alone, as issue 2 measures it).
fn corpus(n: usize, dir: &Path, site_only: bool) -> Result<usize, String> {
    let _ = std::fs::remove_dir_all(dir);
    let files = crate::corpus::generate(n, dir).map_err(|e| format!("corpus: {e}"))?;
    if site_only {
        let toml = dir.join("content/herald.toml");
        let mut text = std::fs::read_to_string(&toml).map_err(|e| e.to_string())?;
        text.push_str("\n[pdf]\nenabled = false\n\n[feed]\nenabled = false\n");
        std::fs::write(&toml, text).map_err(|e| e.to_string())?;
    }
    Ok(files)
}

/// Append a sentence to the body of the first English statement of 2015.
fn edit_one(dir: &Path, run: usize) -> Result<(), String> {
    let year = dir.join("content/statements/2015");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&year)
        .map_err(|e| format!("{}: {e}", year.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".en.md"))
        .collect();
    files.sort();
    let file = files.first().ok_or("no statement of 2015 to edit")?;
    let mut text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    text.push_str(&format!("\nA sentence added in run {run}.\n"));
    std::fs::write(file, text).map_err(|e| e.to_string())
}

/// A new statement in 2025, with a topic the corpus uses.
fn add_one(dir: &Path, run: usize) -> Result<(), String> {
    let file = dir.join(format!("content/statements/2025/added-in-run-{run}.en.md"));
    let text = format!(
        "+++\ntitle = \"A statement added in run {run}\"\ndate = 2025-12-31T09:00:00+06:00\ntopics = [\"children\"]\n+++\nThe added statement's body, with a [link](https://example.org/) and a second sentence.\n"
    );
    std::fs::create_dir_all(file.parent().unwrap_or(dir)).map_err(|e| e.to_string())?;
    std::fs::write(&file, text).map_err(|e| e.to_string())
}

/// Seconds for coreutils' `sha256sum` to read and hash every statement file: no
/// herald code, so it tells how fast the machine is during this bench. On this
/// shared VM that varies more than two-fold from one hour to the next, and
/// herald's figures are only comparable next to it.
fn reference(dir: &Path) -> Result<f64, String> {
    let mut files = Vec::new();
    for e in walkdir::WalkDir::new(dir.join("content/statements")) {
        let e = e.map_err(|e| format!("reference: {e}"))?;
        if e.file_type().is_file() {
            files.push(e.into_path());
        }
    }
    let _ = Command::new("sync").status();
    let t = Instant::now();
    for chunk in files.chunks(2_000) {
        let out = Command::new("sha256sum")
            .args(chunk)
            .output()
            .map_err(|e| format!("sha256sum: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "sha256sum: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Timings of one table row, over the runs.
#[derive(Default)]
struct Row {
    secs: Vec<f64>,
    peak_mb: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn range(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

/// Edits and adds timed per corpus (see [`bench_size`]).
const INCREMENTAL: usize = 3;

fn bench_size(bin: &Path, n: usize, runs: usize) -> Result<(usize, Vec<(String, Row)>), String> {
    let now = "2026-01-01T00:00:00Z";
    let mut rows: BTreeMap<usize, (String, Row)> = BTreeMap::new();
    let mut add = |order: usize, name: String, secs: f64, peak: f64| {
        let row = &mut rows
            .entry(order)
            .or_insert_with(|| (name, Row::default()))
            .1;
        row.secs.push(secs);
        if !peak.is_nan() {
            row.peak_mb.push(peak);
        }
    };
    let mut files = 0;
    let mut made = Vec::new();
    for run in 0..runs {
        let dir = std::env::temp_dir().join(format!("herald-bench-{n}-{run}"));
        files = corpus(n, &dir, false)?;
        add(
            0,
            "machine reference: sha256sum of the statements".into(),
            reference(&dir)?,
            f64::NAN,
        );
        let check = time(bin, &dir, &["check"])?;
        add(1, "check".into(), check.secs, check.peak_mb);
        let cold = time(bin, &dir, &["publish", "--now", now])?;
        add(
            2,
            "cold publish, all channels".into(),
            cold.secs,
            cold.peak_mb,
        );
        for (k, (channel, secs)) in cold.channels.iter().enumerate() {
            add(3 + k, format!("  of which {channel}"), *secs, f64::NAN);
        }
        let settled = time(bin, &dir, &["publish", "--now", now])?;
        add(
            20,
            "no-change publish".into(),
            settled.secs,
            settled.peak_mb,
        );
        // One statement edited (a sentence added to its body), then one added
        // (its PDF, page, preview and every list and feed it appears in). These
        // take a third of a second, where one run can be twice the next on this
        // machine: each is timed INCREMENTAL times per corpus.
        for k in 0..INCREMENTAL {
            edit_one(&dir, run * INCREMENTAL + k)?;
            let edit = time(bin, &dir, &["publish", "--now", now])?;
            add(22, "edit one statement".into(), edit.secs, edit.peak_mb);
        }
        for k in 0..INCREMENTAL {
            add_one(&dir, run * INCREMENTAL + k)?;
            let added = time(bin, &dir, &["publish", "--now", now])?;
            add(23, "add one statement".into(), added.secs, added.peak_mb);
        }
        let site = std::env::temp_dir().join(format!("herald-bench-{n}-{run}-site"));
        corpus(n, &site, true)?;
        let cold_site = time(bin, &site, &["publish", "--now", now])?;
        add(
            21,
            "cold publish, site only".into(),
            cold_site.secs,
            cold_site.peak_mb,
        );
        made.extend([dir, site]);
    }
    // Deleted after the last run, not between runs: ext4 is slow for a while after
    // a large delete, and the next run's cold publish would pay for it.
    for d in made {
        let _ = std::fs::remove_dir_all(d);
    }
    Ok((files, rows.into_values().collect()))
}

pub fn run(args: &[String]) -> ExitCode {
    let mut runs = 3;
    let mut sizes = Vec::new();
    let mut given_bin = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--bin" {
            // Another build of herald, e.g. the release binary of an older commit,
            // measured side by side on the same corpora.
            match it.next() {
                Some(b) => given_bin = Some(PathBuf::from(b)),
                None => {
                    eprintln!("--bin takes the path of a herald binary");
                    return ExitCode::from(2);
                }
            }
        } else if a == "--runs" {
            match it.next().and_then(|r| r.parse().ok()).filter(|&r| r > 0) {
                Some(r) => runs = r,
                None => {
                    eprintln!("--runs takes a number of runs, at least 1");
                    return ExitCode::from(2);
                }
            }
        } else if let Ok(n) = a.parse() {
            sizes.push(n);
        } else {
            eprintln!(
                "usage: cargo xtask bench [--runs R] [--bin PATH] [N...]; {a:?} is not a number"
            );
            return ExitCode::from(2);
        }
    }
    if sizes.is_empty() {
        sizes = vec![1_000, 10_000];
    }
    let bin = match given_bin.map(Ok).unwrap_or_else(herald_binary) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{runs} run(s) per step ({} of edit one and add one); the median, then the fastest and slowest run.\n",
        runs * INCREMENTAL
    );
    println!("| statements | files | step | median s | range s | peak MB |");
    println!("|---:|---:|---|---:|---:|---:|");
    for n in sizes {
        match bench_size(&bin, n, runs) {
            Ok((files, rows)) => {
                for (name, row) in rows {
                    let (lo, hi) = range(&row.secs);
                    let peak = if row.peak_mb.is_empty() {
                        String::new()
                    } else {
                        format!("{:.0}", range(&row.peak_mb).1)
                    };
                    println!(
                        "| {n} | {files} | {name} | {:.3} | {lo:.3}–{hi:.3} | {peak} |",
                        median(&row.secs)
                    );
                }
            }
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
