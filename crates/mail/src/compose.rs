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

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use herald_content::html::{HtmlOptions, absolute_url, to_html};
use herald_content::{Corpus, Statement, l10n, urls};
use lettre::address::Envelope;
use lettre::message::header::{
    self, ContentTransferEncoding, ContentType, Header, HeaderName, HeaderValue, Headers,
};
use lettre::message::{Attachment, Body, Mailbox, Mailboxes, MultiPart, SinglePart};
use lettre::{Address, Message};

use crate::dkim::{BodyHash, SIGNED, Signer, canon_field};
use crate::settings::MailSettings;
use crate::token::{Purpose, Secret, TOKEN_CHARS, VerpKind, verp_address};

/// Stands for the unsubscribe token in rendered templates; replaced per
/// recipient. As long as a token, so every byte after it keeps its place.
const MARK: &str = "HERALDxUNSUBSCRIBExTOKENxMARKxxxxxxxxxxxxxxxxxxxxxxxxxxx";
const _: () = assert!(MARK.len() == TOKEN_CHARS);

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
    /// The statement's body could not be had as the version the bulletin is for
    /// (its file changed while herald ran): nothing is sent with a wrong body.
    #[error("{0}")]
    Body(String),
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
        pub(crate) struct $ty(pub(crate) String);
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

