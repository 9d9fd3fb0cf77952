//! Every input the fuzzers found (and the hostile seeds) replayed on stable, two ways:
//! through the fuzz harness in a child process (`fuzz-replay`, so a stack overflow
//! fails one input instead of aborting the tests), and through the real CLI: when
//! `herald check` accepts the statement, `herald publish` with a subscriber in every
//! language must succeed; when it refuses it (exit 3), `publish` must exit 3 and
//! publish nothing. Inputs live in `tests/fuzz-regressions/<target>/` (format:
//! docs/fuzzing.md); the report lists every input that fails, not just the first.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use herald_e2e::fuzz::{HERALD_TOML, split_input};
use herald_e2e::herald;

const BIN: &str = env!("CARGO_BIN_EXE_herald-under-test");
const REPLAY: &str = env!("CARGO_BIN_EXE_fuzz-replay");
/// Later than any embargo a regression input sets: everything valid is due.
const NOW: &str = "2100-01-01T00:00:00+00:00";

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz-regressions")
        .join(target);
    // A target without findings has no folder (git keeps no empty ones).
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn describe(out: &Output) -> String {
    let tail = |b: &[u8]| {
        let s = String::from_utf8_lossy(b);
        let n = s.chars().count();
        s.chars().skip(n.saturating_sub(1500)).collect::<String>()
    };
    use std::os::unix::process::ExitStatusExt;
    let status = match (out.status.code(), out.status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => format!("{:?}", out.status),
    };
    format!(
        "{status}\nstdout: {}\nstderr: {}",
        tail(&out.stdout),
        tail(&out.stderr)
    )
}

/// Replay each input of `dirs` through the harness of `target` in a child
/// process; the failures.
fn replay(target: &str, dirs: &[&str]) -> Vec<String> {
    let mut failures = Vec::new();
    let files: Vec<PathBuf> = dirs.iter().flat_map(|d| inputs(d)).collect();
    assert!(
        !files.is_empty(),
        "no inputs in tests/fuzz-regressions/{dirs:?}"
    );
    for file in files {
        let out = Command::new(REPLAY)
            .arg(target)
            .arg(&file)
            .output()
            .expect("run fuzz-replay");
        if !out.status.success() {
            failures.push(format!("{}: {}", file.display(), describe(&out)));
        }
    }
    failures
}

fn report(what: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} of the {what} failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn parse_inputs_keep_the_harness_promises() {
    // Every render input is a statement file too.
    report("inputs parsed", &replay("parse", &["parse", "render"]));
}

#[test]
fn render_inputs_keep_the_harness_promises() {
    report("inputs rendered", &replay("render", &["render"]));
}

/// Check, then publish, one input in a fresh project through the CLI.
fn contract(file: &Path) -> Result<(), String> {
    let data = fs::read(file).map_err(|e| e.to_string())?;
    let (path, bytes) = split_input(&data);
    let rel = Path::new(&path);
    if path.is_empty()
        || path.contains('\0')
        || !rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        return Ok(());
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let statement = root.join("content/statements").join(rel);
    fs::create_dir_all(statement.parent().expect("parent")).expect("mkdir");
    fs::write(root.join("content/herald.toml"), HERALD_TOML).expect("herald.toml");
    // Subscribers first: `subscribers add` refuses to run on invalid content.
    for lang in ["en", "ru", "kk"] {
        let address = format!("desk-{lang}@example.org");
        let out = herald(BIN, root, &["subscribers", "add", &address, "--lang", lang]);
        if !out.status.success() {
            return Err(format!("subscribers add: {}", describe(&out)));
        }
    }
    fs::write(&statement, bytes).expect("statement");
    let check = herald(BIN, root, &["check"]);
    let publish = herald(BIN, root, &["publish", "--now", NOW]);
    match check.status.code() {
        Some(0) if publish.status.success() => Ok(()),
        Some(0) => Err(format!(
            "check accepted it, publish failed:\n{}",
            describe(&publish)
        )),
        Some(3) if publish.status.code() == Some(3) => {
            let public = root.join("public");
            if public.exists() && fs::read_dir(&public).map_or(0, |d| d.count()) > 0 {
                Err("check refused it, publish exited 3 but wrote into public/".into())
            } else {
                Ok(())
            }
        }
        Some(3) => Err(format!(
            "check refused it, publish did not exit 3:\n{}",
            describe(&publish)
        )),
        _ => Err(format!("check did not exit 0 or 3:\n{}", describe(&check))),
    }
}

#[test]
fn what_check_accepts_publishes() {
    let mut failures = Vec::new();
    for file in inputs("parse").into_iter().chain(inputs("render")) {
        if let Err(why) = contract(&file) {
            failures.push(format!("{}: {why}", file.display()));
        }
    }
    report("inputs published through the CLI", &failures);
}
