//! Inbound mail: what comes back to the bounce and unsubscribe addresses.
//!
//! `herald mail receive` hands each message here. It is classified (RFC 3464
//! delivery status notifications, RFC 5965 ARF complaints, mail to a tokened
//! unsubscribe address, RFC 3834 auto-replies, else unrecognized), tied to a
//! subscriber only through a signed token or, for a DSN without one, a
//! Message-ID herald sent to that exact recipient, and acted on in one SQLite
//! transaction that also records the message's digest: a message is acted on
//! once, however often it is handed in (an MTA retry, a rerun after a crash).
//! An address alone in an unauthenticated mail never changes anything;
//! whatever is not recognized is kept below `.herald/inbound/unrecognized/`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mail_parser::{Message, MessageParser, MimeHeaders};
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::settings::MailSettings;
use crate::store::{MailStore, Status, StoreError, after_status, parse_ts, ts};
use crate::token::{Purpose, Secret, TOKEN_CHARS, VerpKind, verp_token};

/// The largest message read; a larger one is kept (its first bytes) as unrecognized.
pub const MAX_MESSAGE: usize = 10 * 1024 * 1024;
/// How long `receive` waits for standard input to end.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Below the state folder (`.herald/`).
pub const UNRECOGNIZED_DIR: &str = "inbound/unrecognized";
/// Nested messages looked into (a DSN of a DSN...), at most.
const MAX_DEPTH: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Settings(String),
}

impl InboundError {
    /// The store is busy: the MTA should try again (EX_TEMPFAIL).
    pub fn is_busy(&self) -> bool {
        matches!(self, InboundError::Store(StoreError::Busy))
    }
}

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// DSN `failed` with a 5.x.x status.
    HardBounce,
    /// DSN `delayed`, or `failed` with 4.x.x.
    SoftBounce,
    /// DSN `delivered`, `relayed` or `expanded`: ends a run of soft bounces.
    Delivered,
    /// ARF `Feedback-Type: abuse`.
    Complaint,
    /// Mail to a tokened unsubscribe address.
    Unsubscribe,
    /// RFC 3834 auto-reply (vacation, out of office): nothing to do.
    AutoReply,
    /// Kept, counted, never acted on.
    Unrecognized,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::HardBounce => "hard_bounce",
            Kind::SoftBounce => "soft_bounce",
            Kind::Delivered => "delivered",
            Kind::Complaint => "complaint",
            Kind::Unsubscribe => "unsubscribe",
            Kind::AutoReply => "auto_reply",
            Kind::Unrecognized => "unrecognized",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified message, tied to its subscriber (or why not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub kind: Kind,
    pub subscriber: Option<i64>,
    pub bulletin: Option<i64>,
    /// The DSN status (`5.1.1`).
    pub status_code: Option<String>,
    /// The diagnostic or feedback details, or why it is unrecognized.
    pub detail: String,
}

impl Verdict {
    fn unrecognized(detail: impl Into<String>) -> Verdict {
        Verdict {
            kind: Kind::Unrecognized,
            subscriber: None,
            bulletin: None,
            status_code: None,
            detail: detail.into(),
        }
    }
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    pub verdict: Verdict,
    /// Handed in before (same bytes): nothing was done again.
    pub duplicate: bool,
    /// The subscriber's status changed to this.
    pub status: Option<Status>,
    /// Where an unrecognized message was kept.
    pub kept: Option<PathBuf>,
}

/// What `receive` needs besides the store.
#[derive(Debug)]
pub struct Inbound<'a> {
    pub secret: &'a Secret,
    pub settings: &'a MailSettings,
    /// `.herald/`: unrecognized mail goes below it.
    pub state_dir: &'a Path,
    pub now: DateTime<Utc>,
}

/// The message bytes, and why they are not the whole message, if they are not.
#[derive(Debug, Default)]
pub struct Input {
    pub bytes: Vec<u8>,
    pub cut: Option<String>,
}

