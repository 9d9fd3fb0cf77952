//! A project database written by herald before the `kind` column (schema v3,
//! `fixtures/v3/herald.db`, made by main's binary: see its README) opens with
//! the current code: every bulletin, subscriber, event and publication row is
//! still there with the same state, and each bulletin's kind is what its packed
//! `statement_id`/`version` said.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{TimeZone, Utc};
use herald_mail::{BulletinKind, BulletinState, MailStore, Status};
use rusqlite::types::Value;

/// Every row `sql` selects, every column as stored, sorted.
fn rows(db: &Path, sql: &str) -> Vec<Vec<String>> {
    let c = rusqlite::Connection::open(db).expect("open");
    let mut stmt = c.prepare(sql).expect("prepare");
    let n = stmt.column_count();
    let mut all: Vec<Vec<String>> = stmt
        .query_map([], |r| {
            (0..n)
                .map(|i| r.get::<_, Value>(i).map(|v| format!("{v:?}")))
                .collect()
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    all.sort();
    all
}

const BULLETIN_COLUMNS: &str = "id, lang, subscriber_id, address, message_id, state, attempts, \
    last_error, queued_at, updated_at, sent_at, next_attempt_at, expires_at";

#[test]
fn a_v3_database_keeps_every_row_and_gains_kinds() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("herald.db");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v3/herald.db"),
        &db,
    )
    .expect("copy fixture");

    // Before: the v3 rows, read as they are.
    let v3_shape: BTreeMap<i64, (String, String)> = {
        let c = rusqlite::Connection::open(&db).expect("open");
        let mut stmt = c
            .prepare("SELECT id, statement_id, version FROM mail_bulletins")
            .expect("prepare");
        stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    let bulletins_before = rows(
        &db,
        &format!("SELECT {BULLETIN_COLUMNS} FROM mail_bulletins"),
    );
    let subscribers_before = rows(&db, "SELECT * FROM mail_subscribers");
    let events_before = rows(&db, "SELECT * FROM mail_events");
    let publications_before = rows(&db, "SELECT * FROM publications");
    let entries_before = rows(&db, "SELECT * FROM entries");
    assert_eq!(
        (
            bulletins_before.len(),
            subscribers_before.len(),
            events_before.len(),
            publications_before.len()
        ),
        (15, 7, 13, 36),
        "the fixture is the one its README describes"
    );

    let store = MailStore::open(&db).expect("migrates");

    // After: the same rows, column for column (the mail tables' own and the pipeline's).
    assert_eq!(
        rows(
            &db,
            &format!("SELECT {BULLETIN_COLUMNS} FROM mail_bulletins")
        ),
        bulletins_before
    );
    assert_eq!(
        rows(&db, "SELECT * FROM mail_subscribers"),
        subscribers_before
    );
    assert_eq!(rows(&db, "SELECT * FROM mail_events"), events_before);
    assert_eq!(rows(&db, "SELECT * FROM publications"), publications_before);
    assert_eq!(rows(&db, "SELECT * FROM entries"), entries_before);

    // Through the store: states and kinds.
    let statuses: Vec<(String, Status)> = store
        .subscribers(None)
        .expect("subscribers")
        .into_iter()
        .map(|s| (s.address, s.status))
        .collect();
    for (address, status) in [
        ("en@example.org", Status::Confirmed),
        ("pending@example.org", Status::Pending),
        ("gone@example.org", Status::Unsubscribed),
        ("bounced@example.org", Status::Bounced),
        ("complained@example.org", Status::Complained),
    ] {
        assert!(
            statuses.contains(&(address.to_string(), status)),
            "{address} {status}: {statuses:?}"
        );
    }
    let all = store.bulletins(None).expect("bulletins");
    assert_eq!(all.len(), 15);
    let mut kinds = BTreeMap::new();
    for b in &all {
        *kinds.entry(b.kind.as_str()).or_insert(0) += 1;
        let (old_id, old_version) = v3_shape[&b.id].clone();
        match b.kind {
            BulletinKind::Digest => {
                assert_eq!(format!("digest:{}", b.slot), old_id);
                assert_eq!(b.statements.join(" "), old_version);
                assert_eq!((b.statement_id.as_str(), b.version.as_str()), ("", ""));
                assert_eq!(b.label(), format!("digest {}", b.slot));
            }
            BulletinKind::Correction => {
                assert_eq!(b.statement_id, old_id);
                assert_eq!(format!("correction:{}", b.version), old_version);
                assert!(b.slot.is_empty() && b.statements.is_empty());
            }
            BulletinKind::Bulletin => {
                assert_eq!((&b.statement_id, &b.version), (&old_id, &old_version));
                assert_eq!(b.version.len(), 64, "a SHA-256 file digest");
            }
            BulletinKind::Confirmation => panic!("v3 had no confirmation rows: {b:?}"),
        }
    }
    assert_eq!(
        kinds,
        BTreeMap::from([("bulletin", 7), ("correction", 2), ("digest", 6)])
    );
    let two = all.iter().find(|b| b.id == 13).expect("row 13");
    assert_eq!(two.statements, vec!["2026/note-b", "2026/note-a"]);
    assert_eq!(two.slot, "2026-12-14T04:00:00Z");
    let states: BTreeMap<i64, BulletinState> = all.iter().map(|b| (b.id, b.state)).collect();
    assert_eq!(states[&5], BulletinState::Failed);
    assert_eq!(states[&6], BulletinState::Ambiguous);
    assert_eq!(states[&7], BulletinState::Sending);
    assert_eq!(states[&13], BulletinState::Pending);
    assert_eq!(states[&1], BulletinState::Sent);
    // The deferred row keeps its next attempt; the other pending row is due.
    let before_retry = Utc
        .with_ymd_and_hms(2026, 12, 14, 5, 5, 0)
        .single()
        .expect("t");
    let due: Vec<i64> = store
        .due_bulletins(before_retry)
        .expect("due")
        .iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(due, vec![15]);
    assert_eq!(
        store.deferred().expect("deferred").1,
        Utc.with_ymd_and_hms(2026, 12, 14, 5, 10, 0).single()
    );
    // The slot's digest is never queued twice, and a correction never twice.
    assert_eq!(store.digested("2026-12-14T04:00:00Z").expect("q").len(), 3);
    assert!(
        store
            .bulletined("2015/migrant-workers-health")
            .expect("q")
            .contains(&2)
    );
    drop(store);

    // Opening again changes nothing.
    let after = rows(&db, "SELECT * FROM mail_bulletins");
    MailStore::open(&db).expect("reopen");
    assert_eq!(rows(&db, "SELECT * FROM mail_bulletins"), after);
}
