//! One bulletin message: rendered once per statement and language (templates,
//! overridable from `content/templates/mail/`), then made per recipient (To,
//! Message-ID, signed unsubscribe link, DKIM signature).
//!
//! Every value that reaches a header goes through [`clean_line`]: line breaks and
//! control characters become spaces, so no field can add a header, and lettre
//! (which panics on a line break in a display name) never sees one.

use std::path::Path;
use std::str::FromStr;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use herald_content::html::{HtmlOptions, absolute_url, to_html};
use herald_content::{Corpus, Statement, urls};
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};

use crate::settings::{DkimAlgorithm, MailSettings};
use crate::token::{Purpose, Secret};

/// Stands for the unsubscribe token in rendered templates; replaced per recipient.
const MARK: &str = "HERALDxUNSUBSCRIBExTOKENxMARK";

const DEFAULT_HTML: &str = include_str!("templates/bulletin.html");
const DEFAULT_TEXT: &str = include_str!("templates/bulletin.txt");
const DEFAULT_DIGEST_HTML: &str = include_str!("templates/digest.html");
const DEFAULT_DIGEST_TEXT: &str = include_str!("templates/digest.txt");
/// Below `content/`: `templates/mail/bulletin.html`, `bulletin.txt`, `digest.html`
/// and `digest.txt`.
pub const TEMPLATE_DIR: &str = "templates/mail";

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("[mail] needs a sender: set `from` in [mail] or `email` in [organization]")]
    NoSender,
    #[error("[mail] {field} {value:?} is not a valid address: {reason}")]
    Address {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("[mail] {field} {value:?} must be an https:// or http:// URL with no spaces")]
    Url { field: &'static str, value: String },
    #[error("template {name}: {source}")]
    Template {
        name: String,
        source: minijinja::Error,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("DKIM key {path}: {reason}")]
    DkimKey { path: String, reason: String },
    #[error("cannot build the message to {to}: {reason}")]
    Build { to: String, reason: String },
}

/// One line of text fit for a header: control characters and line or paragraph
/// separators become spaces, runs of spaces one space, at most `max` characters.
pub fn clean_line(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    let mut space = false;
    for c in s.chars() {
        let blank =
            c.is_control() || c.is_whitespace() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}');
        if blank {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
        if out.chars().count() >= max {
            break;
        }
    }
    out
}

macro_rules! fixed_header {
    ($ty:ident, $name:literal) => {
        /// A header whose name is fixed here and whose value is ASCII without line breaks.
        #[derive(Debug, Clone)]
        struct $ty(String);
        impl Header for $ty {
            fn name() -> HeaderName {
                HeaderName::new_from_ascii_str($name)
            }
            fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Ok($ty(s.to_string()))
            }
            fn display(&self) -> HeaderValue {
                HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}
fixed_header!(ListId, "List-Id");
fixed_header!(ListUnsubscribe, "List-Unsubscribe");
fixed_header!(ListUnsubscribePost, "List-Unsubscribe-Post");
fixed_header!(ContentLanguage, "Content-Language");

/// Strings the default templates show, by language.
#[derive(Debug, Clone)]
struct Labels {
    read_online: &'static str,
    pdf: &'static str,
    unsubscribe: &'static str,
    why: String,
    /// The subject of a digest of `n` statements.
    digest: fn(&str, usize) -> String,
    /// Before the title of a correction bulletin.
    correction: &'static str,
}

fn labels(lang: &str, org: &str) -> Labels {
    match lang.split('-').next().unwrap_or(lang) {
        "ru" => Labels {
            read_online: "Читать на сайте",
            pdf: "Скачать PDF",
            unsubscribe: "Отписаться",
            why: format!("Вы получили это письмо, потому что подписались на заявления: {org}."),
            digest: |org, n| format!("{org}: новые заявления ({n})"),
            correction: "Исправление",
        },
        "kk" => Labels {
            read_online: "Сайтта оқу",
            pdf: "PDF жүктеп алу",
            unsubscribe: "Жазылымнан бас тарту",
            why: format!("Сіз бұл хатты {org} мәлімдемелеріне жазылғандықтан алдыңыз."),
            digest: |org, n| format!("{org}: жаңа мәлімдемелер ({n})"),
            correction: "Түзету",
        },
        _ => Labels {
            read_online: "Read online",
            pdf: "Download the PDF",
            unsubscribe: "Unsubscribe",
            why: format!("You receive this because you subscribed to statements from {org}."),
            digest: |org, n| match n {
                1 => format!("{org}: 1 new statement"),
                n => format!("{org}: {n} new statements"),
            },
            correction: "Correction",
        },
    }
}

fn local_date(s: &Statement) -> String {
    match s.lang.split('-').next() {
        Some("en") => s.meta.date.format("%-d %B %Y").to_string(),
        _ => s.meta.date.format("%d.%m.%Y").to_string(),
    }
}

fn check_url(field: &'static str, url: &str) -> Result<(), ComposeError> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'));
    if ok {
        Ok(())
    } else {
        Err(ComposeError::Url {
            field,
            value: url.to_string(),
        })
    }
}