/// Read `reader` to its end, at most [`MAX_MESSAGE`] bytes and `timeout`: a
/// larger or never-ending input is cut (and then kept as unrecognized).
pub fn read_bounded(reader: impl Read + Send + 'static, timeout: Duration) -> Input {
    let (tx, rx) = std::sync::mpsc::channel();
    // A blocked read cannot be interrupted: the reader thread is left behind
    // (the process ends after this message), and what it read so far is used.
    std::thread::spawn(move || {
        let mut reader = reader.take(MAX_MESSAGE as u64 + 1);
        let mut buf = [0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => {
                    let _ = tx.send(None);
                    return;
                }
                Ok(n) => {
                    if tx.send(Some(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Some(Vec::new()));
                    let _ = tx.send(None);
                    tracing::warn!("reading the message: {e}");
                    return;
                }
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let mut input = Input::default();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Some(chunk)) => input.bytes.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                input.cut = Some(format!(
                    "the input did not end within {} s",
                    timeout.as_secs()
                ));
                break;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if input.bytes.len() > MAX_MESSAGE {
        input.bytes.truncate(MAX_MESSAGE);
        input.cut = Some(format!("larger than {MAX_MESSAGE} bytes"));
    }
    input
}

/// One header-field block of a report (`message/delivery-status`,
/// `message/feedback-report`): names lowercased, values unfolded.
type Fields = Vec<(String, String)>;

fn field_blocks(text: &str) -> Vec<Fields> {
    let mut blocks = Vec::new();
    let mut block: Fields = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !block.is_empty() {
                blocks.push(std::mem::take(&mut block));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = block.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            block.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    if !block.is_empty() {
        blocks.push(block);
    }
    blocks
}

fn field<'a>(block: &'a Fields, name: &str) -> Option<&'a str> {
    block
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `rfc822; someone@example.org` -> `someone@example.org`.
fn typed_address(value: &str) -> String {
    let v = value.split_once(';').map_or(value, |(_, a)| a);
    v.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_ascii_lowercase()
}

/// The parts of `msg` (and of the messages nested in it), with their content type.
fn parts<'a>(
    msg: &'a Message<'a>,
) -> impl Iterator<Item = (String, &'a mail_parser::MessagePart<'a>)> {
    msg.parts.iter().map(|p| {
        let ct = p
            .content_type()
            .map(|c| {
                format!(
                    "{}/{}",
                    c.ctype().to_ascii_lowercase(),
                    c.subtype().unwrap_or("").to_ascii_lowercase()
                )
            })
            .unwrap_or_default();
        (ct, p)
    })
}

/// The report type of a `multipart/report` message.
fn report_type(msg: &Message<'_>) -> Option<String> {
    let ct = msg.content_type()?;
    (ct.ctype().eq_ignore_ascii_case("multipart")
        && ct
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report")))
    .then(|| {
        ct.attribute("report-type")
            .unwrap_or("")
            .to_ascii_lowercase()
    })
}

/// The original message a report returns (`message/rfc822`, or its header as
/// `text/rfc822-headers`), parsed.
fn original<'a>(msg: &'a Message<'a>) -> Option<OwnedOriginal> {
    for (ct, part) in parts(msg) {
        match ct.as_str() {
            "message/rfc822" | "message/global" => {
                if let Some(m) = part.message() {
                    return Some(OwnedOriginal::from(m));
                }
            }
            "text/rfc822-headers" | "message/global-headers" => {
                let mut bytes = part.contents().to_vec();
                bytes.extend_from_slice(b"\r\n\r\n");
                if let Some(m) = MessageParser::default().parse(&bytes) {
                    return Some(OwnedOriginal::from(&m));
                }
            }
            _ => {}
        }
    }
    None
}

/// What herald looks for in a returned original.
#[derive(Debug, Default)]
struct OwnedOriginal {
    message_id: Option<String>,
    /// Tokens in its Return-Path and To (VERP) and List-Unsubscribe (the link).
    verp: Vec<String>,
    link_tokens: Vec<String>,
}

impl From<&Message<'_>> for OwnedOriginal {
    fn from(m: &Message<'_>) -> OwnedOriginal {
        let mut o = OwnedOriginal {
            message_id: m.message_id().map(|s| s.trim().to_string()),
            ..Default::default()
        };
        for (name, value) in m.headers_raw() {
            let name = name.to_ascii_lowercase();
            if matches!(name.as_str(), "return-path" | "list-unsubscribe") {
                o.verp.extend(tokens_in(value));
            }
            if name == "list-unsubscribe" {
                let v: String = value.split_whitespace().collect();
                for piece in v.split('<').filter(|p| p.starts_with("http")) {
                    let end = piece.find('>').unwrap_or(piece.len());
                    let url = &piece[..end];
                    let t = url.rsplit('/').next().unwrap_or("");
                    if t.len() == TOKEN_CHARS {
                        o.link_tokens.push(t.to_string());
                    }
                }
            }
        }
        o
    }
}

/// VERP tokens in the addresses of a header value.
fn tokens_in(value: &str) -> Vec<String> {
    value
        .split(|c: char| c == '<' || c == '>' || c == ',' || c == ':' || c.is_whitespace())
        .filter(|w| w.contains('@'))
        .filter_map(|w| verp_token(w.split('?').next().unwrap_or(w)))
        .map(str::to_string)
        .collect()
}

/// Where a message was delivered to: the MTA's recipient, then the header
/// fields an MTA writes (Delivered-To, X-Original-To), then To.
fn recipient_tokens(msg: &Message<'_>, recipient: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = recipient.into_iter().flat_map(tokens_in).collect();
    for want in ["delivered-to", "x-original-to", "to"] {
        for (name, value) in msg.headers_raw() {
            if name.eq_ignore_ascii_case(want) {
                out.extend(tokens_in(value));
            }
        }
    }
    out
}

fn is_auto_reply(msg: &Message<'_>) -> bool {
    msg.headers_raw().any(|(name, value)| {
        let v = value.trim().to_ascii_lowercase();
        match name.to_ascii_lowercase().as_str() {
            // RFC 3834: anything but `no`.
            "auto-submitted" => !v.is_empty() && !v.starts_with("no"),
            "x-autoreply" | "x-autorespond" | "x-autoresponder" => true,
            "precedence" => v == "auto_reply",
            _ => false,
        }
    })
}

/// How a message names its subscriber before the store is asked.
#[derive(Debug)]
enum Claim {
    /// A VERP token: for a bounce the row, for an unsubscribe the subscriber.
    Verp(String),
    /// The unsubscribe link token of a returned original (ARF).
    Link(String),
    /// No token: the Message-ID herald gave a bulletin, and the recipients the
    /// report names (the row's address must be one of them).
    MessageId(String, Vec<String>),
    None,
}

/// The classification before the store is asked.
#[derive(Debug)]
struct Draft {
    kind: Kind,
    claim: Claim,
    status_code: Option<String>,
    detail: String,
}

fn draft_unrecognized(detail: impl Into<String>) -> Draft {
    Draft {
        kind: Kind::Unrecognized,
        claim: Claim::None,
        status_code: None,
        detail: detail.into(),
    }
}

/// Classify `bytes` (delivered for `recipient`, when the MTA says).
fn classify(bytes: &[u8], recipient: Option<&str>) -> Draft {
    let Some(msg) = MessageParser::default().parse(bytes) else {
        return draft_unrecognized("not a mail message (no header)");
    };
    classify_message(&msg, recipient, 0)
}

fn classify_message(msg: &Message<'_>, recipient: Option<&str>, depth: usize) -> Draft {
    let envelope = recipient_tokens(msg, recipient);
    match report_type(msg).as_deref() {
        Some("delivery-status") => return dsn(msg, envelope),
        Some("feedback-report") => return arf(msg, envelope),
        _ => {}
    }
    if is_auto_reply(msg) {
        return Draft {
            kind: Kind::AutoReply,
            claim: Claim::None,
            status_code: None,
            detail: msg.subject().unwrap_or("").chars().take(200).collect(),
        };
    }
    // Mail to the unsubscribe address: its token, or the link token in the subject.
    if let Some(t) = envelope.iter().find(|t| t.starts_with(['u', 'U'])) {
        return Draft {
            kind: Kind::Unsubscribe,
            claim: Claim::Verp(t.clone()),
            status_code: None,
            detail: String::new(),
        };
    }
    let subject = msg.subject().unwrap_or("").trim();
    if let Some(rest) = subject
        .get(..11)
        .filter(|s| s.eq_ignore_ascii_case("unsubscribe"))
        .map(|_| subject[11..].trim())
        .filter(|r| r.len() == TOKEN_CHARS)
    {
        return Draft {
            kind: Kind::Unsubscribe,
            claim: Claim::Link(rest.to_string()),
            status_code: None,
            detail: "token in the subject".into(),
        };
    }
    // A report forwarded as an attachment (some relays wrap it): look inside once.
    if depth < MAX_DEPTH {
        for (ct, part) in parts(msg) {
            if ct == "message/rfc822"
                && let Some(inner) = part.message()
                && report_type(inner).is_some()
            {
                let d = classify_message(inner, recipient, depth + 1);
                if d.kind != Kind::Unrecognized {
                    return d;
                }
            }
        }
    }
    draft_unrecognized(if envelope.is_empty() {
        "no report, auto-reply or unsubscribe"
    } else {
        "a token-addressed mail that is no report, auto-reply or unsubscribe"
    })
}

/// RFC 3464: the worst of the per-recipient actions decides.
fn dsn(msg: &Message<'_>, envelope: Vec<String>) -> Draft {
    let Some(status) = parts(msg)
        .find(|(ct, _)| ct == "message/delivery-status" || ct == "message/global-delivery-status")
        .map(|(_, p)| String::from_utf8_lossy(p.contents()).into_owned())
    else {
        return draft_unrecognized("a delivery report without a message/delivery-status part");
    };
    let blocks = field_blocks(&status);
    let mut worst: Option<(Kind, String, String)> = None;
    let mut recipients = Vec::new();
    for block in blocks.iter().skip(1) {
        let Some(action) = field(block, "action").map(|a| a.to_ascii_lowercase()) else {
            continue;
        };
        let code = field(block, "status")
            .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
            .unwrap_or_default();
        let kind = match (action.as_str(), code.chars().next()) {
            ("failed", Some('5')) => Kind::HardBounce,
            ("failed", Some('4')) | ("delayed", _) => Kind::SoftBounce,
            ("delivered" | "relayed" | "expanded", _) => Kind::Delivered,
            _ => continue,
        };
        for name in ["final-recipient", "original-recipient"] {
            if let Some(a) = field(block, name) {
                recipients.push(typed_address(a));
            }
        }
        let diagnostic = field(block, "diagnostic-code")
            .map(|d| d.split_once(';').map_or(d, |(_, t)| t).trim().to_string())
            .unwrap_or_default();
        let rank = |k: Kind| match k {
            Kind::HardBounce => 3,
            Kind::SoftBounce => 2,
            _ => 1,
        };
        if worst.as_ref().is_none_or(|(k, _, _)| rank(kind) > rank(*k)) {
            worst = Some((kind, code, diagnostic));
        }
    }
    let Some((kind, code, diagnostic)) = worst else {
        return draft_unrecognized("a delivery report with no recipient action");
    };
    let claim = match envelope.iter().find(|t| t.starts_with(['b', 'B'])) {
        Some(t) => Claim::Verp(t.clone()),
        None if !envelope.is_empty() => Claim::Verp(envelope[0].clone()),
        None => {
            let original = original(msg).unwrap_or_default();
            // The original's own return path (a relay that wrapped the report),
            // else its Message-ID with the recipients the report names.
            match original
                .verp
                .into_iter()
                .find(|t| t.starts_with(['b', 'B']))
            {
                Some(t) => Claim::Verp(t),
                None => match original.message_id {
                    Some(mid) => Claim::MessageId(mid, recipients),
                    None => Claim::None,
                },
            }
        }
    };
    Draft {
        kind,
        claim,
        status_code: Some(code).filter(|c| !c.is_empty()),
        detail: diagnostic.chars().take(500).collect(),
    }
}

/// RFC 5965: `Feedback-Type: abuse` is a complaint; other types are kept.
fn arf(msg: &Message<'_>, envelope: Vec<String>) -> Draft {
    let Some(report) = parts(msg)
        .find(|(ct, _)| ct == "message/feedback-report")
        .map(|(_, p)| String::from_utf8_lossy(p.contents()).into_owned())
    else {
        return draft_unrecognized("a feedback report without a message/feedback-report part");
    };
    let fields: Fields = field_blocks(&report).into_iter().flatten().collect();
    let kind = field(&fields, "feedback-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    if kind != "abuse" {
        return draft_unrecognized(format!("a feedback report of type {kind:?}"));
    }
    let recipients: Vec<String> = ["original-rcpt-to", "removal-recipient"]
        .iter()
        .filter_map(|n| field(&fields, n))
        .map(typed_address)
        .collect();
    let detail = ["user-agent", "source-ip", "arrival-date"]
        .iter()
        .filter_map(|n| field(&fields, n).map(|v| format!("{n}: {v}")))
        .collect::<Vec<_>>()
        .join("; ");
    let original = original(msg);
    let claim = if let Some(t) = envelope.iter().find(|t| t.starts_with(['b', 'B'])) {
        Claim::Verp(t.clone())
    } else if let Some(o) = original {
        if let Some(t) = o.verp.into_iter().find(|t| t.starts_with(['b', 'B'])) {
            Claim::Verp(t)
        } else if let Some(t) = o.link_tokens.into_iter().next() {
            Claim::Link(t)
        } else if let Some(mid) = o.message_id {
            Claim::MessageId(mid, recipients)
        } else {
            Claim::None
        }
    } else {
        Claim::None
    };
    Draft {
        kind: Kind::Complaint,
        claim,
        status_code: None,
        detail: detail.chars().take(500).collect(),
    }
}

/// Tie a draft to its subscriber through the store, or make it unrecognized.
fn resolve(store: &MailStore, ctx: &Inbound<'_>, d: Draft) -> Result<Verdict, StoreError> {
    let mut v = Verdict {
        kind: d.kind,
        subscriber: None,
        bulletin: None,
        status_code: d.status_code,
        detail: d.detail,
    };
    if matches!(d.kind, Kind::Unrecognized | Kind::AutoReply) {
        return Ok(v);
    }
    let forged = |what: &str| Ok(Verdict::unrecognized(format!("{what}: {}", v.kind)));
    match d.claim {
        Claim::Verp(t) => {
            let Ok(c) = ctx.secret.verify_verp(&t) else {
                return forged("a token that does not verify");
            };
            match (c.kind, d.kind) {
                (VerpKind::Unsubscribe, Kind::Unsubscribe) => {
                    let s = store.subscriber(c.id)?;
                    if s.is_none_or(|s| s.token_key != c.key) {
                        return forged("an unsubscribe token for no current subscriber");
                    }
                    v.subscriber = Some(c.id);
                }
                (VerpKind::Bounce, Kind::Unsubscribe) => {
                    return forged("a bounce address used to unsubscribe");
                }
                (VerpKind::Bounce, _) => {
                    let row = store.bulletin(c.id)?;
                    if row.as_ref().is_none_or(|b| b.subscriber_id != c.key) {
                        return forged("a bounce token for no bulletin");
                    }
                    v.subscriber = Some(c.key);
                    v.bulletin = Some(c.id);
                }
                (VerpKind::Unsubscribe, _) => {
                    return forged("a report sent to an unsubscribe address");
                }
            }
        }
        Claim::Link(t) => {
            let Ok(claim) = ctx.secret.verify(&t, Purpose::Unsubscribe, ctx.now) else {
                return forged("a link token that does not verify");
            };
            let Some(s) = store.bound(claim, Purpose::Unsubscribe)? else {
                return forged("a link token for no current subscriber");
            };
            v.subscriber = Some(s.id);
        }
        Claim::MessageId(mid, recipients) => {
            let mid = mid.trim().trim_start_matches('<').trim_end_matches('>');
            let row = store.bulletin_by_message_id(mid)?;
            let Some(row) = row.filter(|b| recipients.contains(&b.address.to_ascii_lowercase()))
            else {
                return forged("no token, and no bulletin with that Message-ID to that recipient");
            };
            v.subscriber = Some(row.subscriber_id);
            v.bulletin = Some(row.id);
        }
        Claim::None => return forged("nothing ties it to a bulletin"),
    }
    Ok(v)
}

/// Classify and act on one message, once: a message handed in again (same
/// bytes) changes nothing. Unrecognized mail is written below `state_dir`
/// before the transaction, so a message is never recorded without its copy.
pub fn handle(
    store: &MailStore,
    ctx: &Inbound<'_>,
    input: &Input,
    recipient: Option<&str>,
) -> Result<Handled, InboundError> {
    let (digest, mut handled) = prepare(store, ctx, input, recipient)?;
    let mut done = store.act(&[(digest, &handled.verdict)], ctx.settings, ctx.now)?;
    (handled.duplicate, handled.status) = done.pop().unwrap_or((true, None));
    Ok(handled)
}

/// Classify and tie to a subscriber, keep it when unrecognized: all but the action.
fn prepare(
    store: &MailStore,
    ctx: &Inbound<'_>,
    input: &Input,
    recipient: Option<&str>,
) -> Result<(String, Handled), InboundError> {
    let digest = hex::encode(Sha256::digest(&input.bytes));
    let draft = match &input.cut {
        Some(why) => draft_unrecognized(why.clone()),
        None => classify(&input.bytes, recipient),
    };
    let verdict = resolve(store, ctx, draft)?;
    let kept = if verdict.kind == Kind::Unrecognized {
        let dir = ctx.state_dir.join(UNRECOGNIZED_DIR);
        let path = dir.join(format!("{digest}.eml"));
        let io = |source| InboundError::Io {
            path: path.clone(),
            source,
        };
        if !path.exists() {
            std::fs::create_dir_all(&dir).map_err(io)?;
            let tmp = dir.join(format!(".{digest}.tmp"));
            std::fs::write(&tmp, &input.bytes).map_err(io)?;
            std::fs::rename(&tmp, &path).map_err(io)?;
        }
        Some(path)
    } else {
        None
    };
    Ok((
        digest,
        Handled {
            verdict,
            duplicate: false,
            status: None,
            kept,
        },
    ))
}

/// Messages whose actions are committed in one transaction by `--maildir`
/// (then moved): a crash before the commit redoes them all, after it only moves them.
const BATCH: usize = 256;

/// Counts of one `--maildir` pass.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MaildirReport {
    pub handled: usize,
    pub duplicates: usize,
    pub by_kind: std::collections::BTreeMap<&'static str, usize>,
}

