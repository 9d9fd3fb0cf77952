//! Helpers the PDF test binaries share.

use std::process::Command;

/// `qpdf --check` exits 0 with no warnings (exit 3) and no errors (exit 2).
pub fn qpdf_check(pdf: &[u8], what: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.pdf");
    std::fs::write(&path, pdf).expect("write");
    let out = Command::new("qpdf")
        .arg("--check")
        .arg(&path)
        .output()
        .expect("qpdf installed (`cargo xtask provision` installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.code() == Some(0) && out.stderr.is_empty(),
        "{what}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
