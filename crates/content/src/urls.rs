//! The layout of `public/`: every channel links to every other through these
//! paths, so no channel needs to know another. Paths are relative to the site
//! root, use `/`, and never start with one. [`absolute`] joins one onto
//! `base_url`; [`Paths`] is where a project keeps its files on disk.

use std::path::{Path, PathBuf};

use crate::statement::Statement;

/// Where a project keeps its files: every crate takes these from here rather than
/// joining folder names onto the root itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The folder that holds `content/`.
    pub root: PathBuf,
    pub content: PathBuf,
    pub templates: PathBuf,
    pub public: PathBuf,
    /// `.herald/`: the ledger, the lock, the link secret, temporary files. Ignored by git.
    pub state: PathBuf,
    /// `.herald/herald.db`: the ledger and herald-mail's tables.
    pub ledger: PathBuf,
    pub tmp: PathBuf,
}

impl Paths {
    pub fn new(root: &Path) -> Paths {
        let content = crate::content_dir(root);
        let state = root.join(".herald");
        Paths {
            root: root.to_path_buf(),
            templates: content.join("templates"),
            content,
            public: root.join("public"),
            ledger: state.join("herald.db"),
            tmp: state.join("tmp"),
            state,
        }
    }

    /// `content/herald.toml`.
    pub fn config(&self) -> PathBuf {
        self.content.join("herald.toml")
    }

    /// `.herald/load-cache`: statements as the last publish loaded them.
    pub fn load_cache(&self) -> PathBuf {
        self.state.join("load-cache")
    }

    /// `.herald/public-dirs`: the stamps of `public/`'s folders as the last
    /// publish left them (see herald's `dirs::DirStamps`).
    pub fn dir_stamps(&self) -> PathBuf {
        self.state.join("public-dirs")
    }

    /// A file below `public/`, from its relative URL path (e.g. [`pdf`]).
    pub fn public_file(&self, rel: &str) -> PathBuf {
        self.public.join(rel)
    }

    /// The mail outbox: `[mail] outbox`, relative to the project root.
    pub fn outbox(&self, configured: &Path) -> PathBuf {
        self.root.join(configured)
    }
}

/// The public URL of `path` (relative, as every function here returns it) below
/// `base_url` (which always ends with `/`).
pub fn absolute(base_url: &str, path: &str) -> String {
    format!("{base_url}{path}")
}

/// A file a channel produced, to be written atomically below `public/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Relative path below `public/`, e.g. `en/2014/world-day/index.html`.
    pub path: String,
    pub bytes: Vec<u8>,
}

/// The feed formats herald writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedKind {
    Rss,
    Atom,
    Json,
}

impl FeedKind {
    pub const ALL: [FeedKind; 3] = [FeedKind::Atom, FeedKind::Rss, FeedKind::Json];

    pub fn file_name(self) -> &'static str {
        match self {
            FeedKind::Rss => "rss.xml",
            FeedKind::Atom => "atom.xml",
            FeedKind::Json => "feed.json",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            FeedKind::Rss => "application/rss+xml",
            FeedKind::Atom => "application/atom+xml",
            FeedKind::Json => "application/feed+json",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            FeedKind::Rss => "RSS",
            FeedKind::Atom => "Atom",
            FeedKind::Json => "JSON Feed",
        }
    }
}

/// A language's index page: `en/`.
pub fn index(lang: &str) -> String {
    format!("{lang}/")
}

/// A statement's page: `en/2014/world-day/`.
pub fn page(s: &Statement) -> String {
    s.page_path()
}

/// A statement's PDF, beside its page: `en/2014/world-day/world-day.en.pdf`.
pub fn pdf(s: &Statement) -> String {
    format!("{}{}.pdf", s.page_path(), s.file_stem())
}

/// A topic's page: `en/topics/migration/`.
pub fn topic(lang: &str, topic: &str) -> String {
    format!("{lang}/topics/{topic}/")
}

/// A feed: `en/atom.xml`, or `en/topics/migration/atom.xml` for a topic.
pub fn feed(lang: &str, topic: Option<&str>, kind: FeedKind) -> String {
    match topic {
        Some(t) => format!("{}{}", self::topic(lang, t), kind.file_name()),
        None => format!("{lang}/{}", kind.file_name()),
    }
}

/// Where a feed's older entries live (RFC 5005 archives): `en/archive/`, or
/// `en/topics/migration/archive/`.
pub fn feed_archive_dir(lang: &str, topic: Option<&str>) -> String {
    match topic {
        Some(t) => format!("{}archive/", self::topic(lang, t)),
        None => format!("{lang}/archive/"),
    }
}

pub const SITEMAP: &str = "sitemap.xml";
pub const STYLESHEET: &str = "style.css";
/// The XSL stylesheet that makes feeds readable in a browser.
pub const FEED_XSL: &str = "feed.xsl";

/// Where channels put the files they produce. The pipeline's implementation writes
/// each one atomically below `public/` (and skips files whose bytes are unchanged),
/// so a channel can stream thousands of files without holding them in memory.
pub trait Sink: Sync {
    /// Store `bytes` at `path` (relative, `/`-separated, as in [`Output::path`]).
    fn put(&self, path: &str, bytes: &[u8]) -> std::io::Result<()>;

    /// Offer to keep the file an earlier run made at `path` from inputs whose
    /// render key (see [`crate::key`]) was `key`. True when the sink kept it: the
    /// caller then does not render it. Either way the sink remembers `key` as the
    /// key of what ends up at `path`. The default keeps nothing.
    fn reuse(&self, _path: &str, _key: u128) -> std::io::Result<bool> {
        Ok(false)
    }

    /// The bytes an earlier run recorded at `path`, when the file in place still
    /// holds exactly those bytes: a channel may take parts of it over instead of
    /// making them again (the feeds take unchanged entries' HTML). `None` when
    /// there is no such file, it changed since, or this run renders everything
    /// again. The default knows of no earlier run.
    fn previous(&self, _path: &str) -> Option<Vec<u8>> {
        None
    }
}

/// A sink that keeps everything in memory: for tests and previews.
#[derive(Debug, Default)]
pub struct MemorySink(pub std::sync::Mutex<std::collections::BTreeMap<String, Vec<u8>>>);

impl Sink for MemorySink {
    fn put(&self, path: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("memory sink poisoned"))?
            .insert(path.to_string(), bytes.to_vec());
        Ok(())
    }
}

impl MemorySink {
    /// The files written so far, by path.
    pub fn into_files(self) -> std::collections::BTreeMap<String, Vec<u8>> {
        self.0.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}
