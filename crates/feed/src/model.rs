//! From the published entries to feed documents: one item per entry (its HTML
//! rendered once, shared by every feed it is in), grouped per language and per
//! topic, cut into a subscription page and RFC 5005 archive pages.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, FixedOffset};
use herald_content::html::{HtmlOptions, to_html};
use herald_content::urls::{self, FeedKind};
use herald_content::{Config, Corpus, Statement};

use crate::text::{clean, clean_trim};
use crate::{FeedEntry, FeedSettings};

/// What every document of a render shares.
pub(crate) struct Site<'a> {
    pub config: &'a Config,
    pub authority: String,
    pub since: String,
    pub hub: Option<String>,
}

impl<'a> Site<'a> {
    /// `items` in publication order: the feeds' own ids borrow what is not
    /// configured from the oldest entry's ledger id, which never changes either.
    pub fn new(corpus: &'a Corpus, settings: &FeedSettings, items: &[Item<'_>]) -> Self {
        let config = &corpus.config;
        let oldest = items.first().and_then(|i| tag_entity(i.tag));
        let authority = settings
            .authority
            .as_ref()
            .map(|a| a.to_ascii_lowercase())
            .or_else(|| oldest.map(|(a, _)| a.to_string()))
            .unwrap_or_else(|| settings.authority(config));
        let since = settings
            .since
            .clone()
            .or_else(|| oldest.map(|(_, d)| d.to_string()))
            .unwrap_or_else(|| {
                let year = corpus.statements.iter().map(|s| s.meta.date.year()).min();
                format!("{:04}", year.unwrap_or(2000))
            });
        Site {
            config,
            authority,
            since,
            hub: settings.hub.clone(),
        }
    }

    pub fn abs(&self, path: &str) -> String {
        herald_content::urls::absolute(&self.config.base_url, path)
    }
}

/// The authority and date of a tag URI.
fn tag_entity(tag: &str) -> Option<(&str, &str)> {
    let rest = tag.strip_prefix("tag:")?;
    rest.split_once(':')?.0.rsplit_once(',')
}

/// One published statement in one language, ready to write in any format.
pub(crate) struct Item<'a> {
    pub s: &'a Statement,
    pub tag: &'a str,
    pub title: Cow<'a, str>,
    pub summary: Cow<'a, str>,
    /// The full body as HTML with absolute URLs, XML-forbidden characters removed:
    /// made when the first document that holds the item is written (see [`Item::html`]).
    html: std::sync::OnceLock<String>,
    /// The site's base URL, for the body's links.
    base: &'a str,
    /// Absolute URL of the statement's page, made on first use (see [`Item::url`]):
    /// most items of a run are in documents kept by their key.
    url: std::sync::OnceLock<String>,
    /// The exact length of the PDF, when there is one.
    pdf_length: Option<u64>,
    pdf: std::sync::OnceLock<Option<(String, u64)>>,
    pub published: DateTime<FixedOffset>,
    pub updated: DateTime<FixedOffset>,
    /// The other published languages of the statement, in the configured order.
    others: Vec<&'a Statement>,
    /// Made on first use; owned, so that `Item` stays covariant in `'a`.
    translations: std::sync::OnceLock<Vec<(String, String)>>,
    /// [`Item::render_key`], computed once: an item is in several documents.
    render_key: std::sync::OnceLock<u128>,
    /// Publication order.
    key: OrderKey<'a>,
}

/// Publication order: first publication, then date, id, language.
type OrderKey<'a> = (
    chrono::DateTime<chrono::Utc>,
    DateTime<FixedOffset>,
    &'a str,
    usize,
);

