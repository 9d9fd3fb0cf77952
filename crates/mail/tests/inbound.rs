//! The mail loop: bulletins go out with VERP return paths (to the outbox, whose
//! files show them), and what comes back — DSNs as Postfix writes them, ARF
//! reports in the layouts the large mailbox providers send, a vacation reply,
//! mail to the unsubscribe address, forgeries — ends in the documented state.

mod support;

use std::sync::atomic::AtomicBool;

use chrono::{DateTime, Duration, TimeZone, Utc};
use herald_mail::inbound::{Inbound, Input, Kind, handle};
use herald_mail::{EventKind, MailSettings, MailStore, Status, deliver, queue};
use indicatif::ProgressBar;
use mail_parser::MessageParser;
use support::*;

/// One bulletin as the outbox holds it.
#[derive(Debug, Clone)]
struct Sent {
    address: String,
    return_path: String,
    message_id: String,
    unsubscribe_mailto: String,
    headers: String,
}

struct Loop {
    _dir: tempfile::TempDir,
    state: std::path::PathBuf,
    store: MailStore,
    settings: MailSettings,
    sent: Vec<Sent>,
}

impl Loop {
    fn new(n: usize, bounce_after: u32) -> Loop {
        let corpus = corpus();
        let dir = tempfile::tempdir().expect("tmp");
        let store = MailStore::in_memory().expect("store");
        subscribers(&store, n);
        let settings = MailSettings {
            outbox: dir.path().join("outbox"),
            bounce_address: Some("bounces@statements.example.org".into()),
            unsubscribe_mailto: Some("unsubscribe@statements.example.org".into()),
            bounce_after,
            ..MailSettings::default()
        };
        let due: Vec<_> = corpus
            .due(now())
            .into_iter()
            .filter(|s| s.id == STATEMENT)
            .collect();
        queue(&store, &corpus, &settings, &due, now()).expect("queue");
        let report = deliver(
            &store,
            &corpus,
            &settings,
            &secret(),
            now(),
            &AtomicBool::new(false),
            &ProgressBar::hidden(),
        )
        .expect("deliver");
        assert_eq!(report.sent, n);
        let mut sent = Vec::new();
        for entry in std::fs::read_dir(&settings.outbox).expect("outbox") {
            let bytes = std::fs::read(entry.expect("entry").path()).expect("eml");
            let text = String::from_utf8_lossy(&bytes).into_owned();
            assert!(text.starts_with("Return-Path: <"), "{}", &text[..80]);
            let msg = MessageParser::default().parse(&bytes).expect("parses");
            let unsubscribe: String = msg
                .header_raw("List-Unsubscribe")
                .expect("List-Unsubscribe")
                .split_whitespace()
                .collect();
            let at = unsubscribe.find("mailto:").expect("mailto") + "mailto:".len();
            let end = unsubscribe[at..].find(['?', '>']).expect("end") + at;
            let head_end = text.find("\r\n\r\n").expect("header");
            sent.push(Sent {
                address: msg
                    .to()
                    .and_then(|a| a.first())
                    .and_then(|a| a.address())
                    .expect("to")
                    .to_string(),
                return_path: msg.return_address().expect("return path").to_string(),
                message_id: msg.message_id().expect("message id").to_string(),
                unsubscribe_mailto: unsubscribe[at..end].to_string(),
                headers: text[..head_end + 2].to_string(),
            });
        }
        sent.sort_by(|a, b| a.address.cmp(&b.address));
        Loop {
            state: dir.path().join(".herald"),
            _dir: dir,
            store,
            settings,
            sent,
        }
    }

    fn to(&self, address: &str) -> &Sent {
        self.sent
            .iter()
            .find(|s| s.address == address)
            .expect("sent")
    }

    fn receive_at(
        &self,
        bytes: &[u8],
        recipient: Option<&str>,
        at: DateTime<Utc>,
    ) -> herald_mail::inbound::Handled {
        let secret = secret();
        let ctx = Inbound {
            secret: &secret,
            settings: &self.settings,
            state_dir: &self.state,
            now: at,
        };
        let input = Input {
            bytes: bytes.to_vec(),
            cut: None,
        };
        handle(&self.store, &ctx, &input, recipient).expect("handled")
    }

