//! Delivery against a real SMTP server on loopback: languages, exactly once,
//! every fault and the ledger state it must end in.

mod support;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use herald_mail::{BulletinState, MailSettings, MailStore, Status, deliver, queue};
use indicatif::ProgressBar;
use mail_parser::MessageParser;
use support::*;

fn run(
    store: &MailStore,
    corpus: &herald_content::Corpus,
    settings: &MailSettings,
) -> herald_mail::DeliveryReport {
    run_at(store, corpus, settings, now())
}

fn run_at(
    store: &MailStore,
    corpus: &herald_content::Corpus,
    settings: &MailSettings,
    at: chrono::DateTime<chrono::Utc>,
) -> herald_mail::DeliveryReport {
    deliver(
        store,
        corpus,
        settings,
        &secret(),
        at,
        &AtomicBool::new(false),
        &ProgressBar::hidden(),
    )
    .expect("deliver")
}

fn queue_statement(
    store: &MailStore,
    corpus: &herald_content::Corpus,
    settings: &MailSettings,
) -> usize {
    let due = corpus.due(now());
    let new: Vec<_> = due.into_iter().filter(|s| s.id == STATEMENT).collect();
    queue(store, corpus, settings, &new, now()).expect("queue")
}

/// The tokens after each `before` in `s`.
fn tokens(s: &str, before: &str) -> Vec<String> {
    s.match_indices(before)
        .map(|(i, _)| {
            s[i + before.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
                .collect()
        })
        .collect()
}

#[test]
fn two_thousand_subscribers_each_get_one_message_in_their_language() {
    let corpus = corpus();
    let server = SmtpServer::start();
    let store = MailStore::in_memory().expect("store");
    let addresses = subscribers(&store, 2000);
    let mut settings = smtp_settings(&server);
    settings.concurrency = 8;
    assert_eq!(queue_statement(&store, &corpus, &settings), 2000);
    // Queueing again adds nothing.
    assert_eq!(queue_statement(&store, &corpus, &settings), 0);

    let report = run(&store, &corpus, &settings);
    assert_eq!(report.sent, 2000, "{report:?}");
    assert!(report.failed.is_empty() && report.ambiguous.is_empty() && report.deferred.is_empty());
    let per = server.per_recipient();
    assert_eq!(per.len(), 2000);
    assert!(per.values().all(|&n| n == 1));
    // The bytes reported are the data the server took, plus the end-of-data line.
    let data: u64 = server.received().iter().map(|r| r.data.len() as u64).sum();
    assert!(
        (data..=data + 8 * 2000).contains(&report.bytes),
        "{} reported, {data} received",
        report.bytes
    );

    let titles: HashMap<&str, String> = LANGS
        .iter()
        .map(|l| {
            (
                *l,
                corpus
                    .get(STATEMENT, l)
                    .expect("translation")
                    .meta
                    .title
                    .clone(),
            )
        })
        .collect();
    let by_rcpt: HashMap<String, Vec<u8>> = server
        .received()
        .into_iter()
        .map(|r| (r.to[0].clone(), r.data))
        .collect();
    let ids: HashMap<String, (i64, i64)> = store
        .subscribers(None)
        .expect("subscribers")
        .into_iter()
        .map(|s| (s.address, (s.id, s.token_key)))
        .collect();
    let mut message_ids = std::collections::HashSet::new();
    for (i, address) in addresses.iter().enumerate() {
        let lang = LANGS[i % 3];
        let data = by_rcpt.get(address).expect("received");
        let msg = MessageParser::default()
            .parse(data.as_slice())
            .expect("parses");
        // Spliced from one template: only its own recipient and token.
        assert_eq!(
            msg.to().and_then(|a| a.first()).and_then(|a| a.address()),
            Some(address.as_str())
        );
        let header = msg
            .header_raw("List-Unsubscribe")
            .expect("List-Unsubscribe")
            .split_whitespace()
            .collect::<String>();
        let mut found = tokens(&header, "/unsubscribe/");
        found.extend(tokens(&header, "unsubscribe%20"));
        found.extend(tokens(&msg.body_text(0).expect("text"), "/unsubscribe/"));
        found.extend(tokens(&msg.body_html(0).expect("html"), "/unsubscribe/"));
        assert_eq!(found.len(), 4, "{address}: {found:?}");
        for token in found {
            assert_eq!(
                secret()
                    .verify(&token, herald_mail::Purpose::Unsubscribe, now())
                    .map(|c| (c.subscriber, c.key)),
                Ok((ids[address].0, Some(ids[address].1))),
                "{address}"
            );
        }
        assert_eq!(msg.subject(), Some(titles[lang].as_str()), "{address}");
        let text = msg.body_text(0).expect("text part");
        assert!(text.contains(&titles[lang]), "{address}: {text}");
        let html = msg.body_html(0).expect("html part");
        assert!(html.contains(&format!("lang=\"{lang}\"")));
        assert!(message_ids.insert(msg.message_id().expect("message id").to_string()));
    }

    // A second run sends nothing.
    assert_eq!(queue_statement(&store, &corpus, &settings), 0);
    let again = run(&store, &corpus, &settings);
    assert_eq!(again.sent, 0);
    assert_eq!(server.count(), 2000);
    assert_eq!(
        store
            .bulletins(Some(BulletinState::Sent))
            .expect("rows")
            .len(),
        2000
    );
}

#[test]
fn each_fault_ends_in_its_ledger_state() {
    faults(false);
}

#[test]
fn each_fault_ends_in_its_ledger_state_with_pipelining() {
    faults(true);
}

fn faults(pipelining: bool) {
    let corpus = corpus();
    let server = SmtpServer::start_with(pipelining);
    let store = MailStore::in_memory().expect("store");
    let a = subscribers(&store, 12);
    let mut settings = smtp_settings(&server);
    // Servers that stop answering are detected after a second.
    if let Some(smtp) = settings.smtp.as_mut() {
        smtp.timeout_secs = 1;
    }
    settings.bounce_after = 1;
    // (fault, times) for reader0..reader9; reader10 and reader11 behave.
    let plan = [
        (Fault::RcptTemp, 1),
        (Fault::RcptTemp, 99),
        (Fault::Rcpt421, 1),
        (Fault::RcptPerm, 99),
        (Fault::DataPerm, 99),
        (Fault::DropAtRcpt, 1),
        (Fault::DropAfterData, 1),
        (Fault::SilentAfterData, 1),
        (Fault::SilentAtRcpt, 1),
        (Fault::DropAtRcpt, 99),
    ];
    for (i, (fault, times)) in plan.iter().enumerate() {
        server.fault(&a[i], *fault, *times);
    }
    queue_statement(&store, &corpus, &settings);
    let report = run(&store, &corpus, &settings);

    let state: HashMap<String, (BulletinState, u32)> = store
        .bulletins(None)
        .expect("rows")
        .into_iter()
        .map(|b| (b.address, (b.state, b.attempts)))
        .collect();
    let expect = [
        (0, BulletinState::Sent),      // 450 once: retried
        (1, BulletinState::Pending),   // 450 always: left for the next run
        (2, BulletinState::Sent),      // 421: reconnect, retried
        (3, BulletinState::Failed),    // 550 to RCPT
        (4, BulletinState::Failed),    // 554 after the data
        (5, BulletinState::Sent),      // dropped before DATA: retried
        (6, BulletinState::Ambiguous), // dropped after the data
        (7, BulletinState::Ambiguous), // stopped answering after the data
        (8, BulletinState::Sent),      // stopped answering before DATA: retried
        (9, BulletinState::Pending),   // always dropped before DATA
        (10, BulletinState::Sent),
        (11, BulletinState::Sent),
    ];
    for (i, want) in expect {
        assert_eq!(state[&a[i]].0, want, "reader{i}: {report:?}");
    }
    assert_eq!(state[&a[1]].1, 3, "three attempts, then left pending");
    assert_eq!(report.sent, 6);
    assert_eq!(report.failed.len(), 2);
    assert_eq!(report.ambiguous.len(), 2);
    assert_eq!(report.deferred.len(), 2);
    assert!(
        report.failed.iter().any(|p| p.error.contains("550")),
        "{report:?}"
    );
    // Hard failures bounce the subscriber (bounce_after = 1).
    let bounced = store.subscribers(Some(Status::Bounced)).expect("list");
    let mut bounced: Vec<_> = bounced.into_iter().map(|s| s.address).collect();
    bounced.sort();
    assert_eq!(bounced, vec![a[3].clone(), a[4].clone()]);

    let per = server.per_recipient();
    for i in [0, 2, 5, 6, 7, 8, 10, 11] {
        assert_eq!(per.get(&a[i]), Some(&1), "reader{i}");
    }
    for i in [1, 3, 4, 9] {
        assert_eq!(per.get(&a[i]), None, "reader{i}");
    }

    // A run before their next attempt sends nothing; the next run after it
    // retries only the deferred ones; ambiguous ones are not resent.
    let early = run(&store, &corpus, &settings);
    assert_eq!((early.sent, early.deferred.len()), (0, 0), "{early:?}");
    let later = now() + chrono::Duration::minutes(5);
    let again = run_at(&store, &corpus, &settings, later);
    assert_eq!(again.sent, 0, "{again:?}");
    assert_eq!(again.deferred.len(), 2);
    assert_eq!(server.per_recipient().get(&a[6]), Some(&1));

    // Until an operator asks for it.
    assert_eq!(store.retry_ambiguous(now()).expect("retry"), 2);
    let retried = run(&store, &corpus, &settings);
    assert_eq!(retried.sent, 2, "{retried:?}");
    assert_eq!(server.per_recipient().get(&a[6]), Some(&2));
}

#[test]
fn outbox_by_default_and_unsubscribed_get_nothing() {
    let corpus = corpus();
    let dir = tempfile::tempdir().expect("tmp");
    let store = MailStore::in_memory().expect("store");
    let a = subscribers(&store, 6);
    let gone = store
        .subscriber_by_address(&a[5])
        .expect("q")
        .expect("there");
    store
        .set_status(
            gone.id,
            Status::Unsubscribed,
            herald_mail::Origin::new("test"),
            now(),
        )
        .expect("unsubscribe");
    let settings = MailSettings {
        outbox: dir.path().join("outbox"),
        ..MailSettings::default()
    };
    assert_eq!(queue_statement(&store, &corpus, &settings), 5);
    let report = run(&store, &corpus, &settings);
    assert_eq!(report.sent, 5);
    let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
        .expect("outbox")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 5);
    assert!(
        files
            .iter()
            .all(|p| p.extension().is_some_and(|e| e == "eml"))
    );
    let msg = std::fs::read(&files[0]).expect("eml");
    let parsed = MessageParser::default()
        .parse(msg.as_slice())
        .expect("parses");
    assert!(parsed.header("List-Unsubscribe-Post").is_some());
    assert_eq!(run(&store, &corpus, &settings).sent, 0);
}

