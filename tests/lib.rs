//! Helpers for the end-to-end tests: a scratch project with the sample content,
//! and the fuzz harness ([`fuzz`]) that the cargo-fuzz targets and their
//! regression tests share.

pub mod fuzz;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh project in a temporary folder, with a copy of the sample `content/`.
pub fn sample_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&repo().join("content"), &dir.path().join("content"));
    dir
}

pub fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.expect("walk");
        let rel = entry.path().strip_prefix(from).expect("prefix");
        let target = to.join(rel);
        if entry.file_type().is_dir() {
            fs::create_dir_all(&target).expect("mkdir");
        } else {
            fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Add a confirmed English subscriber, `desk@example.org`, to the project at `root`.
pub fn add_desk_subscriber(bin: &str, root: &Path) {
    let out = herald(
        bin,
        root,
        &["subscribers", "add", "desk@example.org", "--lang", "en"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run the herald CLI (built by this package) in `root`.
pub fn herald(bin: &str, root: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run herald")
}

/// Every file below `dir`, relative, with its bytes and modification time.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, std::time::SystemTime)> {
    let mut v = Vec::new();
    if !dir.exists() {
        return v;
    }
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.expect("walk");
        if e.file_type().is_file() {
            let rel = e
                .path()
                .strip_prefix(dir)
                .expect("prefix")
                .to_string_lossy()
                .into_owned();
            let meta = e.metadata().expect("meta");
            v.push((
                rel,
                fs::read(e.path()).expect("read"),
                meta.modified().expect("mtime"),
            ));
        }
    }
    v
}

/// Row count of a ledger table.
pub fn rows(root: &Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(root.join(".herald/herald.db")).expect("ledger");
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}
