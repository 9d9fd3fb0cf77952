//! The SMTP client: connections herald opens itself (TCP_NODELAY, STARTTLS or
//! implicit TLS, AUTH), the pipelined envelope, dot-stuffed data, and the sending
//! workers that feed the send engine's outcomes.

use std::net::ToSocketAddrs;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Quit, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};

use crate::compose::Composed;
use crate::deliver::{DeliverError, Next, Shared};
use crate::settings::{SMTP_PASSWORD_ENV, SMTP_USERNAME_ENV, SmtpSettings, TlsMode};
use crate::store::{BulletinState, StoreError};

pub(crate) struct SmtpTarget {
    host: String,
    port: u16,
    tls: TlsMode,
    timeout: Duration,
    hello: ClientId,
    credentials: Option<Credentials>,
}

impl SmtpTarget {
    pub(crate) fn new(s: &SmtpSettings) -> Result<SmtpTarget, DeliverError> {
        let host = s.host.trim().to_string();
        let port = s.port();
        if s.tls == TlsMode::None {
            let addrs: Vec<_> = (host.as_str(), port)
                .to_socket_addrs()
                .map_err(|e| DeliverError::Resolve {
                    host: host.clone(),
                    reason: e.to_string(),
                })?
                .collect();
            if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
                return Err(DeliverError::Insecure { host });
            }
        }
        let credentials = match (
            std::env::var(SMTP_USERNAME_ENV),
            std::env::var(SMTP_PASSWORD_ENV),
        ) {
            (Ok(u), Ok(p)) if !u.is_empty() => Some(Credentials::new(u, p)),
            _ => None,
        };
        let hello = match &s.hello_name {
            Some(h) => ClientId::Domain(h.clone()),
            None => ClientId::default(),
        };
        Ok(SmtpTarget {
            host,
            port,
            tls: s.tls,
            timeout: Duration::from_secs(s.timeout_secs.max(1)),
            hello,
            credentials,
        })
    }

    fn tls(&self) -> Result<TlsParameters, lettre::transport::smtp::Error> {
        TlsParameters::new(self.host.clone())
    }

    /// A connection ready for mail, and whether the server offers PIPELINING
    /// (lettre does not keep that keyword, so a second EHLO asks; RFC 5321 allows it).
    async fn connect(&self) -> Result<Connection, String> {
        let t = self.timeout;
        let mut conn = match self.tls {
            TlsMode::Implicit => {
                let tls = self.tls().map_err(|e| e.to_string())?;
                within(
                    t,
                    AsyncSmtpConnection::connect_tokio1(
                        (self.host.as_str(), self.port),
                        Some(t),
                        &self.hello,
                        Some(tls),
                        None,
                    ),
                )
                .await?
            }
            TlsMode::Starttls | TlsMode::None => {
                let tcp = tokio::time::timeout(
                    t,
                    tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
                )
                .await
                .map_err(|_| "timed out connecting".to_string())?
                .map_err(|e| format!("cannot connect: {e}"))?;
                // lettre's own connections leave Nagle on: ~40 ms per message.
                tcp.set_nodelay(true).map_err(|e| e.to_string())?;
                let mut conn = within(
                    t,
                    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello),
                )
                .await?;
                if self.tls == TlsMode::Starttls {
                    let tls = self.tls().map_err(|e| e.to_string())?;
                    within(t, conn.starttls(tls, &self.hello)).await?;
                }
                conn
            }
        };
        let ehlo = within(t, conn.command(Ehlo::new(self.hello.clone()))).await?;
        let pipelining = ehlo
            .message()
            .any(|l| l.split_whitespace().next() == Some("PIPELINING"));
        if let Some(c) = &self.credentials {
            within(t, conn.auth(&[Mechanism::Plain, Mechanism::Login], c)).await?;
        }
        Ok(Connection { conn, pipelining })
    }
}

/// Whether the SMTP server of `settings` offers SMTPUTF8 (RFC 6531): asked by
/// connecting and reading its EHLO answer. `herald serve` refuses internationalized
/// addresses at subscribe time when it does not.
pub async fn smtputf8_offered(settings: &SmtpSettings) -> Result<bool, DeliverError> {
    let target = SmtpTarget::new(settings)?;
    let mut c = target
        .connect()
        .await
        .map_err(|reason| DeliverError::Probe {
            host: target.host.clone(),
            reason,
        })?;
    let offered = c
        .conn
        .server_info()
        .supports_feature(Extension::SmtpUtfEight);
    let _ = tokio::time::timeout(target.timeout, c.conn.command(Quit)).await;
    Ok(offered)
}

async fn within<T>(
    t: Duration,
    f: impl std::future::Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(t, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the server stopped answering (timed out)".into()),
    }
}

/// How one SMTP step ended.
enum Step {
    Ok,
    /// 5xx: the server answered and refused.
    Permanent(String),
    /// 4xx: the server answered; `close` when it also closes (421).
    Transient {
        error: String,
        close: bool,
    },
    /// No usable answer: timeout, broken connection, garbage.
    Broken(String),
}

