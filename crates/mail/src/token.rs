//! Signed tokens for links in mails: unsubscribe, confirm, preferences.
//!
//! A token names one subscriber, one purpose, optionally an expiry, and a key
//! the subscriber's row holds (its random `token_key`, or for a confirmation
//! link the row's current `confirm_key`), and carries an HMAC-SHA256 over them
//! (truncated to 128 bits). Verification is constant time. The signature proves
//! who made the token; the key, checked by the store against the row, proves the
//! row is still the one the token was made for (ids are never reused, and a used
//! confirmation key is cleared, so a link outlives neither its subscriber nor its
//! purpose).
//!
//! Version 1 tokens (before keys) carry no key: they are still read, and the
//! store accepts them only on rows that existed when it was migrated.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The environment variable that holds the secret (hex, at least 32 bytes).
pub const SECRET_ENV: &str = "HERALD_SECRET";
/// The file below the state folder (`.herald/`) that holds a generated secret.
pub const SECRET_FILE: &str = "secret";

const V1: u8 = 1;
const V2: u8 = 2;
const MAC_LEN: usize = 16;
const V1_BODY: usize = 1 + 1 + 8 + 8;
const V1_LEN: usize = V1_BODY + MAC_LEN;
/// Version, purpose, subscriber, expiry, key.
const BODY_LEN: usize = 1 + 1 + 8 + 8 + 8;
const TOKEN_LEN: usize = BODY_LEN + MAC_LEN;
/// Every token issued is this many characters (unpadded base64 of a fixed length).
pub(crate) const TOKEN_CHARS: usize = (TOKEN_LEN * 4).div_ceil(3);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the link is damaged or incomplete")]
    Malformed,
    #[error("the link's signature does not match")]
    BadSignature,
    #[error("the link was made for another purpose")]
    WrongPurpose,
    #[error("the link has expired")]
    Expired,
    #[error("the secret must be at least 32 bytes, written in hex ({0})")]
    WeakSecret(String),
    #[error("cannot read or create the secret file {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("cannot generate a random secret: {0}")]
    Random(String),
}

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// One-click unsubscribe (RFC 8058); never expires.
    Unsubscribe,
    /// Double opt-in confirmation; should expire.
    Confirm,
    /// The preferences page (language, topics).
    Preferences,
}

impl Purpose {
    fn code(self) -> u8 {
        match self {
            Purpose::Unsubscribe => 1,
            Purpose::Confirm => 2,
            Purpose::Preferences => 3,
        }
    }
    fn from_code(c: u8) -> Option<Purpose> {
        match c {
            1 => Some(Purpose::Unsubscribe),
            2 => Some(Purpose::Confirm),
            3 => Some(Purpose::Preferences),
            _ => None,
        }
    }
}

/// What a genuine, unexpired token names. The store decides whether it still
/// names a row ([`crate::MailStore::bound`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claim {
    pub subscriber: i64,
    /// The row's key the token was made with; `None` for a version 1 token.
    pub key: Option<i64>,
}

