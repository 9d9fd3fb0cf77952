//! herald-content: the content model every channel renders from.
//!
//! It owns `herald.toml`, statement files and their validation, and the Markdown
//! document tree. It reads files but never writes any, and knows no channel.

// A diagnostic is the cold path, read by a person; boxing it buys nothing.
#![allow(clippy::result_large_err)]

pub mod cache;
pub mod config;
pub mod diag;
pub mod doc;
pub mod files;
pub mod html;
pub mod key;
pub mod l10n;
pub mod limits;
pub mod markdown;
pub mod statement;
pub mod urls;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rayon::prelude::*;

pub use cache::{LoadCache, Stamp};
pub use config::{Config, Organization};
pub use diag::{Diagnostic, Diagnostics};
pub use doc::{Block, Document, Inline};
pub use statement::{FrontMatter, Statement};
pub use urls::{FeedKind, MemorySink, Output, Sink};

/// Everything in `content/`, valid.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The project root (the folder that holds `content/`).
    pub root: PathBuf,
    pub config: Config,
    /// Newest first (by `date`), then by id and language order in `herald.toml`.
    pub statements: Vec<Statement>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Invalid(Diagnostics),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `content/` below the project root.
pub fn content_dir(root: &Path) -> PathBuf {
    root.join("content")
}

fn shown(root: &Path, path: &Path) -> PathBuf {
    // Bytes first: `Path::strip_prefix` goes component by component, which
    // shows over 13,000 files.
    use std::os::unix::ffi::OsStrExt;
    let (r, p) = (root.as_os_str().as_bytes(), path.as_os_str().as_bytes());
    if let Some(rest) = p.strip_prefix(r).and_then(|rest| rest.strip_prefix(b"/"))
        && !rest.is_empty()
        && !rest.starts_with(b"/")
    {
        return PathBuf::from(std::ffi::OsStr::from_bytes(rest));
    }
    path.strip_prefix(root).unwrap_or(path).to_path_buf()
}

/// Stamps by path. Keyed by the path's bytes: `Path`'s own hash and equality go
/// component by component, several times slower over 13,000 files.
pub type Stamps = fast::HashMap<std::ffi::OsString, Stamp>;

/// Every statement file below `content/statements/`, sorted by path (hidden files
/// skipped, links leaving the project left out), as [`load`] reads them.
pub fn statement_files(root: &Path) -> Result<Vec<PathBuf>, LoadError> {
    Ok(statement_walk(root)?.files)
}

/// [`statement_files`] with the problems found on the way (links leaving the
/// project), which [`load_cached`] reports: a caller that stamps the files first
/// hands the walk over instead of having the tree walked twice.
pub fn statement_walk(root: &Path) -> Result<files::Walk, LoadError> {
    walk(root, &content_dir(root).join("statements"))
}

/// Every file below `content/assets/`, sorted by path, as the site copies them (hidden
/// files skipped, links leaving the project left out: [`load`] reports them).
pub fn asset_files(root: &Path) -> Result<Vec<PathBuf>, LoadError> {
    Ok(walk(root, &content_dir(root).join("assets"))?.files)
}

fn walk(root: &Path, dir: &Path) -> Result<files::Walk, LoadError> {
    files::walk(root, dir).map_err(|e| LoadError::Io {
        path: e
            .path()
            .map_or_else(|| dir.to_path_buf(), Path::to_path_buf),
        source: e.into(),
    })
}

/// A statement file, but never more than one byte past [`limits::FILE_BYTES`]:
/// enough to report it as too large without holding a huge file in memory.
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limits::FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Load and validate everything. Reports every problem in every file at once.
pub fn load(root: &Path) -> Result<Corpus, LoadError> {
    load_cached(root, LoadCache::default(), &Stamps::default(), None).map(|l| l.corpus)
}

