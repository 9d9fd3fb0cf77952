//! The subscription confirmation mail (double opt-in) of `herald serve`, in the
//! language the subscriber chose, from the bulletins' sender and signed by the
//! same DKIM key. Its words come from herald-content's l10n; it is sent with
//! [`crate::send_now`] (SMTP, or the outbox when no server is set).

use std::path::Path;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use herald_content::{Config, l10n};
use lettre::Message;
use lettre::address::Envelope;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, SinglePart};

use crate::compose::{
    ComposeError, Composed, ContentLanguage, clean_line, dkim_signer, find, header_fields,
    message_id, reply_to, sender,
};
use crate::dkim::{BodyHash, SIGNED, Signer, canon_field};
use crate::settings::MailSettings;

/// What one confirmation mail says.
#[derive(Debug, Clone, Copy)]
pub struct Confirmation<'a> {
    pub subscriber_id: i64,
    pub address: &'a str,
    /// The language the subscriber chose on the form.
    pub lang: &'a str,
    /// The site's title.
    pub site: &'a str,
    pub organization: &'a str,
    /// The signed confirmation link (unique per mail: it carries its own token).
    pub link: &'a str,
    pub expires: DateTime<Utc>,
}

/// Composes confirmation mails for one configuration: the sender, Reply-To and
/// DKIM key are read once.
pub struct Confirmer {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    dkim: Option<Signer>,
}

impl std::fmt::Debug for Confirmer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Confirmer")
            .field("from", &self.from)
            .field("dkim", &self.dkim.is_some())
            .finish_non_exhaustive()
    }
}

impl Confirmer {
    /// Check `[mail]` as bulletins use it; `root` is the project root (the DKIM
    /// key's path is relative to it).
    pub fn new(
        config: &Config,
        root: &Path,
        settings: &MailSettings,
    ) -> Result<Self, ComposeError> {
        Ok(Confirmer {
            from: sender(config, settings)?,
            reply_to: reply_to(settings)?,
            dkim: dkim_signer(root, settings)?,
        })
    }

    /// The sender, for reports.
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// The mail for `c`, dated `now`, signed when `[mail.dkim]` is set.
    pub fn compose(
        &self,
        c: &Confirmation<'_>,
        now: DateTime<Utc>,
    ) -> Result<Composed, ComposeError> {
        let fail = |reason: String| ComposeError::Build {
            to: c.address.to_string(),
            reason,
        };
        let to: lettre::Address = c.address.parse().map_err(|e| fail(format!("{e}")))?;
        let words = l10n::confirm_labels(c.lang);
        let org = clean_line(c.organization, 200);
        let site = clean_line(c.site, 200);
        let expires = l10n::long_date_time_utc(c.lang, &c.expires);
        let text = format!(
            "{asked}\r\n\r\n{open}\r\n\r\n{link}\r\n\r\n{not_you}\r\n\r\n-- \r\n{site}\r\n",
            asked = words.asked(&org),
            open = words.open(&expires),
            link = c.link,
            not_you = words.not_you,
        );
        let domain = self.from.email.domain().to_ascii_lowercase();
        let mid = message_id("confirm", c.link, c.subscriber_id, &domain);
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to.clone()))
            .subject(clean_line(&words.subject(&site), 250))
            .date(SystemTime::from(now))
            .message_id(Some(format!("<{mid}>")))
            .header(ContentLanguage(clean_line(c.lang, 35)));
        if let Some(r) = &self.reply_to {
            builder = builder.reply_to(r.clone());
        }
        let message = builder
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(text),
            )
            .map_err(|e| fail(e.to_string()))?;
        let mut bytes = message.formatted();
        if let Some(signer) = &self.dkim {
            let split =
                find(&bytes, b"\r\n\r\n", 0).ok_or_else(|| fail("no end of the header".into()))?;
            let fields = header_fields(&bytes[..split + 2]);
            let mut signed = Vec::with_capacity(1024);
            for name in SIGNED {
                let prefix = format!("{}:", name.to_ascii_lowercase());
                if let Some(raw) = fields
                    .iter()
                    .find(|f| f.to_ascii_lowercase().starts_with(prefix.as_bytes()))
                {
                    canon_field(raw, &mut signed);
                }
            }
            let mut hash = BodyHash::default();
            hash.update(&bytes[split + 4..]);
            let field = signer
                .field(&signed, &hash.finish(), now.timestamp())
                .map_err(fail)?;
            bytes.splice(0..0, field);
        }
        let envelope = Envelope::new(Some(self.from.email.clone()), vec![to])
            .map_err(|e| fail(e.to_string()))?;
        Ok(Composed { envelope, bytes })
    }
}