#[test]
fn embargoed_and_pre_consent_statements_are_not_queued() {
    let corpus = corpus();
    let store = MailStore::in_memory().expect("store");
    let settings = MailSettings::default();
    subscribers(&store, 3);
    // A subscriber who consented after the statement was published gets nothing of it.
    let late = herald_mail::NewSubscriber {
        address: "late@example.net".into(),
        name: String::new(),
        lang: "en".into(),
        topics: vec![],
        status: Status::Confirmed,
        consent_source: "test".into(),
        consent_ip: None,
        consent_at: Some(now()),
    };
    store.add_subscribers(&[late], now()).expect("add");
    // Topic filter: a subscriber who wants only health gets no trafficking statement.
    let picky = herald_mail::NewSubscriber {
        address: "picky@example.net".into(),
        name: String::new(),
        lang: "en".into(),
        topics: vec!["health".into()],
        status: Status::Confirmed,
        consent_source: "test".into(),
        consent_ip: None,
        consent_at: Some(long_ago()),
    };
    store.add_subscribers(&[picky], now()).expect("add");
    let all: Vec<_> = corpus.statements.iter().collect();
    let n = queue(&store, &corpus, &settings, &all, now()).expect("queue");
    // Only the 2014 statement is due at `now`, for the three early subscribers.
    assert_eq!(n, 3);
    let rows = store.bulletins(None).expect("rows");
    assert!(rows.iter().all(|r| r.statement_id == STATEMENT));
}

