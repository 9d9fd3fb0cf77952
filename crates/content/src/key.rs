//! Render keys: a digest of everything one output file is made from, so the
//! pipeline can keep a file whose key is the one it was last rendered with and
//! skip rendering it (see [`crate::Sink::reuse`]). XXH3-128: it detects change;
//! nobody forges it (whoever can write content can publish anyway).

use xxhash_rust::xxh3::Xxh3;

use crate::Statement;

/// Builds a key from parts; each part is length-prefixed, so `("ab", "c")` and
/// `("a", "bc")` differ.
pub struct KeyHasher(Xxh3);

impl KeyHasher {
    /// A hasher for one kind of output (`domain` keeps kinds apart). herald's
    /// version is always part of the key: a new release renders everything again.
    pub fn new(domain: &str) -> KeyHasher {
        let mut k = KeyHasher(Xxh3::new());
        k.str(env!("CARGO_PKG_VERSION")).str(domain);
        k
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.update(&(b.len() as u64).to_le_bytes());
        self.0.update(b);
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    pub fn u64(&mut self, n: u64) -> &mut Self {
        self.0.update(&n.to_le_bytes());
        self
    }

    pub fn key(&mut self, k: u128) -> &mut Self {
        self.0.update(&k.to_le_bytes());
        self
    }

    /// An optional part (`None` and `Some("")` differ).
    pub fn opt(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            None => self.u64(0),
            Some(s) => self.u64(1).str(s),
        }
    }

    pub fn finish(&self) -> u128 {
        self.0.digest128()
    }
}

/// Everything a statement is: the file it came from (path: id, language, year)
/// and its bytes (the version digest covers front matter and body).
pub fn statement(s: &Statement) -> u128 {
    KeyHasher::new("statement")
        .str(&s.path.to_string_lossy())
        .str(&s.digest)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_delimited_and_order_matters() {
        let k = |parts: &[&str]| {
            let mut h = KeyHasher::new("t");
            for p in parts {
                h.str(p);
            }
            h.finish()
        };
        assert_ne!(k(&["ab", "c"]), k(&["a", "bc"]));
        assert_ne!(k(&["a", "b"]), k(&["b", "a"]));
        assert_eq!(k(&["a", "b"]), k(&["a", "b"]));
        assert_ne!(
            KeyHasher::new("t").opt(None).finish(),
            KeyHasher::new("t").opt(Some("")).finish()
        );
        assert_ne!(KeyHasher::new("a").finish(), KeyHasher::new("b").finish());
    }
}
