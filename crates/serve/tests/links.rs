//! A link acts only for the person it was sent to: the attacks of issue 18, each
//! against a running server over real sockets, with a real SQLite file.

mod common;

use common::*;
use herald_mail::{Purpose, Status};

const FORM: &str = "application/x-www-form-urlencoded";

async fn post_form(c: &reqwest::Client, url: String, body: String) -> (u16, String) {
    let res = c
        .post(url)
        .header("content-type", FORM)
        .body(body)
        .send()
        .await
        .expect("POST");
    let status = res.status().as_u16();
    (status, res.text().await.expect("body"))
}

/// The token of the newest confirmation mail to `address`.
async fn confirm_token(p: &Project, n: usize, address: &str) -> String {
    let mails = wait_for_mails(p, n).await;
    let mail = mails
        .iter()
        .filter(|m| std::fs::read_to_string(m).expect("eml").contains(address))
        .max_by_key(|m| {
            std::fs::metadata(m)
                .and_then(|x| x.modified())
                .expect("mtime")
        })
        .expect("a mail to the address");
    token_of(&confirm_link(mail))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_subscribers_links_never_act_on_the_next_one() {
    let p = Project::new("");
    let run = start(&p).await;
    let c = client();
    subscribe(&c, &run, "attacker@example.org", "en", &[]).await;
    let token = confirm_token(&p, 1, "attacker@example.org").await;
    let attacker = p.subscriber("attacker@example.org").expect("row");
    let prefs = p.token(Purpose::Preferences, attacker.id);
    assert!(
        p.store()
            .remove_subscriber("attacker@example.org")
            .expect("rm")
    );
    subscribe(&c, &run, "victim@example.org", "en", &[]).await;
    wait_for_mails(&p, 2).await;
    let victim = p.subscriber("victim@example.org").expect("row");
    assert_ne!(victim.id, attacker.id, "the id was reused");
    // The attacker's confirmation link does not confirm the victim.
    let (status, _) = post_form(&c, run.url("/confirm"), form(&[("token", &token)])).await;
    assert_eq!(status, 410);
    assert_eq!(p.status("victim@example.org"), Some(Status::Pending));
    // The attacker's preferences link does not show the victim's address.
    let res = c
        .get(run.url(&format!("/preferences?token={prefs}")))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), 410);
    assert!(!res.text().await.expect("body").contains("victim@"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_swept_pending_rows_fresh_link_never_confirms_the_next_subscriber() {
    let p = Project::new("address_window_secs = 1\n");
    let run = start(&p).await;
    let c = client();
    subscribe(&c, &run, "attacker@example.org", "en", &[]).await;
    wait_for_mails(&p, 1).await;
    // The per-address limit runs on the real clock.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // A re-subscribe just before the row expires mails a fresh link.
    run.advance(chrono::Duration::hours(47));
    subscribe(&c, &run, "attacker@example.org", "en", &[]).await;
    let fresh = confirm_token(&p, 2, "attacker@example.org").await;
    let attacker = p.subscriber("attacker@example.org").expect("row");
    // The sweep two hours later keeps the row: its expiry counts from the last link.
    run.advance(chrono::Duration::hours(2));
    let store = p.store();
    let sweep_cutoff = |hours: i64| start_time() + chrono::Duration::hours(hours - 48);
    assert_eq!(store.expire_pending(sweep_cutoff(49)).expect("sweep"), 0);
    // Once it is swept, the next subscriber gets a new id and the link acts on nobody.
    assert_eq!(store.expire_pending(sweep_cutoff(96)).expect("sweep"), 1);
    subscribe(&c, &run, "victim@example.org", "en", &[]).await;
    let victim = p.subscriber("victim@example.org").expect("row");
    assert!(victim.id > attacker.id, "id {} reused", victim.id);
    let (status, _) = post_form(&c, run.url("/confirm"), form(&[("token", &fresh)])).await;
    assert_eq!(status, 410);
    assert_eq!(p.status("victim@example.org"), Some(Status::Pending));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_used_confirmation_link_is_refused_after_unsubscribe() {
    let p = Project::new("");
    let run = start(&p).await;
    let c = client();
    subscribe(&c, &run, "once@example.org", "en", &[]).await;
    let token = confirm_token(&p, 1, "once@example.org").await;
    let (status, _) = post_form(&c, run.url("/confirm"), form(&[("token", &token)])).await;
    assert_eq!(status, 200);
    let s = p.subscriber("once@example.org").expect("row");
    let unsub = p.token(Purpose::Unsubscribe, s.id);
    let (status, _) = post_form(
        &c,
        run.url(&format!("/unsubscribe/{unsub}")),
        "List-Unsubscribe=One-Click".into(),
    )
    .await;
    assert_eq!(status, 200);
    run.advance(chrono::Duration::hours(1));
    let (status, body) = post_form(&c, run.url("/confirm"), form(&[("token", &token)])).await;
    assert_eq!(status, 410, "{body}");
    let s = p.subscriber("once@example.org").expect("row");
    assert_eq!(s.status, Status::Unsubscribed);
    assert_eq!(s.consent_at, Some(start_time()), "consent_at rewritten");
    // The history shows each step, with where it came from.
    let kinds: Vec<String> = p
        .store()
        .events(Some(s.id))
        .expect("events")
        .iter()
        .map(|e| format!("{} {} {}", e.kind, e.source, e.ip.as_deref().unwrap_or("-")))
        .collect();
    assert_eq!(
        kinds,
        [
            "subscribe web form 127.0.0.1",
            "confirm confirmation link 127.0.0.1",
            "unsubscribe unsubscribe link 127.0.0.1"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_click_accepts_multipart_and_a_repeat_answers_200() {
    let p = Project::new("");
    let run = start(&p).await;
    let c = client();
    let store = p.store();
    let s = store
        .add_subscriber(
            herald_mail::NewSubscriber {
                address: "multi@example.org".into(),
                name: String::new(),
                lang: "en".into(),
                topics: vec![],
                status: Status::Confirmed,
                consent_source: "test".into(),
                consent_ip: None,
                consent_at: None,
            },
            &["en".to_string()],
            start_time(),
        )
        .expect("add");
    let token = p.token(Purpose::Unsubscribe, s.id);
    // What a mailbox provider sends (RFC 8058 section 3.2), byte for byte.
    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XyZ--\r\n";
    for _ in 0..2 {
        let res = c
            .post(run.url(&format!("/unsubscribe/{token}")))
            .header("content-type", "multipart/form-data; boundary=XyZ")
            .body(body)
            .send()
            .await
            .expect("POST");
        assert_eq!(res.status(), 200);
        assert_eq!(p.status("multi@example.org"), Some(Status::Unsubscribed));
    }
    // A multipart body without the field unsubscribes nobody.
    let t = p.token(Purpose::Unsubscribe, s.id);
    let res = c
        .post(run.url(&format!("/unsubscribe?token={t}")))
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body("--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nOne-Click\r\n--XyZ--\r\n")
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_database_answers_503_keeps_the_form_and_reads_go_on() {
    let p = Project::new("db_wait_ms = 200\n");
    let run = start(&p).await;
    let c = client();
    let store = p.store();
    let s = store
        .add_subscriber(
            herald_mail::NewSubscriber {
                address: "reader@example.org".into(),
                name: String::new(),
                lang: "en".into(),
                topics: vec![],
                status: Status::Confirmed,
                consent_source: "test".into(),
                consent_ip: None,
                consent_at: None,
            },
            &["en".to_string()],
            start_time(),
        )
        .expect("add");
    let prefs = p.token(Purpose::Preferences, s.id);
    let unsub = p.token(Purpose::Unsubscribe, s.id);
    // Another process holds the write lock (a send applying its journal).
    let other = rusqlite::Connection::open(p.root().join(".herald/herald.db")).expect("open");
    other
        .execute_batch("BEGIN IMMEDIATE; UPDATE mail_meta SET value = value;")
        .expect("lock");
    let (token, cookie) = form_token(&c, &run).await;
    let res = c
        .post(run.url("/subscribe"))
        .header("content-type", FORM)
        .header("cookie", cookie)
        .body(form(&[
            ("csrf", &token),
            ("email", "typed@example.org"),
            ("lang", "ru"),
        ]))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let html = res.text().await.expect("body");
    assert!(html.contains("value=\"typed@example.org\""), "{html}");
    assert!(html.contains("try again"), "{html}");
    // A page that only reads does not wait for the writer.
    let res = c
        .get(run.url(&format!("/preferences?token={prefs}")))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), 200);
    // One-click unsubscribe: 503 too, never 500.
    let (status, _) = post_form(
        &c,
        run.url(&format!("/unsubscribe/{unsub}")),
        "List-Unsubscribe=One-Click".into(),
    )
    .await;
    assert_eq!(status, 503);
    other.execute_batch("COMMIT").expect("commit");
    let (status, _) = post_form(
        &c,
        run.url(&format!("/unsubscribe/{unsub}")),
        "List-Unsubscribe=One-Click".into(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(p.subscriber("typed@example.org"), None);
}

/// postfix's smtp-sink: a real SMTP server that does not offer SMTPUTF8.
struct Sink {
    child: std::process::Child,
    port: u16,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sink() -> Sink {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = std::process::Command::new("/usr/sbin/smtp-sink")
        .args(["-u", "postfix"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("16")
        .spawn()
        .expect("smtp-sink (apt-get install postfix)");
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "smtp-sink did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Sink { child, port }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_internationalized_address_is_refused_when_the_server_lacks_smtputf8() {
    let sink = sink();
    let p = Project::new(&format!(
        "\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
        sink.port
    ));
    let run = start(&p).await;
    let c = client();
    let (status, body) = subscribe(&c, &run, "пользователь@example.org", "en", &[]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("SMTPUTF8"), "{body}");
    assert!(
        body.contains("value=\"пользователь@example.org\""),
        "{body}"
    );
    assert_eq!(p.store().subscribers(None).expect("rows").len(), 0);
    // An ASCII address goes through the same server.
    let (status, body) = subscribe(&c, &run, "ascii@example.org", "en", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(p.subscriber("ascii@example.org").is_some());
}