fn mailbox(field: &'static str, value: &str) -> Result<Mailbox, ComposeError> {
    if value.chars().any(|c| c.is_control()) {
        return Err(ComposeError::Address {
            field,
            value: value.to_string(),
            reason: "it contains a line break or control character".into(),
        });
    }
    Mailbox::from_str(value.trim()).map_err(|e| ComposeError::Address {
        field,
        value: value.to_string(),
        reason: e.to_string(),
    })
}

/// A statement rendered for one language: everything but the recipient.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub statement_id: String,
    pub lang: String,
    subject: String,
    text: String,
    html: String,
    pdf: Option<(String, Vec<u8>)>,
}

/// The recipient of one message.
#[derive(Debug, Clone, Copy)]
pub struct Recipient<'a> {
    pub subscriber_id: i64,
    pub address: &'a str,
    pub name: &'a str,
}

/// A message ready to send: the envelope addresses and the bytes.
#[derive(Debug, Clone)]
pub struct Composed {
    pub envelope: lettre::address::Envelope,
    pub bytes: Vec<u8>,
}

/// Builds bulletins for one corpus and settings.
pub struct Composer<'a> {
    corpus: &'a Corpus,
    settings: &'a MailSettings,
    secret: &'a Secret,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    list_id: String,
    unsubscribe_url: String,
    unsubscribe_mailto: String,
    dkim: Option<DkimConfig>,
    env: minijinja::Environment<'static>,
}

