//! Composition: no field can add a header, the one-click link is signed for its
//! recipient, templates can be overridden, the PDF can be attached.

mod support;

use std::path::Path;

use herald_mail::compose::{Composer, Recipient};
use herald_mail::{MailSettings, Purpose};
use mail_parser::{MessageParser, MimeHeaders};
use support::*;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn line_breaks_in_names_never_add_a_header_or_panic() {
    let corpus = corpus();
    let settings = MailSettings::default();
    let secret = secret();
    let composer = Composer::new(&corpus, &settings, &secret).expect("composer");
    let statement = corpus.get(STATEMENT, "ru").expect("ru");
    let prepared = composer.prepare(statement).expect("prepared");
    for name in [
        "Evil\r\nBcc: victim@example.com",
        "Evil\nBcc: victim@example.com",
        "Evil\rBcc: victim@example.com",
        "Evil\u{2028}Bcc: victim@example.com",
        "\"Quoted\" <and> (comments), semi; colon:",
        "\r\n",
        &"Очень длинное имя ".repeat(40),
    ] {
        let m = composer
            .compose(
                &prepared,
                Recipient {
                    bulletin_id: 0,
                    subscriber_id: 7,
                    token_key: 77,
                    address: "reader@example.net",
                    name,
                },
                "id.7@statements.example.org",
                now(),
            )
            .expect("composed");
        let text = String::from_utf8(m.bytes.clone()).expect("ascii");
        let parsed = MessageParser::default()
            .parse(m.bytes.as_slice())
            .expect("parses");
        assert!(
            parsed.header("Bcc").is_none(),
            "{name:?} added a header:\n{text}"
        );
        assert!(!text.contains("\nBcc:"), "{text}");
        assert_eq!(
            parsed
                .to()
                .and_then(|a| a.first())
                .and_then(|a| a.address()),
            Some("reader@example.net")
        );
        assert_eq!(m.envelope.to().len(), 1);
    }
}

#[test]
fn one_click_link_is_signed_for_the_recipient() {
    let corpus = corpus();
    let settings = MailSettings::default();
    let secret = secret();
    let composer = Composer::new(&corpus, &settings, &secret).expect("composer");
    let prepared = composer
        .prepare(corpus.get(STATEMENT, "en").expect("en"))
        .expect("prepared");
    let m = composer
        .compose(
            &prepared,
            Recipient {
                bulletin_id: 0,
                subscriber_id: 1234,
                token_key: 77,
                address: "reader@example.net",
                name: "Reader",
            },
            "x.1234@statements.example.org",
            now(),
        )
        .expect("composed");
    let parsed = MessageParser::default()
        .parse(m.bytes.as_slice())
        .expect("parses");
    let header = parsed
        .header_raw("List-Unsubscribe")
        .expect("List-Unsubscribe")
        .split_whitespace()
        .collect::<String>();
    let url_prefix = "<https://statements.example.org/unsubscribe/";
    let start = header.find(url_prefix).expect("https link") + url_prefix.len();
    let token = &header[start..start + header[start..].find('>').expect("closing >")];
    assert_eq!(
        secret.verify(token, Purpose::Unsubscribe, now()),
        Ok(herald_mail::Claim {
            subscriber: 1234,
            key: Some(77)
        })
    );
    assert!(
        header.contains("<mailto:press@statements.example.org?subject=unsubscribe%20"),
        "{header}"
    );
    assert_eq!(
        parsed.header_raw("List-Unsubscribe-Post").map(str::trim),
        Some("List-Unsubscribe=One-Click")
    );
    assert_eq!(parsed.message_id(), Some("x.1234@statements.example.org"));
    let html = parsed.body_html(0).expect("html");
    assert!(
        html.contains(token),
        "the footer link carries the same token"
    );
    assert!(!html.to_lowercase().contains("<script"));
    assert!(
        html.contains("https://statements.example.org/en/2014/world-day-against-trafficking/"),
        "{html}"
    );
    let text = parsed.body_text(0).expect("text");
    assert!(text.contains(token));
}

#[test]
fn templates_are_overridden_and_pdf_attached() {
    let dir = tempfile::tempdir().expect("tmp");
    copy_dir(&content_root().join("content"), &dir.path().join("content"));
    let templates = dir.path().join("content/templates/mail");
    std::fs::create_dir_all(&templates).expect("mkdir");
    std::fs::write(
        templates.join("bulletin.txt"),
        "CUSTOM {{ statement.title }}\n{{ unsubscribe_url }}\n",
    )
    .expect("write");
    let corpus = herald_content::load(dir.path()).expect("content");
    let statement = corpus.get(STATEMENT, "kk").expect("kk");
    let pdf = dir
        .path()
        .join("public")
        .join(herald_content::urls::pdf(statement));
    std::fs::create_dir_all(pdf.parent().expect("dir")).expect("mkdir");
    std::fs::write(&pdf, b"%PDF-1.7 test").expect("write");
    let settings = MailSettings {
        attach_pdf: true,
        ..MailSettings::default()
    };
    let secret = secret();
    let composer = Composer::new(&corpus, &settings, &secret).expect("composer");
    let prepared = composer.prepare(statement).expect("prepared");
    let m = composer
        .compose(
            &prepared,
            Recipient {
                bulletin_id: 0,
                subscriber_id: 1,
                token_key: 77,
                address: "a@example.net",
                name: "",
            },
            "y.1@statements.example.org",
            now(),
        )
        .expect("composed");
    let parsed = MessageParser::default()
        .parse(m.bytes.as_slice())
        .expect("parses");
    let text = parsed.body_text(0).expect("text");
    assert!(
        text.starts_with(&format!("CUSTOM {}", statement.meta.title)),
        "{text}"
    );
    let attachment = parsed.attachment(0).expect("the PDF");
    assert_eq!(attachment.contents(), b"%PDF-1.7 test");
    assert_eq!(
        attachment.attachment_name(),
        Some("world-day-against-trafficking.kk.pdf")
    );

    // A broken template is a clear error, not a panic.
    std::fs::write(templates.join("bulletin.html"), "{% if %}").expect("write");
    let e = Composer::new(&corpus, &settings, &secret).expect_err("bad template");
    assert!(e.to_string().contains("bulletin.html"), "{e}");
}

#[test]
fn check_templates_names_the_override_line_of_an_undefined_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&content_root().join("content"), &dir.path().join("content"));
    let corpus = herald_content::load(dir.path()).expect("content");
    let all: Vec<_> = corpus.statements.iter().collect();
    let settings = MailSettings::default();
    assert!(!herald_mail::has_overrides(dir.path()));
    herald_mail::check_templates(&corpus, &settings, &all).expect("built-ins render");
    let templates = dir.path().join("content/templates/mail");
    std::fs::create_dir_all(&templates).expect("mkdir");
    // Fails only in a digest: a bulletin has no `statements`.
    std::fs::write(
        templates.join("digest.txt"),
        "{{ subject }}\n{% for s in statements %}{{ s.no_such_field }}{% endfor %}\n",
    )
    .expect("write");
    assert!(herald_mail::has_overrides(dir.path()));
    let e = herald_mail::check_templates(&corpus, &settings, &all).expect_err("undefined");
    let d = e.diagnostic(dir.path()).expect("a template diagnostic");
    assert_eq!(d.file, Path::new("content/templates/mail/digest.txt"));
    assert_eq!((d.line, d.column), (2, 29), "{d}");
    assert!(d.message.contains("s.no_such_field"), "{d}");
}