/// Handle every message in `dir/new/`, in name order, and move each to
/// `dir/cur/` when done (its digest and action committed first, so a crash
/// between the two only moves it on the rerun).
pub fn maildir(
    store: &MailStore,
    ctx: &Inbound<'_>,
    dir: &Path,
) -> Result<MaildirReport, InboundError> {
    let new = dir.join("new");
    let cur = dir.join("cur");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InboundError::Io { path, source }
    };
    std::fs::create_dir_all(&cur).map_err(io(&cur))?;
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(&new)
        .map_err(io(&new))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name())
        .filter(|n| !n.to_string_lossy().starts_with('.'))
        .collect();
    names.sort();
    let mut report = MaildirReport::default();
    for chunk in names.chunks(BATCH) {
        let mut batch: Vec<(std::ffi::OsString, String, Handled)> = Vec::with_capacity(chunk.len());
        for name in chunk {
            let path = new.join(name);
            let input = match std::fs::File::open(&path) {
                Ok(f) => {
                    let mut bytes = Vec::new();
                    f.take(MAX_MESSAGE as u64 + 1)
                        .read_to_end(&mut bytes)
                        .map_err(io(&path))?;
                    let cut = (bytes.len() > MAX_MESSAGE).then(|| {
                        bytes.truncate(MAX_MESSAGE);
                        format!("larger than {MAX_MESSAGE} bytes")
                    });
                    Input { bytes, cut }
                }
                // Moved by a concurrent run.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&path)(e)),
            };
            let (digest, handled) = prepare(store, ctx, &input, None)?;
            batch.push((name.clone(), digest, handled));
        }
        let items: Vec<(String, &Verdict)> = batch
            .iter()
            .map(|(_, d, h)| (d.clone(), &h.verdict))
            .collect();
        let done = store.act(&items, ctx.settings, ctx.now)?;
        for ((name, _, handled), (duplicate, _)) in batch.iter().zip(done) {
            report.handled += 1;
            report.duplicates += usize::from(duplicate);
            *report
                .by_kind
                .entry(handled.verdict.kind.as_str())
                .or_default() += 1;
            let mut moved = name.clone();
            if !name.to_string_lossy().contains(":2,") {
                moved.push(":2,S");
            }
            let path = new.join(name);
            std::fs::rename(&path, cur.join(moved)).map_err(io(&path))?;
        }
    }
    Ok(report)
}