#[test]
fn a_digest_reaches_each_subscriber_once_in_their_language() {
    let corpus = corpus();
    let server = SmtpServer::start();
    let store = MailStore::in_memory().expect("store");
    let addresses = subscribers(&store, 300);
    let settings = smtp_settings(&server);
    let due = corpus.due(now());
    let slot = now();
    let key = herald_mail::digest_key(slot);
    assert_eq!(key, "2014-07-31T06:00:00Z");
    let queue =
        || herald_mail::queue_digest(&store, &corpus, &settings, &key, &due, now()).expect("queue");
    assert_eq!(queue(), 300);
    // The same slot again (a crash before the pipeline recorded it) adds nobody.
    assert_eq!(queue(), 0);
    let report = run(&store, &corpus, &settings);
    assert_eq!(report.sent, 300, "{report:?}");
    let per = server.per_recipient();
    assert!(addresses.iter().all(|a| per.get(a) == Some(&1)), "{per:?}");
    let by_rcpt: HashMap<String, Vec<u8>> = server
        .received()
        .into_iter()
        .map(|r| (r.to[0].clone(), r.data))
        .collect();
    for (i, address) in addresses.iter().enumerate() {
        let lang = LANGS[i % 3];
        let msg = MessageParser::default()
            .parse(by_rcpt[address].as_slice())
            .expect("parses");
        let title = &corpus.get(STATEMENT, lang).expect("translation").meta.title;
        let text = msg.body_text(0).expect("text part");
        assert!(text.contains(title.as_str()), "{address}: {text}");
        assert!(msg.header("List-Unsubscribe-Post").is_some());
        assert_eq!(
            msg.header_raw("Content-Language").map(str::trim),
            Some(lang)
        );
    }
    assert_eq!(run(&store, &corpus, &settings).sent, 0);
    assert_eq!(server.count(), 300);
}