/// A statement's date as its page and PDF show it (one localisation: herald-content's l10n).
fn local_date(s: &Statement) -> String {
    l10n::long_date(&s.lang, &s.meta.date)
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

/// The sender: `[mail] from`, else the organization's short name and email.
pub(crate) fn sender(
    config: &herald_content::Config,
    settings: &MailSettings,
) -> Result<Mailbox, ComposeError> {
    let org = &config.organization;
    Ok(match (&settings.from, &org.email) {
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
    })
}

/// `[mail] reply_to`, checked.
pub(crate) fn reply_to(settings: &MailSettings) -> Result<Option<Mailbox>, ComposeError> {
    settings
        .reply_to
        .as_deref()
        .map(|r| mailbox("reply_to", r))
        .transpose()
}

/// The signer of `[mail.dkim]`, its key read from below the project `root`.
pub(crate) fn dkim_signer(
    root: &Path,
    settings: &MailSettings,
) -> Result<Option<Signer>, ComposeError> {
    settings
        .dkim
        .as_ref()
        .map(|d| {
            let path = root.join(&d.key);
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| ComposeError::DkimKey {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            Signer::new(&text, d.algorithm, &d.selector, &d.domain).map_err(|e| {
                ComposeError::DkimKey {
                    path: shown,
                    reason: format!(
                        "{e}: RSA keys are PKCS#1 PEM (BEGIN RSA PRIVATE KEY), Ed25519 keys the base64 32-byte seed"
                    ),
                }
            })
        })
        .transpose()
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

/// `text` with CRLF line ends, in one pass. lettre converts a body itself, but
/// by inserting one `\r` at a time: quadratic in the number of lines (1.6 s for a
/// 1 MB statement of 43,000 short paragraphs); given CRLF, it has nothing to do.
fn crlf(text: String) -> String {
    let lone = text
        .bytes()
        .enumerate()
        .filter(|&(i, b)| b == b'\n' && (i == 0 || text.as_bytes()[i - 1] != b'\r'));
    let missing = lone.count();
    if missing == 0 {
        return text;
    }
    let mut out = String::with_capacity(text.len() + missing);
    let mut last = '\0';
    for c in text.chars() {
        if c == '\n' && last != '\r' {
            out.push('\r');
        }
        out.push(c);
        last = c;
    }
    out
}

/// The recipient of one message.
#[derive(Debug, Clone, Copy)]
pub struct Recipient<'a> {
    /// The bulletin row: the VERP return path names it.
    pub bulletin_id: i64,
    pub subscriber_id: i64,
    /// The subscriber's `token_key`: their unsubscribe link carries it.
    pub token_key: i64,
    pub address: &'a str,
    pub name: &'a str,
}

/// A message ready to send: the envelope addresses and the bytes.
#[derive(Debug, Clone)]
pub struct Composed {
    pub envelope: lettre::address::Envelope,
    pub bytes: Vec<u8>,
}

impl Composed {
    /// The Message-ID field's value, without the angle brackets.
    pub fn message_id(&self) -> Option<String> {
        let head = find(&self.bytes, b"\r\n\r\n", 0).unwrap_or(0);
        header_fields(&self.bytes[..head])
            .into_iter()
            .find(|f| f.to_ascii_lowercase().starts_with(b"message-id:"))
            .map(|f| {
                String::from_utf8_lossy(&f[11..])
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    }
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
    /// `[mail] bounce_address`: VERP return paths and tokened unsubscribe addresses.
    bounce: Option<Address>,
    dkim: Option<Signer>,
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
        Composer::build(corpus, settings, secret, true)
    }

    /// [`Composer::new`]; without `sign`, the DKIM key is not read (for checks).
    fn build(
        corpus: &'a Corpus,
        settings: &'a MailSettings,
        secret: &'a Secret,
        sign: bool,
    ) -> Result<Composer<'a>, ComposeError> {
        let from = sender(&corpus.config, settings)?;
        let reply_to = reply_to(settings)?;
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
            .unwrap_or_else(|| urls::absolute(&corpus.config.base_url, "unsubscribe/"));
        check_url("unsubscribe_url", &unsubscribe_url)?;
        let unsubscribe_mailto = match &settings.unsubscribe_mailto {
            Some(m) => mailbox("unsubscribe_mailto", m)?.email.to_string(),
            None => from.email.to_string(),
        };
        let bounce = settings
            .bounce_address
            .as_deref()
            .map(|b| {
                let address = mailbox("bounce_address", b)?.email;
                // A token must fit: local parts are at most 64 characters.
                if address.user().len() + 1 + crate::token::VERP_CHARS > 64 {
                    return Err(ComposeError::Address {
                        field: "bounce_address",
                        value: b.to_string(),
                        reason: format!(
                            "its local part must be at most {} characters, to leave room for the token",
                            63 - crate::token::VERP_CHARS
                        ),
                    });
                }
                Ok(address)
            })
            .transpose()?;
        let dkim = if sign {
            dkim_signer(&corpus.root, settings)?
        } else {
            None
        };

        let mut env = minijinja::Environment::new();
        // A misspelt variable in an override is an error, not an empty string;
        // `{% if x %}` on a missing value stays allowed (as in herald-site).
        env.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
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
            bounce,
            dkim,
            env,
        })
    }

    /// The HTML and text of `statement`'s bulletin (the templates only).
    fn render_bulletin(&self, statement: &Statement) -> Result<(String, String), ComposeError> {
        let config = &self.corpus.config;
        let page_url = absolute_url(&config.base_url, &urls::page(statement));
        let pdf_url = absolute_url(&config.base_url, &urls::pdf(statement));
        statement
            .try_body()
            .map_err(|e| ComposeError::Body(e.to_string()))?;
        let doc = statement.document();
        let body_html = to_html(
            doc,
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
                pdf_url => self.settings.pdf_links.then(|| url(&pdf_url, html)),
                unsubscribe_url => url(&unsubscribe_url, html),
                labels => {
                    let l = l10n::mail_labels(&statement.lang);
                    minijinja::context! { read_online => l.read_online, pdf => l.download_pdf, unsubscribe => l.unsubscribe, why => l.why(org.short()) }
                },
            }
        };
        let render = |name: &str| self.render(name, &ctx);
        Ok((render("bulletin.html")?, render("bulletin.txt")?))
    }

    /// Render `statement` once: subject, text and HTML with a mark where each
    /// recipient's unsubscribe link goes, and the PDF if it is attached.
    pub fn prepare(&self, statement: &Statement) -> Result<Prepared, ComposeError> {
        let (html, text) = self.render_bulletin(statement)?;
        let pdf = if self.settings.attach_pdf && self.settings.pdf_links {
            let path = urls::Paths::new(&self.corpus.root).public_file(&urls::pdf(statement));
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
            text: crlf(text),
            html: crlf(html),
            pdf,
        })
    }

    /// [`Composer::prepare`], for a subscriber who had an earlier version: the
    /// subject says it is a correction.
    pub fn prepare_correction(&self, statement: &Statement) -> Result<Prepared, ComposeError> {
        let mut p = self.prepare(statement)?;
        let label = l10n::mail_labels(&statement.lang).correction;
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
        let l = l10n::mail_labels(lang);
        let why = l.why(org.short());
        let subject = clean_line(
            &l10n::digest_subject(lang, org.short(), statements.len()),
            250,
        );
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
                        pdf_url => self.settings.pdf_links.then(|| url(&absolute_url(&config.base_url, &urls::pdf(s)), html)),
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
                    read_online => l.read_online, pdf => l.download_pdf,
                    unsubscribe => l.unsubscribe, why => &why,
                },
            }
        };
        let render = |name: &str| self.render(name, &ctx);
        Ok(Prepared {
            statement_id: key.to_string(),
            lang: lang.to_string(),
            html: crlf(render("digest.html")?),
            text: crlf(render("digest.txt")?),
            subject,
            pdf: None,
        })
    }

    /// The message for one recipient, signed when DKIM is configured. `message_id`
    /// is without angle brackets; `date` is the send time. (A bulk send makes the
    /// [`Template`] once and calls [`Composer::fill`].)
    pub fn compose(
        &self,
        prepared: &Prepared,
        to: Recipient<'_>,
        message_id: &str,
        date: DateTime<Utc>,
    ) -> Result<Composed, ComposeError> {
        self.fill(&self.template(prepared, date)?, to, message_id)
    }

    /// lettre's message for `prepared`, to `recipient`, with `token` in its
    /// List-Unsubscribe header and the given (encoded) text and HTML parts.
    #[allow(clippy::too_many_arguments)]
    fn message(
        &self,
        prepared: &Prepared,
        recipient: Mailbox,
        message_id: &str,
        token: &str,
        date: DateTime<Utc>,
        (text, html): (Body, Body),
        boundary: &str,
    ) -> Result<Message, ComposeError> {
        let build_err = |reason: String| ComposeError::Build {
            to: recipient.email.to_string(),
            reason,
        };
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(recipient.clone())
            .subject(prepared.subject.clone())
            .date(SystemTime::from(date))
            .message_id(Some(format!("<{message_id}>")))
            .header(ListId(format!("<{}>", self.list_id)))
            .header(self.list_unsubscribe(token, None))
            .header(ListUnsubscribePost("List-Unsubscribe=One-Click".into()))
            .header(ContentLanguage(prepared.lang.clone()));
        if let Some(r) = &self.reply_to {
            builder = builder.reply_to(r.clone());
        }
        let alternative = MultiPart::alternative()
            .boundary(format!("{boundary}a"))
            .singlepart(SinglePart::plain(text))
            .singlepart(SinglePart::html(html));
        let body = match &prepared.pdf {
            Some((file, bytes)) => {
                let pdf =
                    ContentType::parse("application/pdf").map_err(|e| build_err(e.to_string()))?;
                MultiPart::mixed()
                    .boundary(format!("{boundary}m"))
                    .multipart(alternative)
                    .singlepart(Attachment::new(file.clone()).body(bytes.clone(), pdf))
            }
            None => alternative,
        };
        builder
            .multipart(body)
            .map_err(|e| build_err(e.to_string()))
    }

    /// With a bounce address, the mailto address carries a VERP token (`mail`):
    /// a mail to it unsubscribes that subscriber and nobody else; without one, the
    /// link token rides in the subject.
    fn list_unsubscribe(&self, token: &str, mail: Option<&str>) -> ListUnsubscribe {
        match mail {
            Some(t) => ListUnsubscribe(format!(
                "<{}{token}>, <mailto:{}?subject=unsubscribe>",
                self.unsubscribe_url,
                verp_address(&self.unsubscribe_mailto, t)
            )),
            None => ListUnsubscribe(format!(
                "<{}{token}>, <mailto:{}?subject=unsubscribe%20{token}>",
                self.unsubscribe_url, self.unsubscribe_mailto
            )),
        }
    }

    /// Encode `prepared` once for messages dated `date`: lettre formats a
    /// message with placeholders; each recipient's message is then those bytes
    /// with its own To, Message-ID and List-Unsubscribe fields, and its token
    /// written over the placeholder in the body.
    pub fn template(
        &self,
        prepared: &Prepared,
        date: DateTime<Utc>,
    ) -> Result<Template, ComposeError> {
        let fail = |reason: String| ComposeError::Build {
            to: "every recipient".into(),
            reason,
        };
        let parts = (
            Body::new(prepared.text.clone()),
            Body::new(prepared.html.clone()),
        );
        let encoded = [
            (
                parts.0.encoding(),
                parts.0.as_ref().to_vec(),
                &prepared.text,
            ),
            (
                parts.1.encoding(),
                parts.1.as_ref().to_vec(),
                &prepared.html,
            ),
        ];
        let placeholder = Mailbox::new(
            None,
            Address::new("recipient", "herald.invalid").map_err(|e| fail(e.to_string()))?,
        );
        let message = self.message(
            prepared,
            placeholder,
            "placeholder@herald.invalid",
            MARK,
            date,
            parts,
            &boundary(prepared),
        )?;
        let formatted = message.formatted();
        let split =
            find(&formatted, b"\r\n\r\n", 0).ok_or_else(|| fail("no end of the header".into()))?;
        let body = formatted[split + 4..].to_vec();
        let mut fields = Vec::new();
        let mut signed: Vec<(String, Field)> = Vec::new();
        for raw in header_fields(&formatted[..split + 2]) {
            let name =
                String::from_utf8_lossy(&raw[..raw.iter().position(|&b| b == b':').unwrap_or(0)])
                    .to_ascii_lowercase();
            let field = match name.as_str() {
                "to" => Field::To,
                "message-id" => Field::MessageId,
                "list-unsubscribe" => Field::ListUnsubscribe,
                _ => Field::Fixed(raw.to_vec()),
            };
            if let Field::Fixed(raw) = &field {
                let mut canon = Vec::new();
                canon_field(raw, &mut canon);
                signed.push((name, Field::Fixed(canon)));
            } else {
                signed.push((name, field.clone()));
            }
            fields.push(field);
        }
        for f in [Field::To, Field::MessageId, Field::ListUnsubscribe] {
            if fields.iter().filter(|g| **g == f).count() != 1 {
                return Err(fail(format!("{f:?} is not one header field")));
            }
        }
        let signed = SIGNED
            .iter()
            .filter_map(|name| {
                let name = name.to_ascii_lowercase();
                signed
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, f)| f.clone())
            })
            .collect();

        let mut patches = Vec::new();
        let mut from = 0;
        for (encoding, bytes, raw) in &encoded {
            let base = find(&body, bytes, from)
                .ok_or_else(|| fail("a part is not where it was put".into()))?;
            from = base + bytes.len();
            let expected = raw.matches(MARK).count();
            let found = match encoding {
                ContentTransferEncoding::Base64 => base64_patches(bytes, base, &mut patches),
                _ => literal_patches(bytes, base, &mut patches),
            };
            if found != expected {
                return Err(fail(format!(
                    "{found} of {expected} unsubscribe links found in the encoded part"
                )));
            }
        }
        let first = patches.iter().map(Patch::start).min().unwrap_or(body.len());
        let prefix = self.dkim.as_ref().map(|_| {
            let mut h = BodyHash::default();
            h.update(&body[..first]);
            h
        });
        Ok(Template {
            fields,
            body,
            patches,
            first,
            signed,
            prefix,
            t: date.timestamp(),
        })
    }

    /// The message for one recipient from `template`: its fields and token
    /// spliced in, then signed (the body hash continues from the template's
    /// hash of the bytes before the first token).
    pub fn fill(
        &self,
        template: &Template,
        to: Recipient<'_>,
        message_id: &str,
    ) -> Result<Composed, ComposeError> {
        let build_err = |reason: String| ComposeError::Build {
            to: to.address.to_string(),
            reason,
        };
        let address = Address::from_str(to.address).map_err(|e| build_err(e.to_string()))?;
        let name = clean_line(to.name, 200);
        let recipient = Mailbox::new((!name.is_empty()).then_some(name), address.clone());
        let token = self
            .secret
            .issue(Purpose::Unsubscribe, to.subscriber_id, to.token_key, None);
        if token.len() != MARK.len() {
            return Err(build_err("a token of an unexpected length".into()));
        }
        let mid = clean_line(message_id, 250).replace(['<', '>', ' '], "");

        let mut to_field = Vec::new();
        push_field(header::To::from(Mailboxes::from(recipient)), &mut to_field);
        let mut mid_field = Vec::new();
        push_field(header::MessageId::from(format!("<{mid}>")), &mut mid_field);
        let mut unsubscribe_field = Vec::new();
        let mail_token = self.bounce.as_ref().map(|_| {
            self.secret
                .verp(VerpKind::Unsubscribe, to.subscriber_id, to.token_key)
        });
        push_field(
            self.list_unsubscribe(&token, mail_token.as_deref()),
            &mut unsubscribe_field,
        );
        let own = |f: &'_ Field| -> Option<&[u8]> {
            match f {
                Field::Fixed(_) => None,
                Field::To => Some(&to_field),
                Field::MessageId => Some(&mid_field),
                Field::ListUnsubscribe => Some(&unsubscribe_field),
            }
        };

        let mut bytes = Vec::with_capacity(template.body.len() + 2048);
        for f in &template.fields {
            match (f, own(f)) {
                (Field::Fixed(raw), _) => bytes.extend_from_slice(raw),
                (_, Some(raw)) => bytes.extend_from_slice(raw),
                (_, None) => {}
            }
        }
        bytes.extend_from_slice(b"\r\n");
        let body_start = bytes.len();
        bytes.extend_from_slice(&template.body);
        let token = token.as_bytes();
        for p in &template.patches {
            p.apply(token, &mut bytes[body_start..]);
        }
        if let (Some(signer), Some(prefix)) = (&self.dkim, &template.prefix) {
            let mut fields = Vec::with_capacity(1024);
            for f in &template.signed {
                match (f, own(f)) {
                    (Field::Fixed(canon), _) => fields.extend_from_slice(canon),
                    (_, Some(raw)) => canon_field(raw, &mut fields),
                    (_, None) => {}
                }
            }
            let mut hash = prefix.clone();
            hash.update(&bytes[body_start + template.first..]);
            let field = signer
                .field(&fields, &hash.finish(), template.t)
                .map_err(build_err)?;
            bytes.splice(0..0, field);
        }
        let sender = match &self.bounce {
            Some(b) => {
                let token = self
                    .secret
                    .verp(VerpKind::Bounce, to.bulletin_id, to.subscriber_id);
                Address::from_str(&verp_address(b.as_ref(), &token))
                    .map_err(|e| build_err(e.to_string()))?
            }
            None => self.from.email.clone(),
        };
        let envelope =
            Envelope::new(Some(sender), vec![address]).map_err(|e| build_err(e.to_string()))?;
        Ok(Composed { envelope, bytes })
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

