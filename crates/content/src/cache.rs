//! The load cache: statements as the last run loaded them, with the stamp of
//! their file, so an incremental publish reads and parses only the files that
//! changed. This crate decodes and encodes it; the pipeline stores the bytes
//! (herald-content writes no file). Bodies and trees are not kept: a cached
//! statement's body is read from its file when a channel first needs it (its
//! SHA-256 checked against the version), and its tree parsed then.

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

/// The stamp of each of `paths` (`None` where it cannot be looked at), links
/// followed (see [`metadata_of`]).
pub fn stamps_of(paths: &[impl AsRef<Path> + Sync]) -> Vec<Option<Stamp>> {
    metadata_of(paths)
        .into_iter()
        .map(|m| m.map(|m| Stamp::of(&m)))
        .collect()
}

/// The metadata of each of `paths` (`None` where it cannot be looked at), links
/// followed. Looked up by name in each folder's listing: the kernel then walks
/// a path once per folder, not once per file, which was two thirds of the cost
/// of 13,000 lookups by whole path. Folders holding few of them are looked up
/// by path.
pub fn metadata_of(paths: &[impl AsRef<Path> + Sync]) -> Vec<Option<std::fs::Metadata>> {
    use rayon::prelude::*;
    use std::ffi::OsStr;
    let by_path = |p: &Path| std::fs::metadata(p).ok();
    // The positions of `paths`, by folder.
    let mut folders: crate::fast::HashMap<&Path, Vec<usize>> = Default::default();
    for (i, p) in paths.iter().enumerate() {
        let p = p.as_ref();
        folders
            .entry(p.parent().unwrap_or(Path::new("")))
            .or_default()
            .push(i);
    }
    let found: Vec<Vec<(usize, Option<std::fs::Metadata>)>> = folders
        .into_par_iter()
        .map(|(dir, at)| {
            if at.len() < 8 || dir.as_os_str().is_empty() {
                return at
                    .iter()
                    .map(|&i| (i, by_path(paths[i].as_ref())))
                    .collect();
            }
            let mut wanted: crate::fast::HashMap<&OsStr, usize> = at
                .iter()
                .filter_map(|&i| Some((paths[i].as_ref().file_name()?, i)))
                .collect();
            let mut out = Vec::with_capacity(at.len());
            if let Ok(list) = std::fs::read_dir(dir) {
                for entry in list.flatten() {
                    let Some(i) = wanted.remove(entry.file_name().as_os_str()) else {
                        continue;
                    };
                    // The listing's look does not follow links: a link is looked up
                    // by path.
                    let st = match entry.metadata() {
                        Ok(m) if m.file_type().is_symlink() => by_path(paths[i].as_ref()),
                        Ok(m) => Some(m),
                        Err(_) => by_path(paths[i].as_ref()),
                    };
                    out.push((i, st));
                }
            }
            // Not in the listing (gone, or a name the listing spells otherwise).
            out.extend(
                wanted
                    .into_values()
                    .map(|i| (i, by_path(paths[i].as_ref()))),
            );
            out
        })
        .collect();
    let mut all: Vec<Option<std::fs::Metadata>> = (0..paths.len()).map(|_| None).collect();
    for (i, m) in found.into_iter().flatten() {
        all[i] = m;
    }
    all
}

/// Statements loaded before, by the path they are shown with.
#[derive(Debug, Default)]
pub struct LoadCache {
    config: u128,
    entries: EntryMap,
}

#[derive(Deserialize)]
struct Owned {
    version: String,
    config: u128,
    entries: Entries,
}

type EntryMap = crate::fast::HashMap<std::ffi::OsString, (Stamp, Statement)>;

