//! A database made by herald 0.1 (ids reused, bare-id links) migrates when opened,
//! and the unsubscribe links in the bulletins it sent still unsubscribe the right
//! person, and nobody else. The fixture was made by 0.1's own code
//! (`tests/fixtures/v1/README.md`).

use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use herald_mail::{EventKind, MailStore, NewSubscriber, Origin, Purpose, Secret, Status};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
        .single()
        .expect("valid")
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/v1")
        .join(name)
}

/// The unsubscribe token in a bulletin's List-Unsubscribe field.
fn bulletin_token(name: &str) -> String {
    let bytes = std::fs::read(fixture(name)).expect("bulletin");
    let msg = mail_parser::MessageParser::default()
        .parse(&bytes)
        .expect("parses");
    let field = msg
        .header_raw("List-Unsubscribe")
        .expect("List-Unsubscribe")
        .split_whitespace()
        .collect::<String>();
    let at = field.find("/unsubscribe/").expect("https link") + "/unsubscribe/".len();
    field[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect()
}

#[test]
fn a_v1_database_migrates_and_its_bulletins_still_unsubscribe_the_right_person() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join(".herald/herald.db");
    std::fs::create_dir_all(db.parent().expect("dir")).expect("mkdir");
    std::fs::copy(fixture("herald.db"), &db).expect("copy");
    let secret = Secret::from_bytes(&[42u8; 32]).expect("key");
    let store = MailStore::open(&db).expect("migrates");
    let rows: Vec<(i64, String, Status)> = store
        .subscribers(None)
        .expect("rows")
        .into_iter()
        .map(|s| (s.id, s.address, s.status))
        .collect();
    assert_eq!(
        rows,
        vec![
            (1, "alice@example.org".to_string(), Status::Confirmed),
            (2, "bob@example.org".to_string(), Status::Confirmed),
            (3, "carol@example.org".to_string(), Status::Pending),
        ]
    );
    // Consent recorded before the history is in it.
    let kinds: Vec<EventKind> = store
        .events(Some(1))
        .expect("events")
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, vec![EventKind::Subscribe, EventKind::Confirm]);
    // v1 -> v4: its three bulletin rows are kept, each a `bulletin` of the 2014 statement.
    let sent = store.bulletins(None).expect("bulletins");
    assert_eq!(
        sent.iter()
            .map(|b| (b.id, b.kind, b.statement_id.as_str(), b.state))
            .collect::<Vec<_>>(),
        (1..=3)
            .map(|id| {
                (
                    id,
                    herald_mail::BulletinKind::Bulletin,
                    "2014/world-day-against-trafficking",
                    herald_mail::BulletinState::Sent,
                )
            })
            .collect::<Vec<_>>()
    );

    // dave (id 4, the highest) was removed after his bulletin went out. A new
    // subscriber never gets his id, so his old link acts on nobody.
    let eve = store
        .add_subscriber(
            NewSubscriber {
                address: "eve@example.org".into(),
                name: String::new(),
                lang: "en".into(),
                topics: vec![],
                status: Status::Confirmed,
                consent_source: "cli".into(),
                consent_ip: None,
                consent_at: None,
            },
            &["en".to_string()],
            now(),
        )
        .expect("add");
    assert_eq!(eve.id, 5);
    let dave = secret
        .verify(&bulletin_token("dave.eml"), Purpose::Unsubscribe, now())
        .expect("a genuine v1 link");
    assert_eq!((dave.subscriber, dave.key), (4, None));
    assert!(
        !store
            .unsubscribe(dave, Origin::new("one-click"), now())
            .expect("q")
    );
    // A v1 link naming a row made after the migration is refused too.
    let forged_v1 = secret.issue_v1(Purpose::Unsubscribe, eve.id, None);
    let claim = secret
        .verify(&forged_v1, Purpose::Unsubscribe, now())
        .expect("genuine");
    assert_eq!(store.bound(claim, Purpose::Unsubscribe).expect("q"), None);
    assert_eq!(
        store.subscriber(eve.id).expect("q").map(|s| s.status),
        Some(Status::Confirmed)
    );

    // alice's bulletin, as it sits in her inbox: it unsubscribes her, and only her.
    let alice = secret
        .verify(&bulletin_token("alice.eml"), Purpose::Unsubscribe, now())
        .expect("a genuine v1 link");
    assert_eq!((alice.subscriber, alice.key), (1, None));
    assert!(
        store
            .unsubscribe(alice, Origin::new("one-click"), now())
            .expect("unsubscribe")
    );
    let after: Vec<(String, Status)> = store
        .subscribers(None)
        .expect("rows")
        .into_iter()
        .map(|s| (s.address, s.status))
        .collect();
    assert_eq!(
        after,
        vec![
            ("alice@example.org".to_string(), Status::Unsubscribed),
            ("bob@example.org".to_string(), Status::Confirmed),
            ("carol@example.org".to_string(), Status::Pending),
            ("eve@example.org".to_string(), Status::Confirmed),
        ]
    );
    // Opening the migrated file again changes nothing.
    drop(store);
    let store = MailStore::open(&db).expect("reopen");
    assert_eq!(store.events(Some(1)).expect("events").len(), 3);
    assert_eq!(store.subscribers(None).expect("rows").len(), 4);
}
