//! The confirmation mail (double opt-in), sent the way `[mail]` sends bulletins:
//! over SMTP when a server is configured, else as an `.eml` file in the outbox.
//! It also knows whether an internationalized address can be reached: only
//! through a server that offers SMTPUTF8 (asked, and remembered for a while).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use herald_mail::settings::{SMTP_PASSWORD_ENV, SMTP_USERNAME_ENV};
use herald_mail::{MailSettings, SmtpSettings, TlsMode};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("[mail] from {0:?} is not a mail address (and [organization] email is not set either)")]
    From(String),
    #[error(
        "[mail.smtp] {0} is not on the loopback address: use tls = \"starttls\" or \"implicit\""
    )]
    Insecure(String),
    #[error("[mail.smtp] {0}")]
    Smtp(String),
    #[error("cannot compose the confirmation mail: {0}")]
    Compose(String),
    #[error("cannot write to the outbox {path}: {source}")]
    Outbox {
        path: PathBuf,
        source: std::io::Error,
    },
}

enum Delivery {
    Outbox(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

pub struct Mailer {
    from: Mailbox,
    domain: String,
    delivery: Delivery,
    smtp: Option<SmtpSettings>,
    /// Whether the server offers SMTPUTF8, and when it was asked.
    utf8: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

/// How long an SMTPUTF8 answer is trusted before the server is asked again.
const UTF8_TTL: Duration = Duration::from_secs(600);

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What one confirmation mail says.
pub struct Confirmation<'a> {
    pub subscriber_id: i64,
    pub address: &'a str,
    pub site: &'a str,
    pub organization: &'a str,
    pub link: &'a str,
    pub expires: DateTime<Utc>,
}

impl Mailer {
    /// `organization` is `(name, email)` from `herald.toml`, the default sender.
    pub fn new(
        root: &std::path::Path,
        settings: &MailSettings,
        organization: (&str, Option<&str>),
    ) -> Result<Mailer, MailerError> {
        let from_text = match (&settings.from, organization.1) {
            (Some(f), _) => f.clone(),
            (None, Some(email)) => format!(
                "{} <{email}>",
                organization.0.replace(['"', '<', '>', '\r', '\n'], " ")
            ),
            (None, None) => return Err(MailerError::From(String::new())),
        };
        let from: Mailbox = from_text
            .parse()
            .map_err(|_| MailerError::From(from_text.clone()))?;
        let domain = from.email.domain().to_ascii_lowercase();
        let delivery = match &settings.smtp {
            None => Delivery::Outbox(root.join(&settings.outbox)),
            Some(s) => {
                let host = s.host.trim().to_string();
                let builder = match s.tls {
                    TlsMode::None if !is_loopback(&host) => {
                        return Err(MailerError::Insecure(host));
                    }
                    TlsMode::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host),
                    TlsMode::Starttls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
                            .map_err(|e| MailerError::Smtp(e.to_string()))?
                    }
                    TlsMode::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&host)
                        .map_err(|e| MailerError::Smtp(e.to_string()))?,
                };
                let mut builder = builder
                    .port(s.port())
                    .timeout(Some(Duration::from_secs(s.timeout_secs.max(1))));
                if let (Ok(user), Ok(pass)) = (
                    std::env::var(SMTP_USERNAME_ENV),
                    std::env::var(SMTP_PASSWORD_ENV),
                ) {
                    builder = builder.credentials(Credentials::new(user, pass));
                }
                if let Some(name) = &s.hello_name {
                    builder = builder.hello_name(
                        lettre::transport::smtp::extension::ClientId::Domain(name.clone()),
                    );
                }
                Delivery::Smtp(builder.build())
            }
        };
        Ok(Mailer {
            from,
            domain,
            delivery,
            smtp: settings.smtp.clone(),
            utf8: tokio::sync::Mutex::new(None),
        })
    }

    /// Whether mail can reach an address with non-ASCII characters: always into
    /// the outbox (a file), over SMTP only when the server offers SMTPUTF8.
    /// A server that cannot be asked counts as "no" (and is asked again next time).
    pub async fn carries_utf8(&self) -> bool {
        let Some(smtp) = &self.smtp else {
            return true;
        };
        let mut cached = self.utf8.lock().await;
        if let Some((at, offered)) = *cached
            && at.elapsed() < UTF8_TTL
        {
            return offered;
        }
        match herald_mail::smtputf8_offered(smtp).await {
            Ok(offered) => {
                *cached = Some((Instant::now(), offered));
                offered
            }
            Err(e) => {
                tracing::warn!("asking the SMTP server about SMTPUTF8: {e}");
                false
            }
        }
    }

    /// Compose the confirmation mail (RFC 5322 bytes).
    pub fn compose(
        &self,
        c: &Confirmation<'_>,
        now: DateTime<Utc>,
    ) -> Result<Message, MailerError> {
        let to: Address = c
            .address
            .parse()
            .map_err(|e| MailerError::Compose(format!("{e}")))?;
        let clean = |s: &str| s.replace(['\r', '\n'], " ");
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| MailerError::Compose(e.to_string()))?;
        let message_id = format!(
            "<confirm.{}.{}.{}@{}>",
            c.subscriber_id,
            now.timestamp(),
            hex::encode(nonce),
            self.domain
        );
        let text = format!(
            "Someone, probably you, asked to receive the statements of {org} by email at this address.\n\n\
To confirm, open this link before {expires} (UTC):\n\n{link}\n\n\
If it was not you, ignore this mail: nothing will be sent to you.\n\n-- \n{site}\n",
            org = clean(c.organization),
            expires = c.expires.format("%Y-%m-%d %H:%M"),
            link = c.link,
            site = clean(c.site),
        );
        Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(clean(&format!("Confirm your subscription: {}", c.site)))
            .message_id(Some(message_id))
            .date(now.into())
            .header(ContentType::TEXT_PLAIN)
            .body(text)
            .map_err(|e| MailerError::Compose(e.to_string()))
    }

    /// Send it (or write it to the outbox, atomically).
    pub async fn send(&self, message: Message) -> Result<(), MailerError> {
        match &self.delivery {
            Delivery::Smtp(t) => t
                .send(message)
                .await
                .map(drop)
                .map_err(|e| MailerError::Smtp(e.to_string())),
            Delivery::Outbox(dir) => {
                let dir = dir.clone();
                let bytes = message.formatted();
                let id = message
                    .headers()
                    .get_raw("Message-ID")
                    .unwrap_or("confirm")
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '-' | '_') {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect::<String>();
                let io = |source| MailerError::Outbox {
                    path: dir.clone(),
                    source,
                };
                tokio::fs::create_dir_all(&dir).await.map_err(io)?;
                let tmp = dir.join(format!(".{id}.eml.tmp"));
                tokio::fs::write(&tmp, &bytes).await.map_err(io)?;
                tokio::fs::rename(&tmp, dir.join(format!("{id}.eml")))
                    .await
                    .map_err(io)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("[::1]"));
        assert!(!is_loopback("smtp.example.org"));
        assert!(!is_loopback("10.0.0.1"));
    }
}
