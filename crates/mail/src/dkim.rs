//! DKIM signing (RFC 6376, relaxed/relaxed; RSA-SHA256 and Ed25519-SHA256 of
//! RFC 8463) of messages spliced from a template: the body hash of the part of
//! the body before the first per-recipient byte is computed once per template.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::settings::DkimAlgorithm;

/// The signed header fields, in this order. Absent ones are listed too, so
/// none can be added later (a Reply-To, say) without breaking the signature.
/// Not Content-Type: it is the MIME structure, fixed per template.
pub(crate) const SIGNED: [&str; 11] = [
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
];

enum Key {
    Rsa(Box<rsa::RsaPrivateKey>),
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

pub(crate) struct Signer {
    key: Key,
    /// `v=1; a=...; c=...; d=...; s=...;` then a fold.
    head: String,
    /// `h=...;` then a fold.
    list: String,
}

impl Signer {
    /// `text` is a PKCS#1 PEM RSA key or the base64 32-byte Ed25519 seed.
    pub(crate) fn new(
        text: &str,
        algorithm: DkimAlgorithm,
        selector: &str,
        domain: &str,
    ) -> Result<Signer, String> {
        let (key, a) = match algorithm {
            DkimAlgorithm::Rsa => {
                use rsa::pkcs1::DecodeRsaPrivateKey;
                let key = rsa::RsaPrivateKey::from_pkcs1_pem(text.trim())
                    .map_err(|e| format!("rsa decode error: {e}"))?;
                (Key::Rsa(Box::new(key)), "rsa-sha256")
            }
            DkimAlgorithm::Ed25519 => {
                let seed: [u8; 32] = STANDARD
                    .decode(text.trim())
                    .map_err(|e| format!("base64 decode error: {e}"))?
                    .try_into()
                    .map_err(|_| "ed25519 decode error: not 32 bytes".to_string())?;
                (
                    Key::Ed25519(Box::new(ed25519_dalek::SigningKey::from_bytes(&seed))),
                    "ed25519-sha256",
                )
            }
        };
        let list = SIGNED
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(":");
        Ok(Signer {
            key,
            head: format!(
                "DKIM-Signature: v=1; a={a}; c=relaxed/relaxed; d={domain}; s={selector};\r\n q=dns/txt;"
            ),
            list: format!(" h={list};\r\n"),
        })
    }

    /// The DKIM-Signature field (with its CRLF) for a message whose signed
    /// fields, canonicalized and in [`SIGNED`] order, are `fields`.
    pub(crate) fn field(
        &self,
        fields: &[u8],
        body_hash: &[u8; 32],
        t: i64,
    ) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(self.head.as_bytes());
        out.extend_from_slice(format!(" t={t};\r\n").as_bytes());
        out.extend_from_slice(self.list.as_bytes());
        out.extend_from_slice(b" bh=");
        out.extend_from_slice(STANDARD.encode(body_hash).as_bytes());
        out.extend_from_slice(b";\r\n b=");
        // Signed as it is sent, with an empty b= and without the final CRLF.
        let mut signed = Vec::with_capacity(fields.len() + out.len());
        signed.extend_from_slice(fields);
        canon_field(&out, &mut signed);
        signed.truncate(signed.len() - 2);
        let digest = Sha256::digest(&signed);
        let signature = match &self.key {
            Key::Rsa(key) => key
                .sign(rsa::pkcs1v15::Pkcs1v15Sign::new::<Sha256>(), &digest)
                .map_err(|e| format!("RSA signing failed: {e}"))?,
            Key::Ed25519(key) => {
                use ed25519_dalek::Signer as _;
                key.sign(&digest).to_bytes().to_vec()
            }
        };
        let b = STANDARD.encode(signature);
        // Folded: whitespace inside b= is ignored by verifiers (RFC 6376 3.5).
        for (i, chunk) in b.as_bytes().chunks(72).enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\r\n ");
            }
            out.extend_from_slice(chunk);
        }
        out.extend_from_slice(b"\r\n");
        Ok(out)
    }
}