impl std::fmt::Debug for Composer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Composer")
            .field("from", &self.from)
            .field("list_id", &self.list_id)
            .field("dkim", &self.dkim.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> Composer<'a> {
    /// Check the settings, load the templates and the DKIM key.
    pub fn new(
        corpus: &'a Corpus,
        settings: &'a MailSettings,
        secret: &'a Secret,
    ) -> Result<Composer<'a>, ComposeError> {
        let org = &corpus.config.organization;
        let from = match (&settings.from, &org.email) {
            (Some(f), _) => mailbox("from", f)?,
            (None, Some(e)) => {
                let addr = Address::from_str(e.trim()).map_err(|err| ComposeError::Address {
                    field: "organization email",
                    value: e.clone(),
                    reason: err.to_string(),
                })?;
                Mailbox::new(Some(clean_line(org.short(), 120)), addr)
            }
            (None, None) => return Err(ComposeError::NoSender),
        };
        let reply_to = settings
            .reply_to
            .as_deref()
            .map(|r| mailbox("reply_to", r))
            .transpose()?;
        let domain = from.email.domain().to_ascii_lowercase();
        let list_id = match &settings.list_id {
            Some(l) => {
                let l = l.trim();
                let ok = !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
                if !ok {
                    return Err(ComposeError::Url {
                        field: "list_id",
                        value: l.to_string(),
                    });
                }
                l.to_string()
            }
            None => format!("statements.{domain}"),
        };
        let unsubscribe_url = settings
            .unsubscribe_url
            .clone()
            .unwrap_or_else(|| format!("{}unsubscribe/", corpus.config.base_url));
        check_url("unsubscribe_url", &unsubscribe_url)?;
        let unsubscribe_mailto = match &settings.unsubscribe_mailto {
            Some(m) => mailbox("unsubscribe_mailto", m)?.email.to_string(),
            None => from.email.to_string(),
        };
        let dkim = settings
            .dkim
            .as_ref()
            .map(|d| {
                let path = corpus.root.join(&d.key);
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(&path).map_err(|e| ComposeError::DkimKey {
                    path: shown.clone(),
                    reason: e.to_string(),
                })?;
                let algorithm = match d.algorithm {
                    DkimAlgorithm::Rsa => DkimSigningAlgorithm::Rsa,
                    DkimAlgorithm::Ed25519 => DkimSigningAlgorithm::Ed25519,
                };
                let key = DkimSigningKey::new(text.trim(), algorithm).map_err(|e| ComposeError::DkimKey {
                    path: shown,
                    reason: format!(
                        "{e}: RSA keys are PKCS#1 PEM (BEGIN RSA PRIVATE KEY), Ed25519 keys the base64 32-byte seed"
                    ),
                })?;
                // Relaxed/relaxed, and every header a receiver shows or acts on:
                // lettre's default (simple headers; From, Subject, To, Date only)
                // leaves the List-Unsubscribe headers unsigned. Not Content-Type:
                // lettre signs before it adds the multipart's Content-Type, so a
                // signature naming it never verifies.
                let headers = [
                    "From",
                    "Reply-To",
                    "To",
                    "Subject",
                    "Date",
                    "Message-ID",
                    "MIME-Version",
                    "Content-Language",
                    "List-Id",
                    "List-Unsubscribe",
                    "List-Unsubscribe-Post",
                ]
                .into_iter()
                .map(HeaderName::new_from_ascii_str)
                .collect();
                Ok::<_, ComposeError>(DkimConfig::new(
                    d.selector.clone(),
                    d.domain.clone(),
                    key,
                    headers,
                    DkimCanonicalization {
                        header: DkimCanonicalizationType::Relaxed,
                        body: DkimCanonicalizationType::Relaxed,
                    },
                ))
            })
            .transpose()?;

        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        let dir = herald_content::content_dir(&corpus.root).join(TEMPLATE_DIR);
        for (name, default) in [
            ("bulletin.html", DEFAULT_HTML),
            ("bulletin.txt", DEFAULT_TEXT),
            ("digest.html", DEFAULT_DIGEST_HTML),
            ("digest.txt", DEFAULT_DIGEST_TEXT),
        ] {
            let source = read_override(&dir.join(name))?.unwrap_or_else(|| default.to_string());
            env.add_template_owned(name.to_string(), source)
                .map_err(|source| ComposeError::Template {
                    name: name.into(),
                    source,
                })?;
        }
        Ok(Composer {
            corpus,
            settings,
            secret,
            from,
            reply_to,
            list_id,
            unsubscribe_url,
            unsubscribe_mailto,
            dkim,
            env,
        })
    }

    /// Render `statement` once: subject, text and HTML with a mark where each
    /// recipient's unsubscribe link goes, and the PDF if it is attached.
    pub fn prepare(&self, statement: &Statement) -> Result<Prepared, ComposeError> {
        let config = &self.corpus.config;
        let page_url = absolute_url(&config.base_url, &urls::page(statement));
        let pdf_url = absolute_url(&config.base_url, &urls::pdf(statement));
        let doc = statement.document();
        let body_html = to_html(
            &doc,
            &HtmlOptions {
                base_url: Some(&config.base_url),
                page_url: Some(&page_url),
            },
        );
        let org = &config.organization;
        let unsubscribe_url = format!("{}{MARK}", self.unsubscribe_url);
        let ctx = |html: bool| {
            minijinja::context! {
                lang => &statement.lang,
                site_title => &config.title,
                statement => minijinja::context! {
                    id => &statement.id,
                    title => &statement.meta.title,
                    date => local_date(statement),
                    summary => &statement.meta.summary,
                    place => &statement.meta.place,
                    occasion => &statement.meta.occasion,
                    issuers => &statement.meta.issuers,
                    topics => &statement.meta.topics,
                },
                organization => org_value(org),
                body_html => &body_html,
                body_text => doc.plain_text(),
                page_url => url(&page_url, html),
                pdf_url => url(&pdf_url, html),
                unsubscribe_url => url(&unsubscribe_url, html),
                labels => {
                    let l = labels(&statement.lang, org.short());
                    minijinja::context! { read_online => l.read_online, pdf => l.pdf, unsubscribe => l.unsubscribe, why => l.why }
                },
            }
        };
        let render = |name: &str| self.render(name, &ctx);
        let html = render("bulletin.html")?;
        let text = render("bulletin.txt")?;
        let pdf = if self.settings.attach_pdf {
            let path = self.corpus.root.join("public").join(urls::pdf(statement));
            let bytes = std::fs::read(&path).map_err(|source| ComposeError::Io {
                path: path.display().to_string(),
                source,
            })?;
            Some((format!("{}.pdf", statement.file_stem()), bytes))
        } else {
            None
        };
        Ok(Prepared {
            statement_id: statement.id.clone(),
            lang: statement.lang.clone(),
            subject: clean_line(&statement.meta.title, 250),
            text,
            html,
            pdf,
        })
    }

    /// [`Composer::prepare`], for a subscriber who had an earlier version: the
    /// subject says it is a correction.
    pub fn prepare_correction(&self, statement: &Statement) -> Result<Prepared, ComposeError> {
        let mut p = self.prepare(statement)?;
        let label = labels(&statement.lang, "").correction;
        p.subject = clean_line(&format!("{label}: {}", statement.meta.title), 250);
        Ok(p)
    }

    /// Render a digest once per language and set of statements: one entry per
    /// statement (title, place and date, summary, page and PDF links), newest first
    /// as given. `key` names the digest (its slot) in the ledger.
    pub fn prepare_digest(
        &self,
        key: &str,
        lang: &str,
        statements: &[&Statement],
    ) -> Result<Prepared, ComposeError> {
        let config = &self.corpus.config;
        let org = &config.organization;
        let l = labels(lang, org.short());
        let subject = clean_line(&(l.digest)(org.short(), statements.len()), 250);
        let unsubscribe_url = format!("{}{MARK}", self.unsubscribe_url);
        let ctx = |html: bool| {
            let items: Vec<minijinja::Value> = statements
                .iter()
                .map(|s| {
                    minijinja::context! {
                        id => &s.id,
                        lang => &s.lang,
                        title => &s.meta.title,
                        date => local_date(s),
                        summary => &s.meta.summary,
                        place => &s.meta.place,
                        occasion => &s.meta.occasion,
                        issuers => &s.meta.issuers,
                        topics => &s.meta.topics,
                        page_url => url(&absolute_url(&config.base_url, &urls::page(s)), html),
                        pdf_url => url(&absolute_url(&config.base_url, &urls::pdf(s)), html),
                    }
                })
                .collect();
            minijinja::context! {
                lang => lang,
                site_title => &config.title,
                subject => &subject,
                statements => items,
                organization => org_value(org),
                unsubscribe_url => url(&unsubscribe_url, html),
                labels => minijinja::context! {
                    read_online => l.read_online, pdf => l.pdf,
                    unsubscribe => l.unsubscribe, why => &l.why,
                },
            }
        };
        let render = |name: &str| self.render(name, &ctx);
        Ok(Prepared {
            statement_id: key.to_string(),
            lang: lang.to_string(),
            html: render("digest.html")?,
            text: render("digest.txt")?,
            subject,
            pdf: None,
        })
    }

    /// The message for one recipient, signed when DKIM is configured. `message_id`
    /// is without angle brackets; `date` is the send time.
    pub fn compose(
        &self,
        prepared: &Prepared,
        to: Recipient<'_>,
        message_id: &str,
        date: DateTime<Utc>,
    ) -> Result<Composed, ComposeError> {
        let build_err = |reason: String| ComposeError::Build {
            to: to.address.to_string(),
            reason,
        };
        let address = Address::from_str(to.address).map_err(|e| build_err(e.to_string()))?;
        let name = clean_line(to.name, 200);
        let recipient = Mailbox::new((!name.is_empty()).then_some(name), address);
        let token = self
            .secret
            .issue(Purpose::Unsubscribe, to.subscriber_id, None);
        let one_click = format!("{}{token}", self.unsubscribe_url);
        let text = prepared.text.replace(MARK, &token);
        let html = prepared.html.replace(MARK, &token);
        let mid = clean_line(message_id, 250).replace(['<', '>', ' '], "");

        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(recipient)
            .subject(prepared.subject.clone())
            .date(SystemTime::from(date))
            .message_id(Some(format!("<{mid}>")))
            .header(ListId(format!("<{}>", self.list_id)))
            .header(ListUnsubscribe(format!(
                "<{one_click}>, <mailto:{}?subject=unsubscribe%20{token}>",
                self.unsubscribe_mailto
            )))
            .header(ListUnsubscribePost("List-Unsubscribe=One-Click".into()))
            .header(ContentLanguage(prepared.lang.clone()));
        if let Some(r) = &self.reply_to {
            builder = builder.reply_to(r.clone());
        }
        let alternative = MultiPart::alternative()
            .singlepart(SinglePart::plain(text))
            .singlepart(SinglePart::html(html));
        let body = match &prepared.pdf {
            Some((file, bytes)) => {
                let pdf =
                    ContentType::parse("application/pdf").map_err(|e| build_err(e.to_string()))?;
                MultiPart::mixed()
                    .multipart(alternative)
                    .singlepart(Attachment::new(file.clone()).body(bytes.clone(), pdf))
            }
            None => alternative,
        };
        let mut message = builder
            .multipart(body)
            .map_err(|e| build_err(e.to_string()))?;
        if let Some(dkim) = &self.dkim {
            message.sign(dkim);
        }
        Ok(Composed {
            envelope: message.envelope().clone(),
            bytes: message.formatted(),
        })
    }

    /// Render template `name` with the context `ctx(html)` gives.
    fn render(
        &self,
        name: &str,
        ctx: &dyn Fn(bool) -> minijinja::Value,
    ) -> Result<String, ComposeError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx(name.ends_with(".html"))))
            .map_err(|source| ComposeError::Template {
                name: name.into(),
                source,
            })
    }

    /// The sender, for envelopes and reports.
    pub fn from(&self) -> &Mailbox {
        &self.from
    }
}

