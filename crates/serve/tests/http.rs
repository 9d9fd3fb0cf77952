//! The HTTP surface, spoken to over real sockets: static files, headers, CSRF,
//! subscribe, confirm, unsubscribe, preferences, limits.

mod common;

use common::*;
use herald_mail::{Purpose, Status};

const FORM: &str = "application/x-www-form-urlencoded";

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii").to_string())
        .unwrap_or_default()
}

fn assert_security_headers(res: &reqwest::Response) {
    let csp = header(res, "content-security-policy");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header(res, "x-content-type-options"), "nosniff");
    assert_eq!(header(res, "referrer-policy"), "no-referrer");
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_public_with_security_headers_and_no_embargoed_page() {
    let p = Project::new("");
    let run = start(&p).await;
    let c = client();
    let res = c.get(run.url("/en/")).send().await.expect("GET");
    assert_eq!(res.status(), 200);
    assert_security_headers(&res);
    assert!(
        res.text()
            .await
            .expect("body")
            .contains("World Day against Trafficking")
    );
    let pdf = c
        .get(run.url("/en/2014/world-day-against-trafficking/world-day-against-trafficking.en.pdf"))
        .send()
        .await
        .expect("GET");
    assert_eq!(header(&pdf, "content-type"), "application/pdf");
    assert_eq!(
        pdf.bytes().await.expect("body").as_ref(),
        p.public("en/2014/world-day-against-trafficking/world-day-against-trafficking.en.pdf")
    );
    // The 2027 statement is not in public/, so it is not served.
    let embargoed = c
        .get(run.url("/en/2027/world-day-against-trafficking-2027/"))
        .send()
        .await
        .expect("GET");
    assert_eq!(embargoed.status(), 404);
    assert_security_headers(&embargoed);
    // Nothing outside public/.
    let outside = c
        .get(run.url("/../content/herald.toml"))
        .send()
        .await
        .expect("GET");
    assert_eq!(outside.status(), 404);
    let form = c.get(run.url("/subscribe")).send().await.expect("GET");
    assert_security_headers(&form);
    assert_eq!(header(&form, "cache-control"), "no-store");
    assert!(header(&form, "set-cookie").contains("SameSite=Strict"));
}

