//! The confirmation mail (double opt-in): composed, DKIM-signed and sent by
//! herald-mail (`Confirmer`, `send_now`) the way `[mail]` sends bulletins: over
//! SMTP when a server is configured, else as an `.eml` file in the outbox. What
//! stays here is serve's own question: whether an internationalized address can
//! be reached (only through a server that offers SMTPUTF8; asked, and remembered
//! for a while).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use herald_content::urls::Paths;
use herald_mail::{ComposeError, Confirmation, Confirmer, DeliverError, MailSettings, TlsMode};

#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error(
        "[mail.smtp] {0} is not on the loopback address: use tls = \"starttls\" or \"implicit\""
    )]
    Insecure(String),
    #[error("the confirmation mail: {0}")]
    Compose(#[from] ComposeError),
    #[error("cannot send the confirmation mail: {0}")]
    Send(#[from] DeliverError),
}

pub struct Mailer {
    confirmer: Confirmer,
    settings: MailSettings,
    outbox: PathBuf,
    /// Whether the server offers SMTPUTF8, and when it was asked.
    utf8: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

/// How long an SMTPUTF8 answer is trusted before the server is asked again.
const UTF8_TTL: Duration = Duration::from_secs(600);

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("confirmer", &self.confirmer)
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

impl Mailer {
    /// Check `[mail]` (sender, DKIM key, SMTP security) when the service starts.
    pub fn new(
        config: &herald_content::Config,
        paths: &Paths,
        settings: &MailSettings,
    ) -> Result<Mailer, MailerError> {
        if let Some(s) = &settings.smtp
            && s.tls == TlsMode::None
            && !is_loopback(s.host.trim())
        {
            return Err(MailerError::Insecure(s.host.trim().to_string()));
        }
        Ok(Mailer {
            confirmer: Confirmer::new(config, &paths.root, settings)?,
            outbox: paths.outbox(&settings.outbox),
            settings: settings.clone(),
            utf8: tokio::sync::Mutex::new(None),
        })
    }

    /// Whether mail can reach an address with non-ASCII characters: always into
    /// the outbox (a file), over SMTP only when the server offers SMTPUTF8.
    /// A server that cannot be asked counts as "no" (and is asked again next time).
    pub async fn carries_utf8(&self) -> bool {
        let Some(smtp) = &self.settings.smtp else {
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

    /// Compose the confirmation mail in the subscriber's language and send it
    /// (or write it to the outbox). The Message-ID comes back whatever happened
    /// to the sending, so the attempt can be recorded.
    pub async fn send(
        &self,
        c: &Confirmation<'_>,
        now: DateTime<Utc>,
    ) -> Result<(String, Result<(), MailerError>), MailerError> {
        let composed = self.confirmer.compose(c, now)?;
        let id = composed.message_id().unwrap_or_default();
        let sent = herald_mail::send_now(&self.settings, &self.outbox, &composed)
            .await
            .map_err(MailerError::from);
        Ok((id, sent))
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