/// The HMAC key. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A key from raw bytes (at least 32).
    pub fn from_bytes(bytes: &[u8]) -> Result<Secret, TokenError> {
        if bytes.len() < 32 {
            return Err(TokenError::WeakSecret(format!("got {} bytes", bytes.len())));
        }
        Ok(Secret(bytes.to_vec()))
    }

    /// A key from hex text (at least 64 hex digits).
    pub fn from_hex(text: &str) -> Result<Secret, TokenError> {
        let bytes = hex::decode(text.trim())
            .map_err(|e| TokenError::WeakSecret(format!("not hex: {e}")))?;
        Secret::from_bytes(&bytes)
    }

    /// A fresh random key.
    pub fn generate() -> Result<Secret, TokenError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
        Ok(Secret(bytes.to_vec()))
    }

    /// `env` when given (the value of `HERALD_SECRET`), else the file `state_dir/secret`,
    /// created with a random key (mode 0600) the first time. `herald serve` and `publish`
    /// must see the same key: both use the same `.herald/` folder.
    pub fn load(state_dir: &Path, env: Option<&str>) -> Result<Secret, TokenError> {
        if let Some(value) = env.filter(|v| !v.trim().is_empty()) {
            return Secret::from_hex(value);
        }
        let path = state_dir.join(SECRET_FILE);
        let io = |e: std::io::Error| TokenError::Io {
            path: path.clone(),
            reason: e.to_string(),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Secret::from_hex(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(state_dir).map_err(io)?;
                let secret = Secret::generate()?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                match options.open(&path) {
                    Ok(mut f) => {
                        f.write_all(hex::encode(&secret.0).as_bytes()).map_err(io)?;
                        f.sync_all().map_err(io)?;
                        Ok(secret)
                    }
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Secret::from_hex(&std::fs::read_to_string(&path).map_err(io)?)
                    }
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    /// [`Secret::load`] with `HERALD_SECRET` from the process environment.
    pub fn from_env_or_file(state_dir: &Path) -> Result<Secret, TokenError> {
        let env = std::env::var(SECRET_ENV).ok();
        Secret::load(state_dir, env.as_deref())
    }

    fn mac(&self, version: u8) -> HmacSha256 {
        // HMAC accepts keys of any length; `from_bytes` guarantees a strong one.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        if version == V1 {
            mac.update(b"herald-mail token v1\0");
        } else {
            mac.update(b"herald-mail token v2\0");
        }
        mac
    }

    /// A URL-safe token for `subscriber` (56 characters, `[A-Za-z0-9_-]`), bound to
    /// `key`: the row's `token_key`, or its `confirm_key` for [`Purpose::Confirm`].
    pub fn issue(
        &self,
        purpose: Purpose,
        subscriber: i64,
        key: i64,
        expires: Option<DateTime<Utc>>,
    ) -> String {
        let mut buf = [0u8; TOKEN_LEN];
        buf[0] = V2;
        buf[1] = purpose.code();
        buf[2..10].copy_from_slice(&subscriber.to_be_bytes());
        let exp = expires.map_or(0, |e| e.timestamp().max(1));
        buf[10..18].copy_from_slice(&exp.to_be_bytes());
        buf[18..26].copy_from_slice(&key.to_be_bytes());
        let mut mac = self.mac(V2);
        mac.update(&buf[..BODY_LEN]);
        let tag = mac.finalize().into_bytes();
        buf[BODY_LEN..].copy_from_slice(&tag[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(buf)
    }

    /// A version 1 token, as herald made them before keys (tests of old links).
    #[doc(hidden)]
    pub fn issue_v1(
        &self,
        purpose: Purpose,
        subscriber: i64,
        expires: Option<DateTime<Utc>>,
    ) -> String {
        let mut buf = [0u8; V1_LEN];
        buf[0] = V1;
        buf[1] = purpose.code();
        buf[2..10].copy_from_slice(&subscriber.to_be_bytes());
        let exp = expires.map_or(0, |e| e.timestamp().max(1));
        buf[10..18].copy_from_slice(&exp.to_be_bytes());
        let mut mac = self.mac(V1);
        mac.update(&buf[..V1_BODY]);
        let tag = mac.finalize().into_bytes();
        buf[V1_BODY..].copy_from_slice(&tag[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(buf)
    }

    /// What a token names, if it is genuine, for `purpose`, and not expired at `now`.
    pub fn verify(
        &self,
        token: &str,
        purpose: Purpose,
        now: DateTime<Utc>,
    ) -> Result<Claim, TokenError> {
        if token.len() > 64 {
            return Err(TokenError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| TokenError::Malformed)?;
        let body = match (bytes.first(), bytes.len()) {
            (Some(&V1), V1_LEN) => V1_BODY,
            (Some(&V2), TOKEN_LEN) => BODY_LEN,
            _ => return Err(TokenError::Malformed),
        };
        let mut mac = self.mac(bytes[0]);
        mac.update(&bytes[..body]);
        mac.verify_truncated_left(&bytes[body..])
            .map_err(|_| TokenError::BadSignature)?;
        // Only signed bytes are read below.
        if Purpose::from_code(bytes[1]) != Some(purpose) {
            return Err(TokenError::WrongPurpose);
        }
        let field = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            i64::from_be_bytes(b)
        };
        let exp = field(10);
        if exp != 0 && now.timestamp() >= exp {
            return Err(TokenError::Expired);
        }
        Ok(Claim {
            subscriber: field(2),
            key: (body == BODY_LEN).then(|| field(18)),
        })
    }
}

/// What a VERP token (in an address's local part) answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerpKind {
    /// The envelope sender of one bulletin row: a bounce names the row.
    Bounce,
    /// The `mailto:` unsubscribe address of one subscriber.
    Unsubscribe,
}

impl VerpKind {
    fn letter(self) -> u8 {
        match self {
            VerpKind::Bounce => b'b',
            VerpKind::Unsubscribe => b'u',
        }
    }
}

/// What a genuine VERP token names: for a bounce, the bulletin row (`id`) and
/// its subscriber (`key`); for an unsubscribe, the subscriber (`id`) and the
/// row's `token_key` (`key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerpClaim {
    pub kind: VerpKind,
    pub id: i64,
    pub key: i64,
}

const VERP_MAC: usize = 10;
const VERP_BYTES: usize = 8 + 8 + VERP_MAC;
/// Every VERP token is this many characters: a kind letter and lowercase base32.
/// Lowercase letters and digits only, so a relay that folds the case of a local
/// part (some do) or a mail client cannot damage it, and `<local>+<token>` stays
/// below the 64 characters of a local part for any local part up to 20.
pub const VERP_CHARS: usize = 1 + (VERP_BYTES * 8).div_ceil(5);

impl Secret {
    fn verp_mac(&self, kind: VerpKind, body: &[u8]) -> [u8; VERP_MAC] {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"herald-mail verp v1\0");
        mac.update(&[kind.letter()]);
        mac.update(body);
        let tag = mac.finalize().into_bytes();
        let mut out = [0u8; VERP_MAC];
        out.copy_from_slice(&tag[..VERP_MAC]);
        out
    }

    /// A token of [`VERP_CHARS`] characters (`[a-z2-7]`) for an address's local part.
    pub fn verp(&self, kind: VerpKind, id: i64, key: i64) -> String {
        let mut buf = [0u8; VERP_BYTES];
        buf[..8].copy_from_slice(&id.to_be_bytes());
        buf[8..16].copy_from_slice(&key.to_be_bytes());
        let tag = self.verp_mac(kind, &buf[..16]);
        buf[16..].copy_from_slice(&tag);
        let mut out = String::with_capacity(VERP_CHARS);
        out.push(char::from(kind.letter()));
        out.push_str(
            &data_encoding::BASE32_NOPAD
                .encode(&buf)
                .to_ascii_lowercase(),
        );
        out
    }

    /// What a VERP token names, if it is genuine (any case; constant-time check).
    pub fn verify_verp(&self, token: &str) -> Result<VerpClaim, TokenError> {
        if token.len() != VERP_CHARS || !token.is_ascii() {
            return Err(TokenError::Malformed);
        }
        let kind = match token.as_bytes()[0].to_ascii_lowercase() {
            b'b' => VerpKind::Bounce,
            b'u' => VerpKind::Unsubscribe,
            _ => return Err(TokenError::Malformed),
        };
        let bytes = data_encoding::BASE32_NOPAD
            .decode(token[1..].to_ascii_uppercase().as_bytes())
            .map_err(|_| TokenError::Malformed)?;
        if bytes.len() != VERP_BYTES {
            return Err(TokenError::Malformed);
        }
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"herald-mail verp v1\0");
        mac.update(&[kind.letter()]);
        mac.update(&bytes[..16]);
        mac.verify_truncated_left(&bytes[16..])
            .map_err(|_| TokenError::BadSignature)?;
        let field = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            i64::from_be_bytes(b)
        };
        Ok(VerpClaim {
            kind,
            id: field(0),
            key: field(8),
        })
    }
}