/// One bulletin encoded for every recipient (see [`Composer::template`]).
#[derive(Debug)]
pub struct Template {
    /// The header fields in order.
    fields: Vec<Field>,
    /// After the blank line that ends the header.
    body: Vec<u8>,
    patches: Vec<Patch>,
    /// Where in `body` the first per-recipient byte is.
    first: usize,
    /// The fields DKIM signs, in its order, fixed ones canonicalized.
    signed: Vec<Field>,
    /// DKIM: the body hash of `body[..first]`.
    prefix: Option<BodyHash>,
    /// The signature's time: the send time.
    t: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Fixed(Vec<u8>),
    To,
    MessageId,
    ListUnsubscribe,
}

/// Where a recipient's token goes in the encoded body.
#[derive(Debug)]
enum Patch {
    /// One byte per token character (7bit, 8bit and quoted-printable write
    /// token characters as they are; a soft line break may fall between two).
    Literal(Vec<usize>),
    /// A base64 line, encoded again from its bytes with the token's in.
    Base64 {
        at: usize,
        raw: Vec<u8>,
        /// (index in `raw`, index in the token)
        token: Vec<(usize, usize)>,
    },
}

impl Patch {
    fn start(&self) -> usize {
        match self {
            Patch::Literal(at) => at.iter().copied().min().unwrap_or(usize::MAX),
            Patch::Base64 { at, .. } => *at,
        }
    }