async fn step<T>(
    t: Duration,
    f: impl std::future::Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Step {
    match tokio::time::timeout(t, f).await {
        Ok(Ok(_)) => Step::Ok,
        Ok(Err(e)) if e.is_permanent() => Step::Permanent(e.to_string()),
        Ok(Err(e)) if e.is_transient() => Step::Transient {
            close: e.status().is_some_and(|c| c.to_string() == "421"),
            error: e.to_string(),
        },
        Ok(Err(e)) => Step::Broken(e.to_string()),
        Err(_) => Step::Broken("the server stopped answering (timed out)".into()),
    }
}

struct Connection {
    conn: AsyncSmtpConnection,
    pipelining: bool,
}

/// Bytes that go to the server as they are, in one write: lettre's `command`
/// writes any `Display` and reads one answer.
struct Raw<'a>(&'a str);

impl std::fmt::Display for Raw<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// `message` as SMTP DATA: lines starting with a dot get another (RFC 5321
/// 4.5.2), then the end-of-data line.
fn data_bytes(message: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(message.len() + 64);
    let mut line_start = true;
    let mut rest = message;
    while !rest.is_empty() {
        if line_start && rest[0] == b'.' {
            out.push(b'.');
        }
        match memchr::memchr(b'\n', rest) {
            Some(i) => {
                out.extend_from_slice(&rest[..=i]);
                rest = &rest[i + 1..];
                line_start = true;
            }
            None => {
                out.extend_from_slice(rest);
                rest = &[];
                line_start = false;
            }
        }
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

pub(crate) fn smtp(shared: &Shared<'_>, target: &SmtpTarget) -> Result<(), DeliverError> {
    // Probe the TLS setup once so a bad one is one clear error, not one per message.
    if target.tls != TlsMode::None {
        target.tls().map_err(|e| DeliverError::Tls(e.to_string()))?;
    }
    let workers = shared.settings.concurrency.max(1);
    let results: Vec<Result<(), DeliverError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(DeliverError::Runtime)?;
                    let result = rt.block_on(worker(shared, target));
                    // Outcomes queued before an error are still recorded.
                    let flushed = shared.flush();
                    result?;
                    Ok(flushed?)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or(Err(DeliverError::Store(StoreError::Poisoned)))
            })
            .collect()
    });
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(())
}

