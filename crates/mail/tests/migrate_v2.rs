//! A database made by the previous version (links bound to rows, but no
//! deferred queue, complaints or inbound mail) migrates when opened: every row
//! is kept with its id and token key, a removed subscriber's id is still never
//! reused, a pending row stays pending and due, and the new states work.

use chrono::{TimeZone, Utc};
use herald_mail::{EventKind, MailStore, NewSubscriber, Origin, Purpose, Secret, Status};

/// The previous version's tables, as its `store.rs` created them.
const V2: &str = "
CREATE TABLE IF NOT EXISTS mail_subscribers (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    address        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name           TEXT NOT NULL DEFAULT '',
    lang           TEXT NOT NULL,
    topics         TEXT NOT NULL DEFAULT '',
    status         TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'unsubscribed', 'bounced')),
    consent_at     TEXT,
    consent_source TEXT NOT NULL DEFAULT '',
    consent_ip     TEXT,
    hard_failures  INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    token_key      INTEGER NOT NULL,
    confirm_key    INTEGER,
    legacy_tokens  INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS mail_bulletins (
    id            INTEGER PRIMARY KEY,
    statement_id  TEXT NOT NULL,
    version       TEXT NOT NULL,
    lang          TEXT NOT NULL,
    subscriber_id INTEGER NOT NULL,
    address       TEXT NOT NULL,
    message_id    TEXT NOT NULL UNIQUE,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'ambiguous')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    queued_at     TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    sent_at       TEXT,
    UNIQUE (statement_id, subscriber_id, version)
);
CREATE INDEX IF NOT EXISTS mail_bulletins_state ON mail_bulletins (state, id);
CREATE INDEX IF NOT EXISTS mail_bulletins_subscriber ON mail_bulletins (subscriber_id, statement_id);
CREATE TABLE IF NOT EXISTS mail_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS mail_events (
    id            INTEGER PRIMARY KEY,
    subscriber_id INTEGER NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('subscribe', 'confirm', 'preferences', 'unsubscribe', 'bounce')),
    at            TEXT NOT NULL,
    source        TEXT NOT NULL DEFAULT '',
    ip            TEXT,
    detail        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS mail_events_subscriber ON mail_events (subscriber_id, id);
";

#[test]
fn a_v2_database_keeps_its_rows_and_gains_the_deferred_queue_and_complaints() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("herald.db");
    {
        let c = rusqlite::Connection::open(&db).expect("open");
        c.execute_batch(V2).expect("v2 schema");
        c.execute_batch(
            "INSERT INTO mail_subscribers (id, address, lang, status, created_at, updated_at, token_key)
               VALUES (1, 'a@example.org', 'en', 'confirmed', '2020-01-01T00:00:00Z', '2020-01-01T00:00:00Z', 111),
                      (2, 'b@example.org', 'en', 'confirmed', '2020-01-01T00:00:00Z', '2020-01-01T00:00:00Z', 222),
                      (5, 'gone@example.org', 'en', 'confirmed', '2020-01-01T00:00:00Z', '2020-01-01T00:00:00Z', 555);
             DELETE FROM mail_subscribers WHERE id = 5;
             INSERT INTO mail_events (subscriber_id, kind, at, source) VALUES (1, 'subscribe', '2020-01-01T00:00:00Z', 'web');
             INSERT INTO mail_bulletins (id, statement_id, version, lang, subscriber_id, address, message_id, state,
                 attempts, last_error, queued_at, updated_at)
               VALUES (7, 's', 'v', 'en', 1, 'a@example.org', 'm7@x', 'pending', 5, '451 later', '2020-01-01T00:00:00Z', '2020-01-01T00:00:00Z'),
                      (8, 's', 'v', 'en', 2, 'b@example.org', 'm8@x', 'sent', 1, NULL, '2020-01-01T00:00:00Z', '2020-01-01T00:00:00Z');",
        )
        .expect("rows");
    }
    let now = Utc
        .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
        .single()
        .expect("t");
    let store = MailStore::open(&db).expect("migrates");
    let subs: Vec<(i64, String, i64)> = store
        .subscribers(None)
        .expect("rows")
        .into_iter()
        .map(|s| (s.id, s.address, s.token_key))
        .collect();
    assert_eq!(
        subs,
        vec![
            (1, "a@example.org".into(), 111),
            (2, "b@example.org".into(), 222)
        ]
    );
    let events = store.events(Some(1)).expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].kind, events[0].bulletin_id),
        (EventKind::Subscribe, None)
    );
    // The old pending row is kept and due (it has no next attempt).
    let due = store.due_bulletins(now).expect("due");
    assert_eq!(
        due.iter().map(|b| (b.id, b.attempts)).collect::<Vec<_>>(),
        vec![(7, 5)]
    );
    assert!(store.has_work(now).expect("work"));
    assert_eq!(store.deferred().expect("deferred"), (0, None));
    assert_eq!(
        store.bulletin(8).expect("q").map(|b| b.message_id),
        Some("m8@x".into())
    );
    // v2 -> v4: the rows are bulletins, their statement and version as they were.
    let b = store.bulletin(7).expect("q").expect("row 7");
    assert_eq!(
        (
            b.kind,
            b.statement_id.as_str(),
            b.version.as_str(),
            b.slot.as_str()
        ),
        (herald_mail::BulletinKind::Bulletin, "s", "v", "")
    );
    // Ids are still never reused: the next one is above the removed 5.
    let s = store
        .add_subscriber(
            NewSubscriber {
                address: "c@example.org".into(),
                name: String::new(),
                lang: "en".into(),
                topics: vec![],
                status: Status::Confirmed,
                consent_source: "test".into(),
                consent_ip: None,
                consent_at: None,
            },
            &["en".to_string()],
            now,
        )
        .expect("add");
    assert_eq!(s.id, 6);
    // The new status works, and opening again changes nothing.
    store
        .set_status(2, Status::Complained, Origin::new("test"), now)
        .expect("complained");
    drop(store);
    let store = MailStore::open(&db).expect("reopens");
    assert_eq!(
        store.subscriber(2).expect("q").map(|s| s.status),
        Some(Status::Complained)
    );
    assert_eq!(store.subscribers(None).expect("rows").len(), 3);
    // An unsubscribe link mailed by the previous version (bound to row 1's key
    // 111) still unsubscribes that reader, and only them.
    let secret = Secret::from_bytes(&[42u8; 32]).expect("key");
    let link = secret.issue(Purpose::Unsubscribe, 1, 111, None);
    let claim = secret
        .verify(&link, Purpose::Unsubscribe, now)
        .expect("a genuine v2 link");
    assert!(
        store
            .unsubscribe(claim, Origin::new("one-click"), now)
            .expect("q")
    );
    assert_eq!(
        store.subscriber(1).expect("q").map(|s| s.status),
        Some(Status::Unsubscribed)
    );
    assert_eq!(
        store.subscriber(6).expect("q").map(|s| s.status),
        Some(Status::Confirmed)
    );
}