    fn receive(&self, bytes: &[u8]) -> herald_mail::inbound::Handled {
        self.receive_at(bytes, None, now() + Duration::hours(1))
    }

    fn status(&self, address: &str) -> Status {
        self.store
            .subscriber_by_address(address)
            .expect("query")
            .expect("there")
            .status
    }

    fn kinds(&self, address: &str) -> Vec<EventKind> {
        let id = self
            .store
            .subscriber_by_address(address)
            .expect("query")
            .expect("there")
            .id;
        self.store
            .events(Some(id))
            .expect("events")
            .into_iter()
            .filter(|e| e.source.starts_with("mail"))
            .map(|e| e.kind)
            .collect()
    }

    fn unrecognized(&self) -> usize {
        std::fs::read_dir(self.state.join("inbound/unrecognized"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

/// A DSN as Postfix's bounce daemon writes it, to `to`, for `recipient`.
fn dsn(id: &str, to: &str, recipient: &str, action: &str, status: &str, original: &str) -> Vec<u8> {
    format!(
        "Return-Path: <>\r\n\
Delivered-To: {to}\r\n\
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n\
To: {to}\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
Auto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"B0UND\"\r\n\
Message-Id: <{id}@mx.example.net>\r\n\
\r\n\
This is a MIME-encapsulated message.\r\n\
\r\n\
--B0UND\r\n\
Content-Description: Notification\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
I'm sorry to have to inform you that your message could not\r\n\
be delivered to one or more recipients.\r\n\
\r\n\
--B0UND\r\n\
Content-Description: Delivery report\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.net\r\n\
X-Postfix-Queue-ID: 4Z1abc\r\n\
Arrival-Date: Thu, 31 Jul 2014 06:00:01 +0000 (UTC)\r\n\
\r\n\
Final-Recipient: rfc822; {recipient}\r\n\
Original-Recipient: rfc822;{recipient}\r\n\
Action: {action}\r\n\
Status: {status}\r\n\
Remote-MTA: dns; mail.example.net\r\n\
Diagnostic-Code: smtp; {status_first} {status} <{recipient}>: Recipient address\r\n\
\t rejected: User unknown in virtual mailbox table\r\n\
\r\n\
--B0UND\r\n\
Content-Description: Undelivered Message Headers\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
{original}\
--B0UND--\r\n",
        status_first = if status.starts_with('5') {
            "550"
        } else {
            "450"
        },
    )
    .into_bytes()
}

/// An ARF report (RFC 5965) from `provider`, with the original as `original_part`.
fn arf(id: &str, provider: &str, to: &str, extra: &str, original_part: &str) -> Vec<u8> {
    format!(
        "From: <feedback@{provider}>\r\n\
To: {to}\r\n\
Subject: FW: statement\r\n\
Date: Fri, 1 Aug 2014 10:00:00 +0000\r\n\
Message-ID: <{id}@{provider}>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"ARF\"\r\n\
\r\n\
--ARF\r\n\
Content-Type: text/plain; charset=\"US-ASCII\"\r\n\
\r\n\
This is an email abuse report for an email message received from IP\r\n\
192.0.2.1 on Fri, 1 Aug 2014 09:58:00 +0000.\r\n\
\r\n\
--ARF\r\n\
Content-Type: message/feedback-report\r\n\
\r\n\
Feedback-Type: abuse\r\n\
User-Agent: {provider}-FBL/1.0\r\n\
Version: 1\r\n\
Source-IP: 192.0.2.1\r\n\
Arrival-Date: Fri, 1 Aug 2014 09:58:00 +0000\r\n\
{extra}\
\r\n\
--ARF\r\n\
{original_part}\
--ARF--\r\n"
    )
    .into_bytes()
}

/// The original's header as a provider returns it: as delivered (with the
/// Return-Path its MTA wrote), or trimmed to what `keep` names.
fn original_header(s: &Sent, keep: &[&str]) -> String {
    let mut out = String::new();
    let mut keeping = false;
    for line in s.headers.split_inclusive("\r\n") {
        if !line.starts_with([' ', '\t']) {
            let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
            keeping = keep.is_empty() || keep.contains(&name.as_str());
        }
        if keeping {
            out.push_str(line);
        }
    }
    out
}

#[test]
fn outbox_files_show_the_verp_return_path_and_the_tokened_unsubscribe_address() {
    let l = Loop::new(3, 1);
    let secret = secret();
    let mut rows = std::collections::HashSet::new();
    for s in &l.sent {
        let token = herald_mail::verp_token(&s.return_path).expect("VERP address");
        assert!(s.return_path.starts_with("bounces+b"), "{}", s.return_path);
        assert!(s.return_path.ends_with("@statements.example.org"));
        let claim = secret.verify_verp(token).expect("genuine");
        assert_eq!(claim.kind, herald_mail::VerpKind::Bounce);
        let row = l.store.bulletin(claim.id).expect("q").expect("row");
        assert_eq!(row.address, s.address);
        assert_eq!(row.subscriber_id, claim.key);
        rows.insert(claim.id);
        let u = herald_mail::verp_token(&s.unsubscribe_mailto).expect("tokened");
        assert!(s.unsubscribe_mailto.starts_with("unsubscribe+u"));
        assert_eq!(
            secret.verify_verp(u).expect("genuine").kind,
            herald_mail::VerpKind::Unsubscribe
        );
        // The same length for everyone: the template's bytes keep their place.
        assert_eq!(s.return_path.len(), l.sent[0].return_path.len());
    }
    assert_eq!(rows.len(), 3, "one row each");
}

#[test]
fn a_hard_bounce_with_its_token_bounces_and_the_next_bulletin_skips_them() {
    let l = Loop::new(3, 1);
    let s = l.to("reader0@example.net");
    let original = original_header(s, &["message-id", "to", "subject", "from"]);
    let h = l.receive(&dsn(
        "d1",
        &s.return_path,
        &s.address,
        "failed",
        "5.1.1",
        &original,
    ));
    assert_eq!(h.verdict.kind, Kind::HardBounce);
    assert_eq!(h.status, Some(Status::Bounced));
    assert_eq!(h.verdict.status_code.as_deref(), Some("5.1.1"));
    assert!(h.verdict.detail.contains("User unknown"), "{:?}", h.verdict);
    assert_eq!(l.status(&s.address), Status::Bounced);
    assert_eq!(
        l.kinds(&s.address),
        vec![EventKind::HardBounce, EventKind::Bounce]
    );
    assert_eq!(l.status("reader1@example.net"), Status::Confirmed);
    // The same DSN again (an MTA retry): nothing more.
    let again = l.receive(&dsn(
        "d1",
        &s.return_path,
        &s.address,
        "failed",
        "5.1.1",
        &original,
    ));
    assert!(again.duplicate);
    assert_eq!(l.kinds(&s.address).len(), 2);

    // The next statement is not queued for them.
    let corpus = corpus();
    let later = Utc
        .with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
        .single()
        .expect("t");
    let next: Vec<_> = corpus
        .due(later)
        .into_iter()
        .filter(|st| st.id != STATEMENT)
        .collect();
    assert!(!next.is_empty());
    queue(&l.store, &corpus, &l.settings, &next, later).expect("queue");
    let bounced = l
        .store
        .subscriber_by_address(&s.address)
        .expect("q")
        .expect("s");
    let rows = l.store.bulletins(None).expect("rows");
    assert!(rows.iter().any(|b| b.statement_id != STATEMENT));
    assert!(
        !rows
            .iter()
            .any(|b| b.statement_id != STATEMENT && b.subscriber_id == bounced.id),
        "a bounced subscriber was queued"
    );
}

#[test]
fn bounce_after_counts_bulletins_in_a_row() {
    let l = Loop::new(2, 2);
    let s = l.to("reader0@example.net");
    let h = l.receive(&dsn(
        "d1",
        &s.return_path,
        &s.address,
        "failed",
        "5.1.1",
        "",
    ));
    assert_eq!((h.verdict.kind, h.status), (Kind::HardBounce, None));
    assert_eq!(
        l.status(&s.address),
        Status::Confirmed,
        "one bulletin of two"
    );
}

#[test]
fn forged_dsns_and_unsubscribes_change_nothing_and_are_kept() {
    let l = Loop::new(3, 1);
    let s = l.to("reader0@example.net");
    // A token made with another key, one with a changed character, an address
    // with no token: none of them acts, whatever the report says.
    let other = herald_mail::Secret::from_bytes(&[9u8; 32]).expect("key");
    let claim = secret()
        .verify_verp(herald_mail::verp_token(&s.return_path).expect("t"))
        .expect("genuine");
    let forged_token = other.verp(herald_mail::VerpKind::Bounce, claim.id, claim.key);
    let forged = herald_mail::verp_address("bounces@statements.example.org", &forged_token);
    let mut flipped = s.return_path.clone().into_bytes();
    let i = "bounces+b".len() + 3;
    flipped[i] = if flipped[i] == b'a' { b'b' } else { b'a' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    let fake_header = "Message-ID: <not-ours@statements.example.org>\r\n";
    for (n, to) in [
        &forged,
        &flipped,
        &"bounces@statements.example.org".to_string(),
    ]
    .into_iter()
    .enumerate()
    {
        let h = l.receive(&dsn(
            &format!("f{n}"),
            to,
            &s.address,
            "failed",
            "5.1.1",
            fake_header,
        ));
        assert_eq!(h.verdict.kind, Kind::Unrecognized, "{to}: {:?}", h.verdict);
        assert!(h.kept.is_some_and(|p| p.exists()));
    }
    // An unsubscribe to a forged address; a bounce address used to unsubscribe.
    let u = other.verp(herald_mail::VerpKind::Unsubscribe, claim.key, 1);
    let to = herald_mail::verp_address("unsubscribe@statements.example.org", &u);
    let mail = format!(
        "From: {0}\r\nTo: {to}\r\nSubject: unsubscribe\r\nMessage-ID: <u1@example.net>\r\n\r\nunsubscribe\r\n",
        s.address
    );
    let h = l.receive_at(mail.as_bytes(), Some(&to), now() + Duration::hours(1));
    assert_eq!(h.verdict.kind, Kind::Unrecognized, "{:?}", h.verdict);
    let mail = mail.replace(&to, &s.return_path).replace("u1@", "u2@");
    let h = l.receive(mail.as_bytes());
    assert_eq!(h.verdict.kind, Kind::Unrecognized, "{:?}", h.verdict);
    for r in &l.sent {
        assert_eq!(l.status(&r.address), Status::Confirmed);
        assert!(l.kinds(&r.address).is_empty());
    }
    assert_eq!(l.unrecognized(), 5);
}

#[test]
fn arf_complaints_in_the_providers_layouts_mark_complained() {
    let l = Loop::new(4, 1);
    // Yahoo/AOL CFL: the whole original as message/rfc822, with the Return-Path
    // the receiving MTA wrote (our VERP address), sent to the registered address.
    let a = l.to("reader0@example.net");
    let whole = format!(
        "Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n{}\r\nbody\r\n",
        a.headers
    );
    let h = l.receive(&arf(
        "y1",
        "yahoo.com",
        "fbl@statements.example.org",
        "",
        &whole,
    ));
    assert_eq!(
        (h.verdict.kind, h.status),
        (Kind::Complaint, Some(Status::Complained))
    );
    // Microsoft JMRP: the original without its Return-Path, the recipient
    // redacted; the signed unsubscribe link in List-Unsubscribe still names them.
    let b = l.to("reader1@example.net");
    let redacted = original_header(
        b,
        &["from", "subject", "date", "list-unsubscribe", "message-id"],
    );
    let part = format!(
        "Content-Type: message/rfc822\r\n\r\nTo: <redacted@outlook.com>\r\n{redacted}\r\nbody\r\n"
    );
    let h = l.receive(&arf(
        "m1",
        "outlook.com",
        "fbl@statements.example.org",
        "",
        &part,
    ));
    assert_eq!(
        (h.verdict.kind, h.status),
        (Kind::Complaint, Some(Status::Complained))
    );
    // RFC 5965 with headers only and Original-Rcpt-To: the Message-ID herald
    // sent to that exact recipient.
    let c = l.to("reader2@example.net");
    let headers = original_header(c, &["message-id", "from", "subject"]);
    let part = format!("Content-Type: text/rfc822-headers\r\n\r\n{headers}\r\n");
    let extra = format!("Original-Rcpt-To: {}\r\n", c.address);
    let h = l.receive(&arf(
        "r1",
        "mail.example.com",
        "fbl@statements.example.org",
        &extra,
        &part,
    ));
    assert_eq!(
        (h.verdict.kind, h.status),
        (Kind::Complaint, Some(Status::Complained))
    );
    // The same layout naming someone else: unrecognized.
    let d = l.to("reader3@example.net");
    let extra = format!("Original-Rcpt-To: {}\r\n", d.address);
    let h = l.receive(&arf(
        "r2",
        "mail.example.com",
        "fbl@statements.example.org",
        &extra,
        &part,
    ));
    assert_eq!(h.verdict.kind, Kind::Unrecognized);
    assert_eq!(l.status(&d.address), Status::Confirmed);
    for s in [a, b, c] {
        assert_eq!(l.status(&s.address), Status::Complained);
        assert_eq!(l.kinds(&s.address), vec![EventKind::Complaint]);
    }
    // A complaint is final: a later unsubscribe by mail does not undo it.
    let mail = format!(
        "From: {0}\r\nTo: {1}\r\nSubject: unsubscribe\r\nMessage-ID: <late@example.net>\r\n\r\n",
        a.address, a.unsubscribe_mailto
    );
    l.receive(mail.as_bytes());
    assert_eq!(l.status(&a.address), Status::Complained);
}

#[test]
fn a_vacation_reply_changes_nothing() {
    let l = Loop::new(2, 1);
    let s = l.to("reader0@example.net");
    let reply = format!(
        "From: {0}\r\nTo: {1}\r\nSubject: Out of office: Joint statement\r\n\
Auto-Submitted: auto-replied\r\nX-Autoreply: yes\r\nMessage-ID: <ooo1@example.net>\r\n\
In-Reply-To: <{2}>\r\n\r\nI am away until Monday.\r\n",
        s.address, s.return_path, s.message_id
    );
    let h = l.receive_at(reply.as_bytes(), Some(&s.return_path), now());
    assert_eq!((h.verdict.kind, h.status), (Kind::AutoReply, None));
    assert!(h.kept.is_none());
    assert_eq!(l.status(&s.address), Status::Confirmed);
    assert!(l.kinds(&s.address).is_empty());
}

#[test]
fn a_relay_that_rewrites_the_envelope_still_bounces_by_message_id_and_recipient() {
    let l = Loop::new(2, 1);
    let s = l.to("reader0@example.net");
    // The relay sent the DSN to its own postmaster alias (no token) and named the
    // final recipient after its own rewriting; the original recipient and the
    // returned Message-ID are ours.
    let original = original_header(s, &["message-id", "subject"]);
    let body = String::from_utf8(dsn(
        "r1",
        "postmaster@statements.example.org",
        &s.address,
        "failed",
        "5.2.1",
        &original,
    ))
    .expect("utf8")
    .replace(
        &format!("Final-Recipient: rfc822; {}", s.address),
        "Final-Recipient: rfc822; r0-mailbox@store.example.net",
    );
    let h = l.receive(body.as_bytes());
    assert_eq!(
        (h.verdict.kind, h.status),
        (Kind::HardBounce, Some(Status::Bounced)),
        "{:?}",
        h.verdict
    );
    // The same Message-ID reported for another recipient acts on nobody.
    let other = l.to("reader1@example.net");
    let h = l.receive(&dsn(
        "r2",
        "postmaster@statements.example.org",
        &other.address,
        "failed",
        "5.1.1",
        &original,
    ));
    assert_eq!(h.verdict.kind, Kind::Unrecognized);
    assert_eq!(l.status(&other.address), Status::Confirmed);
}

#[test]
fn soft_bounces_that_persist_for_soft_bounce_days_bounce() {
    let l = Loop::new(2, 1);
    let s = l.to("reader0@example.net");
    for (i, day) in [0, 3, 6].into_iter().enumerate() {
        let h = l.receive_at(
            &dsn(
                &format!("s{i}"),
                &s.return_path,
                &s.address,
                "delayed",
                "4.2.2",
                "",
            ),
            None,
            now() + Duration::days(day),
        );
        assert_eq!((h.verdict.kind, h.status), (Kind::SoftBounce, None));
    }
    assert_eq!(l.status(&s.address), Status::Confirmed);
    let h = l.receive_at(
        &dsn("s9", &s.return_path, &s.address, "failed", "4.2.2", ""),
        None,
        now() + Duration::days(7),
    );
    assert_eq!(
        (h.verdict.kind, h.status),
        (Kind::SoftBounce, Some(Status::Bounced))
    );
    // Another subscriber's soft bounces 30 days apart never add up.
    let o = l.to("reader1@example.net");
    for (i, day) in [0, 30, 60].into_iter().enumerate() {
        l.receive_at(
            &dsn(
                &format!("o{i}"),
                &o.return_path,
                &o.address,
                "delayed",
                "4.4.1",
                "",
            ),
            None,
            now() + Duration::days(day),
        );
    }
    assert_eq!(l.status(&o.address), Status::Confirmed);
}

#[test]
fn mail_to_the_unsubscribe_address_unsubscribes_that_subscriber_only() {
    let l = Loop::new(3, 1);
    let s = l.to("reader1@example.net");
    // Sent by a mail client from another address: the token decides, not From.
    let mail = format!(
        "From: someone@elsewhere.example\r\nTo: {0}\r\nSubject: unsubscribe\r\n\
Message-ID: <c1@elsewhere.example>\r\n\r\nunsubscribe\r\n",
        s.unsubscribe_mailto
    );
    let h = l.receive_at(mail.as_bytes(), Some(&s.unsubscribe_mailto), now());
    assert_eq!(
        (h.verdict.kind, h.status),
        (Kind::Unsubscribe, Some(Status::Unsubscribed))
    );
    assert_eq!(l.status(&s.address), Status::Unsubscribed);
    assert_eq!(l.kinds(&s.address), vec![EventKind::Unsubscribe]);
    assert_eq!(l.status("reader0@example.net"), Status::Confirmed);
    assert_eq!(l.status("reader2@example.net"), Status::Confirmed);
}

#[test]
fn broken_huge_and_endless_input_is_kept_as_unrecognized() {
    let l = Loop::new(1, 1);
    let secret = secret();
    let ctx = Inbound {
        secret: &secret,
        settings: &l.settings,
        state_dir: &l.state,
        now: now(),
    };
    // Broken MIME: a report whose boundary never comes, binary garbage.
    let broken = b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed\r\n\xff\xfe";
    let h = handle(
        &l.store,
        &ctx,
        &Input {
            bytes: broken.to_vec(),
            cut: None,
        },
        None,
    )
    .expect("ok");
    assert_eq!(h.verdict.kind, Kind::Unrecognized);
    let h = handle(
        &l.store,
        &ctx,
        &Input {
            bytes: vec![0u8; 1000],
            cut: None,
        },
        None,
    )
    .expect("ok");
    assert_eq!(h.verdict.kind, Kind::Unrecognized);
    // 50 MB on a reader: cut at the cap, kept.
    let big = std::io::repeat(b'a').take(50 * 1024 * 1024);
    let started = std::time::Instant::now();
    let input = herald_mail::inbound::read_bounded(big, std::time::Duration::from_secs(30));
    assert!(input.cut.as_deref().is_some_and(|c| c.contains("larger")));
    assert_eq!(input.bytes.len(), herald_mail::inbound::MAX_MESSAGE);
    let h = handle(&l.store, &ctx, &input, None).expect("ok");
    assert_eq!(h.verdict.kind, Kind::Unrecognized);
    // A reader that never ends: cut at the timeout.
    struct Endless;
    impl std::io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            std::thread::sleep(std::time::Duration::from_millis(50));
            buf[0] = b'x';
            Ok(1)
        }
    }
    let input = herald_mail::inbound::read_bounded(Endless, std::time::Duration::from_millis(300));
    assert!(
        input
            .cut
            .as_deref()
            .is_some_and(|c| c.contains("did not end"))
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let h = handle(&l.store, &ctx, &input, None).expect("ok");
    assert_eq!(h.verdict.kind, Kind::Unrecognized);
    assert_eq!(l.unrecognized(), 4);
    let counts = l.store.inbound_counts().expect("counts");
    assert_eq!(counts, vec![("unrecognized".to_string(), 4)]);
}

use std::io::Read;