/// Internationalized addresses: raw UTF-8 goes only to a server that offers
/// SMTPUTF8 (and the MAIL command says so); otherwise the row fails, unsent.
#[test]
fn internationalized_addresses_need_smtputf8() {
    let corpus = corpus();
    for offered in [false, true] {
        let server = SmtpServer::start_offering(false, offered);
        let store = MailStore::in_memory().expect("store");
        subscribers(&store, 1);
        store
            .add_subscriber(
                herald_mail::NewSubscriber {
                    address: "пользователь@example.net".into(),
                    name: String::new(),
                    lang: "ru".into(),
                    topics: vec![],
                    status: Status::Confirmed,
                    consent_source: "test".into(),
                    consent_ip: None,
                    consent_at: Some(long_ago()),
                },
                &LANGS.map(String::from),
                long_ago(),
            )
            .expect("add");
        let settings = smtp_settings(&server);
        assert_eq!(queue_statement(&store, &corpus, &settings), 2);
        let report = run(&store, &corpus, &settings);
        let received = server.received();
        let utf8: Vec<_> = received
            .iter()
            .filter(|r| r.to.iter().any(|t| !t.is_ascii()))
            .collect();
        if offered {
            assert_eq!(report.sent, 2, "{report:?}");
            assert_eq!(utf8.len(), 1);
            assert!(
                utf8[0].mail.to_ascii_uppercase().contains("SMTPUTF8"),
                "{}",
                utf8[0].mail
            );
        } else {
            assert_eq!(report.sent, 1, "{report:?}");
            assert!(
                utf8.is_empty(),
                "raw UTF-8 sent to a server without SMTPUTF8"
            );
            assert_eq!(received.len(), 1);
            let failed = store.bulletins(Some(BulletinState::Failed)).expect("rows");
            assert_eq!(failed.len(), 1);
            assert!(
                failed[0]
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("SMTPUTF8")),
                "{failed:?}"
            );
        }
    }
}
