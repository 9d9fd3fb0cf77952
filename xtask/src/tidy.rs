//! `cargo xtask tidy`: checks the invariants ARCHITECTURE.md states, as
//! rust-analyzer's tidy does, so that a change breaking one fails CI with the file
//! and the rule instead of waiting for a reviewer to notice.
//!
//! - Channel crates (feed, pdf, site, mail) depend on no workspace crate but
//!   herald-content; herald-content depends on none.
//! - Nothing below the command line reads the clock (`Utc::now`, `Local::now`,
//!   `SystemTime::now`): the time is passed in. The few places that may are listed
//!   with their reason in `CLOCK_ALLOWED`.
//! - Only herald-content calls the Markdown parser.
//! - Every crate takes the workspace lints (`unsafe_code` denied among them).
//! - Every Rust file opens with a `//!` comment saying what it is for.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Crates that render one channel: they know herald-content and nothing else.
const CHANNELS: &[&str] = &["feed", "pdf", "site", "mail"];

/// Files that may read the clock, and why.
const CLOCK_ALLOWED: &[(&str, &str)] = &[
    (
        "crates/herald/src/cli.rs",
        "the command line: `now` starts here",
    ),
    (
        "crates/herald/src/lock.rs",
        "the lock records when its holder started, for the operator; it decides nothing",
    ),
    (
        "crates/serve/src/lib.rs",
        "the service's injectable clock defaults to the real one",
    ),
];

const CLOCK_CALLS: &[&str] = &["Utc::now", "Local::now", "SystemTime::now"];

/// One broken rule: where, and what.
#[derive(Debug, PartialEq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub rule: &'static str,
    pub message: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Workspace crates a `Cargo.toml` names under `[dependencies]` (dev-dependencies
/// are free: tests may use any crate).
fn workspace_deps(manifest: &str) -> Result<Vec<String>, String> {
    let doc: toml::Table = manifest.parse().map_err(|e| format!("{e}"))?;
    Ok(doc
        .get("dependencies")
        .and_then(|d| d.as_table())
        .map(|d| {
            d.keys()
                .filter(|k| k.starts_with("herald"))
                .cloned()
                .collect()
        })
        .unwrap_or_default())
}

/// Every problem under the workspace `root`.
pub fn check(root: &Path) -> Vec<Problem> {
    let mut out = Vec::new();
    let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).to_path_buf();

    // Dependencies and lints, per crate.
    let mut crates: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    crates.push(root.join("xtask"));
    crates.push(root.join("tests"));
    crates.sort();
    for dir in &crates {
        let manifest = dir.join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let allowed: Option<&[&str]> = if name == "content" {
            Some(&[])
        } else if CHANNELS.contains(&name) {
            Some(&["herald-content"])
        } else {
            None
        };
        match (workspace_deps(&text), allowed) {
            (Err(e), _) => out.push(Problem {
                file: rel(&manifest),
                line: 0,
                rule: "manifest",
                message: format!("not valid TOML: {e}"),
            }),
            (Ok(deps), Some(allowed)) => {
                for d in deps.iter().filter(|d| !allowed.contains(&d.as_str())) {
                    out.push(Problem {
                        file: rel(&manifest),
                        line: line_of(&text, d),
                        rule: "layers",
                        message: format!(
                            "crate {name} depends on {d}; it may depend on {}",
                            if allowed.is_empty() {
                                "no workspace crate".to_string()
                            } else {
                                allowed.join(", ")
                            }
                        ),
                    });
                }
            }
            (Ok(_), None) => {}
        }
        lints(&text, &manifest, root, &mut out);
    }

    // Source files.
    let mut files = Vec::new();
    for dir in &crates {
        rust_files(&dir.join("src"), &mut files);
        rust_files(&dir.join("tests"), &mut files);
        rust_files(&dir.join("benches"), &mut files);
        if dir.ends_with("tests") {
            rust_files(&dir.join("e2e"), &mut files);
            rust_files(&dir.join("bin"), &mut files);
            for f in ["lib.rs", "fuzz.rs", "fuzz_regressions.rs"] {
                let p = dir.join(f);
                if p.is_file() {
                    files.push(p);
                }
            }
        }
    }
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let r = rel(file);
        let shown = r.to_string_lossy().replace('\\', "/");
        if !text.starts_with("//!") {
            out.push(Problem {
                file: r.clone(),
                line: 1,
                rule: "module-doc",
                message: "does not open with a `//!` comment saying what the module is for".into(),
            });
        }
        let in_src = shown.starts_with("crates/") && shown.contains("/src/");
        let crate_name = shown.split('/').nth(1).unwrap_or("");
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if in_src
                && !CLOCK_ALLOWED.iter().any(|(f, _)| *f == shown)
                && let Some(call) = CLOCK_CALLS.iter().find(|c| code.contains(*c))
            {
                out.push(Problem {
                        file: r.clone(),
                        line: i + 1,
                        rule: "clock",
                        message: format!(
                            "reads the clock ({call}); take `now` as an argument from the command line (or add this file to CLOCK_ALLOWED in xtask/src/tidy.rs with the reason)"
                        ),
                    });
            }
            if in_src && crate_name != "content" && code.contains("pulldown_cmark") {
                out.push(Problem {
                    file: r.clone(),
                    line: i + 1,
                    rule: "markdown",
                    message: "uses the Markdown parser; only herald-content parses Markdown, channels read its document tree".into(),
                });
            }
        }
    }
    out
}