/// [`load`], taking from `cache` every statement whose file still has the stamp
/// it was loaded at (same configuration, same herald): those files are not read
/// or parsed again. Returns the corpus and each statement file's stamp, from
/// which the caller can make the next run's cache ([`LoadCache::encode`]).
///
/// `stamped` may hold stamps the caller took of the statement files just before
/// (by path as found); others are taken here. `walked`: the caller's
/// [`statement_walk`], taken with those stamps.
pub fn load_cached(
    root: &Path,
    mut cache: LoadCache,
    stamped: &Stamps,
    walked: Option<files::Walk>,
) -> Result<Loaded, LoadError> {
    let content = content_dir(root);
    let config_path = urls::Paths::new(root).config();
    let config = Config::load(&config_path).map_err(|mut d| {
        d.file = shown(root, &d.file);
        LoadError::Invalid(Diagnostics(vec![d]))
    })?;
    let dir = content.join("statements");
    let files::Walk {
        files,
        problems: mut link_problems,
    } = match walked {
        Some(w) => w,
        None => walk(root, &dir)?,
    };
    link_problems.extend(walk(root, &content.join("assets"))?.problems);
    cache.retain_valid(&config);
    // Stamped before reading: an edit made meanwhile changes the stamp, so the
    // next run reads the file again. Cached statements are moved once, into
    // `statements`; only the others are read, side by side.
    let mut statements: Vec<Statement> = Vec::with_capacity(files.len());
    let mut stamps = Stamps::default();
    stamps.reserve(files.len());
    let mut to_read: Vec<(&PathBuf, PathBuf)> = Vec::new();
    for path in &files {
        let show = shown(root, path);
        let stamp = stamped
            .get(path.as_os_str())
            .copied()
            .or_else(|| std::fs::metadata(path).ok().map(|m| Stamp::of(&m)));
        if let Some(st) = stamp {
            stamps.insert(show.clone().into_os_string(), st);
        }
        match stamp.and_then(|st| cache.take(&show, path, st)) {
            Some(s) => statements.push(s),
            None => to_read.push((path, show)),
        }
    }
    let read = to_read.len();
    let parsed: Vec<Result<Statement, Vec<Diagnostic>>> = to_read
        .into_par_iter()
        .map(|(path, show)| {
            let rel = path.strip_prefix(&dir).unwrap_or(path);
            match read_bounded(path) {
                Ok(bytes) => statement::parse_file(&config, rel, &show, &bytes),
                Err(e) => Err(vec![Diagnostic::file(
                    "io",
                    &show,
                    format!("cannot read: {e}"),
                    "check the file's permissions",
                )]),
            }
        })
        .collect();
    let mut problems = link_problems;
    for p in parsed {
        match p {
            Ok(s) => statements.push(s),
            Err(d) => problems.extend(d),
        }
    }
    // Two files that would publish at the same address (named in path order).
    let mut seen: HashMap<(&str, &str, &str), &Statement> = HashMap::new();
    for s in &statements {
        let key = (s.year.as_str(), s.slug.as_str(), s.lang.as_str());
        if let Some(&other) = seen.get(&key) {
            let (first, second) = if other.path <= s.path {
                (other, s)
            } else {
                (s, other)
            };
            problems.push(Diagnostic::file(
                "duplicate",
                &second.path,
                format!(
                    "duplicate slug: {} and {} both publish {}",
                    first.path.display(),
                    second.path.display(),
                    second.page_path()
                ),
                "give one of them another file name or `slug`",
            ));
        } else {
            seen.insert(key, s);
        }
    }
    if !problems.is_empty() {
        problems.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        return Err(LoadError::Invalid(Diagnostics(problems)));
    }
    let lang_rank = |l: &str| {
        config
            .languages
            .iter()
            .position(|x| x == l)
            .unwrap_or(usize::MAX)
    };
    // Sorted by index, then put in place by swaps along the permutation's
    // cycles: a statement is hundreds of bytes, and no second vector is made.
    let mut order: Vec<usize> = (0..statements.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&statements[a], &statements[b]);
        b.meta
            .date
            .cmp(&a.meta.date)
            .then_with(|| a.id.cmp(&b.id))
            .then_with(|| lang_rank(&a.lang).cmp(&lang_rank(&b.lang)))
    });
    permute(&mut statements, order);
    Ok(Loaded {
        corpus: Corpus {
            root: root.to_path_buf(),
            config,
            statements,
        },
        stamps,
        read,
    })
}

/// Reorder `items` so that position `i` holds what was at `order[i]` (`order`
/// a permutation), by swaps: each item moves at most once into its place.
fn permute<T>(items: &mut [T], mut order: Vec<usize>) {
    const DONE: usize = usize::MAX;
    for i in 0..items.len() {
        if order[i] == DONE {
            continue;
        }
        let mut j = i;
        loop {
            let k = order[j];
            order[j] = DONE;
            if k == i {
                break;
            }
            items.swap(j, k);
            j = k;
        }
    }
}

/// What [`load_cached`] returns.
#[derive(Debug)]
pub struct Loaded {
    pub corpus: Corpus,
    /// Each statement file's stamp, taken before it was read.
    pub stamps: Stamps,
    /// Files read and parsed (not taken from the cache).
    pub read: usize,
}

impl Corpus {
    /// The statements due at `now` (embargo lifted, not drafts), newest first.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<&Statement> {
        self.statements.iter().filter(|s| s.is_due(now)).collect()
    }

    /// Statements still under embargo at `now` (not drafts), soonest first.
    pub fn embargoed(&self, now: DateTime<Utc>) -> Vec<&Statement> {
        let mut v: Vec<&Statement> = self
            .statements
            .iter()
            .filter(|s| !s.meta.draft && s.meta.publish_at > now)
            .collect();
        v.sort_by_key(|s| s.meta.publish_at);
        v
    }

    /// Every language version of a statement, in `herald.toml` order.
    pub fn translations<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Statement> + 'a {
        self.statements.iter().filter(move |s| s.id == id)
    }

    /// Every statement's language versions, by id, in `herald.toml` order: one pass,
    /// for callers that look up many ids ([`Corpus::translations`] scans every time).
    pub fn by_id(&self) -> HashMap<&str, Vec<&Statement>> {
        let mut map: HashMap<&str, Vec<&Statement>> = HashMap::new();
        for s in &self.statements {
            map.entry(s.id.as_str()).or_default().push(s);
        }
        map
    }

    pub fn get(&self, id: &str, lang: &str) -> Option<&Statement> {
        self.statements
            .iter()
            .find(|s| s.id == id && s.lang == lang)
    }
}

/// Hash maps and sets for the hot paths of a publish (tens of thousands of
/// lookups by path, id or key): foldhash instead of SipHash. Nobody outside
/// chooses these keys to collide: they are our own files and digests.
pub mod fast {
    pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
    pub type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
}

#[cfg(test)]
mod tests {
    use super::permute;

    /// Every position gets what the order names, for permutations with one
    /// cycle, several, fixed points, and none at all.
    #[test]
    fn permute_follows_the_order() {
        let orders: [&[usize]; 5] = [
            &[],
            &[0],
            &[2, 0, 1],
            &[1, 0, 3, 2, 4],
            &[4, 3, 2, 1, 0, 5, 7, 6],
        ];
        for order in orders {
            let items: Vec<String> = (0..order.len()).map(|i| format!("s{i}")).collect();
            let mut moved = items.clone();
            permute(&mut moved, order.to_vec());
            let expected: Vec<String> = order.iter().map(|&k| items[k].clone()).collect();
            assert_eq!(moved, expected, "order {order:?}");
        }
    }
}