impl Item<'_> {
    /// Absolute URL of the statement's page.
    pub fn url(&self) -> &str {
        self.url
            .get_or_init(|| format!("{}{}", self.base, urls::page(self.s)))
    }

    /// Absolute URL and exact length of the PDF.
    pub fn pdf(&self) -> Option<&(String, u64)> {
        self.pdf
            .get_or_init(|| {
                self.pdf_length
                    .map(|len| (format!("{}{}", self.base, urls::pdf(self.s)), len))
            })
            .as_ref()
    }

    /// The other published languages of the statement: (language, page URL).
    pub fn translations(&self) -> &[(String, String)] {
        self.translations.get_or_init(|| {
            self.others
                .iter()
                .map(|t| (t.lang.clone(), format!("{}{}", self.base, urls::page(t))))
                .collect()
        })
    }

    /// The body as feed HTML, rendered on first use and shared by every feed.
    pub fn html(&self) -> &str {
        self.html.get_or_init(|| {
            let html = to_html(
                self.s.document(),
                &HtmlOptions {
                    base_url: Some(self.base),
                    page_url: Some(self.url()),
                },
            );
            // Trailing newlines mean nothing in HTML, and parsers trim them:
            // trimmed after cleaning, or a dropped control character at the
            // end would leave the newline before it.
            clean(&html).trim_end().to_owned()
        })
    }

    /// Everything the item's HTML is made from: the statement's version and
    /// where its links point. Equal keys, equal HTML; the JSON Feed carries it,
    /// so a later run takes the HTML over instead of making it again.
    pub fn html_key(&self) -> u128 {
        herald_content::key::KeyHasher::new("feed-html")
            .key(self.s.key())
            .str(self.base)
            .str(self.url())
            .finish()
    }

    /// The HTML an earlier run made under the same [`Item::html_key`].
    pub fn take_html(&self, html: String) {
        // Set once: an item in two replaced documents takes the first.
        let _ = self.html.set(html);
    }

    /// Everything this item shows, as a render key.
    pub fn render_key(&self) -> u128 {
        *self.render_key.get_or_init(|| {
            let mut k = herald_content::key::KeyHasher::new("feed-item");
            let first = self.key.0;
            k.key(self.s.key())
                .str(self.tag)
                .u64(first.timestamp() as u64)
                .u64(u64::from(first.timestamp_subsec_nanos()));
            match self.pdf_length {
                Some(n) => k.u64(1).u64(n),
                None => k.u64(0),
            };
            // A translation's URL is its path (language, year, slug) under the
            // base URL, which the feeds' salt covers.
            for t in &self.others {
                k.key(t.key());
            }
            k.finish()
        })
    }
}

fn lang_rank(config: &Config, lang: &str) -> usize {
    config
        .languages
        .iter()
        .position(|l| l == lang)
        .unwrap_or(usize::MAX)
}

/// Items in publication order, oldest first.
pub(crate) fn prepare<'a>(corpus: &'a Corpus, entries: &'a [FeedEntry<'a>]) -> Vec<Item<'a>> {
    let config = &corpus.config;
    let base = config.base_url.as_str();
    let mut languages: herald_content::fast::HashMap<&str, Vec<&Statement>> = Default::default();
    for e in entries {
        languages
            .entry(e.statement.id.as_str())
            .or_default()
            .push(e.statement);
    }
    for v in languages.values_mut() {
        v.sort_by_key(|s| lang_rank(config, &s.lang));
    }
    // Ordered before the items are made: an item is large to move.
    let mut order: Vec<(OrderKey<'a>, &FeedEntry<'a>)> = entries
        .iter()
        .map(|e| {
            let s = e.statement;
            let key = (
                e.first_published,
                s.meta.date,
                s.id.as_str(),
                lang_rank(config, &s.lang),
            );
            (key, e)
        })
        .collect();
    order.sort_by(|a, b| a.0.cmp(&b.0));
    order
        .into_iter()
        .map(|(key, e)| {
            let s = e.statement;
            let others = languages
                .get(s.id.as_str())
                .map(|v| v.iter().copied().filter(|t| t.lang != s.lang).collect())
                .unwrap_or_default();
            Item {
                s,
                tag: &e.tag,
                // Parsers drop surrounding white space; drop it first so all agree.
                title: clean_trim(&s.meta.title),
                summary: clean_trim(&s.meta.summary),
                // Trailing newlines mean nothing in HTML, and parsers trim them:
                // trimmed after cleaning, or a dropped control character at the
                // end would leave the newline before it.
                html: std::sync::OnceLock::new(),
                render_key: std::sync::OnceLock::new(),
                base,
                pdf_length: e.pdf_length,
                pdf: std::sync::OnceLock::new(),
                url: std::sync::OnceLock::new(),
                published: s.meta.date,
                updated: s.modified(),
                others,
                translations: std::sync::OnceLock::new(),
                key,
            }
        })
        .collect()
}

