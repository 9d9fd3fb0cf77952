//! `herald mail receive` figures: a Maildir of N DSNs (each a hard bounce of one
//! bulletin, VERP-addressed as Postfix's bounce daemon writes them), handled
//! with `--maildir`, and one message handled alone.
//!
//! ```text
//! cargo build --release -p herald-mail --example inbound_bench
//! inbound_bench gen DIR N      # DIR/.herald/herald.db, DIR/mail/new/ with N DSNs
//! inbound_bench maildir DIR    # handle DIR/mail/new/ (time it: /usr/bin/time -f "%e s %M KB")
//! inbound_bench one DIR FILE   # handle FILE alone, as `receive` on stdin does
//! ```

use std::path::Path;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use herald_mail::inbound::{Inbound, Input, handle, maildir};
use herald_mail::store::NewBulletin;
use herald_mail::{MailSettings, MailStore, NewSubscriber, Secret, Status, VerpKind};

fn secret() -> Secret {
    Secret::from_bytes(&[42u8; 32]).expect("key")
}

fn dsn(n: usize, to: &str, rcpt: &str, mid: &str) -> String {
    format!(
        "Return-Path: <>\r\nDelivered-To: {to}\r\nFrom: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n\
To: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B{n}\"\r\n\
Message-Id: <dsn{n}@mx.example.net>\r\n\r\n--B{n}\r\nContent-Type: text/plain\r\n\r\n\
I'm sorry to have to inform you that your message could not be delivered.\r\n\r\n\
--B{n}\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n\
Final-Recipient: rfc822; {rcpt}\r\nOriginal-Recipient: rfc822;{rcpt}\r\nAction: failed\r\n\
Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected\r\n\r\n\
--B{n}\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{mid}>\r\nFrom: news@statements.example.org\r\n\
To: {rcpt}\r\nSubject: Joint statement\r\n\r\n--B{n}--\r\n"
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let now = Utc
        .with_ymd_and_hms(2026, 12, 2, 12, 0, 0)
        .single()
        .expect("t");
    let dir = Path::new(args.get(1).expect("DIR"));
    let state = dir.join(".herald");
    let settings = MailSettings {
        bounce_address: Some("bounces@statements.example.org".into()),
        bounce_after: 1,
        ..MailSettings::default()
    };
    match args[0].as_str() {
        "gen" => {
            let n: usize = args.get(2).and_then(|s| s.parse().ok()).expect("N");
            let store = MailStore::open(&state.join("herald.db")).expect("store");
            let subs: Vec<NewSubscriber> = (0..n)
                .map(|i| NewSubscriber {
                    address: format!("reader{i}@example.net"),
                    name: String::new(),
                    lang: "en".into(),
                    topics: vec![],
                    status: Status::Confirmed,
                    consent_source: "bench".into(),
                    consent_ip: None,
                    consent_at: None,
                })
                .collect();
            store.add_subscribers(&subs, now).expect("subscribers");
            let subs = store.subscribers(None).expect("list");
            let rows: Vec<NewBulletin> = subs
                .iter()
                .map(|s| NewBulletin {
                    statement_id: "2026/bench".into(),
                    version: "v1".into(),
                    lang: "en".into(),
                    subscriber_id: s.id,
                    address: s.address.clone(),
                    message_id: format!("bench.{}@statements.example.org", s.id),
                    ..NewBulletin::default()
                })
                .collect();
            store.queue_bulletins(&rows, now).expect("queue");
            let new = dir.join("mail/new");
            std::fs::create_dir_all(&new).expect("mkdir");
            std::fs::create_dir_all(dir.join("mail/cur")).expect("mkdir");
            let secret = secret();
            for (i, b) in store.bulletins(None).expect("rows").iter().enumerate() {
                let token = secret.verp(VerpKind::Bounce, b.id, b.subscriber_id);
                let to = herald_mail::verp_address("bounces@statements.example.org", &token);
                std::fs::write(
                    new.join(format!("{i:08}.bench")),
                    dsn(i, &to, &b.address, &b.message_id),
                )
                .expect("write");
            }
            // Bounces answer bulletins that were sent.
            let conn = rusqlite_free_update(&state.join("herald.db"));
            eprintln!("generated {n} DSNs ({conn})");
        }
        "maildir" => {
            let store = MailStore::open(&state.join("herald.db")).expect("store");
            let secret = secret();
            let ctx = Inbound {
                secret: &secret,
                settings: &settings,
                state_dir: &state,
                now,
            };
            let t = Instant::now();
            let r = maildir(&store, &ctx, &dir.join("mail")).expect("maildir");
            let s = t.elapsed().as_secs_f64();
            println!(
                "{} messages in {s:.2} s: {:.0} messages/s; {:?}",
                r.handled,
                r.handled as f64 / s,
                r.by_kind
            );
        }
        "one" => {
            let t = Instant::now();
            let store = MailStore::open(&state.join("herald.db")).expect("store");
            let secret = secret();
            let ctx = Inbound {
                secret: &secret,
                settings: &settings,
                state_dir: &state,
                now,
            };
            let bytes = std::fs::read(args.get(2).expect("FILE")).expect("read");
            let h = handle(&store, &ctx, &Input { bytes, cut: None }, None).expect("handle");
            println!(
                "{} in {:.2} ms (open + handle)",
                h.verdict.kind,
                t.elapsed().as_secs_f64() * 1000.0
            );
        }
        other => panic!("unknown mode {other}"),
    }
}

/// Mark every row sent (as a delivery would have), through the store's own path.
fn rusqlite_free_update(db: &Path) -> String {
    let store = MailStore::open(db).expect("store");
    let n = store.mark_all_sent_for_bench().expect("mark");
    format!("{n} rows marked sent")
}
