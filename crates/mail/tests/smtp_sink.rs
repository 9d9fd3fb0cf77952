//! Delivery against postfix's `smtp-sink` (installed by `cargo xtask provision`; the
//! postfix daemon itself is never started), healthy and told to fail.

mod support;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use herald_mail::{BulletinState, MailStore, SmtpSettings, TlsMode, deliver};
use support::*;

struct Sink {
    child: Child,
    port: u16,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sink(args: &[&str]) -> Sink {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let bin = if Path::new("/usr/sbin/smtp-sink").exists() {
        "/usr/sbin/smtp-sink"
    } else {
        "smtp-sink"
    };
    let child = Command::new(bin)
        .args(["-u", "postfix"])
        .args(args)
        .arg(format!("127.0.0.1:{port}"))
        .arg("64")
        .spawn()
        .expect("smtp-sink (run `cargo xtask provision`)");
    let sink = Sink { child, port };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "smtp-sink did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    sink
}

/// Send the 2014 statement to `n` subscribers through a sink started with `args`.
fn send(args: &[&str], n: usize) -> (MailStore, herald_mail::DeliveryReport, Sink) {
    let sink = sink(args);
    let corpus = corpus();
    let store = MailStore::in_memory().expect("store");
    subscribers(&store, n);
    let settings = herald_mail::MailSettings {
        smtp: Some(SmtpSettings {
            host: "127.0.0.1".into(),
            port: Some(sink.port),
            tls: TlsMode::None,
            timeout_secs: 3,
            hello_name: Some("herald.test".into()),
        }),
        concurrency: 2,
        max_attempts: 2,
        retry_backoff_ms: 10,
        ..herald_mail::MailSettings::default()
    };
    let due: Vec<_> = corpus
        .due(now())
        .into_iter()
        .filter(|s| s.id == STATEMENT)
        .collect();
    herald_mail::queue(&store, &corpus, &settings, &due, now()).expect("queue");
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
    (store, report, sink)
}

fn states(store: &MailStore) -> Vec<BulletinState> {
    let mut s: Vec<_> = store
        .bulletins(None)
        .expect("rows")
        .into_iter()
        .map(|b| b.state)
        .collect();
    s.dedup();
    s
}

#[test]
fn every_message_reaches_smtp_sink_once() {
    let dir = tempfile::tempdir().expect("tmp");
    // smtp-sink drops root for the postfix user, which must be able to write the dumps.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
    }
    let template = format!("{}/m.", dir.path().display());
    let (store, report, _sink) = send(&["-d", &template], 300);
    assert_eq!(report.sent, 300, "{report:?}");
    assert_eq!(states(&store), vec![BulletinState::Sent]);
    let start = Instant::now();
    let count = || {
        std::fs::read_dir(dir.path())
            .map(|d| d.count())
            .unwrap_or(0)
    };
    while count() < 300 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(count(), 300, "one dump file per message");
}

#[test]
fn hard_rejection_of_rcpt_fails() {
    let (store, report, _s) = send(&["-f", "RCPT"], 4);
    assert_eq!(report.failed.len(), 4, "{report:?}");
    assert_eq!(states(&store), vec![BulletinState::Failed]);
}

#[test]
fn soft_rejection_of_rcpt_is_retried_then_left_pending() {
    let (store, report, _s) = send(&["-r", "RCPT"], 4);
    assert_eq!(report.deferred.len(), 4, "{report:?}");
    assert!(
        store
            .bulletins(None)
            .expect("rows")
            .iter()
            .all(|b| b.state == BulletinState::Pending && b.attempts == 2)
    );
}

#[test]
fn closing_421_and_drop_before_data_are_retried() {
    for args in [["-Q", "RCPT"], ["-q", "RCPT"]] {
        let (store, report, _s) = send(&args, 3);
        assert_eq!(report.deferred.len(), 3, "{args:?}: {report:?}");
        assert_eq!(states(&store), vec![BulletinState::Pending], "{args:?}");
    }
}

#[test]
fn drop_after_the_data_is_ambiguous() {
    let (store, report, _s) = send(&["-q", "."], 3);
    assert_eq!(report.ambiguous.len(), 3, "{report:?}");
    assert_eq!(states(&store), vec![BulletinState::Ambiguous]);
}

#[test]
fn rejection_after_the_data_fails_hard_or_retries_soft() {
    let (store, report, _s) = send(&["-f", "."], 3);
    assert_eq!(report.failed.len(), 3, "{report:?}");
    assert_eq!(states(&store), vec![BulletinState::Failed]);
    let (store, report, _s) = send(&["-r", "."], 3);
    assert_eq!(report.deferred.len(), 3, "{report:?}");
    assert_eq!(states(&store), vec![BulletinState::Pending]);
}
