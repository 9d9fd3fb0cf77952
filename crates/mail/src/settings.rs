//! `[mail]` in `herald.toml`. Every key is optional; with none, bulletins are
//! written as `.eml` files to `outbox/` (so a first run works anywhere).
//! Credentials never come from the file: only from the environment.

use std::path::PathBuf;

use serde::Deserialize;

/// SMTP user name and password are read from these variables, never from `herald.toml`.
pub const SMTP_USERNAME_ENV: &str = "HERALD_SMTP_USERNAME";
pub const SMTP_PASSWORD_ENV: &str = "HERALD_SMTP_PASSWORD";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MailSettings {
    /// Send bulletins at all.
    pub enabled: bool,
    /// `"Name <address>"` or an address; default: `[organization] email` and short name.
    pub from: Option<String>,
    pub reply_to: Option<String>,
    /// The `List-Id` (RFC 2919), e.g. `statements.example.org`; default: `statements.` +
    /// the sender's domain.
    pub list_id: Option<String>,
    /// Unset: write `.eml` files to `outbox` instead of sending.
    pub smtp: Option<SmtpSettings>,
    /// The outbox folder, relative to the project root.
    pub outbox: PathBuf,
    /// Connections (and sending tasks) at once.
    pub concurrency: usize,
    /// Messages per second at most, over all connections; 0: no limit.
    pub rate_limit: f64,
    /// Sends of one message (4xx answers and connection errors) before it is left
    /// pending for the next run.
    pub max_attempts: u32,
    /// The first retry waits this long; each next one twice as long.
    pub retry_backoff_ms: u64,
    /// Hard failures (5xx) in a row after which a subscriber is marked bounced.
    pub bounce_after: u32,
    /// One-click unsubscribe endpoint (RFC 8058); the token is appended.
    /// Default: `base_url` + `unsubscribe/`.
    pub unsubscribe_url: Option<String>,
    /// Mail address for `List-Unsubscribe: <mailto:...>`; default: the sender's.
    /// With `bounce_address` set, its local part carries a signed token
    /// (`unsubscribe+<token>@...`, needs `recipient_delimiter = +` at the MTA).
    pub unsubscribe_mailto: Option<String>,
    /// The envelope sender (return path) of every bulletin, made per message as
    /// `<local>+<token>@<domain>` (VERP): the token names the bulletin row, so a
    /// bounce maps to its recipient. Unset: the envelope sender is `from`.
    pub bounce_address: Option<String>,
    /// How long a deferred bulletin is retried (4xx answers, connection errors)
    /// before it becomes `failed`: `"5d"`, `"36h"`, `"90m"`, `"600s"`. As Postfix's
    /// `maximal_queue_lifetime`.
    pub queue_lifetime: String,
    /// A subscriber whose soft bounces (4.x.x or delayed DSNs) persist this many
    /// days with no delivery between becomes `bounced`.
    pub soft_bounce_days: u32,
    /// Attach the statement's PDF (from `public/`) besides linking to it.
    pub attach_pdf: bool,
    /// Mail a correction bulletin ("Correction: <title>") to those who had a statement
    /// when its `updated` changes. Off by default: corrections update the site, feeds
    /// and PDF only. (With a digest schedule, corrections are never mailed.)
    pub corrections: bool,
    pub dkim: Option<DkimSettings>,
    /// Whether statements have PDFs to link (`[pdf] enabled`); set by herald, not
    /// read from `[mail]`.
    #[serde(skip)]
    pub pdf_links: bool,
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            pdf_links: true,
            enabled: true,
            from: None,
            reply_to: None,
            list_id: None,
            smtp: None,
            outbox: PathBuf::from("outbox"),
            concurrency: 4,
            rate_limit: 0.0,
            max_attempts: 5,
            retry_backoff_ms: 1000,
            bounce_after: 3,
            unsubscribe_url: None,
            unsubscribe_mailto: None,
            bounce_address: None,
            queue_lifetime: "5d".into(),
            soft_bounce_days: 7,
            attach_pdf: false,
            corrections: false,
            dkim: None,
        }
    }
}