impl MailStore {
    /// One bulletin row by id.
    pub fn bulletin(&self, id: i64) -> Result<Option<crate::Bulletin>, StoreError> {
        Ok(self
            .bulletins_where("id = ?1", rusqlite::types::Value::Integer(id))?
            .pop())
    }

    /// The bulletin herald sent with this Message-ID (without angle brackets).
    pub fn bulletin_by_message_id(
        &self,
        message_id: &str,
    ) -> Result<Option<crate::Bulletin>, StoreError> {
        Ok(self
            .bulletins_where(
                "message_id = ?1",
                rusqlite::types::Value::Text(message_id.to_string()),
            )?
            .pop())
    }

    /// Inbound messages handled, by kind.
    pub fn inbound_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let conn = self.conn()?;
        let mut stmt =
            conn.prepare("SELECT kind, COUNT(*) FROM mail_inbound GROUP BY kind ORDER BY kind")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows
            .into_iter()
            .map(|(k, n)| (k, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    /// Record each digest and act on its verdict, all in one transaction; a
    /// digest recorded already (in an earlier transaction or earlier in this
    /// one) changes nothing. Returns (duplicate, the subscriber's new status) each.
    fn act(
        &self,
        items: &[(String, &Verdict)],
        settings: &MailSettings,
        now: DateTime<Utc>,
    ) -> Result<Vec<(bool, Option<Status>)>, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let at = ts(now);
        let mut out = Vec::with_capacity(items.len());
        for (digest, v) in items {
            let n = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO mail_inbound (digest, at, kind, subscriber_id, bulletin_id, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![digest, at, v.kind.as_str(), v.subscriber, v.bulletin, v.detail])?;
            if n == 0 {
                out.push((true, None));
                continue;
            }
            let status = match (v.kind, v.subscriber) {
                (Kind::Unrecognized | Kind::AutoReply, _) | (_, None) => None,
                (kind, Some(id)) => apply(&tx, kind, id, v, settings, &at, now)?,
            };
            out.push((false, status));
        }
        tx.commit()?;
        Ok(out)
    }
}

fn event(
    tx: &rusqlite::Connection,
    id: i64,
    kind: &str,
    v: &Verdict,
    at: &str,
    source: &str,
    detail: &str,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO mail_events (subscriber_id, kind, at, source, detail, bulletin_id, status_code)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![id, kind, at, source, detail, v.bulletin, v.status_code])?;
    Ok(())
}

