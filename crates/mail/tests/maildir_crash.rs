//! `herald mail receive --maildir` is exactly once across kill -9: a child
//! process (this test binary, run again) handles 1,000 DSNs and is killed in
//! the middle; a rerun handles the rest. Every message ends in cur/, and each
//! bulletin has exactly one hard bounce recorded.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use herald_mail::inbound::{Inbound, maildir};
use herald_mail::store::NewBulletin;
use herald_mail::{EventKind, MailSettings, MailStore, NewSubscriber, Secret, Status, VerpKind};

const CHILD: &str = "HERALD_TEST_MAILDIR_CHILD";
const N: usize = 1000;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0)
        .single()
        .expect("t")
}

fn secret() -> Secret {
    Secret::from_bytes(&[42u8; 32]).expect("key")
}

fn settings() -> MailSettings {
    MailSettings {
        bounce_address: Some("bounces@statements.example.org".into()),
        bounce_after: 1,
        ..MailSettings::default()
    }
}

fn run_maildir(root: &Path) -> herald_mail::inbound::MaildirReport {
    let store = MailStore::open(&root.join(".herald/herald.db")).expect("store");
    let (secret, settings) = (secret(), settings());
    let state = root.join(".herald");
    let ctx = Inbound {
        secret: &secret,
        settings: &settings,
        state_dir: &state,
        now: now(),
    };
    maildir(&store, &ctx, &root.join("mail")).expect("maildir")
}

/// Not a test on its own: the child process the crash test kills.
#[test]
fn maildir_child() {
    if let Ok(root) = std::env::var(CHILD) {
        run_maildir(Path::new(&root));
    }
}

fn setup(root: &Path) {
    let store = MailStore::open(&root.join(".herald/herald.db")).expect("store");
    let subs: Vec<NewSubscriber> = (0..N)
        .map(|i| NewSubscriber {
            address: format!("reader{i}@example.net"),
            name: String::new(),
            lang: "en".into(),
            topics: vec![],
            status: Status::Confirmed,
            consent_source: "test".into(),
            consent_ip: None,
            consent_at: None,
        })
        .collect();
    store.add_subscribers(&subs, now()).expect("subscribers");
    let rows: Vec<NewBulletin> = store
        .subscribers(None)
        .expect("list")
        .iter()
        .map(|s| NewBulletin {
            statement_id: "2026/crash".into(),
            version: "v1".into(),
            lang: "en".into(),
            subscriber_id: s.id,
            address: s.address.clone(),
            message_id: format!("crash.{}@statements.example.org", s.id),
            ..NewBulletin::default()
        })
        .collect();
    store.queue_bulletins(&rows, now()).expect("queue");
    store.mark_all_sent_for_bench().expect("sent");
    let new = root.join("mail/new");
    std::fs::create_dir_all(&new).expect("mkdir");
    let secret = secret();
    for (i, b) in store.bulletins(None).expect("rows").iter().enumerate() {
        let to = herald_mail::verp_address(
            "bounces@statements.example.org",
            &secret.verp(VerpKind::Bounce, b.id, b.subscriber_id),
        );
        let msg = format!(
            "Return-Path: <>\r\nDelivered-To: {to}\r\nFrom: MAILER-DAEMON@mx.example.net\r\nTo: {to}\r\n\
Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\nMessage-Id: <d{i}@mx.example.net>\r\n\r\n\
--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n\
Final-Recipient: rfc822; {0}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--B--\r\n",
            b.address
        );
        std::fs::write(new.join(format!("{i:05}.test")), msg).expect("write");
    }
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn kill_9_in_the_middle_then_a_rerun_acts_on_every_message_exactly_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    setup(root);
    let cur = root.join("mail/cur");
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "maildir_child", "--nocapture"])
        .env(CHILD, root)
        .spawn()
        .expect("child");
    let start = Instant::now();
    while count(&cur) < N / 5 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the child made no progress"
        );
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    let moved = count(&cur);
    assert!(moved < N, "killed before the end ({moved} moved)");

    // A message handled and recorded, but not yet moved (the crash window),
    // comes back to new/: the rerun moves it and does nothing else.
    let done = std::fs::read_dir(&cur)
        .expect("cur")
        .next()
        .expect("one")
        .expect("entry")
        .path();
    let back = root.join("mail/new/zz-again.test");
    std::fs::copy(&done, &back).expect("copy back");

    let rerun = run_maildir(root);
    assert_eq!(count(&root.join("mail/new")), 0);
    assert_eq!(count(&cur), N + 1);
    assert!(rerun.duplicates >= 1, "{rerun:?}");

    let store = MailStore::open(&root.join(".herald/herald.db")).expect("store");
    let events = store.events(None).expect("events");
    let mut bounced: Vec<i64> = events
        .iter()
        .filter(|e| e.kind == EventKind::HardBounce)
        .map(|e| e.bulletin_id.expect("bulletin"))
        .collect();
    assert_eq!(bounced.len(), N, "each message acted on once");
    bounced.sort();
    bounced.dedup();
    assert_eq!(bounced.len(), N, "every bulletin once");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == EventKind::Bounce)
            .count(),
        N
    );
    assert_eq!(
        store.subscribers(Some(Status::Bounced)).expect("q").len(),
        N
    );
    let inbound: u64 = store
        .inbound_counts()
        .expect("counts")
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(inbound, N as u64);
}
