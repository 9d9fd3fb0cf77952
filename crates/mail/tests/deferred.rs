//! The deferred queue against a real SMTP server on loopback that answers 451 to
//! one recipient: the row keeps its next attempt and expiry in the ledger, a run
//! before the next attempt sends nothing, one after it sends, and a row still
//! deferred when its queue lifetime ends is failed with its last reason.

mod support;

use std::sync::atomic::AtomicBool;

use chrono::{DateTime, Duration, Utc};
use herald_mail::{BulletinState, MailSettings, MailStore, deliver, queue};
use indicatif::ProgressBar;
use support::*;

fn run(
    store: &MailStore,
    corpus: &herald_content::Corpus,
    settings: &MailSettings,
    at: DateTime<Utc>,
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

fn state_of(store: &MailStore, address: &str) -> (BulletinState, Option<String>) {
    let b = store
        .bulletins(None)
        .expect("rows")
        .into_iter()
        .find(|b| b.address == address)
        .expect("row");
    (b.state, b.last_error)
}

#[test]
fn a_451_is_deferred_retried_when_due_and_failed_when_expired() {
    let corpus = corpus();
    let server = SmtpServer::start();
    let store = MailStore::in_memory().expect("store");
    let addresses = subscribers(&store, 3);
    let (greylisted, dead) = (&addresses[0], &addresses[1]);
    let mut settings = smtp_settings(&server);
    settings.queue_lifetime = "2d".into();
    // Answers 451 to every attempt of this run (3), and the next run's too.
    server.fault(greylisted, Fault::Rcpt451, 3);
    server.fault(dead, Fault::Rcpt451, usize::MAX);
    let due: Vec<_> = corpus
        .due(now())
        .into_iter()
        .filter(|s| s.id == STATEMENT)
        .collect();
    assert_eq!(
        queue(&store, &corpus, &settings, &due, now()).expect("queue"),
        3
    );

    let first = run(&store, &corpus, &settings, now());
    assert_eq!(first.sent, 1);
    assert_eq!(first.deferred.len(), 2, "{first:?}");
    assert!(first.deferred[0].error.contains("451"), "{first:?}");
    let (n, next) = store.deferred().expect("deferred");
    assert_eq!(n, 2);
    let next = next.expect("a next attempt is stored");
    assert_eq!(
        next,
        now() + Duration::seconds(300),
        "Postfix's first backoff"
    );
    assert_eq!(state_of(&store, greylisted).0, BulletinState::Pending);
    assert!(
        !store
            .has_work(now() + Duration::seconds(299))
            .expect("work")
    );
    assert!(store.has_work(next).expect("work"));

    // Before the next attempt: nothing goes out, nothing changes.
    let received = server.count();
    let early = run(&store, &corpus, &settings, now() + Duration::seconds(120));
    assert_eq!((early.sent, early.deferred.len()), (0, 0), "{early:?}");
    assert_eq!(server.count(), received);

    // After it: the greylisting is over for one; the other is deferred again,
    // twice as long.
    let second_at = now() + Duration::seconds(301);
    let second = run(&store, &corpus, &settings, second_at);
    assert_eq!(second.sent, 1, "{second:?}");
    assert_eq!(second.deferred.len(), 1);
    assert_eq!(server.count(), received + 1);
    assert_eq!(state_of(&store, greylisted).0, BulletinState::Sent);
    let (n, next) = store.deferred().expect("deferred");
    assert_eq!((n, next), (1, Some(second_at + Duration::seconds(600))));

    // Past the queue lifetime (2 days from the first deferral): failed with the
    // last reason, and not sent again.
    let late = now() + Duration::days(2);
    assert!(store.has_work(late).expect("work"));
    let last = run(&store, &corpus, &settings, late);
    assert_eq!((last.sent, last.expired), (0, 1), "{last:?}");
    let (state, error) = state_of(&store, dead);
    assert_eq!(state, BulletinState::Failed);
    let error = error.expect("reason");
    assert!(
        error.starts_with("expired in the deferred queue"),
        "{error}"
    );
    assert!(error.contains("451"), "{error}");
    assert_eq!(server.count(), received + 1);
    assert_eq!(store.deferred().expect("deferred"), (0, None));
    assert!(!store.has_work(late).expect("work"));
}