#[tokio::test(flavor = "multi_thread")]
async fn subscribe_needs_a_csrf_token() {
    let p = Project::new("");
    let run = start(&p).await;
    let c = client();
    // The site's static form has no token: the answer is our form to submit again.
    let res = c
        .post(run.url("/subscribe"))
        .header("content-type", FORM)
        .body(form(&[
            ("email", "reader@example.org"),
            ("lang", "ru"),
            ("topics", "migration"),
        ]))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 200);
    let cookie = header(&res, "set-cookie");
    let html = res.text().await.expect("body");
    assert!(html.contains("value=\"reader@example.org\""));
    assert!(html.contains("value=\"ru\" lang=\"ru\" selected"));
    assert!(html.contains("value=\"migration\" checked"));
    assert_eq!(p.subscriber("reader@example.org"), None);
    // A made-up token, or a token without its cookie, is refused.
    let (token, cookie) = csrf_of(&html, &cookie);
    for (field, cookie) in [
        ("forged", cookie.as_str()),
        (token.as_str(), ""),
        (token.as_str(), "herald_csrf=other"),
    ] {
        let res = c
            .post(run.url("/subscribe"))
            .header("content-type", FORM)
            .header("cookie", cookie)
            .body(form(&[
                ("csrf", field),
                ("email", "reader@example.org"),
                ("lang", "en"),
            ]))
            .send()
            .await
            .expect("POST");
        assert_eq!(res.status(), 403);
    }
    assert_eq!(p.subscriber("reader@example.org"), None);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(p.outbox().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn double_opt_in_and_replayed_confirmation_refused() {
    let p = Project::new("");
    let run = start(&p).await;
    let c = client();
    let (status, body) = subscribe(
        &c,
        &run,
        "Reader@Example.ORG",
        "kk",
        &["migration", "health"],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Check your inbox"));
    let s = p.subscriber("reader@example.org").expect("stored");
    assert_eq!(s.status, Status::Pending);
    assert_eq!(s.lang, "kk");
    let mut topics = s.topics.clone();
    topics.sort();
    assert_eq!(topics, vec!["health", "migration"]);
    assert_eq!(s.consent_ip.as_deref(), Some("127.0.0.1"));
    assert!(s.consent_source.contains("web form"));
    assert_eq!(s.consent_at, None);
    let mails = wait_for_mails(&p, 1).await;
    assert_eq!(mails.len(), 1);
    let link = confirm_link(&mails[0]);
    assert!(link.starts_with(&run.base), "{link}");
    // Opening the link (GET) shows a button and confirms nothing.
    let page = c.get(&link).send().await.expect("GET");
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .expect("body")
            .contains("Confirm my subscription")
    );
    assert_eq!(p.status("reader@example.org"), Some(Status::Pending));
    let token = token_of(&link);
    let post = || {
        c.post(run.url("/confirm"))
            .header("content-type", FORM)
            .body(form(&[("token", &token)]))
            .send()
    };
    let res = post().await.expect("POST");
    assert_eq!(res.status(), 200);
    assert!(
        res.text()
            .await
            .expect("body")
            .contains("Subscription confirmed")
    );
    let s = p.subscriber("reader@example.org").expect("stored");
    assert_eq!(s.status, Status::Confirmed);
    assert_eq!(s.consent_at, Some(start_time()));
    // The same link again: refused, by POST and by GET.
    assert_eq!(post().await.expect("POST").status(), 410);
    assert_eq!(c.get(&link).send().await.expect("GET").status(), 410);
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_expired_and_misused_tokens_refused() {
    let p = Project::new("");
    let run = start(&p).await;
    let c = client();
    subscribe(&c, &run, "late@example.org", "en", &[]).await;
    let token = token_of(&confirm_link(&wait_for_mails(&p, 1).await[0]));
    let confirm = |t: String| {
        c.post(run.url("/confirm"))
            .header("content-type", FORM)
            .body(form(&[("token", &t)]))
            .send()
    };
    // One character changed.
    let mut forged: Vec<char> = token.chars().collect();
    forged[12] = if forged[12] == 'A' { 'B' } else { 'A' };
    let res = confirm(forged.into_iter().collect()).await.expect("POST");
    assert_eq!(res.status(), 400);
    assert!(res.text().await.expect("body").contains("signature"));
    // Signed with another key.
    let other = herald_mail::Secret::from_bytes(&[1u8; 32]).expect("key");
    let id = p.subscriber("late@example.org").expect("row").id;
    assert_eq!(
        confirm(other.issue(Purpose::Confirm, id, 0, None))
            .await
            .expect("POST")
            .status(),
        400
    );
    // An unsubscribe token is no confirmation.
    let unsub = p.token(Purpose::Unsubscribe, id);
    assert_eq!(confirm(unsub).await.expect("POST").status(), 400);
    assert_eq!(confirm(String::new()).await.expect("POST").status(), 400);
    // Two days later (the default expiry is 48 hours) the link has expired.
    run.advance(chrono::Duration::hours(49));
    let res = confirm(token).await.expect("POST");
    assert_eq!(res.status(), 410);
    assert!(res.text().await.expect("body").contains("expired"));
    assert_eq!(p.status("late@example.org"), Some(Status::Pending));
}

#[tokio::test(flavor = "multi_thread")]
async fn second_subscribe_in_the_window_sends_nothing_and_reveals_nothing() {
    let p = Project::new("");
    let run = start(&p).await;
    let c = client();
    let (s1, b1) = subscribe(&c, &run, "twice@example.org", "en", &[]).await;
    wait_for_mails(&p, 1).await;
    let (s2, b2) = subscribe(&c, &run, "twice@example.org", "en", &[]).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(
        b1, b2,
        "the answer must not tell whether the address was known"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(p.outbox().len(), 1);
    // A confirmed subscriber: the same answer, and no mail either.
    let store = p.store();
    let id = store
        .subscriber_by_address("twice@example.org")
        .expect("q")
        .expect("row")
        .id;
    store
        .set_status(
            id,
            Status::Confirmed,
            herald_mail::Origin::new("test"),
            start_time(),
        )
        .expect("confirm");
    let (_, b3) = subscribe(&c, &run, "twice@example.org", "en", &[]).await;
    assert_eq!(b1, b3);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(p.outbox().len(), 1);
    assert_eq!(store.subscribers(None).expect("all").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn get_never_unsubscribes_one_click_post_does() {
    let p = Project::new("");
    let run = start(&p).await;
    let c = client();
    let store = p.store();
    let add = |address: &str| {
        store
            .add_subscriber(
                herald_mail::NewSubscriber {
                    address: address.into(),
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
            .expect("add")
            .id
    };
    let id = add("leaver@example.org");
    let token = p.token(Purpose::Unsubscribe, id);
    // GET, as a mail scanner would, on both URL forms: a page with a button.
    for url in [
        run.url(&format!("/unsubscribe?token={token}")),
        run.url(&format!("/unsubscribe/{token}")),
    ] {
        let res = c.get(&url).send().await.expect("GET");
        assert_eq!(res.status(), 200);
        let html = res.text().await.expect("body");
        assert!(html.contains("name=\"List-Unsubscribe\" value=\"One-Click\""));
        assert!(html.contains("/preferences?token="));
    }
    assert_eq!(p.status("leaver@example.org"), Some(Status::Confirmed));
    // A POST without the RFC 8058 body does nothing.
    let res = c
        .post(run.url(&format!("/unsubscribe?token={token}")))
        .header("content-type", FORM)
        .body("")
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 400);
    assert_eq!(p.status("leaver@example.org"), Some(Status::Confirmed));
    // A forged token does nothing.
    let forged = herald_mail::Secret::from_bytes(&[3u8; 32])
        .expect("key")
        .issue(Purpose::Unsubscribe, id, 0, None);
    let res = c
        .post(run.url(&format!("/unsubscribe?token={forged}")))
        .header("content-type", FORM)
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 400);
    assert_eq!(p.status("leaver@example.org"), Some(Status::Confirmed));
    // One click, as a mail provider sends it (no cookie, no CSRF token).
    let res = c
        .post(run.url(&format!("/unsubscribe?token={token}")))
        .header("content-type", FORM)
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 200);
    assert_eq!(p.status("leaver@example.org"), Some(Status::Unsubscribed));
    // Again: still 200. And the path form works the same.
    let other = add("other@example.org");
    let t2 = p.token(Purpose::Unsubscribe, other);
    for url in [
        run.url(&format!("/unsubscribe?token={token}")),
        run.url(&format!("/unsubscribe/{t2}")),
    ] {
        let res = c
            .post(&url)
            .header("content-type", FORM)
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .expect("POST");
        assert_eq!(res.status(), 200);
    }
    assert_eq!(p.status("other@example.org"), Some(Status::Unsubscribed));
}

#[tokio::test(flavor = "multi_thread")]
async fn preferences_change_language_and_topics_with_csrf() {
    let p = Project::new("");
    let run = start(&p).await;
    let c = client();
    subscribe(&c, &run, "prefs@example.org", "en", &[]).await;
    let id = p.subscriber("prefs@example.org").expect("row").id;
    let token = p.token(Purpose::Unsubscribe, id);
    let res = c
        .get(run.url(&format!("/preferences?token={token}")))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), 200);
    let cookie = header(&res, "set-cookie");
    let html = res.text().await.expect("body");
    assert!(html.contains("prefs@example.org"));
    let (csrf, cookie) = csrf_of(&html, &cookie);
    let post = |fields: Vec<(&'static str, String)>, cookie: String| {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        c.post(run.url("/preferences"))
            .header("content-type", FORM)
            .header("cookie", cookie)
            .body(body)
            .send()
    };
    let fields = |csrf: &str| {
        vec![
            ("csrf", csrf.to_string()),
            ("token", token.clone()),
            ("lang", "ru".to_string()),
            ("topics", "labour".to_string()),
            ("topics", "data".to_string()),
        ]
    };
    // Without the CSRF cookie: refused, nothing changed.
    assert_eq!(
        post(fields(&csrf), String::new())
            .await
            .expect("POST")
            .status(),
        403
    );
    assert_eq!(p.subscriber("prefs@example.org").expect("row").lang, "en");
    let res = post(fields(&csrf), cookie.clone()).await.expect("POST");
    assert_eq!(res.status(), 200);
    let s = p.subscriber("prefs@example.org").expect("row");
    assert_eq!(s.lang, "ru");
    let mut topics = s.topics.clone();
    topics.sort();
    assert_eq!(topics, vec!["data", "labour"]);
    // Bad choices are explained, not stored.
    let mut bad = fields(&csrf);
    bad[2].1 = "xx".into();
    let res = post(bad, cookie.clone()).await.expect("POST");
    assert_eq!(res.status(), 400);
    assert!(res.text().await.expect("body").contains("xx"));
    let mut bad = fields(&csrf);
    bad[3].1 = "astrology".into();
    assert_eq!(post(bad, cookie).await.expect("POST").status(), 400);
    assert_eq!(p.subscriber("prefs@example.org").expect("row").lang, "ru");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_explained() {
    let p = Project::new("");
    let run = start(&p).await;
    let c = client();
    let (status, body) = subscribe(&c, &run, "not-an-address", "en", &[]).await;
    assert_eq!(status, 400);
    assert!(body.contains("not a valid email address"), "{body}");
    let (status, body) = subscribe(&c, &run, "a@example.org", "de", &[]).await;
    assert_eq!(status, 400);
    assert!(body.contains("Language"), "{body}");
    let (status, body) = subscribe(&c, &run, "a@example.org", "en", &["astrology"]).await;
    assert_eq!(status, 400);
    assert!(body.contains("astrology"), "{body}");
    assert!(p.store().subscribers(None).expect("all").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn request_bodies_are_size_limited() {
    let p = Project::new("body_limit = 4096\n");
    let run = start(&p).await;
    let c = client();
    let (token, cookie) = form_token(&c, &run).await;
    let big = format!(
        "csrf={token}&lang=en&email=a%40example.org&pad={}",
        "x".repeat(8192)
    );
    let res = c
        .post(run.url("/subscribe"))
        .header("content-type", FORM)
        .header("cookie", cookie)
        .body(big)
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 413);
    assert!(p.store().subscribers(None).expect("all").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn per_ip_rate_limit() {
    let p = Project::new("ip_burst = 3\nip_per_minute = 1\n");
    let run = start(&p).await;
    let c = client();
    for i in 0..3 {
        let (status, _) = subscribe(&c, &run, &format!("r{i}@example.org"), "en", &[]).await;
        assert_eq!(status, 200);
    }
    let (status, body) = subscribe(&c, &run, "r9@example.org", "en", &[]).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(p.subscriber("r9@example.org"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn content_changes_trigger_a_rebuild() {
    let p = Project::new("");
    let run = start(&p).await;
    assert_eq!(run.rebuilds(), 0);
    let file = p
        .root()
        .join("content/statements/2016/labour-migration-in-figures.en.md");
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(&file, text.replace("+++\n\n", "+++\n\nEdited. ")).expect("write");
    for _ in 0..100 {
        if run.rebuilds() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(run.rebuilds(), 1, "one save, one rebuild");
    // The rebuild reads every statement; reads are not changes, so no second one.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(run.rebuilds(), 1, "reading content/ must not rebuild again");
}

/// Wait (up to 5 s) until `run` has rebuilt `n` times.
async fn wait_for_rebuilds(run: &Running, n: usize) {
    for _ in 0..100 {
        if run.rebuilds() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_that_panics_leaves_the_service_and_the_last_good_site() {
    let p = Project::new("");
    let run = start_with(
        &p,
        std::sync::Arc::new(|| panic!("a rebuild that dies on its content")),
    )
    .await;
    let c = client();
    let page = c.get(run.url("/en/")).send().await.expect("GET");
    assert_eq!(page.status(), 200);
    let before = page.bytes().await.expect("body");
    let file = p
        .root()
        .join("content/statements/2016/labour-migration-in-figures.en.md");
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(&file, text.replace("+++\n\n", "+++\n\nEdited. ")).expect("write");
    wait_for_rebuilds(&run, 1).await;
    assert_eq!(run.rebuilds(), 1);
    // The service answers, the old page is served, subscribing works.
    let page = c.get(run.url("/en/")).send().await.expect("GET");
    assert_eq!(page.status(), 200);
    assert_eq!(page.bytes().await.expect("body"), before);
    let (status, body) = subscribe(&c, &run, "after.panic@example.org", "en", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        p.status("after.panic@example.org"),
        Some(Status::Pending),
        "{body}"
    );
    // The watcher lived through the panic: the next change rebuilds again.
    std::fs::write(&file, text.replace("+++\n\n", "+++\n\nEdited twice. ")).expect("write");
    wait_for_rebuilds(&run, 2).await;
    assert_eq!(
        run.rebuilds(),
        2,
        "the watcher thread died with the rebuild"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_form_names_topics_as_the_site_does() {
    // `[site.topic_names]` (a table after the test's empty [serve] section).
    let p = Project::new(
        "\n[site.topic_names.human-rights]\nen = \"Rights of every person\"\nru = \"Права человека\"\n\
         [site.topic_names.health]\nru = \"Здоровье\"\n",
    );
    let run = start(&p).await;
    let c = client();
    let form = c
        .get(run.url("/subscribe"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    // The configured English name; a topic named only in Russian falls back to its slug.
    assert!(form.contains("> Rights of every person</label>"), "{form}");
    assert!(form.contains("> Health</label>"), "{form}");
    assert!(!form.contains("Human rights"), "{form}");
    // The site's topic page says the same.
    let page = String::from_utf8(p.public("en/topics/human-rights/index.html")).expect("utf8");
    assert!(page.contains("Rights of every person"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_confirmation_mail_is_in_the_language_chosen_on_the_form() {
    let p = Project::new("");
    let run = start(&p).await;
    let c = client();
    for (n, (address, lang, subject, words)) in [
        (
            "ru@example.org",
            "ru",
            "Подтвердите подписку: UN Kazakhstan — Official Statements",
            "Чтобы подтвердить подписку, откройте эту ссылку до",
        ),
        (
            "kk@example.org",
            "kk",
            "Жазылымды растаңыз: UN Kazakhstan — Official Statements",
            "Жазылымды растау үшін бұл сілтемені",
        ),
        (
            "en@example.org",
            "en",
            "Confirm your subscription: UN Kazakhstan — Official Statements",
            "To confirm, open this link before",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) = subscribe(&c, &run, address, lang, &[]).await;
        assert_eq!(status, 200, "{body}");
        // The page itself stays in English.
        assert!(body.contains("Check your inbox"), "{body}");
        let mails = wait_for_mails(&p, n + 1).await;
        let mail = mails
            .iter()
            .find(|m| std::fs::read_to_string(m).expect("eml").contains(address))
            .unwrap_or_else(|| panic!("no mail to {address}"));
        let bytes = std::fs::read(mail).expect("eml");
        let msg = mail_parser::MessageParser::default()
            .parse(&bytes)
            .expect("parses");
        assert_eq!(msg.subject(), Some(subject));
        assert_eq!(
            msg.header_raw("Content-Language").map(str::trim),
            Some(lang)
        );
        let text = msg.body_text(0).expect("text").to_string();
        assert!(text.contains(words), "{text}");
        // Recorded as a sent confirmation row, under the Message-ID it carries.
        let id = msg.message_id().expect("Message-ID").to_string();
        let row = wait_for_confirmation_row(&p, address).await;
        assert_eq!(row.message_id, id);
        assert_eq!(row.state, herald_mail::BulletinState::Sent);
        assert_eq!(row.lang, lang);
        // The link in it confirms.
        let token = token_of(&confirm_link(mail));
        let res = c
            .post(run.url("/confirm"))
            .header("content-type", FORM)
            .body(form(&[("token", &token)]))
            .send()
            .await
            .expect("POST");
        assert_eq!(res.status(), 200);
        assert_eq!(p.status(address), Some(Status::Confirmed));
    }
}

/// The confirmation row recorded for `address` (written just after the mail).
async fn wait_for_confirmation_row(p: &Project, address: &str) -> herald_mail::Bulletin {
    for _ in 0..200 {
        let rows = p.store().bulletins(None).expect("bulletins");
        if let Some(b) = rows
            .into_iter()
            .find(|b| b.kind == herald_mail::BulletinKind::Confirmation && b.address == address)
        {
            return b;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no confirmation row for {address}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_confirmation_the_server_does_not_take_is_recorded_as_failed() {
    // Port 1 on loopback: nothing listens, the connection is refused.
    let p = Project::new(
        "\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = 1\ntls = \"none\"\ntimeout_secs = 5\n",
    );
    let run = start(&p).await;
    let c = client();
    let (status, body) = subscribe(&c, &run, "lost@example.org", "en", &[]).await;
    // The reader is told the same: the answer never depends on the mail server.
    assert_eq!(status, 200, "{body}");
    let row = wait_for_confirmation_row(&p, "lost@example.org").await;
    assert_eq!(row.state, herald_mail::BulletinState::Failed);
    let error = row.last_error.expect("the reason");
    assert!(error.contains("127.0.0.1"), "{error}");
    assert!(
        p.outbox().is_empty(),
        "nothing in the outbox when a server is set"
    );
}