/// The envelope of one message, before any data: MAIL, RCPT and DATA, in one
/// write when the server offers PIPELINING (RFC 2920). The first failure is
/// the envelope's; every answer is read so the connection stays in step.
async fn envelope(c: &mut Connection, t: Duration, composed: &Composed, buf: &mut String) -> Step {
    let mut params = Vec::new();
    // An internationalized address goes out only to a server that takes it
    // (RFC 6531); otherwise nothing is sent, and the row fails with the reason.
    let e = &composed.envelope;
    let ascii = |a: &lettre::Address| AsRef::<str>::as_ref(a).is_ascii();
    if !e.from().is_none_or(ascii) || !e.to().iter().all(ascii) {
        if !c
            .conn
            .server_info()
            .supports_feature(Extension::SmtpUtfEight)
        {
            return Step::Permanent(
                "the address has non-ASCII characters and the SMTP server does not offer SMTPUTF8"
                    .to_string(),
            );
        }
        params.push(MailParameter::SmtpUtfEight);
    }
    if !composed.bytes.is_ascii()
        && c.conn
            .server_info()
            .supports_feature(Extension::EightBitMime)
    {
        params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let mail = Mail::new(composed.envelope.from().cloned(), params);
    let rcpts = composed
        .envelope
        .to()
        .iter()
        .map(|a| Rcpt::new(a.clone(), vec![]));
    if !c.pipelining {
        let mut result = step(t, c.conn.command(mail)).await;
        for rcpt in rcpts {
            if matches!(result, Step::Ok) {
                result = step(t, c.conn.command(rcpt)).await;
            }
        }
        if matches!(result, Step::Ok) {
            result = step(t, c.conn.command(Data)).await;
        }
        return result;
    }
    use std::fmt::Write;
    buf.clear();
    let answers = 2 + composed.envelope.to().len();
    let _ = write!(buf, "{mail}");
    for rcpt in rcpts {
        let _ = write!(buf, "{rcpt}");
    }
    let _ = write!(buf, "{Data}");
    let mut result = step(t, c.conn.command(Raw(buf))).await;
    let mut data_accepted = false;
    for i in 1..answers {
        // A broken or closing connection has nothing more to say.
        if matches!(
            result,
            Step::Broken(_) | Step::Transient { close: true, .. }
        ) {
            return result;
        }
        let answer = step(t, c.conn.read_response()).await;
        if i == answers - 1 {
            data_accepted = matches!(answer, Step::Ok);
        }
        if matches!(result, Step::Ok) || matches!(answer, Step::Broken(_)) {
            result = answer;
        }
    }
    // A server that took DATA after refusing the envelope gets an empty message
    // to end it (RFC 2920 3.1); there was no recipient, so nothing is delivered.
    if data_accepted
        && !matches!(result, Step::Ok)
        && let Step::Broken(e) = step(t, c.conn.command(Raw(".\r\n"))).await
    {
        return Step::Broken(e);
    }
    result
}

async fn worker(shared: &Shared<'_>, target: &SmtpTarget) -> Result<(), StoreError> {
    let t = target.timeout;
    let mut conn: Option<Connection> = None;
    let mut commands = String::new();
    let mut data = Vec::new();
    loop {
        let job = match shared.next() {
            Next::Job(j) => j,
            Next::Wait(d) => {
                shared.flush()?;
                tokio::time::sleep(d).await;
                continue;
            }
            Next::Done => break,
        };
        let composed = match shared.compose(&job) {
            Ok(c) => c,
            Err(e) => {
                shared.done(job, BulletinState::Failed, Some(e.to_string()))?;
                continue;
            }
        };
        data_bytes(&composed.bytes, &mut data);
        let Ok(wire) = std::str::from_utf8(&data) else {
            let e = "the message is not UTF-8".to_string();
            shared.done(job, BulletinState::Failed, Some(e))?;
            continue;
        };
        if let Some(wait) = shared.rate_slot().filter(|w| !w.is_zero()) {
            // Outcomes are not held back while this connection sleeps.
            shared.flush()?;
            tokio::time::sleep(wait).await;
        }
        let mut c = match conn.take() {
            Some(c) => c,
            None => match target.connect().await {
                Ok(c) => c,
                Err(e) => {
                    shared.defer(job, e, true)?;
                    continue;
                }
            },
        };
        // The envelope, before any data: a failure here cannot have delivered anything.
        match envelope(&mut c, t, &composed, &mut commands).await {
            Step::Ok => {}
            Step::Permanent(e) => {
                shared.done(job, BulletinState::Failed, Some(e))?;
                if matches!(step(t, c.conn.command(Rset)).await, Step::Ok) {
                    conn = Some(c);
                }
                continue;
            }
            Step::Transient { error, close } => {
                shared.defer(job, error, true)?;
                if !close && matches!(step(t, c.conn.command(Rset)).await, Step::Ok) {
                    conn = Some(c);
                }
                continue;
            }
            Step::Broken(e) => {
                shared.defer(job, e, true)?;
                continue;
            }
        }
        // From here the server may accept the message at any moment.
        shared.sending(&job)?;
        match step(t, c.conn.command(Raw(wire))).await {
            Step::Ok => {
                shared.bytes.fetch_add(wire.len() as u64, Ordering::Relaxed);
                shared.done(job, BulletinState::Sent, None)?;
                conn = Some(c);
            }
            Step::Permanent(e) => {
                shared.done(job, BulletinState::Failed, Some(e))?;
                conn = Some(c);
            }
            Step::Transient { error, close } => {
                // An explicit refusal after the data: nothing was accepted.
                shared.defer(job, error, false)?;
                if !close {
                    conn = Some(c);
                }
            }
            Step::Broken(e) => {
                shared.done(
                    job,
                    BulletinState::Ambiguous,
                    Some(format!(
                        "the connection broke after the message data was sent: {e}"
                    )),
                )?;
            }
        }
    }
    if let Some(mut c) = conn {
        let _ = tokio::time::timeout(t, c.conn.command(Quit)).await;
    }
    Ok(())
}

/// Send one message outside the ledger (`herald serve`'s confirmation mail), on
/// the bulletins' path: over `[mail.smtp]` when it is set (same connection, TLS,
/// SMTPUTF8 and dot-stuffing code), else as an `.eml` file in `outbox`, named by
/// its Message-ID and written by the same atomic writer.
pub async fn send_now(
    settings: &crate::settings::MailSettings,
    outbox: &std::path::Path,
    composed: &Composed,
) -> Result<(), DeliverError> {
    let Some(smtp) = &settings.smtp else {
        return crate::outbox::write_one(outbox, composed);
    };
    let target = SmtpTarget::new(smtp)?;
    let refused = |reason: String| DeliverError::Refused {
        host: target.host.clone(),
        reason,
    };
    let mut c = target.connect().await.map_err(refused)?;
    let mut buf = String::new();
    let mut step_result = envelope(&mut c, target.timeout, composed, &mut buf).await;
    if matches!(step_result, Step::Ok) {
        let mut data = Vec::new();
        data_bytes(&composed.bytes, &mut data);
        let wire = std::str::from_utf8(&data).map_err(|e| refused(e.to_string()))?;
        step_result = step(target.timeout, c.conn.command(Raw(wire))).await;
    }
    let _ = tokio::time::timeout(target.timeout, c.conn.command(Quit)).await;
    match step_result {
        Step::Ok => Ok(()),
        Step::Permanent(e) | Step::Transient { error: e, .. } | Step::Broken(e) => Err(refused(e)),
    }
}