/// The `[lints] workspace = true` rule, for any crate.
fn lints(text: &str, manifest: &Path, root: &Path, out: &mut Vec<Problem>) {
    let takes = text
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get("lints")?.get("workspace")?.as_bool())
        .unwrap_or(false);
    if !takes {
        out.push(Problem {
            file: manifest
                .strip_prefix(root)
                .unwrap_or(manifest)
                .to_path_buf(),
            line: 0,
            rule: "lints",
            message: "does not take the workspace lints; add `[lints]\\nworkspace = true`".into(),
        });
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.trim_start().starts_with(needle))
        .map_or(0, |i| i + 1)
}

pub fn run(root: &Path) -> ExitCode {
    let problems = check(root);
    for p in &problems {
        eprintln!(
            "{}:{}: [{}] {}",
            p.file.display(),
            p.line,
            p.rule,
            p.message
        );
    }
    if problems.is_empty() {
        println!("tidy: ok");
        ExitCode::SUCCESS
    } else {
        eprintln!("tidy: {} problem(s)", problems.len());
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (p, text) in files {
            let p = dir.path().join(p);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        dir
    }

    const LINTS: &str = "\n[lints]\nworkspace = true\n";

    #[test]
    fn the_workspace_is_tidy() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let problems = check(&root);
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn each_rule_fails_where_it_is_broken() {
        let feed = format!(
            "[package]\nname = \"herald-feed\"\n[dependencies]\nherald-content.workspace = true\nherald-pdf.workspace = true\n{LINTS}"
        );
        let dir = project(&[
            ("crates/feed/Cargo.toml", &feed),
            (
                "crates/feed/src/lib.rs",
                "//! Feeds.\nfn f() { let _ = chrono::Utc::now(); }\nuse pulldown_cmark::Parser;\n",
            ),
            (
                "crates/site/Cargo.toml",
                "[package]\nname = \"herald-site\"\n",
            ),
            (
                "crates/site/src/lib.rs",
                "fn no_doc() {}\n// Utc::now in a comment is fine\n",
            ),
        ]);
        let problems = check(dir.path());
        let rules: Vec<(&str, usize)> = problems.iter().map(|p| (p.rule, p.line)).collect();
        assert_eq!(
            rules,
            [
                ("layers", 5),
                ("lints", 0),
                ("clock", 2),
                ("markdown", 3),
                ("module-doc", 1)
            ],
            "{problems:#?}"
        );
        assert!(problems[0].message.contains("herald-pdf"));
    }
}
