//! Kill the sending process in the middle of a 2,000-recipient send, run again:
//! everyone has exactly one message, except those reported ambiguous (at most one).

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use herald_mail::{BulletinState, MailStore, deliver};
use support::*;

/// `target/<profile>/examples/send`, built by `cargo test` with the tests.
fn send_example() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = profile_dir
        .join("examples")
        .join(format!("send{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "herald-mail", "--example", "send"])
            .status()
            .expect("cargo build");
        assert!(status.success());
    }
    path
}

#[test]
fn killed_mid_send_then_rerun_sends_nobody_twice() {
    let server = SmtpServer::start();
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("herald.db");
    let store = MailStore::open(&db).expect("store");
    let addresses = subscribers(&store, 2000);
    drop(store);

    let mut child = Command::new(send_example())
        .args([
            content_root().to_str().expect("utf8"),
            db.to_str().expect("utf8"),
            &server.addr.port().to_string(),
            &now().to_rfc3339(),
            "4",
        ])
        .env("HERALD_SECRET", "2a".repeat(32))
        .spawn()
        .expect("spawn send");
    let start = Instant::now();
    while server.count() < 400 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the sender never got going"
        );
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("the sender ended before it was killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().expect("kill");
    child.wait().expect("reap");
    let at_kill = server.count();
    assert!(
        at_kill < 2000,
        "killed too late to test anything ({at_kill})"
    );

    let store = MailStore::open(&db).expect("reopen");
    let corpus = corpus();
    let settings = smtp_settings(&server);
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
    // At most one message per connection can have been in flight.
    assert!(report.recovered_ambiguous <= 4, "{report:?}");

    let per = server.per_recipient();
    let rows = store.bulletins(None).expect("rows");
    assert_eq!(rows.len(), 2000);
    let mut ambiguous = 0;
    for row in &rows {
        let got = per.get(&row.address).copied().unwrap_or(0);
        match row.state {
            BulletinState::Sent => assert_eq!(got, 1, "{}", row.address),
            BulletinState::Ambiguous => {
                ambiguous += 1;
                assert!(got <= 1, "{}", row.address);
            }
            other => panic!("{} ended {other}", row.address),
        }
    }
    assert_eq!(ambiguous, report.recovered_ambiguous);
    assert!(per.values().all(|&n| n == 1), "somebody got two");
    assert_eq!(addresses.len(), 2000);
}