    fn apply(&self, token: &[u8], body: &mut [u8]) {
        match self {
            Patch::Literal(at) => {
                for (&i, &b) in at.iter().zip(token) {
                    body[i] = b;
                }
            }
            Patch::Base64 {
                at,
                raw,
                token: map,
            } => {
                let mut line = [0u8; BASE64_LINE_BYTES];
                let line = &mut line[..raw.len()];
                line.copy_from_slice(raw);
                for &(i, t) in map {
                    line[i] = token[t];
                }
                let n = base64::encoded_len(raw.len(), true).unwrap_or(0);
                let _ = STANDARD.encode_slice(line, &mut body[*at..*at + n]);
            }
        }
    }
}

/// lettre's base64 lines: 76 characters from 57 bytes, then CRLF.
const BASE64_LINE_BYTES: usize = 57;
const BASE64_LINE: usize = 78;

/// Patches for the marks in a base64 part at `base` in the body; how many marks.
fn base64_patches(encoded: &[u8], base: usize, patches: &mut Vec<Patch>) -> usize {
    let text: Vec<u8> = encoded
        .iter()
        .copied()
        .filter(|b| !matches!(b, b'\r' | b'\n'))
        .collect();
    let Ok(raw) = STANDARD.decode(text) else {
        return 0;
    };
    let mut lines: std::collections::BTreeMap<usize, Vec<(usize, usize)>> = Default::default();
    let mut count = 0;
    let mut from = 0;
    while let Some(p) = find(&raw, MARK.as_bytes(), from) {
        count += 1;
        for k in 0..MARK.len() {
            let q = p + k;
            lines
                .entry(q / BASE64_LINE_BYTES)
                .or_default()
                .push((q % BASE64_LINE_BYTES, k));
        }
        from = p + MARK.len();
    }
    for (line, token) in lines {
        let start = line * BASE64_LINE_BYTES;
        let end = (start + BASE64_LINE_BYTES).min(raw.len());
        patches.push(Patch::Base64 {
            at: base + line * BASE64_LINE,
            raw: raw[start..end].to_vec(),
            token,
        });
    }
    count
}

