//! CSRF protection for the forms this service renders: a signed double-submit
//! token. The same token goes in a `SameSite=Strict` cookie and in a hidden form
//! field; a POST is accepted only when both are present, equal, signed by this
//! process and not older than the form expiry.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The cookie that carries the token.
pub const COOKIE: &str = "herald_csrf";
/// The form field that carries the token.
pub const FIELD: &str = "csrf";

const NONCE: usize = 16;
const MAC: usize = 16;
const LEN: usize = 8 + NONCE + MAC;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CsrfError {
    #[error("the form has no security token: please use the form again")]
    Missing,
    #[error("the form's security token is not valid: please use the form again")]
    Invalid,
    #[error("the form has expired: please use it again")]
    Expired,
}

/// A per-process key: forms rendered before a restart must be submitted again.
pub struct Csrf {
    key: [u8; 32],
    max_age_secs: i64,
}

impl std::fmt::Debug for Csrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Csrf(..)")
    }
}

impl Csrf {
    pub fn new(max_age_secs: i64) -> Result<Csrf, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(Csrf { key, max_age_secs })
    }

    fn mac(&self, body: &[u8]) -> HmacSha256 {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"herald-serve csrf v1\0");
        mac.update(body);
        mac
    }

    /// A fresh token, issued at `now`.
    pub fn issue(&self, now: DateTime<Utc>) -> Result<String, getrandom::Error> {
        let mut buf = [0u8; LEN];
        buf[..8].copy_from_slice(&now.timestamp().to_be_bytes());
        getrandom::fill(&mut buf[8..8 + NONCE])?;
        let tag = self.mac(&buf[..8 + NONCE]).finalize().into_bytes();
        buf[8 + NONCE..].copy_from_slice(&tag[..MAC]);
        Ok(URL_SAFE_NO_PAD.encode(buf))
    }

    /// Accept a form whose field and cookie carry the same genuine, fresh token.
    pub fn verify(
        &self,
        field: Option<&str>,
        cookie: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), CsrfError> {
        let (Some(field), Some(cookie)) = (field, cookie) else {
            return Err(CsrfError::Missing);
        };
        if field.len() > 128 || !bool::from(field.as_bytes().ct_eq(cookie.as_bytes())) {
            return Err(CsrfError::Invalid);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(field)
            .map_err(|_| CsrfError::Invalid)?;
        if bytes.len() != LEN {
            return Err(CsrfError::Invalid);
        }
        self.mac(&bytes[..8 + NONCE])
            .verify_truncated_left(&bytes[8 + NONCE..])
            .map_err(|_| CsrfError::Invalid)?;
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&bytes[..8]);
        let age = now.timestamp() - i64::from_be_bytes(ts);
        // A token from the future means a clock jump; refuse it like an old one.
        if !(-60..=self.max_age_secs).contains(&age) {
            return Err(CsrfError::Expired);
        }
        Ok(())
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).single().expect("valid")
    }

    #[test]
    fn round_trip_and_refusals() {
        let c = Csrf::new(3600).expect("random");
        let t = c.issue(at(1_000_000)).expect("random");
        assert_eq!(c.verify(Some(&t), Some(&t), at(1_000_100)), Ok(()));
        assert_eq!(
            c.verify(Some(&t), None, at(1_000_100)),
            Err(CsrfError::Missing)
        );
        assert_eq!(
            c.verify(None, Some(&t), at(1_000_100)),
            Err(CsrfError::Missing)
        );
        let other = c.issue(at(1_000_000)).expect("random");
        assert_ne!(t, other);
        assert_eq!(
            c.verify(Some(&t), Some(&other), at(1_000_100)),
            Err(CsrfError::Invalid)
        );
        assert_eq!(
            c.verify(Some(&t), Some(&t), at(1_003_601)),
            Err(CsrfError::Expired)
        );
        // Another process's key.
        let c2 = Csrf::new(3600).expect("random");
        assert_eq!(
            c2.verify(Some(&t), Some(&t), at(1_000_100)),
            Err(CsrfError::Invalid)
        );
        // A changed timestamp breaks the signature.
        let mut raw = URL_SAFE_NO_PAD.decode(&t).expect("b64");
        raw[7] ^= 1;
        let forged = URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(
            c.verify(Some(&forged), Some(&forged), at(1_000_100)),
            Err(CsrfError::Invalid)
        );
        assert_eq!(
            c.verify(Some("x"), Some("x"), at(0)),
            Err(CsrfError::Invalid)
        );
    }

    #[test]
    fn cookie_header() {
        assert_eq!(cookie("a=1; herald_csrf=tok; b=2", COOKIE), Some("tok"));
        assert_eq!(cookie("a=1", COOKIE), None);
    }
}