/// Relaxed header canonicalization of one field (`Name: value` with its folds
/// and CRLF): name lowercased, unfolded, runs of whitespace one space, none at
/// either end of the value. Appends `name:value` and CRLF.
pub(crate) fn canon_field(raw: &[u8], out: &mut Vec<u8>) {
    let colon = raw.iter().position(|&b| b == b':').unwrap_or(raw.len());
    let name = raw[..colon].trim_ascii_end();
    out.extend(name.iter().map(u8::to_ascii_lowercase));
    out.push(b':');
    let mut space = false;
    let mut started = false;
    for &b in raw.get(colon + 1..).unwrap_or_default() {
        match b {
            b'\r' | b'\n' => {}
            b' ' | b'\t' => space = started,
            _ => {
                if space {
                    out.push(b' ');
                    space = false;
                }
                started = true;
                out.push(b);
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Relaxed body canonicalization (RFC 6376 3.4.4) streamed into SHA-256:
/// whitespace at line ends dropped, runs of it one space, empty lines at the
/// end dropped, a final CRLF. Cloned to reuse the hash of a common prefix.
#[derive(Clone, Default)]
pub(crate) struct BodyHash {
    sha: Sha256,
    /// Whitespace seen and not yet written.
    space: bool,
    /// Line ends seen and not yet written (they may be trailing empty lines).
    lines: usize,
    /// A CR that may start a CRLF.
    cr: bool,
    any: bool,
}

impl std::fmt::Debug for BodyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyHash(..)")
    }
}

impl BodyHash {
    pub(crate) fn update(&mut self, mut bytes: &[u8]) {
        while let Some((&b, rest)) = bytes.split_first() {
            match b {
                b'\n' if self.cr => {
                    self.cr = false;
                    self.space = false;
                    self.lines += 1;
                    bytes = rest;
                }
                b' ' | b'\t' => {
                    self.held_cr();
                    self.space = true;
                    bytes = rest;
                }
                b'\r' => {
                    self.held_cr();
                    self.cr = true;
                    bytes = rest;
                }
                _ => {
                    self.held_cr();
                    let run = bytes
                        .iter()
                        .position(|b| matches!(b, b' ' | b'\t' | b'\r'))
                        .unwrap_or(bytes.len());
                    self.pending();
                    self.sha.update(&bytes[..run]);
                    bytes = &bytes[run..];
                }
            }
        }
    }

    /// A CR not followed by LF is an ordinary byte.
    fn held_cr(&mut self) {
        if self.cr {
            self.cr = false;
            self.pending();
            self.sha.update(b"\r");
        }
    }

    /// Write the line ends and the space that come before a visible byte.
    fn pending(&mut self) {
        for _ in 0..self.lines {
            self.sha.update(b"\r\n");
        }
        self.lines = 0;
        if self.space {
            self.sha.update(b" ");
            self.space = false;
        }
        self.any = true;
    }

    pub(crate) fn finish(mut self) -> [u8; 32] {
        self.held_cr();
        if self.any {
            self.sha.update(b"\r\n");
        }
        self.sha.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(b: &[u8]) -> [u8; 32] {
        let mut h = BodyHash::default();
        h.update(b);
        h.finish()
    }

    #[test]
    fn relaxed_body_matches_the_rfc_example() {
        // RFC 6376 3.4.6: " C \r\nD \t E\r\n\r\n\r\n" -> " C\r\nD E\r\n".
        assert_eq!(
            body(b" C \r\nD \t E\r\n\r\n\r\n"),
            <[u8; 32]>::from(Sha256::digest(b" C\r\nD E\r\n"))
        );
        assert_eq!(body(b"a\r\nb"), body(b"a\r\nb\r\n\r\n"));
        assert_eq!(body(b""), <[u8; 32]>::from(Sha256::digest(b"")));
        // Split anywhere, the same hash.
        let text = b"x  y \r\n\tz\r\r\n\r\n.\r\n \r\n";
        for i in 0..text.len() {
            let mut h = BodyHash::default();
            h.update(&text[..i]);
            h.update(&text[i..]);
            assert_eq!(h.finish(), body(text), "split at {i}");
        }
    }

    #[test]
    fn relaxed_field_matches_the_rfc_example() {
        let mut out = Vec::new();
        canon_field(b"A: X\r\n", &mut out);
        canon_field(b"B : Y\t\r\n\tZ  \r\n", &mut out);
        assert_eq!(out, b"a:X\r\nb:Y Z\r\n");
    }
}
