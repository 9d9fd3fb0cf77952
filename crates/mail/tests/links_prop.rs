//! Property: over random sequences of add, remove, subscribe, confirm,
//! unsubscribe and sweep on a real SQLite file, a link made for one subscriber
//! (one row's life) or one purpose never acts on another, and a confirmation link
//! confirms at most once.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use herald_mail::{
    Confirmed, MailStore, NewSubscriber, Origin, Purpose, Secret, Status, TokenError,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// `herald subscribers add` (confirmed or pending).
    Add(usize, bool),
    Remove(usize),
    /// The web form: a new pending row, or a new confirmation link for an unconfirmed one.
    Subscribe(usize),
    /// Use the n-th link made so far (modulo), as a confirmation.
    Confirm(usize),
    /// Use the n-th link made so far (modulo), as one-click unsubscribe.
    Unsubscribe(usize),
    /// Use the n-th link made so far (modulo), on the preferences page.
    Preferences(usize),
    /// Let hours pass, then expire pending rows as `herald serve` does.
    Sweep(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4usize, any::<bool>()).prop_map(|(a, c)| Op::Add(a, c)),
        (0..4usize).prop_map(Op::Remove),
        (0..4usize).prop_map(Op::Subscribe),
        any::<usize>().prop_map(Op::Confirm),
        any::<usize>().prop_map(Op::Unsubscribe),
        any::<usize>().prop_map(Op::Preferences),
        (0..60u8).prop_map(Op::Sweep),
    ]
}

struct Link {
    token: String,
    purpose: Purpose,
    /// The row's life it was made for.
    person: u64,
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("valid")
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tmp");
    let store = MailStore::open(&dir.path().join("herald.db")).expect("open");
    let secret = Secret::from_bytes(&[5u8; 32]).expect("key");
    let langs = vec!["en".to_string()];
    let mut now = start();
    let mut people = 0u64;
    // Row id -> the life it holds; every id ever seen.
    let mut person_of: HashMap<i64, u64> = HashMap::new();
    let mut seen: HashSet<i64> = HashSet::new();
    let mut links: Vec<Link> = Vec::new();
    let mut confirmed_by: HashSet<usize> = HashSet::new();
    let address = |a: usize| format!("person{a}@example.org");
    let new_row = |store: &MailStore, a: usize, status: Status, now| {
        store.add_subscriber(
            NewSubscriber {
                address: address(a),
                name: String::new(),
                lang: "en".into(),
                topics: vec![],
                status,
                consent_source: "test".into(),
                consent_ip: None,
                consent_at: None,
            },
            &langs,
            now,
        )
    };
    for op in ops {
        // The row a subscribe asks a confirmation link for.
        let mut to_confirm = None;
        match op {
            Op::Add(a, confirmed) => {
                let status = if *confirmed {
                    Status::Confirmed
                } else {
                    Status::Pending
                };
                if let Ok(s) = new_row(&store, *a, status, now) {
                    prop_assert!(seen.insert(s.id), "id {} reused", s.id);
                    people += 1;
                    person_of.insert(s.id, people);
                    for purpose in [Purpose::Unsubscribe, Purpose::Preferences] {
                        links.push(Link {
                            token: secret.issue(purpose, s.id, s.token_key, None),
                            purpose,
                            person: people,
                        });
                    }
                }
            }
            Op::Subscribe(a) => match store.subscriber_by_address(&address(*a)).expect("q") {
                None => {
                    let s = new_row(&store, *a, Status::Pending, now).expect("add");
                    prop_assert!(seen.insert(s.id), "id {} reused", s.id);
                    people += 1;
                    person_of.insert(s.id, people);
                    for purpose in [Purpose::Unsubscribe, Purpose::Preferences] {
                        links.push(Link {
                            token: secret.issue(purpose, s.id, s.token_key, None),
                            purpose,
                            person: people,
                        });
                    }
                    to_confirm = Some(s.id);
                }
                Some(s) if s.status != Status::Confirmed => to_confirm = Some(s.id),
                Some(_) => {}
            },
            Op::Remove(a) => {
                store.remove_subscriber(&address(*a)).expect("remove");
            }
            Op::Sweep(hours) => {
                now += Duration::hours(i64::from(*hours));
                store
                    .expire_pending(now - Duration::hours(48))
                    .expect("sweep");
            }
            Op::Confirm(n) | Op::Unsubscribe(n) | Op::Preferences(n) => {
                if links.is_empty() {
                    continue;
                }
                let i = n % links.len();
                let link = &links[i];
                let purpose = match op {
                    Op::Confirm(_) => Purpose::Confirm,
                    Op::Unsubscribe(_) => Purpose::Unsubscribe,
                    _ => Purpose::Preferences,
                };
                let claim = match secret.verify(&link.token, purpose, now) {
                    Ok(c) => c,
                    Err(TokenError::WrongPurpose) => {
                        prop_assert_ne!(link.purpose, purpose);
                        continue;
                    }
                    Err(TokenError::Expired) => continue,
                    Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
                };
                prop_assert_eq!(link.purpose, purpose);
                if let Some(s) = store.bound(claim, purpose).expect("bound") {
                    prop_assert_eq!(
                        person_of[&s.id],
                        link.person,
                        "a link acted on another row's life"
                    );
                }
                match purpose {
                    Purpose::Confirm => {
                        if let Confirmed::Now(s) = store
                            .confirm(claim, Origin::new("link"), now)
                            .expect("confirm")
                        {
                            prop_assert_eq!(person_of[&s.id], link.person);
                            prop_assert!(
                                confirmed_by.insert(i),
                                "a confirmation link worked twice"
                            );
                        }
                    }
                    Purpose::Unsubscribe => {
                        let before: Vec<(i64, Status)> = store
                            .subscribers(None)
                            .expect("rows")
                            .iter()
                            .map(|s| (s.id, s.status))
                            .collect();
                        store
                            .unsubscribe(claim, Origin::new("link"), now)
                            .expect("unsubscribe");
                        for s in store.subscribers(None).expect("rows") {
                            let was = before.iter().find(|(id, _)| *id == s.id).map(|x| x.1);
                            if was != Some(s.status) {
                                prop_assert_eq!(
                                    person_of[&s.id],
                                    link.person,
                                    "unsubscribed another"
                                );
                            }
                        }
                    }
                    Purpose::Preferences => {}
                }
            }
        }
        if let Some(id) = to_confirm {
            let key = store
                .begin_confirmation(id, Origin::new("web"), now)
                .expect("begin");
            links.push(Link {
                token: secret.issue(Purpose::Confirm, id, key, Some(now + Duration::hours(48))),
                purpose: Purpose::Confirm,
                person: person_of[&id],
            });
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn a_link_acts_only_for_its_subscriber_and_purpose(ops in proptest::collection::vec(op(), 1..60)) {
        run(&ops)?;
    }
}