/// The entries of one feed: a language, or a topic in a language.
pub(crate) struct Group<'a> {
    pub lang: &'a str,
    pub topic: Option<&'a str>,
    /// Oldest first.
    pub items: Vec<&'a Item<'a>>,
}

/// A language's items, and its items by topic.
type LangGroups<'a> = (Vec<&'a Item<'a>>, BTreeMap<&'a str, Vec<&'a Item<'a>>>);

/// One feed per language (even an empty one: the site links it), one per topic
/// and language that has entries.
pub(crate) fn groups<'a>(config: &'a Config, items: &'a [Item<'a>]) -> Vec<Group<'a>> {
    // One pass over the items: a language's topics in name order.
    let mut by_lang: HashMap<&str, LangGroups<'a>> = HashMap::new();
    for i in items {
        let (all, topics) = by_lang.entry(i.s.lang.as_str()).or_default();
        all.push(i);
        for t in &i.s.meta.topics {
            let list = topics.entry(t.as_str()).or_default();
            // A topic named twice in one statement lists it once.
            if !list.last().is_some_and(|l| std::ptr::eq(*l, i)) {
                list.push(i);
            }
        }
    }
    let mut out = Vec::new();
    for lang in &config.languages {
        let (in_lang, topics) = by_lang.remove(lang.as_str()).unwrap_or_default();
        out.push(Group {
            lang,
            topic: None,
            items: in_lang,
        });
        out.extend(topics.into_iter().map(|(topic, items)| Group {
            lang,
            topic: Some(topic),
            items,
        }));
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page {
    /// The subscription document; `archives` full archive pages exist behind it.
    Current { archives: usize },
    /// Archive page `n` (1 is the oldest) of `of`.
    Archive { n: usize, of: usize },
}

/// One feed document, in any of the three formats.
pub(crate) struct Doc<'a> {
    pub site: &'a Site<'a>,
    pub lang: &'a str,
    pub topic: Option<&'a str>,
    pub page: Page,
    /// Newest first.
    pub items: Vec<&'a Item<'a>>,
}

/// The subscription document and the full archive pages of a group. Archive page
/// `n` holds entries `(n-1)*limit .. n*limit` in publication order, so once full
/// its entries never change; the subscription document holds the newest `limit`
/// (it may overlap the newest archive page, which RFC 5005 allows).
pub(crate) fn pages<'a>(site: &'a Site<'a>, group: &Group<'a>, limit: usize) -> Vec<Doc<'a>> {
    let full = group.items.len() / limit;
    let doc = |page, items: &[&'a Item<'a>]| Doc {
        site,
        lang: group.lang,
        topic: group.topic,
        page,
        items: items.iter().rev().copied().collect(),
    };
    let start = group.items.len().saturating_sub(limit);
    let mut out = vec![doc(Page::Current { archives: full }, &group.items[start..])];
    for (i, chunk) in group.items.chunks_exact(limit).enumerate() {
        out.push(doc(Page::Archive { n: i + 1, of: full }, chunk));
    }
    out
}

