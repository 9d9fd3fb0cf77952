//! herald-feed: RSS 2.0, Atom 1.0 and JSON Feed 1.1 for every language and every
//! topic, with RFC 5005 archives for the full history and optional WebSub.
//!
//! The pipeline decides what is published at `now` and passes it in, each entry
//! with what the ledger stored at its first publication (its `tag:` id and the
//! instant). This crate turns that into bytes and never reads the clock, the
//! ledger or another channel's output.

mod atom;
mod json;
mod model;
mod rss;
pub mod settings;
pub mod text;
mod websub;
mod xml;

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use herald_content::urls::{self, FeedKind, Sink};
use herald_content::{Corpus, Statement};

pub use settings::FeedSettings;
pub use websub::{PingError, ping_hub};

/// The XSL stylesheet written to [`urls::FEED_XSL`]: feeds opened in a browser
/// show as a page with a "how to subscribe" line.
pub const FEED_XSL: &str = include_str!("feed.xsl");

/// What the pipeline hands over for one render.
#[derive(Debug, Clone)]
pub struct FeedInput<'a> {
    pub corpus: &'a Corpus,
    /// `[feed]` as the pipeline read it once; none: read from `corpus.config`.
    pub settings: Option<&'a FeedSettings>,
    /// The instant of this publish; every entry must be due at it.
    pub now: DateTime<Utc>,
    /// The statements published at `now` (any order), one per statement and language.
    pub entries: Vec<FeedEntry<'a>>,
}

/// One published statement in one language, with what the ledger stores for it.
#[derive(Debug, Clone)]
pub struct FeedEntry<'a> {
    pub statement: &'a Statement,
    /// The permanent id, minted once with [`tag_uri`] at first publication.
    pub tag: String,
    /// When the statement was first published in this language.
    pub first_published: DateTime<Utc>,
    /// The PDF's exact size in bytes, when the PDF channel made one.
    pub pdf_length: Option<u64>,
}

/// What a render wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedReport {
    /// Every file passed to the sink, in order (feeds, archive pages, `feed.xsl`).
    pub files: Vec<String>,
    /// The subscription feeds (not archive pages): what WebSub hubs are told about.
    pub feeds: Vec<FeedFile>,
    /// Entries rendered (statement-language pairs).
    pub entries: usize,
}

/// A subscription feed: its path below `public/` and its absolute URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedFile {
    pub path: String,
    pub url: String,
}

impl FeedReport {
    /// The URLs of the subscription feeds among `changed` (paths whose bytes the
    /// sink found changed): the topics to pass to [`ping_hub`].
    pub fn changed_feed_urls<S: AsRef<str>>(&self, changed: &[S]) -> Vec<String> {
        let changed: HashSet<&str> = changed.iter().map(AsRef::as_ref).collect();
        self.feeds
            .iter()
            .filter(|f| changed.contains(f.path.as_str()))
            .map(|f| f.url.clone())
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("{0}")]
    Config(Box<herald_content::Diagnostic>),
    #[error("in [feed] of herald.toml: {key} = {value:?} is not valid; {hint}")]
    Setting {
        key: &'static str,
        value: String,
        hint: &'static str,
    },
    #[error(
        "{id} ({lang}) is embargoed until {publish_at} (or a draft) and must not be in a feed at {now}"
    )]
    NotDue {
        id: String,
        lang: String,
        publish_at: String,
        now: String,
    },
    #[error("{id} ({lang}) is given twice")]
    Duplicate { id: String, lang: String },
    #[error("{id} ({lang}): {tag:?} is not a tag: URI (RFC 4151); mint it with tag_uri")]
    BadTag {
        id: String,
        lang: String,
        tag: String,
    },
    #[error("{first} and {second} share the entry id {tag}; each needs its own")]
    SharedTag {
        first: String,
        second: String,
        tag: String,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot encode {path}: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
}

/// The permanent entry id of a statement in a language:
/// `tag:statements.example.org,2014-07-30:2014/world-day.en` (RFC 4151). The date is
/// the UTC day of first publication. Mint it once and store it: it must never be
/// recomputed from a later `base_url`, slug or date.
pub fn tag_uri(authority: &str, first_published: DateTime<Utc>, id: &str, lang: &str) -> String {
    format!(
        "tag:{},{}:{}.{}",
        authority.to_ascii_lowercase(),
        first_published.format("%Y-%m-%d"),
        tag_specific(id),
        tag_specific(lang)
    )
}