/// Patches for the marks in a 7bit, 8bit or quoted-printable part at `base`.
fn literal_patches(encoded: &[u8], base: usize, patches: &mut Vec<Patch>) -> usize {
    let mark = MARK.as_bytes();
    let mut count = 0;
    let mut i = 0;
    while i < encoded.len() {
        let mut at = Vec::with_capacity(mark.len());
        let mut j = i;
        while at.len() < mark.len() && j < encoded.len() {
            if !at.is_empty() && encoded[j..].starts_with(b"=\r\n") {
                j += 3;
                continue;
            }
            if encoded[j] != mark[at.len()] {
                break;
            }
            at.push(base + j);
            j += 1;
        }
        if at.len() == mark.len() {
            count += 1;
            patches.push(Patch::Literal(at));
            i = j;
        } else {
            i += 1;
        }
    }
    count
}

/// The header fields of `head` (each with its folds and CRLF).
pub(crate) fn header_fields(head: &[u8]) -> Vec<&[u8]> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < head.len() {
        let end = find(head, b"\r\n", i).map_or(head.len(), |e| e + 2);
        if end >= head.len() || !matches!(head[end], b' ' | b'\t') {
            fields.push(&head[start..end]);
            start = end;
        }
        i = end;
    }
    fields
}

pub(crate) fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    memchr::memmem::find(haystack.get(from..)?, needle).map(|i| i + from)
}