impl Doc<'_> {
    /// Everything this document shows beyond the feeds' `salt`, as a render key.
    pub fn render_key(&self, salt: u128) -> u128 {
        let mut k = herald_content::key::KeyHasher::new("feed-doc");
        k.key(salt).str(self.lang).opt(self.topic);
        match self.page {
            Page::Current { archives } => k.u64(0).u64(archives as u64),
            Page::Archive { n, of } => k.u64(1).u64(n as u64).u64(of as u64),
        };
        k.u64(self.items.len() as u64);
        for i in &self.items {
            k.key(i.render_key());
        }
        k.finish()
    }

    pub fn is_current(&self) -> bool {
        matches!(self.page, Page::Current { .. })
    }

    fn current_path(&self, kind: FeedKind) -> String {
        urls::feed(self.lang, self.topic, kind)
    }

    fn archive_path(&self, kind: FeedKind, n: usize) -> String {
        format!(
            "{}{n}/{}",
            urls::feed_archive_dir(self.lang, self.topic),
            kind.file_name()
        )
    }

    /// This document's path below `public/`.
    pub fn path(&self, kind: FeedKind) -> String {
        match self.page {
            Page::Current { .. } => self.current_path(kind),
            Page::Archive { n, .. } => self.archive_path(kind, n),
        }
    }

    /// The XSL stylesheet, relative to this document: same origin wherever the
    /// site is served (browsers apply no cross-origin XSLT), previews included.
    pub fn stylesheet(&self, kind: FeedKind) -> String {
        let depth = self.path(kind).matches('/').count();
        format!("{}{}", "../".repeat(depth), urls::FEED_XSL)
    }

    pub fn url(&self, kind: FeedKind) -> String {
        self.site.abs(&self.path(kind))
    }

    pub fn current_url(&self, kind: FeedKind) -> String {
        self.site.abs(&self.current_path(kind))
    }

    /// The next older archive page.
    pub fn prev_archive(&self, kind: FeedKind) -> Option<String> {
        let n = match self.page {
            Page::Current { archives } => archives,
            Page::Archive { n, .. } => n - 1,
        };
        (n > 0).then(|| self.site.abs(&self.archive_path(kind, n)))
    }

    /// The next newer archive page.
    pub fn next_archive(&self, kind: FeedKind) -> Option<String> {
        match self.page {
            Page::Archive { n, of } if n < of => {
                Some(self.site.abs(&self.archive_path(kind, n + 1)))
            }
            _ => None,
        }
    }

    /// The feed's permanent id (shared by its formats and archive pages).
    pub fn id(&self) -> String {
        let mut id = format!(
            "tag:{},{}:feeds/{}",
            self.site.authority, self.site.since, self.lang
        );
        if let Some(t) = self.topic {
            id.push_str("/topics/");
            id.push_str(&crate::tag_specific(t));
        }
        id
    }

    pub fn title(&self) -> String {
        let title = clean(&self.site.config.title);
        match self.topic {
            Some(t) => format!("{title}: {t}"),
            None => title.into_owned(),
        }
    }

    pub fn description(&self) -> String {
        let org = clean(&self.site.config.organization.name);
        match self.topic {
            Some(t) => format!("{org}: {t} ({})", self.lang),
            None => format!("{org} ({})", self.lang),
        }
    }

    /// The HTML page this feed mirrors.
    pub fn home(&self) -> String {
        self.site.abs(&match self.topic {
            Some(t) => urls::topic(self.lang, t),
            None => urls::index(self.lang),
        })
    }

    /// The newest entry's date, so that an unchanged feed keeps its bytes; the Unix
    /// epoch for an empty feed.
    pub fn updated(&self) -> DateTime<FixedOffset> {
        self.items
            .iter()
            .map(|i| i.updated)
            .max()
            .unwrap_or_else(|| DateTime::<chrono::Utc>::UNIX_EPOCH.fixed_offset())
    }

    /// The newest publication date, for RSS `pubDate`.
    pub fn published(&self) -> DateTime<FixedOffset> {
        self.items
            .iter()
            .map(|i| i.published)
            .max()
            .unwrap_or_else(|| DateTime::<chrono::Utc>::UNIX_EPOCH.fixed_offset())
    }

    /// A rough size, to allocate the output once.
    pub fn capacity(&self) -> usize {
        4096 + self
            .items
            .iter()
            .map(|i| i.html().len() * 5 / 4 + i.summary.len() + 1024)
            .sum::<usize>()
    }
}
