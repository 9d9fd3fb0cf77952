//! The load cache: statements as the last run loaded them, with the stamp of
//! their file, so an incremental publish reads and parses only the files that
//! changed. This crate decodes and encodes it; the pipeline stores the bytes
//! (herald-content writes no file). Bodies and trees are not kept: a cached
//! statement's body is read from its file when a channel first needs it (its
//! SHA-256 checked against the version), and its tree parsed then.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Config, Corpus, Statement};

/// What tells, without reading a file, that it is the file loaded before: size,
/// inode, and modification and change times to the nanosecond. Any write changes
/// the change time, which no user tool can set back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    len: u64,
    ino: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// The stamp as bytes, for digests of many stamps.
    pub fn to_bytes(&self) -> [u8; 48] {
        let mut out = [0u8; 48];
        let parts = [
            self.len as i64,
            self.ino as i64,
            self.mtime.0,
            self.mtime.1,
            self.ctime.0,
            self.ctime.1,
        ];
        for (i, n) in parts.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&n.to_le_bytes());
        }
        out
    }

    pub fn of(m: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            len: m.len(),
            ino: m.ino(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// Statements loaded before, by the path they are shown with.
#[derive(Debug, Default)]
pub struct LoadCache {
    config: u128,
    entries: HashMap<PathBuf, (Stamp, Statement)>,
}

#[derive(Deserialize)]
struct Owned {
    version: String,
    config: u128,
    entries: Vec<(PathBuf, Stamp, Statement)>,
}

#[derive(Serialize)]
struct Borrowed<'a> {
    version: &'a str,
    config: u128,
    entries: Vec<(&'a Path, &'a Stamp, &'a Statement)>,
}

/// Validation depends on the configuration (its languages) and on herald itself.
fn config_key(config: &Config) -> u128 {
    crate::key::KeyHasher::new("load-cache")
        .str(config.source())
        .finish()
}

impl LoadCache {
    /// The cache from its bytes; empty when they are missing, damaged or from
    /// another version of herald (then every file is read, as without a cache).
    pub fn decode(bytes: &[u8]) -> LoadCache {
        match postcard::from_bytes::<Owned>(bytes) {
            Ok(o) if o.version == env!("CARGO_PKG_VERSION") => LoadCache {
                config: o.config,
                entries: o
                    .entries
                    .into_iter()
                    .map(|(p, st, s)| (p, (st, s)))
                    .collect(),
            },
            _ => LoadCache::default(),
        }
    }

    /// The bytes of a cache of `corpus`, with the stamps [`crate::load_cached`]
    /// returned (a statement without one is left out).
    pub fn encode(corpus: &Corpus, stamps: &HashMap<PathBuf, Stamp>) -> Vec<u8> {
        let entries = corpus
            .statements
            .iter()
            .filter_map(|s| Some((s.path.as_path(), stamps.get(&s.path)?, s)))
            .collect();
        let b = Borrowed {
            version: env!("CARGO_PKG_VERSION"),
            config: config_key(&corpus.config),
            entries,
        };
        postcard::to_allocvec(&b).unwrap_or_default()
    }

    pub(crate) fn retain_valid(&mut self, config: &Config) {
        if self.config != config_key(config) {
            self.entries.clear();
        }
    }

    /// The cached statement of the file shown as `path` (found at `file`), if its
    /// stamp is `stamp`.
    pub(crate) fn take(&mut self, path: &Path, file: &Path, stamp: Stamp) -> Option<Statement> {
        match self.entries.remove(path) {
            Some((st, s)) if st == stamp => Some(s.from_cache(file.to_path_buf())),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