impl MailSettings {
    /// `queue_lifetime` as a duration, or what is wrong with it.
    pub fn queue_lifetime(&self) -> Result<chrono::Duration, String> {
        parse_span(&self.queue_lifetime).ok_or_else(|| {
            format!(
                "[mail] queue_lifetime = {:?}: write a number and a unit, s, m, h or d (\"5d\", \"36h\")",
                self.queue_lifetime
            )
        })
    }
}

/// `"5d"`, `"36h"`, `"90m"`, `"600s"`: a positive span of at most 365 days.
fn parse_span(text: &str) -> Option<chrono::Duration> {
    let t = text.trim();
    let unit = t.chars().last()?;
    let n: i64 = t[..t.len() - unit.len_utf8()].trim().parse().ok()?;
    let secs = match unit {
        's' => n,
        'm' => n.checked_mul(60)?,
        'h' => n.checked_mul(3600)?,
        'd' => n.checked_mul(86_400)?,
        _ => return None,
    };
    (secs > 0 && secs <= 365 * 86_400).then(|| chrono::Duration::seconds(secs))
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No encryption: refused for any server off the loopback address.
    None,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    /// Default: 587 for STARTTLS, 465 for implicit TLS, 25 without TLS.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: TlsMode,
    /// Seconds to wait for the server at each step.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// The name given in EHLO; default: the machine's host name.
    #[serde(default)]
    pub hello_name: Option<String>,
}

fn default_timeout() -> u64 {
    30
}

impl SmtpSettings {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::Starttls => 587,
            TlsMode::Implicit => 465,
            TlsMode::None => 25,
        })
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DkimAlgorithm {
    Rsa,
    Ed25519,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DkimSettings {
    pub selector: String,
    /// The signing domain (`d=`); must match the sender's domain for DMARC.
    pub domain: String,
    /// The private key, relative to the project root: RSA as PKCS#1 PEM
    /// (`-----BEGIN RSA PRIVATE KEY-----`), Ed25519 as the base64 32-byte seed.
    pub key: PathBuf,
    pub algorithm: DkimAlgorithm,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_section_and_refuses_unknown_keys() {
        let src = r#"title = "T"
base_url = "https://ex.org/"
languages = ["en"]
default_language = "en"
time_zone = "UTC"
[organization]
name = "Org"
[mail]
from = "Org <news@ex.org>"
concurrency = 8
rate_limit = 100.0
smtp = { host = "smtp.ex.org", tls = "implicit" }
dkim = { selector = "s1", domain = "ex.org", key = "keys/dkim.pem", algorithm = "rsa" }
"#;
        let c = herald_content::Config::parse(std::path::Path::new("herald.toml"), src)
            .expect("config");
        let s: MailSettings = c.section("mail").expect("mail");
        assert_eq!(s.concurrency, 8);
        assert_eq!(s.queue_lifetime(), Ok(chrono::Duration::days(5)));
        assert_eq!(s.outbox, PathBuf::from("outbox"));
        let smtp = s.smtp.expect("smtp");
        assert_eq!(
            (smtp.tls, smtp.port(), smtp.timeout_secs),
            (TlsMode::Implicit, 465, 30)
        );
        assert_eq!(s.dkim.map(|d| d.algorithm), Some(DkimAlgorithm::Rsa));
        assert_eq!(
            MailSettings::default().queue_lifetime(),
            Ok(chrono::Duration::days(5))
        );
        for (text, secs) in [
            ("36h", Some(129_600)),
            ("90m", Some(5400)),
            ("0d", None),
            ("5", None),
            ("x d", None),
        ] {
            assert_eq!(parse_span(text).map(|d| d.num_seconds()), secs, "{text}");
        }
        let bad = src.replace("concurrency = 8", "password = \"x\"");
        let c = herald_content::Config::parse(std::path::Path::new("herald.toml"), &bad)
            .expect("config");
        let e = c.section::<MailSettings>("mail").expect_err("unknown key");
        assert!(e.message.contains("password"), "{}", e.message);
    }
}