/// RFC 4151 `specific`: pchar, `/` and `?`; anything else percent-encoded.
fn tag_specific(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether `s` looks like a tag URI this crate can put in a feed.
pub fn is_tag_uri(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("tag:") else {
        return false;
    };
    let Some((entity, specific)) = rest.split_once(':') else {
        return false;
    };
    let Some((authority, date)) = entity.rsplit_once(',') else {
        return false;
    };
    settings::is_authority(authority)
        && settings::is_tag_date(date)
        && !specific.is_empty()
        && specific
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b))
}

/// Render every feed (per language, per topic and language; RSS, Atom and JSON
/// Feed; subscription and archive pages) and the XSL stylesheet into `sink`.
///
/// Output depends only on the input: the same input gives the same bytes.
pub fn render(input: &FeedInput<'_>, sink: &dyn Sink) -> Result<FeedReport, FeedError> {
    Feeds::new(input)?.write_all(sink)
}

/// The documents' shape, part of every document's key: a change to what the
/// writers put out makes every document again within one herald version.
/// 2: JSON Feed items carry `_herald.html_key`.
const FORMAT: u64 = 2;

/// The published entries checked and rendered to HTML once, ready to be written
/// into any number of feed documents.
pub struct Feeds<'a> {
    config: &'a herald_content::Config,
    limit: usize,
    site: model::Site<'a>,
    items: Vec<model::Item<'a>>,
}

impl<'a> Feeds<'a> {
    /// Check the settings and the input, and render each entry's HTML.
    pub fn new(input: &'a FeedInput<'a>) -> Result<Self, FeedError> {
        let settings = match input.settings {
            Some(s) => s.clone(),
            None => FeedSettings::from_config(&input.corpus.config)?,
        };
        check(input)?;
        let items = model::prepare(input.corpus, &input.entries);
        let site = model::Site::new(input.corpus, &settings, &items);
        Ok(Feeds {
            config: &input.corpus.config,
            limit: settings.limit,
            site,
            items,
        })
    }

    /// The subscription document of one feed: a language's, or a topic's in a
    /// language (for previews, and for writing one feed alone).
    pub fn document(
        &self,
        lang: &str,
        topic: Option<&str>,
        kind: FeedKind,
    ) -> Result<Vec<u8>, FeedError> {
        let items: Vec<&model::Item<'_>> = self
            .items
            .iter()
            .filter(|i| {
                i.s.lang == lang && topic.is_none_or(|t| i.s.meta.topics.iter().any(|x| x == t))
            })
            .collect();
        let group = model::Group { lang, topic, items };
        let doc = model::pages(&self.site, &group, self.limit)
            .into_iter()
            .next()
            .ok_or_else(|| FeedError::Write {
                path: urls::feed(lang, topic, kind),
                source: std::io::Error::other("no subscription document"),
            })?;
        encode(&doc, kind)
    }

    /// Write every feed document and the stylesheet into `sink`.
    pub fn write_all(&self, sink: &dyn Sink) -> Result<FeedReport, FeedError> {
        let mut report = FeedReport {
            entries: self.items.len(),
            ..FeedReport::default()
        };
        let put = |path: &str, bytes: &[u8]| -> Result<(), FeedError> {
            sink.put(path, bytes).map_err(|source| FeedError::Write {
                path: path.to_string(),
                source,
            })
        };
        let salt = self.salt();
        let docs: Vec<model::Doc<'_>> = model::groups(self.config, &self.items)
            .iter()
            .flat_map(|group| model::pages(&self.site, group, self.limit))
            .collect();
        // Documents whose key changed: (document, format, path).
        let mut todo: Vec<(usize, FeedKind, String)> = Vec::new();
        for (d, doc) in docs.iter().enumerate() {
            let key = doc.render_key(salt);
            for kind in FeedKind::ALL {
                if doc.is_current() {
                    report.feeds.push(FeedFile {
                        path: doc.path(kind),
                        url: doc.url(kind),
                    });
                }
                let path = doc.path(kind);
                // Kept as it is when made from the same entries last time.
                let kept = sink.reuse(&path, key).map_err(|source| FeedError::Write {
                    path: path.clone(),
                    source,
                })?;
                if !kept {
                    todo.push((d, kind, path.clone()));
                }
                report.files.push(path);
            }
        }
        // Each entry's HTML is made once (see `Item::html`), first, one entry at a
        // time side by side: rendered document by document, the three formats of
        // one document waited on each other's entries, and a few documents of 50
        // entries each kept one core busy for most of an incremental run.
        use rayon::prelude::*;
        // An entry whose HTML key is unchanged takes its HTML from the JSON
        // document it replaces: an edit rewrites three documents of 50
        // entries, and reading and rendering those bodies was most of its feeds.
        let replaced: Vec<usize> = todo
            .iter()
            .filter(|(_, kind, _)| *kind == FeedKind::Json)
            .map(|(d, _, _)| *d)
            .collect();
        replaced.par_iter().for_each(|&d| {
            let doc = &docs[d];
            let Some(bytes) = sink.previous(&doc.path(FeedKind::Json)) else {
                return;
            };
            let mut html = json::html_by_key(&bytes);
            for i in &doc.items {
                if let Some(h) = html.remove(&i.html_key()) {
                    i.take_html(h);
                }
            }
        });
        let mut entries: Vec<&model::Item<'_>> = Vec::new();
        let mut seen = herald_content::fast::HashSet::default();
        for (d, _, _) in &todo {
            for &i in &docs[*d].items {
                if seen.insert(std::ptr::from_ref(i)) {
                    entries.push(i);
                }
            }
        }
        entries.par_iter().for_each(|i| {
            i.html();
        });
        todo.par_iter().try_for_each(|(d, kind, path)| {
            let bytes = encode(&docs[*d], *kind)?;
            put(path, &bytes)
        })?;
        put(urls::FEED_XSL, FEED_XSL.as_bytes())?;
        report.files.push(urls::FEED_XSL.to_string());
        tracing::debug!(
            files = report.files.len(),
            entries = report.entries,
            "feeds written"
        );
        Ok(report)
    }
}