/// One header field as lettre writes it.
fn push_field<H: Header>(h: H, out: &mut Vec<u8>) {
    let mut headers = Headers::new();
    headers.set(h);
    out.extend_from_slice(headers.to_string().as_bytes());
}

/// MIME boundaries of one bulletin: from its content, so the same bulletin is
/// the same bytes; `=_` never occurs in quoted-printable or base64 text.
fn boundary(p: &Prepared) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [p.subject.as_bytes(), p.text.as_bytes(), p.html.as_bytes()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    if let Some((name, bytes)) = &p.pdf {
        h.update(name.as_bytes());
        h.update(bytes);
    }
    format!("=_herald_{}", hex::encode(&h.finalize()[..12]))
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

/// `herald check` for bulletins: compile the templates (with the overrides in
/// `content/templates/mail/`), then render the bulletin of each of `statements` and
/// one digest of them per language, so a template that fails on any of them fails
/// here and not when the bulletins are sent. Reads no DKIM key and no PDF.
pub fn check_templates(
    corpus: &Corpus,
    settings: &MailSettings,
    statements: &[&Statement],
) -> Result<(), ComposeError> {
    // Any key: a check mints no link anyone follows.
    let secret = Secret::from_bytes(&[0x5a; 32]).map_err(|e| ComposeError::Build {
        to: "check".into(),
        reason: e.to_string(),
    })?;
    let composer = Composer::build(corpus, settings, &secret, false)?;
    for s in statements {
        composer.render_bulletin(s)?;
    }
    for lang in &corpus.config.languages {
        let of_lang: Vec<&Statement> = statements
            .iter()
            .copied()
            .filter(|s| &s.lang == lang)
            .collect();
        if !of_lang.is_empty() {
            composer.prepare_digest("check", lang, &of_lang)?;
        }
    }
    Ok(())
}

/// True when `content/templates/mail/` holds any file (an override to check).
pub fn has_overrides(root: &Path) -> bool {
    std::fs::read_dir(herald_content::content_dir(root).join(TEMPLATE_DIR))
        .is_ok_and(|mut d| d.next().is_some())
}

impl ComposeError {
    /// The diagnostic of a template error (file, line, hint) for the validation
    /// gate; `None` for any other error. `root` is the project root.
    pub fn diagnostic(&self, root: &Path) -> Option<herald_content::Diagnostic> {
        use herald_content::Diagnostic;
        let ComposeError::Template { name, source } = self else {
            return None;
        };
        let name = source.name().unwrap_or(name);
        let shown = Path::new("content").join(TEMPLATE_DIR).join(name);
        let mut what = match source.detail() {
            Some(d) => format!("{}: {d}", source.kind()),
            None => source.kind().to_string(),
        };
        // An error inside an include says only "could not render include": add the cause.
        let mut inner = source;
        let mut next = std::error::Error::source(source);
        while let Some(e) = next {
            if let Some(m) = e.downcast_ref::<minijinja::Error>() {
                inner = m;
            }
            next = e.source();
        }
        if !std::ptr::eq(inner, source) {
            what = match inner.detail() {
                Some(d) => format!("{what}: {}: {d}", inner.kind()),
                None => format!("{what}: {}", inner.kind()),
            };
        }
        let hint = match inner.kind() {
            minijinja::ErrorKind::SyntaxError => {
                "fix the template syntax (minijinja, Jinja2's syntax), or delete the file to use the built-in template"
            }
            minijinja::ErrorKind::UndefinedError => {
                "that name is not defined for this template: see docs/mail.md for the variables each mail template gets"
            }
            _ if what.contains("recursion") => {
                "a template includes or calls itself without end: remove the cycle"
            }
            _ => "fix the template, or delete the file to use the built-in template",
        };
        let message = format!("mail template {name}: {what}");
        let text = std::fs::read_to_string(root.join(&shown)).ok();
        Some(Diagnostic::in_template(
            &shown,
            text.as_deref(),
            source.line(),
            source.range(),
            &format!("built-in mail {name}"),
            message,
            hint,
        ))
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
    fn crlf_adds_only_the_missing_carriage_returns() {
        assert_eq!(crlf("a\nb\r\nc\n\n".into()), "a\r\nb\r\nc\r\n\r\n");
        assert_eq!(crlf("\nx".into()), "\r\nx");
        assert_eq!(crlf("ж\nя".into()), "ж\r\nя");
        assert_eq!(crlf("none".into()), "none");
    }

    #[test]
    fn clean_line_removes_breaks() {
        assert_eq!(clean_line("a\r\nBcc: x@y.org", 100), "a Bcc: x@y.org");
        assert_eq!(clean_line("  a \u{2028} b\u{85}c\t", 100), "a b c");
        assert_eq!(clean_line("\r\n", 100), "");
        assert_eq!(clean_line("абвгд", 3), "абв");
    }

    /// The spliced message of each recipient is byte for byte what lettre makes
    /// for that recipient alone (the former per-recipient path): every
    /// language (base64 and 7bit or quoted-printable parts), a correction, a
    /// digest, an attached PDF, names that need encoding or cleaning.
    #[test]
    fn spliced_messages_are_lettres_per_recipient_bytes() {
        use chrono::TimeZone;
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let corpus = herald_content::load(&root).expect("sample content");
        let settings = MailSettings {
            reply_to: Some("Press Office <office@statements.example.org>".into()),
            ..MailSettings::default()
        };
        let secret = Secret::from_bytes(&[9u8; 32]).expect("secret");
        let composer = Composer::new(&corpus, &settings, &secret).expect("composer");
        let date = Utc
            .with_ymd_and_hms(2014, 7, 31, 6, 0, 0)
            .single()
            .expect("date");
        let mut prepared = Vec::new();
        for lang in ["en", "ru", "kk"] {
            let s = corpus
                .get("2014/world-day-against-trafficking", lang)
                .expect("statement");
            prepared.push(composer.prepare(s).expect("prepare"));
            prepared.push(composer.prepare_correction(s).expect("correction"));
            prepared.push(
                composer
                    .prepare_digest("digest:2014-07-31T06:00:00Z", lang, &[s])
                    .expect("digest"),
            );
            let mut with_pdf = composer.prepare(s).expect("prepare");
            with_pdf.pdf = Some(("x.pdf".into(), (0..=255u8).cycle().take(5000).collect()));
            prepared.push(with_pdf);
        }
        let recipients = [
            (1, "a@example.net", ""),
            (987_654_321, "Reader.Two@example.org", "Айгерим Нурлановна"),
            (42, "x@y.kz", "Evil\r\nBcc: victim@example.com"),
            (
                7,
                "q@example.com",
                "\"Quoted\" <and> (comments), semi; colon:",
            ),
        ];
        let (mut base64, mut literal) = (0, 0);
        for p in &prepared {
            let template = composer.template(p, date).expect("template");
            for patch in &template.patches {
                match patch {
                    Patch::Base64 { .. } => base64 += 1,
                    Patch::Literal(_) => literal += 1,
                }
            }
            let mut tokens = Vec::new();
            for (id, address, name) in recipients {
                let mid = message_id(&p.statement_id, "v", id, "statements.example.org");
                let to = Recipient {
                    bulletin_id: id,
                    subscriber_id: id,
                    token_key: id * 31,
                    address,
                    name,
                };
                let spliced = composer.fill(&template, to, &mid).expect("fill");
                let token = secret.issue(Purpose::Unsubscribe, id, id * 31, None);
                let clean = clean_line(name, 200);
                let mailbox = Mailbox::new(
                    (!clean.is_empty()).then_some(clean),
                    Address::from_str(address).expect("address"),
                );
                let parts = (
                    Body::new(p.text.replace(MARK, &token)),
                    Body::new(p.html.replace(MARK, &token)),
                );
                let reference = composer
                    .message(p, mailbox, &mid, &token, date, parts, &boundary(p))
                    .expect("lettre");
                assert_eq!(
                    String::from_utf8_lossy(&spliced.bytes),
                    String::from_utf8_lossy(&reference.formatted()),
                    "{} {} to {address}",
                    p.statement_id,
                    p.lang
                );
                assert_eq!(&spliced.envelope, reference.envelope());
                tokens.push(token);
            }
            assert_eq!(tokens.len(), recipients.len());
        }
        assert!(base64 > 0 && literal > 0, "{base64} {literal}");
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
