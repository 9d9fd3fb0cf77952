//! A bulletin checked by independent tools: Python's email parser in strict mode,
//! dkimpy for the DKIM signature (RSA and Ed25519), SpamAssassin offline.
//! `cargo xtask provision` installs them.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use herald_mail::{DkimAlgorithm, DkimSettings, MailSettings, MailStore, deliver, queue};
use support::*;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_mail.py")
}

/// Send the 2014 statement to six subscribers (two each in en, ru, kk: the
/// second message of a language is spliced from the same template) into an
/// outbox; return the six .eml files.
fn bulletins(dir: &Path, dkim: Option<DkimSettings>) -> Vec<PathBuf> {
    let corpus = corpus();
    let store = MailStore::in_memory().expect("store");
    subscribers(&store, 6);
    let settings = MailSettings {
        outbox: dir.join("outbox"),
        dkim,
        ..MailSettings::default()
    };
    let due: Vec<_> = corpus
        .due(now())
        .into_iter()
        .filter(|s| s.id == STATEMENT)
        .collect();
    queue(&store, &corpus, &settings, &due, now()).expect("queue");
    let report = deliver(
        &store,
        &corpus,
        &settings,
        &secret(),
        now(),
        &AtomicBool::new(false),
        &indicatif::ProgressBar::hidden(),
    )
    .expect("deliver");
    assert_eq!(report.sent, 6, "{report:?}");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("outbox"))
        .expect("outbox")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

fn python(args: &[&str]) -> (bool, String) {
    let out = Command::new("python3")
        .arg(script())
        .args(args)
        .output()
        .expect("python3 with dkimpy (run the tests with `cargo xtask test`: its python3 is target/test-venv)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn strict_mime_parse_finds_no_defect() {
    let dir = tempfile::tempdir().expect("tmp");
    for file in bulletins(dir.path(), None) {
        let (ok, out) = python(&["strict", file.to_str().expect("utf8")]);
        assert!(ok, "{}: {out}", file.display());
        assert!(
            out.contains("multipart/alternative text/plain text/html"),
            "{out}"
        );
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn dkim_signatures_verify_with_dkimpy() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // Ed25519: the key file holds the base64 seed; DNS holds the base64 public key.
    let keys = run(Command::new("python3").args([
        "-c",
        "import nacl.signing, base64; k = nacl.signing.SigningKey.generate(); \
         print(base64.b64encode(bytes(k)).decode()); print(base64.b64encode(bytes(k.verify_key)).decode())",
    ]));
    let mut lines = keys.lines();
    let (seed, public) = (lines.next().expect("seed"), lines.next().expect("public"));
    std::fs::write(d.join("ed.key"), seed).expect("write");
    std::fs::write(d.join("ed.txt"), format!("v=DKIM1; k=ed25519; p={public}")).expect("write");
    // RSA: PKCS#1 PEM, as lettre reads it.
    run(Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(d.join("rsa.pem"))
        .arg("2048"));
    let der = Command::new("openssl")
        .args(["rsa", "-pubout", "-outform", "DER", "-in"])
        .arg(d.join("rsa.pem"))
        .output()
        .expect("openssl");
    assert!(der.status.success());
    use base64::Engine;
    let p = base64::engine::general_purpose::STANDARD.encode(&der.stdout);
    std::fs::write(d.join("rsa.txt"), format!("v=DKIM1; k=rsa; p={p}")).expect("write");

    for (algorithm, key, txt) in [
        (DkimAlgorithm::Ed25519, "ed.key", "ed.txt"),
        (DkimAlgorithm::Rsa, "rsa.pem", "rsa.txt"),
    ] {
        let out_dir = d.join(format!("{algorithm:?}"));
        let files = bulletins(
            &out_dir,
            Some(DkimSettings {
                selector: "herald".into(),
                domain: "statements.example.org".into(),
                key: d.join(key),
                algorithm,
            }),
        );
        for file in files {
            let (ok, out) = python(&[
                "dkim",
                file.to_str().expect("utf8"),
                d.join(txt).to_str().expect("utf8"),
            ]);
            assert!(ok, "{algorithm:?} {}: {out}", file.display());
            assert!(out.contains("relaxed/relaxed"), "{out}");
            assert!(
                out.contains("list-unsubscribe:list-unsubscribe-post"),
                "{out}"
            );
            // A changed header breaks the signature: the verifier is really checking.
            let bytes = std::fs::read(&file).expect("eml");
            let text = String::from_utf8(bytes).expect("ascii");
            let tampered = text.replacen(
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                "List-Unsubscribe-Post: nope",
                1,
            );
            assert_ne!(tampered, text);
            // And so does another recipient, or a changed body.
            let other = text.replacen("To: ", "To: x", 1);
            let boundary = text.rfind("\r\n--").expect("a last boundary");
            let body = format!("{}\r\nx{}", &text[..boundary], &text[boundary..]);
            for tampered in [tampered, other, body] {
                let bad = out_dir.join("tampered.eml");
                std::fs::write(&bad, tampered).expect("write");
                let (ok, out) = python(&[
                    "dkim",
                    bad.to_str().expect("utf8"),
                    d.join(txt).to_str().expect("utf8"),
                ]);
                assert!(!ok, "tampered message verified: {out}");
            }
        }
    }
}

#[test]
fn spamassassin_scores_a_bulletin_below_one() {
    let dir = tempfile::tempdir().expect("tmp");
    for file in bulletins(dir.path(), None) {
        let out = Command::new("spamassassin")
            .args(["-L", "-t"])
            .stdin(std::fs::File::open(&file).expect("eml"))
            .output()
            .expect("spamassassin (run `cargo xtask provision`)");
        let text = String::from_utf8_lossy(&out.stdout);
        let status = text
            .lines()
            .find(|l| l.starts_with("X-Spam-Status:"))
            .unwrap_or_else(|| panic!("no X-Spam-Status in {text}"));
        let score: f64 = status
            .split("score=")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no score in {status}"));
        assert!(score < 1.0, "{}: {status}\n{text}", file.display());
    }
}