impl Feeds<'_> {
    /// What every feed document shares: the configuration (`[feed]`, titles,
    /// languages) and the ids the documents derive from the oldest entry.
    fn salt(&self) -> u128 {
        let mut k = herald_content::key::KeyHasher::new("feed");
        k.u64(FORMAT)
            .str(self.config.source())
            .str(&self.site.authority)
            .str(&self.site.since)
            .opt(self.site.hub.as_deref())
            .u64(self.limit as u64);
        k.finish()
    }
}

fn encode(doc: &model::Doc<'_>, kind: FeedKind) -> Result<Vec<u8>, FeedError> {
    match kind {
        FeedKind::Atom => atom::write(doc),
        FeedKind::Rss => rss::write(doc),
        FeedKind::Json => json::write(doc),
    }
    .map_err(|e| e.at(doc.path(kind)))
}

/// Refuse input the pipeline must never pass: embargoed or draft statements,
/// duplicates, ids that are not tag URIs.
fn check(input: &FeedInput<'_>) -> Result<(), FeedError> {
    let mut seen = herald_content::fast::HashSet::default();
    let mut tags: herald_content::fast::HashMap<&str, &Statement> = Default::default();
    for e in &input.entries {
        let s = e.statement;
        if !s.is_due(input.now) {
            return Err(FeedError::NotDue {
                id: s.id.clone(),
                lang: s.lang.clone(),
                publish_at: text::rfc3339(&s.meta.publish_at),
                now: text::rfc3339(&input.now),
            });
        }
        if !seen.insert((s.id.as_str(), s.lang.as_str())) {
            return Err(FeedError::Duplicate {
                id: s.id.clone(),
                lang: s.lang.clone(),
            });
        }
        if !is_tag_uri(&e.tag) {
            return Err(FeedError::BadTag {
                id: s.id.clone(),
                lang: s.lang.clone(),
                tag: e.tag.clone(),
            });
        }
        if let Some(other) = tags.insert(&e.tag, s) {
            return Err(FeedError::SharedTag {
                first: format!("{} ({})", other.id, other.lang),
                second: format!("{} ({})", s.id, s.lang),
                tag: e.tag.clone(),
            });
        }
    }
    Ok(())
}

/// Errors while encoding one document, before its path is known.
pub(crate) enum EncodeError {
    Io(std::io::Error),
    Json(serde_json::Error),
}

impl From<std::io::Error> for EncodeError {
    fn from(e: std::io::Error) -> Self {
        EncodeError::Io(e)
    }
}

impl From<serde_json::Error> for EncodeError {
    fn from(e: serde_json::Error) -> Self {
        EncodeError::Json(e)
    }
}

impl EncodeError {
    fn at(self, path: String) -> FeedError {
        match self {
            EncodeError::Io(source) => FeedError::Write { path, source },
            EncodeError::Json(source) => FeedError::Json { path, source },
        }
    }
}