/// The cached statements, decoded straight into the map a run looks them up in:
/// a statement is hundreds of bytes, and going through a vector first (grown
/// step by step, as serde does for a length it does not trust) copied the
/// whole corpus three times more.
struct Entries(EntryMap);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence of (path, stamp, statement)")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Entries, A::Error> {
                // A damaged length reserves at most this many.
                let mut map = EntryMap::default();
                map.reserve(seq.size_hint().unwrap_or(0).min(1 << 17));
                while let Some((p, st, s)) = seq.next_element::<(PathBuf, Stamp, Statement)>()? {
                    map.insert(p.into_os_string(), (st, s));
                }
                Ok(Entries(map))
            }
        }
        d.deserialize_seq(Visit)
    }
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
                entries: o.entries.0,
            },
            _ => LoadCache::default(),
        }
    }

    /// The bytes of a cache of `corpus`, with the stamps [`crate::load_cached`]
    /// returned (a statement without one is left out).
    pub fn encode(corpus: &Corpus, stamps: &crate::Stamps) -> Vec<u8> {
        let entries = corpus
            .statements
            .iter()
            .filter_map(|s| Some((s.path.as_path(), stamps.get(s.path.as_os_str())?, s)))
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
        match self.entries.remove(path.as_os_str()) {
            Some((st, s)) if st == stamp => Some(s.reading_body_from(file.to_path_buf())),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Looked up through listings, each stamp is the one a lookup by path
    /// gives: for plain files, a link (followed), a file gone, and a folder
    /// holding too few to list.
    #[test]
    fn stamps_through_listings_are_stamps_by_path() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let many = dir.path().join("many");
        std::fs::create_dir_all(&many)?;
        let mut paths = Vec::new();
        for i in 0..12 {
            let p = many.join(format!("f{i}.md"));
            std::fs::write(&p, "x".repeat(i))?;
            paths.push(p);
        }
        std::fs::write(dir.path().join("target.md"), "the target")?;
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("target.md"), many.join("link.md"))?;
            paths.push(many.join("link.md"));
        }
        paths.push(many.join("gone.md"));
        paths.push(dir.path().join("target.md"));
        let by_path: Vec<Option<Stamp>> = paths
            .iter()
            .map(|p| std::fs::metadata(p).ok().map(|m| Stamp::of(&m)))
            .collect();
        assert_eq!(stamps_of(&paths), by_path);
        assert!(by_path[..12].iter().all(Option::is_some));
        assert_eq!(by_path[by_path.len() - 2], None, "the file that is gone");
        #[cfg(unix)]
        assert_eq!(
            by_path[12].map(|s| s.to_bytes()[..8].to_vec()),
            Some(10u64.to_le_bytes().to_vec()),
            "the link's stamp is its target's (10 bytes)"
        );
        Ok(())
    }

    const CONFIG: &str = "title = \"T\"\nbase_url = \"https://ex.org/\"\nlanguages = [\"en\"]\ndefault_language = \"en\"\ntime_zone = \"UTC\"\n[organization]\nname = \"Org\"\n";

    fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tmp");
        let content = dir.path().join("content");
        std::fs::create_dir_all(content.join("statements/2014")).expect("mkdir");
        std::fs::write(content.join("herald.toml"), CONFIG).expect("config");
        std::fs::write(
            content.join("statements/2014/a.en.md"),
            "+++\ntitle = \"A\"\ndate = 2014-07-30T09:00:00Z\n+++\nThe first body.\n",
        )
        .expect("statement");
        dir
    }

    #[test]
    fn an_unchanged_file_comes_from_the_cache_and_reads_its_body_on_use() {
        let dir = project();
        let root = dir.path();
        let first = crate::load_cached(root, LoadCache::default(), &crate::Stamps::default(), None)
            .expect("load");
        assert_eq!(first.read, 1);
        let bytes = LoadCache::encode(&first.corpus, &first.stamps);
        let cache = LoadCache::decode(&bytes);
        assert_eq!(cache.len(), 1);
        let again = crate::load_cached(root, cache, &crate::Stamps::default(), None).expect("load");
        assert_eq!(again.read, 0, "nothing read again");
        let s = &again.corpus.statements[0];
        assert_eq!(s.digest, first.corpus.statements[0].digest);
        assert_eq!(s.body(), "The first body.\n");
        assert_eq!(s.document(), first.corpus.statements[0].document());
        // Damaged or foreign bytes are an empty cache, not an error.
        assert!(LoadCache::decode(b"not a cache").is_empty());
    }

    #[test]
    fn a_file_changed_after_its_stamp_gives_no_body() {
        let dir = project();
        let root = dir.path();
        let first = crate::load_cached(root, LoadCache::default(), &crate::Stamps::default(), None)
            .expect("load");
        let cache = LoadCache::decode(&LoadCache::encode(&first.corpus, &first.stamps));
        // The stamps as taken before the edit: the file changes between its
        // stamp and the moment a channel needs its body.
        let before: crate::Stamps = first
            .stamps
            .iter()
            .map(|(p, st)| (root.join(p).into_os_string(), *st))
            .collect();
        std::fs::write(
            root.join("content/statements/2014/a.en.md"),
            "+++\ntitle = \"A\"\ndate = 2014-07-30T09:00:00Z\n+++\nAn edited body.\n",
        )
        .expect("edit");
        let loaded = crate::load_cached(root, cache, &before, None).expect("load");
        assert_eq!(loaded.read, 0);
        let s = &loaded.corpus.statements[0];
        let err = s.try_body().expect_err("a changed file");
        assert!(err.contains("changed while herald was publishing"), "{err}");
        assert_eq!(s.body_failed(), Some(err));
        assert_eq!(s.body(), "");
    }

    #[test]
    fn another_configuration_empties_the_cache() {
        let dir = project();
        let root = dir.path();
        let first = crate::load_cached(root, LoadCache::default(), &crate::Stamps::default(), None)
            .expect("load");
        let cache = LoadCache::decode(&LoadCache::encode(&first.corpus, &first.stamps));
        std::fs::write(
            root.join("content/herald.toml"),
            CONFIG.replace("title = \"T\"", "title = \"U\""),
        )
        .expect("config");
        let again = crate::load_cached(root, cache, &crate::Stamps::default(), None).expect("load");
        assert_eq!(again.read, 1, "read again under the new configuration");
    }
}