/// A URL for a template. In HTML it is escaped by `escape` (which leaves `/` alone;
/// minijinja's escaper writes every slash as `&#x2f;`).
fn url(u: &str, html: bool) -> minijinja::Value {
    if html {
        minijinja::Value::from_safe_string(herald_content::html::escape(u))
    } else {
        minijinja::Value::from(u)
    }
}

fn org_value(org: &herald_content::config::Organization) -> minijinja::Value {
    minijinja::context! {
        name => &org.name,
        short_name => org.short(),
        address => &org.address,
        url => &org.url,
        email => &org.email,
    }
}

fn read_override(path: &Path) -> Result<Option<String>, ComposeError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ComposeError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// The stable Message-ID of one statement version to one subscriber, without
/// angle brackets: the same on every run, different for every recipient.
pub fn message_id(statement_id: &str, version: &str, subscriber_id: i64, domain: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(statement_id.as_bytes());
    h.update([0]);
    h.update(version.as_bytes());
    h.update([0]);
    h.update(subscriber_id.to_be_bytes());
    let digest = h.finalize();
    format!(
        "{}.{}@{}",
        hex::encode(&digest[..12]),
        subscriber_id,
        domain
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_line_removes_breaks() {
        assert_eq!(clean_line("a\r\nBcc: x@y.org", 100), "a Bcc: x@y.org");
        assert_eq!(clean_line("  a \u{2028} b\u{85}c\t", 100), "a b c");
        assert_eq!(clean_line("\r\n", 100), "");
        assert_eq!(clean_line("абвгд", 3), "абв");
    }

    #[test]
    fn message_ids_are_stable_and_distinct() {
        let a = message_id("2014/x", "v1", 1, "ex.org");
        assert_eq!(a, message_id("2014/x", "v1", 1, "ex.org"));
        assert_ne!(a, message_id("2014/x", "v1", 2, "ex.org"));
        assert_ne!(a, message_id("2014/x", "v2", 1, "ex.org"));
        assert!(a.ends_with(".1@ex.org"));
    }
}
