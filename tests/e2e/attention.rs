//! Exit code 5 ("attention") comes from the mail report's counts: a bulletin
//! that fails makes `publish` exit 5; a run where every bulletin goes out exits 0.

use herald_e2e::{herald, sample_project};
use herald_mail::store::NewBulletin;

const BIN: &str = env!("CARGO_BIN_EXE_herald-under-test");

#[test]
fn a_failed_bulletin_exits_5_and_a_clean_run_0() {
    let dir = sample_project();
    let root = dir.path();
    for (address, status) in [
        ("ok@example.org", "confirmed"),
        ("gone@example.org", "bounced"),
    ] {
        let out = herald(
            BIN,
            root,
            &["subscribers", "add", address, "--status", status],
        );
        assert!(out.status.success(), "{out:?}");
    }
    // Files only: nothing is queued yet.
    let out = herald(
        BIN,
        root,
        &["publish", "--now", "2026-11-29T12:00:00Z", "--no-mail"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // A bulletin queued for a subscriber who bounced since: it fails when delivered.
    {
        let store =
            herald_mail::MailStore::open(&root.join(".herald/herald.db")).expect("mail store");
        let gone = store
            .subscriber_by_address("gone@example.org")
            .expect("query")
            .expect("row");
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-29T12:00:00Z")
            .expect("time")
            .to_utc();
        let n = store
            .queue_bulletins(
                &[NewBulletin {
                    statement_id: "2014/world-day-against-trafficking".into(),
                    version: "v".into(),
                    lang: "en".into(),
                    subscriber_id: gone.id,
                    address: gone.address.clone(),
                    message_id: "attention.1@statements.example.org".into(),
                    ..NewBulletin::default()
                }],
                now,
            )
            .expect("queue");
        assert_eq!(n, 1);
    }
    let out = herald(BIN, root, &["publish", "--now", "2026-11-29T13:00:00Z"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{stdout}");
    assert!(stdout.contains("1 failed, 0 ambiguous"), "{stdout}");
    // Nothing left to send or fail: a plain run again.
    let out = herald(BIN, root, &["publish", "--now", "2026-11-29T14:00:00Z"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