/// Set `status` from a mail (with its event and the queued rows failed) when
/// the subscriber is in one of `from`.
fn set_status(
    tx: &rusqlite::Connection,
    id: i64,
    status: Status,
    from: &[&str],
    v: &Verdict,
    at: &str,
    (source, detail): (&str, &str),
) -> Result<Option<Status>, StoreError> {
    let current: Option<String> = tx
        .prepare_cached("SELECT status FROM mail_subscribers WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    if !current.is_some_and(|c| from.contains(&c.as_str())) {
        return Ok(None);
    }
    tx.prepare_cached("UPDATE mail_subscribers SET status = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![id, status.as_str(), at])?;
    after_status(tx, id, status, at)?;
    let kind = match status {
        Status::Bounced => "bounce",
        Status::Complained => "complaint",
        _ => "unsubscribe",
    };
    if status != Status::Complained {
        event(tx, id, kind, v, at, source, detail)?;
    }
    Ok(Some(status))
}

fn apply(
    tx: &rusqlite::Connection,
    kind: Kind,
    id: i64,
    v: &Verdict,
    settings: &MailSettings,
    at: &str,
    now: DateTime<Utc>,
) -> Result<Option<Status>, StoreError> {
    let live = ["confirmed", "pending"];
    match kind {
        Kind::HardBounce => {
            event(
                tx,
                id,
                "hard_bounce",
                v,
                at,
                "mail: delivery report",
                &v.detail,
            )?;
            // Bounced when the last `bounce_after` bulletins sent all came back.
            let n = settings.bounce_after.max(1);
            // `+state`: the per-subscriber index, not a walk of every sent row by state.
            let (sent, bounced): (u32, u32) = tx.prepare_cached("SELECT COUNT(*), COALESCE(SUM(EXISTS (SELECT 1 FROM mail_events e
                     WHERE e.subscriber_id = ?1 AND e.kind = 'hard_bounce' AND e.bulletin_id = b.id)), 0)
                 FROM (SELECT id FROM mail_bulletins WHERE subscriber_id = ?1 AND +state = 'sent'
                       ORDER BY id DESC LIMIT ?2) b")?.query_row(params![id, n],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if sent >= n && bounced >= n {
                let detail = format!("{n} bulletin(s) in a row bounced: {}", v.detail);
                return set_status(
                    tx,
                    id,
                    Status::Bounced,
                    &live,
                    v,
                    at,
                    ("mail: delivery report", &detail),
                );
            }
            Ok(None)
        }
        Kind::SoftBounce => {
            let previous: Option<String> = tx.prepare_cached("SELECT MAX(at) FROM mail_events WHERE subscriber_id = ?1 AND kind = 'soft_bounce'")?
                .query_row([id],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            event(
                tx,
                id,
                "soft_bounce",
                v,
                at,
                "mail: delivery report",
                &v.detail,
            )?;
            let days = chrono::Duration::days(i64::from(settings.soft_bounce_days.max(1)));
            let since: Option<String> = tx
                .prepare_cached("SELECT soft_bounce_since FROM mail_subscribers WHERE id = ?1")?
                .query_row([id], |r| r.get(0))?;
            let previous = previous
                .map(|p| parse_ts("mail_events.at", &p))
                .transpose()?;
            // A soft bounce long after the last one starts a new run.
            let since = match (since, previous) {
                (Some(s), Some(p)) if now - p <= days => {
                    parse_ts("mail_subscribers.soft_bounce_since", &s)?
                }
                _ => now,
            };
            tx.prepare_cached("UPDATE mail_subscribers SET soft_bounce_since = ?2 WHERE id = ?1")?
                .execute(params![id, ts(since)])?;
            if now - since >= days {
                let detail = format!(
                    "soft bounces for {} day(s): {}",
                    (now - since).num_days(),
                    v.detail
                );
                return set_status(
                    tx,
                    id,
                    Status::Bounced,
                    &live,
                    v,
                    at,
                    ("mail: delivery report", &detail),
                );
            }
            Ok(None)
        }
        Kind::Delivered => {
            tx.prepare_cached(
                "UPDATE mail_subscribers SET soft_bounce_since = NULL WHERE id = ?1",
            )?
            .execute([id])?;
            Ok(None)
        }
        Kind::Complaint => {
            event(
                tx,
                id,
                "complaint",
                v,
                at,
                "mail: feedback report",
                &v.detail,
            )?;
            set_status(
                tx,
                id,
                Status::Complained,
                &["confirmed", "pending", "unsubscribed", "bounced"],
                v,
                at,
                ("mail: feedback report", &v.detail),
            )
        }
        Kind::Unsubscribe => set_status(
            tx,
            id,
            Status::Unsubscribed,
            &live,
            v,
            at,
            ("mail: unsubscribe address", ""),
        ),
        Kind::AutoReply | Kind::Unrecognized => Ok(None),
    }
}