/// `local+token@domain` from `address` (`local@domain`).
pub fn verp_address(address: &str, token: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => format!("{local}+{token}@{domain}"),
        None => format!("{address}+{token}"),
    }
}

/// The VERP token in `address`'s local part (after the last `+`), if any.
pub fn verp_token(address: &str) -> Option<&str> {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    let local = address.rsplit_once('@').map_or(address, |(l, _)| l);
    let (_, token) = local.rsplit_once('+')?;
    (token.len() == VERP_CHARS).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn secret() -> Secret {
        Secret::from_bytes(&[7u8; 32]).expect("32 bytes")
    }

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).single().expect("valid")
    }

    #[test]
    fn round_trip_and_unique_per_subscriber() {
        let s = secret();
        let a = s.issue(Purpose::Unsubscribe, 1, 11, None);
        let b = s.issue(Purpose::Unsubscribe, 2, 11, None);
        assert_ne!(a, b);
        assert_eq!(a.len(), 56);
        assert_eq!(a.len(), TOKEN_CHARS);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        let claim = |subscriber, key| Ok(Claim { subscriber, key });
        assert_eq!(
            s.verify(&a, Purpose::Unsubscribe, at(0)),
            claim(1, Some(11))
        );
        assert_eq!(
            s.verify(&b, Purpose::Unsubscribe, at(0)),
            claim(2, Some(11))
        );
        // Version 1 links (mailed before keys) still verify, with no key.
        let old = s.issue_v1(Purpose::Unsubscribe, 7, None);
        assert_eq!(old.len(), 46);
        assert_eq!(s.verify(&old, Purpose::Unsubscribe, at(0)), claim(7, None));
        assert_eq!(
            s.verify(&old, Purpose::Confirm, at(0)),
            Err(TokenError::WrongPurpose)
        );
        // A v1 body under a v2 version byte is not a token.
        let mut raw = URL_SAFE_NO_PAD.decode(&old).expect("b64");
        raw[0] = V2;
        assert_eq!(
            s.verify(&URL_SAFE_NO_PAD.encode(&raw), Purpose::Unsubscribe, at(0)),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn the_key_is_signed() {
        let s = secret();
        let t = s.issue(Purpose::Confirm, 3, 99, None);
        let mut raw = URL_SAFE_NO_PAD.decode(&t).expect("b64");
        raw[25] ^= 1;
        assert_eq!(
            s.verify(&URL_SAFE_NO_PAD.encode(&raw), Purpose::Confirm, at(0)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn forged_wrong_purpose_expired_and_other_key_refused() {
        let s = secret();
        let t = s.issue(Purpose::Confirm, 42, 5, Some(at(1000)));
        assert_eq!(
            s.verify(&t, Purpose::Confirm, at(999)),
            Ok(Claim {
                subscriber: 42,
                key: Some(5)
            })
        );
        assert_eq!(
            s.verify(&t, Purpose::Confirm, at(1000)),
            Err(TokenError::Expired)
        );
        assert_eq!(
            s.verify(&t, Purpose::Unsubscribe, at(0)),
            Err(TokenError::WrongPurpose)
        );
        // Flip one bit in the subscriber id: the signature no longer matches.
        let mut raw = URL_SAFE_NO_PAD.decode(&t).expect("b64");
        raw[9] ^= 1;
        let forged = URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(
            s.verify(&forged, Purpose::Confirm, at(0)),
            Err(TokenError::BadSignature)
        );
        let other = Secret::from_bytes(&[8u8; 32]).expect("32 bytes");
        assert_eq!(
            other.verify(&t, Purpose::Confirm, at(0)),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            s.verify("", Purpose::Confirm, at(0)),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            s.verify("!!!", Purpose::Confirm, at(0)),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            s.verify(&t[..40], Purpose::Confirm, at(0)),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn weak_secrets_refused() {
        assert!(matches!(
            Secret::from_bytes(&[1u8; 16]),
            Err(TokenError::WeakSecret(_))
        ));
        assert!(matches!(
            Secret::from_hex("zz"),
            Err(TokenError::WeakSecret(_))
        ));
        assert!(Secret::from_hex(&"ab".repeat(32)).is_ok());
    }

    #[test]
    fn file_secret_is_created_once_and_env_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Secret::load(dir.path(), None).expect("created");
        let b = Secret::load(dir.path(), None).expect("read back");
        let t = a.issue(Purpose::Unsubscribe, 5, 1, None);
        assert_eq!(
            b.verify(&t, Purpose::Unsubscribe, at(0))
                .map(|c| c.subscriber),
            Ok(5)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let env = Secret::load(dir.path(), Some(&"cd".repeat(32))).expect("env");
        assert_eq!(
            env.verify(&t, Purpose::Unsubscribe, at(0)),
            Err(TokenError::BadSignature)
        );
        assert!(format!("{env:?}").contains(".."));
    }

    #[test]
    fn verp_tokens_are_fixed_length_signed_and_case_proof() {
        let s = secret();
        let t = s.verp(VerpKind::Bounce, 12345, 7);
        assert_eq!(t.len(), VERP_CHARS);
        assert_eq!(s.verp(VerpKind::Bounce, i64::MAX, -1).len(), VERP_CHARS);
        assert!(
            t.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        let claim = VerpClaim {
            kind: VerpKind::Bounce,
            id: 12345,
            key: 7,
        };
        assert_eq!(s.verify_verp(&t), Ok(claim));
        assert_eq!(s.verify_verp(&t.to_ascii_uppercase()), Ok(claim));
        let addr = verp_address("bounces@ex.org", &t);
        assert_eq!(verp_token(&addr), Some(t.as_str()));
        assert_eq!(verp_token(&format!("<{addr}>")), Some(t.as_str()));
        assert!(addr.split('@').next().is_some_and(|l| l.len() <= 64));
        // Another kind, another key, one changed character: refused.
        let u = s.verp(VerpKind::Unsubscribe, 12345, 7);
        assert_ne!(u[1..], t[1..]);
        let swapped = format!("u{}", &t[1..]);
        assert_eq!(s.verify_verp(&swapped), Err(TokenError::BadSignature));
        let mut bad = t.clone().into_bytes();
        bad[10] = if bad[10] == b'a' { b'b' } else { b'a' };
        let bad = String::from_utf8(bad).expect("ascii");
        assert_eq!(s.verify_verp(&bad), Err(TokenError::BadSignature));
        assert_eq!(s.verify_verp("bshort"), Err(TokenError::Malformed));
        let other = Secret::from_bytes(&[8u8; 32]).expect("32 bytes");
        assert_eq!(other.verify_verp(&t), Err(TokenError::BadSignature));
    }
}
