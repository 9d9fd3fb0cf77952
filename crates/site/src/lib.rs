//! herald-site: the static HTML archive.
//!
//! [`render`] turns the statements the pipeline says are published into pages
//! (an index per language, a page per statement, topic pages), `sitemap.xml`,
//! `style.css` and a copy of `content/assets/`, streaming each file into a
//! [`Sink`]. It never decides what is published, never reads the clock and
//! never parses Markdown: it renders [`Statement::document`] with
//! [`herald_content::html::to_html`] through minijinja templates.

mod i18n;
mod templates;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, SecondsFormat};
use herald_content::html::{HtmlOptions, to_html};
use herald_content::{Config, Corpus, Diagnostic, FeedKind, Sink, Statement, content_dir, urls};
use minijinja::value::{Serde, Value};
use minijinja::{Environment, context};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use i18n::{Strings, strings};
pub use templates::{STYLESHEET_NAME, TEMPLATES};

/// Where the site's own assets (`content/assets/`) are copied below `public/`.
pub const ASSETS_DIR: &str = "assets/";

/// At most this many URLs per sitemap file; more make `sitemap.xml` an index.
pub const SITEMAP_CHUNK: usize = 25_000;

/// Which statements have a PDF beside their page.
#[derive(Debug, Clone, Copy, Default)]
pub enum PdfLinks<'a> {
    /// No PDF channel: no links.
    #[default]
    None,
    /// Every published statement has one; sizes unknown.
    Every,
    /// Those whose [`urls::pdf`] path is a key, with its size in bytes.
    Sizes(&'a HashMap<String, u64>),
}

/// The subscribe form shown on every page; it posts to `herald serve`.
#[derive(Debug, Clone, Default)]
pub struct SubscribeForm {
    /// The form's `action`, e.g. `/subscribe` or `https://example.org/subscribe`.
    pub action: String,
    /// Languages a subscriber may choose, in display order.
    pub languages: Vec<String>,
    /// Topics a subscriber may choose (slugs), in display order.
    pub topics: Vec<String>,
}

/// Everything [`render`] needs; the pipeline fills it.
#[derive(Debug, Clone, Copy)]
pub struct SiteInput<'a> {
    pub corpus: &'a Corpus,
    /// The statements published at this run's `now`, and nothing else: the
    /// site shows no other statement anywhere (pages, indexes, topics,
    /// sitemap, translation links).
    pub published: &'a [&'a Statement],
    pub pdfs: PdfLinks<'a>,
    /// Feed formats that exist for each language and each (language, topic)
    /// with published statements; empty when there are no feeds.
    pub feeds: &'a [FeedKind],
    pub subscribe: Option<&'a SubscribeForm>,
    /// Who signs the PDFs and whether a signed manifest is published.
    pub integrity: Integrity<'a>,
}

/// The signature line under a statement's PDF link.
#[derive(Debug, Clone, Copy, Default)]
pub struct Integrity<'a> {
    /// The signer's name (certificate subject) when PDFs are signed.
    pub signed_by: Option<&'a str>,
    /// `.well-known/herald/manifest.json` is published.
    pub manifest: bool,
}

impl<'a> SiteInput<'a> {
    /// Pages only: no PDF or feed links, no subscribe form.
    pub fn new(corpus: &'a Corpus, published: &'a [&'a Statement]) -> Self {
        SiteInput {
            corpus,
            published,
            pdfs: PdfLinks::None,
            feeds: &[],
            subscribe: None,
            integrity: Integrity::default(),
        }
    }
}

/// The `[site]` section of `herald.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SiteSettings {
    /// Statements per index or topic page (default 50).
    pub per_page: usize,
    /// Display names of topics per language: `[site.topic_names.migration]
    /// en = "Migration"`. Without one, the slug is shown with spaces.
    pub topic_names: BTreeMap<String, BTreeMap<String, String>>,
    /// A minisign secret key (unencrypted; relative to the folder of herald.toml):
    /// publish signs `.well-known/herald/manifest.json` with it.
    pub manifest_key: Option<std::path::PathBuf>,
}

impl Default for SiteSettings {
    fn default() -> Self {
        SiteSettings {
            per_page: 50,
            topic_names: BTreeMap::new(),
            manifest_key: None,
        }
    }
}

impl SiteSettings {
    /// Read and check `[site]`.
    pub fn from_config(config: &Config) -> Result<SiteSettings, SiteError> {
        let s: SiteSettings = config
            .section("site")
            .map_err(|d| SiteError::Settings(Box::new(d)))?;
        if s.per_page == 0 {
            return Err(SiteError::Invalid(
                "[site] per_page must be at least 1 (statements per index page; default 50)".into(),
            ));
        }
        Ok(s)
    }
}

/// What [`render`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteReport {
    /// Every path put into the sink, sorted.
    pub files: Vec<String>,
    pub statement_pages: usize,
    /// Language index pages (with pagination) and the root `index.html`.
    pub index_pages: usize,
    /// Topic pages (with pagination) and topic lists.
    pub topic_pages: usize,
    pub assets: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("{0}")]
    Settings(Box<Diagnostic>),
    #[error("{0}")]
    Invalid(String),
    #[error("template {template}: {detail}")]
    Template {
        template: String,
        detail: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl SiteError {
    fn template(template: String, source: minijinja::Error) -> SiteError {
        // The alternate form carries the template's line and surrounding source.
        let detail = format!("{source:#}");
        SiteError::Template {
            template,
            detail,
            source,
        }
    }
}

impl SiteError {
    /// The diagnostic of a template error (file, line, hint), for the validation
    /// gate; `None` for any other error. `root` is the project root.
    pub fn diagnostic(&self, root: &Path) -> Option<Diagnostic> {
        match self {
            SiteError::Template {
                template, source, ..
            } => Some(templates::diagnostic(root, template, source)),
            _ => None,
        }
    }
}

/// `herald check` for the site: compile the templates (with the overrides in
/// `content/templates/`) and render every page `input` describes into nothing, then
/// the same with no statement published (an empty archive), so a template that
/// fails on any statement or on none fails here and not at publish time.
pub fn check(input: &SiteInput<'_>) -> Result<(), SiteError> {
    render(input, &Discard)?;
    let empty = SiteInput {
        published: &[],
        ..*input
    };
    render(&empty, &Discard)?;
    Ok(())
}

/// Render the whole site into `sink`. Same input, same bytes.
pub fn render(input: &SiteInput<'_>, sink: &dyn Sink) -> Result<SiteReport, SiteError> {
    let config = &input.corpus.config;
    let settings = SiteSettings::from_config(config)?;
    let content = content_dir(&input.corpus.root);
    let template_dir = content.join("templates");
    let env = templates::environment(&template_dir)?;
    let site = Site::new(input, settings, env);

    let mut jobs: Vec<Job<'_>> = Vec::new();
    jobs.push(Job::Stylesheet);
    jobs.push(Job::Sitemap);
    jobs.push(Job::Root);
    for lang in &config.languages {
        let n = site.by_lang.get(lang.as_str()).map_or(0, Vec::len);
        for page in 1..=site.page_count(n) {
            jobs.push(Job::Index { lang, page });
        }
        jobs.push(Job::Topics { lang });
        if let Some(topics) = site.topics.get(lang.as_str()) {
            for (topic, list) in topics {
                for page in 1..=site.page_count(list.len()) {
                    jobs.push(Job::Topic { lang, topic, page });
                }
            }
        }
    }
    jobs.extend(site.published.iter().map(|s| Job::Statement(s)));
    let assets = list_assets(&input.corpus.root, &content.join("assets"))?;
    jobs.extend(assets.iter().map(|(path, rel)| Job::Asset { path, rel }));

    // Render one page of each template first and throw it away, so a broken
    // template override fails the run before any file reaches the sink.
    let mut probed = Vec::new();
    for job in &jobs {
        let kind = std::mem::discriminant(job);
        if !matches!(job, Job::Sitemap | Job::Asset { .. }) && !probed.contains(&kind) {
            probed.push(kind);
            site.run(job, &template_dir, &Discard)?;
        }
    }

    let done: Vec<(Kind, Vec<String>)> = jobs
        .par_iter()
        .map(|job| site.run(job, &template_dir, sink))
        .collect::<Result<_, _>>()?;
    let mut report = SiteReport::default();
    for (kind, files) in done {
        match kind {
            Kind::Statement => report.statement_pages += 1,
            Kind::Index => report.index_pages += 1,
            Kind::Topic => report.topic_pages += 1,
            Kind::Asset => report.assets += 1,
            Kind::Other => {}
        }
        report.files.extend(files);
    }
    report.files.sort_unstable();
    Ok(report)
}

/// A sink that keeps nothing: for the probe renders.
struct Discard;

impl Sink for Discard {
    fn put(&self, _path: &str, _bytes: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

enum Job<'a> {
    Stylesheet,
    Sitemap,
    Root,
    Index {
        lang: &'a str,
        page: usize,
    },
    Topics {
        lang: &'a str,
    },
    Topic {
        lang: &'a str,
        topic: &'a str,
        page: usize,
    },
    Statement(&'a Statement),
    Asset {
        path: &'a Path,
        rel: &'a str,
    },
}

#[derive(Clone, Copy)]
enum Kind {
    Statement,
    Index,
    Topic,
    Asset,
    Other,
}

/// A date for templates: `iso` for `<time datetime>`, `text` to read.
#[derive(Serialize)]
struct DateView {
    iso: String,
    text: String,
}

impl DateView {
    fn new(lang: &str, d: &DateTime<FixedOffset>) -> Self {
        DateView {
            iso: d.to_rfc3339_opts(SecondsFormat::Secs, true),
            text: i18n::long_date(lang, d),
        }
    }
}

#[derive(Serialize)]
struct Link {
    /// Path below the site root (templates prefix `root`).
    href: String,
    label: String,
    #[serde(rename = "type")]
    mime: &'static str,
}

#[derive(Serialize)]
struct FeedLink {
    href: String,
    title: String,
    #[serde(rename = "type")]
    mime: &'static str,
}

#[derive(Serialize)]
struct Alternate {
    hreflang: String,
    url: String,
}

#[derive(Serialize)]
struct Head {
    canonical: String,
    alternates: Vec<Alternate>,
    feeds: Vec<FeedLink>,
}

#[derive(Serialize)]
struct Entry<'a> {
    title: &'a str,
    href: String,
    date: DateView,
    summary: &'a str,
    place: Option<&'a str>,
}

#[derive(Serialize)]
struct Pagination {
    current: usize,
    total: usize,
    label: String,
    newer: Option<String>,
    older: Option<String>,
}

#[derive(Serialize)]
struct TopicRef {
    slug: String,
    name: String,
    href: String,
}

#[derive(Serialize)]
struct TopicView {
    slug: String,
    name: String,
    feeds: Vec<Link>,
}

#[derive(Serialize)]
struct TopicCount {
    name: String,
    href: String,
    count: usize,
}

#[derive(Serialize)]
struct Translation<'a> {
    lang: &'a str,
    name: &'a str,
    href: String,
}

#[derive(Serialize)]
struct PdfView {
    href: String,
    size: Option<String>,
    signed_by: Option<String>,
    manifest: Option<&'static str>,
}

#[derive(Serialize)]
struct StatementView<'a> {
    id: &'a str,
    lang: &'a str,
    title: &'a str,
    summary: &'a str,
    date: DateView,
    updated: Option<DateView>,
    place: Option<&'a str>,
    occasion: Option<&'a str>,
    issuers: &'a [String],
    topics: Vec<TopicRef>,
    translations: Vec<Translation<'a>>,
    pdf: Option<PdfView>,
}

#[derive(Serialize)]
struct SiteView<'a> {
    title: &'a str,
    base_url: &'a str,
    default_language: &'a str,
    organization: OrgView<'a>,
}

#[derive(Serialize)]
struct OrgView<'a> {
    name: &'a str,
    short_name: &'a str,
    url: Option<&'a str>,
    email: Option<&'a str>,
    address: Option<&'a str>,
}

#[derive(Serialize)]
struct LangLink<'a> {
    code: &'a str,
    name: &'a str,
    href: String,
    current: bool,
}

#[derive(Serialize)]
struct LangOption<'a> {
    code: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct SubscribeView<'a> {
    action: &'a str,
    languages: Vec<LangOption<'a>>,
    topics: Vec<TopicRef>,
}

#[derive(Serialize)]
struct Nav {
    home: String,
    topics: String,
}

/// Everything shared by the per-page jobs.
struct Site<'a> {
    input: &'a SiteInput<'a>,
    config: &'a Config,
    settings: SiteSettings,
    env: Environment<'static>,
    /// Published, newest first, deterministic whatever the input order.
    published: Vec<&'a Statement>,
    by_lang: HashMap<&'a str, Vec<&'a Statement>>,
    /// Translations of each id, in `herald.toml` language order.
    by_id: HashMap<&'a str, Vec<&'a Statement>>,
    /// Per language: topic -> statements, newest first.
    topics: HashMap<&'a str, BTreeMap<&'a str, Vec<&'a Statement>>>,
    /// Per language: the values every page of that language shares.
    chrome: HashMap<&'a str, Value>,
}

fn lang_rank(config: &Config, lang: &str) -> usize {
    config
        .languages
        .iter()
        .position(|l| l == lang)
        .unwrap_or(usize::MAX)
}

/// `../` once per folder below the site root, so links work under any prefix.
fn root_for(path: &str) -> String {
    "../".repeat(path.matches('/').count())
}

fn index_page_path(lang: &str, page: usize) -> String {
    if page <= 1 {
        urls::index(lang)
    } else {
        format!("{}page/{page}/", urls::index(lang))
    }
}

fn topic_page_path(lang: &str, topic: &str, page: usize) -> String {
    if page <= 1 {
        urls::topic(lang, topic)
    } else {
        format!("{}page/{page}/", urls::topic(lang, topic))
    }
}

fn topics_path(lang: &str) -> String {
    format!("{}topics/", urls::index(lang))
}

/// `human-rights` -> `Human rights`.
fn humanize(slug: &str) -> String {
    let spaced = slug.replace('-', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => spaced,
    }
}

fn w3c_date(d: &DateTime<FixedOffset>) -> String {
    d.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl<'a> Site<'a> {
    fn new(input: &'a SiteInput<'a>, settings: SiteSettings, env: Environment<'static>) -> Self {
        let config = &input.corpus.config;
        let mut published: Vec<&Statement> = input.published.to_vec();
        published.sort_by(|a, b| {
            b.meta
                .date
                .cmp(&a.meta.date)
                .then_with(|| a.id.cmp(&b.id))
                .then_with(|| lang_rank(config, &a.lang).cmp(&lang_rank(config, &b.lang)))
        });
        published.dedup_by(|a, b| a.id == b.id && a.lang == b.lang);

        let mut by_lang: HashMap<&str, Vec<&Statement>> = HashMap::new();
        let mut by_id: HashMap<&str, Vec<&Statement>> = HashMap::new();
        let mut topics: HashMap<&str, BTreeMap<&str, Vec<&Statement>>> = HashMap::new();
        for s in &published {
            by_lang.entry(&s.lang).or_default().push(s);
            by_id.entry(&s.id).or_default().push(s);
            for t in &s.meta.topics {
                topics
                    .entry(&s.lang)
                    .or_default()
                    .entry(t)
                    .or_default()
                    .push(s);
            }
        }
        for list in by_id.values_mut() {
            list.sort_by_key(|s| lang_rank(config, &s.lang));
        }
        let mut site = Site {
            input,
            config,
            settings,
            env,
            published,
            by_lang,
            by_id,
            topics,
            chrome: HashMap::new(),
        };
        let chrome = config
            .languages
            .iter()
            .map(|l| (l.as_str(), site.chrome_for(l)))
            .collect();
        site.chrome = chrome;
        site
    }

    fn page_count(&self, n: usize) -> usize {
        n.div_ceil(self.settings.per_page).max(1)
    }

    fn topic_name(&self, lang: &str, topic: &str) -> String {
        let names = self.settings.topic_names.get(topic);
        names
            .and_then(|n| n.get(lang).or_else(|| n.get(&self.config.default_language)))
            .cloned()
            .unwrap_or_else(|| humanize(topic))
    }

    fn topic_ref(&self, lang: &str, topic: &str) -> TopicRef {
        TopicRef {
            slug: topic.to_string(),
            name: self.topic_name(lang, topic),
            href: urls::topic(lang, topic),
        }
    }

    fn feed_links(&self, lang: &str, topic: Option<&str>) -> Vec<Link> {
        self.input
            .feeds
            .iter()
            .map(|k| Link {
                href: urls::feed(lang, topic, *k),
                label: k.label().to_string(),
                mime: k.mime(),
            })
            .collect()
    }

    /// Autodiscovery links: the language feed, then each topic's.
    fn head_feeds(&self, lang: &str, topics: &[&str]) -> Vec<FeedLink> {
        let mut out = Vec::new();
        for k in self.input.feeds {
            out.push(FeedLink {
                href: urls::feed(lang, None, *k),
                title: format!("{} ({})", self.config.title, k.label()),
                mime: k.mime(),
            });
        }
        for t in topics {
            let name = self.topic_name(lang, t);
            for k in self.input.feeds {
                out.push(FeedLink {
                    href: urls::feed(lang, Some(t), *k),
                    title: format!("{} — {name} ({})", self.config.title, k.label()),
                    mime: k.mime(),
                });
            }
        }
        out
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url)
    }

    fn chrome_for(&self, lang: &str) -> Value {
        let c = self.config;
        let org = &c.organization;
        let site = SiteView {
            title: &c.title,
            base_url: &c.base_url,
            default_language: &c.default_language,
            organization: OrgView {
                name: &org.name,
                short_name: org.short(),
                url: org.url.as_deref(),
                email: org.email.as_deref(),
                address: org.address.as_deref(),
            },
        };
        let languages: Vec<LangLink<'_>> = c
            .languages
            .iter()
            .map(|l| LangLink {
                code: l,
                name: i18n::language_name(l),
                href: urls::index(l),
                current: l == lang,
            })
            .collect();
        let subscribe = self.input.subscribe.map(|f| SubscribeView {
            action: &f.action,
            languages: f
                .languages
                .iter()
                .map(|l| LangOption {
                    code: l,
                    name: i18n::language_name(l),
                })
                .collect(),
            topics: f.topics.iter().map(|t| self.topic_ref(lang, t)).collect(),
        });
        context! {
            lang => lang,
            dir => i18n::direction(lang),
            t => Serde(i18n::strings(lang)),
            site => Serde(site),
            nav => Serde(Nav { home: urls::index(lang), topics: topics_path(lang) }),
            languages => Serde(languages),
            follow => Serde(self.feed_links(lang, None)),
            subscribe => Serde(subscribe),
        }
    }

    fn chrome(&self, lang: &str) -> Value {
        self.chrome
            .get(lang)
            .cloned()
            .unwrap_or_else(|| self.chrome_for(lang))
    }

    fn render_template(&self, name: &str, ctx: Value) -> Result<String, SiteError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| SiteError::template(name.to_string(), e))
    }

    fn run(
        &self,
        job: &Job<'_>,
        template_dir: &Path,
        sink: &dyn Sink,
    ) -> Result<(Kind, Vec<String>), SiteError> {
        let put = |path: String, bytes: &[u8]| -> Result<String, SiteError> {
            sink.put(&path, bytes).map_err(|source| SiteError::Write {
                path: path.clone(),
                source,
            })?;
            Ok(path)
        };
        match job {
            Job::Stylesheet => {
                let css = templates::stylesheet(template_dir)?;
                Ok((Kind::Other, vec![put(urls::STYLESHEET.to_string(), &css)?]))
            }
            Job::Sitemap => {
                let files = self.sitemap();
                let mut out = Vec::with_capacity(files.len());
                for (path, text) in files {
                    out.push(put(path, text.as_bytes())?);
                }
                Ok((Kind::Other, out))
            }
            Job::Root => {
                let html = self.index_html(&self.config.default_language, 1, "index.html")?;
                Ok((
                    Kind::Index,
                    vec![put("index.html".into(), html.as_bytes())?],
                ))
            }
            Job::Index { lang, page } => {
                let path = format!("{}index.html", index_page_path(lang, *page));
                let html = self.index_html(lang, *page, &path)?;
                Ok((Kind::Index, vec![put(path, html.as_bytes())?]))
            }
            Job::Topics { lang } => {
                let path = format!("{}index.html", topics_path(lang));
                let html = self.topics_html(lang, &path)?;
                Ok((Kind::Topic, vec![put(path, html.as_bytes())?]))
            }
            Job::Topic { lang, topic, page } => {
                let path = format!("{}index.html", topic_page_path(lang, topic, *page));
                let html = self.topic_html(lang, topic, *page, &path)?;
                Ok((Kind::Topic, vec![put(path, html.as_bytes())?]))
            }
            Job::Statement(s) => {
                let path = format!("{}index.html", urls::page(s));
                let html = self.statement_html(s, &path)?;
                Ok((Kind::Statement, vec![put(path, html.as_bytes())?]))
            }
            Job::Asset { path, rel } => {
                let bytes = std::fs::read(path).map_err(|source| SiteError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Ok((
                    Kind::Asset,
                    vec![put(format!("{ASSETS_DIR}{rel}"), &bytes)?],
                ))
            }
        }
    }

    fn entries(&self, list: &[&'a Statement]) -> Vec<Entry<'a>> {
        list.iter()
            .map(|s| Entry {
                title: &s.meta.title,
                href: urls::page(s),
                date: DateView::new(&s.lang, &s.meta.date),
                summary: &s.meta.summary,
                place: s.meta.place.as_deref(),
            })
            .collect()
    }

    /// One page of a list, and where its neighbours are.
    fn paginate<'l>(
        &self,
        lang: &str,
        list: &'l [&'a Statement],
        page: usize,
        path_of: impl Fn(usize) -> String,
    ) -> (&'l [&'a Statement], Pagination) {
        let per = self.settings.per_page;
        let total = self.page_count(list.len());
        let start = (page - 1).saturating_mul(per).min(list.len());
        let end = start.saturating_add(per).min(list.len());
        let pagination = Pagination {
            current: page,
            total,
            label: i18n::page_of(lang, page, total),
            newer: (page > 1).then(|| path_of(page - 1)),
            older: (page < total).then(|| path_of(page + 1)),
        };
        (&list[start..end], pagination)
    }

    fn index_html(&self, lang: &str, page: usize, path: &str) -> Result<String, SiteError> {
        let list = self.by_lang.get(lang).map_or(&[][..], Vec::as_slice);
        let (slice, pagination) = self.paginate(lang, list, page, |n| index_page_path(lang, n));
        let mut alternates: Vec<Alternate> = Vec::new();
        if page == 1 {
            for l in &self.config.languages {
                alternates.push(Alternate {
                    hreflang: l.clone(),
                    url: self.url(&urls::index(l)),
                });
            }
            alternates.push(Alternate {
                hreflang: "x-default".into(),
                url: self.config.base_url.clone(),
            });
        }
        let head = Head {
            // The root index is a copy of the default language's first page.
            canonical: self.url(&index_page_path(lang, page)),
            alternates,
            feeds: self.head_feeds(lang, &[]),
        };
        let ctx = context! {
            root => root_for(path),
            head => Serde(head),
            entries => Serde(self.entries(slice)),
            pagination => Serde(pagination),
            ..self.chrome(lang)
        };
        self.render_template("index.html", ctx)
    }

    fn topics_html(&self, lang: &str, path: &str) -> Result<String, SiteError> {
        let topics: Vec<TopicCount> = self
            .topics
            .get(lang)
            .into_iter()
            .flatten()
            .map(|(t, list)| TopicCount {
                name: self.topic_name(lang, t),
                href: urls::topic(lang, t),
                count: list.len(),
            })
            .collect();
        let alternates = self
            .config
            .languages
            .iter()
            .map(|l| Alternate {
                hreflang: l.clone(),
                url: self.url(&topics_path(l)),
            })
            .collect();
        let head = Head {
            canonical: self.url(&topics_path(lang)),
            alternates,
            feeds: self.head_feeds(lang, &[]),
        };
        let ctx = context! {
            root => root_for(path),
            head => Serde(head),
            topics => Serde(topics),
            ..self.chrome(lang)
        };
        self.render_template("topics.html", ctx)
    }

    fn topic_html(
        &self,
        lang: &str,
        topic: &str,
        page: usize,
        path: &str,
    ) -> Result<String, SiteError> {
        let list = self
            .topics
            .get(lang)
            .and_then(|t| t.get(topic))
            .map_or(&[][..], Vec::as_slice);
        let (slice, pagination) =
            self.paginate(lang, list, page, |n| topic_page_path(lang, topic, n));
        let mut alternates = Vec::new();
        if page == 1 {
            for l in &self.config.languages {
                if self
                    .topics
                    .get(l.as_str())
                    .is_some_and(|t| t.contains_key(topic))
                {
                    alternates.push(Alternate {
                        hreflang: l.clone(),
                        url: self.url(&urls::topic(l, topic)),
                    });
                }
            }
        }
        let head = Head {
            canonical: self.url(&topic_page_path(lang, topic, page)),
            alternates,
            feeds: self.head_feeds(lang, &[topic]),
        };
        let view = TopicView {
            slug: topic.to_string(),
            name: self.topic_name(lang, topic),
            feeds: self.feed_links(lang, Some(topic)),
        };
        let ctx = context! {
            root => root_for(path),
            head => Serde(head),
            topic => Serde(view),
            entries => Serde(self.entries(slice)),
            pagination => Serde(pagination),
            ..self.chrome(lang)
        };
        self.render_template("topic.html", ctx)
    }

    fn statement_html(&self, s: &Statement, path: &str) -> Result<String, SiteError> {
        // Parsed here, inside the per-page job, and dropped with it.
        let body = to_html(&s.document(), &HtmlOptions::default());
        let versions = self.by_id.get(s.id.as_str()).map_or(&[][..], Vec::as_slice);
        let mut alternates: Vec<Alternate> = Vec::new();
        if versions.len() > 1 {
            for v in versions {
                alternates.push(Alternate {
                    hreflang: v.lang.clone(),
                    url: self.url(&urls::page(v)),
                });
            }
            let default = versions
                .iter()
                .find(|v| v.lang == self.config.default_language)
                .unwrap_or(&versions[0]);
            alternates.push(Alternate {
                hreflang: "x-default".into(),
                url: self.url(&urls::page(default)),
            });
        }
        let translations = versions
            .iter()
            .filter(|v| v.lang != s.lang)
            .map(|v| Translation {
                lang: &v.lang,
                name: i18n::language_name(&v.lang),
                href: urls::page(v),
            })
            .collect();
        let pdf = match self.input.pdfs {
            PdfLinks::None => None,
            PdfLinks::Every => Some(PdfView {
                href: urls::pdf(s),
                size: None,
                signed_by: None,
                manifest: None,
            }),
            PdfLinks::Sizes(sizes) => {
                let href = urls::pdf(s);
                sizes.get(&href).map(|n| PdfView {
                    size: Some(i18n::file_size(&s.lang, *n)),
                    href,
                    signed_by: None,
                    manifest: None,
                })
            }
        }
        .map(|mut p| {
            let i = self.input.integrity;
            p.signed_by = i.signed_by.map(str::to_string);
            p.manifest = i.manifest.then_some(".well-known/herald/manifest.json");
            p
        });
        let languages: Vec<LangLink<'_>> = self
            .config
            .languages
            .iter()
            .map(|l| LangLink {
                code: l,
                name: i18n::language_name(l),
                href: versions
                    .iter()
                    .find(|v| &v.lang == l)
                    .map_or_else(|| urls::index(l), |v| urls::page(v)),
                current: *l == s.lang,
            })
            .collect();
        let topics: Vec<&str> = s.meta.topics.iter().map(String::as_str).collect();
        let head = Head {
            canonical: self.url(&urls::page(s)),
            alternates,
            feeds: self.head_feeds(&s.lang, &topics),
        };
        let view = StatementView {
            id: &s.id,
            lang: &s.lang,
            title: &s.meta.title,
            summary: &s.meta.summary,
            date: DateView::new(&s.lang, &s.meta.date),
            updated: s.meta.updated.as_ref().map(|u| DateView::new(&s.lang, u)),
            place: s.meta.place.as_deref(),
            occasion: s.meta.occasion.as_deref(),
            issuers: &s.meta.issuers,
            topics: topics.iter().map(|t| self.topic_ref(&s.lang, t)).collect(),
            translations,
            pdf,
        };
        let ctx = context! {
            root => root_for(path),
            head => Serde(head),
            description => s.meta.summary.as_str(),
            statement => Serde(view),
            // Already escaped and sanitized by herald-content.
            body => Value::from_safe_string(body),
            // The switcher leads to this statement's translations where there are some.
            languages => Serde(languages),
            ..self.chrome(&s.lang)
        };
        self.render_template("statement.html", ctx)
    }

    /// `sitemap.xml`, and numbered parts when one file would be too large.
    fn sitemap(&self) -> Vec<(String, String)> {
        self.sitemap_in(SITEMAP_CHUNK)
    }

    /// The sitemap with at most `chunk` URLs per file.
    fn sitemap_in(&self, chunk: usize) -> Vec<(String, String)> {
        // (loc path, lastmod, alternates as (hreflang, path)).
        let mut entries: Vec<SitemapUrl> = Vec::new();
        let newest = |list: &[&Statement]| list.iter().map(|s| s.modified()).max();
        let lang_alts: Vec<(String, String)> = self
            .config
            .languages
            .iter()
            .map(|l| (l.clone(), urls::index(l)))
            .chain(std::iter::once(("x-default".to_string(), String::new())))
            .collect();
        for lang in &self.config.languages {
            let list = self
                .by_lang
                .get(lang.as_str())
                .map_or(&[][..], Vec::as_slice);
            entries.push(SitemapUrl {
                loc: urls::index(lang),
                lastmod: newest(list),
                alts: lang_alts.clone(),
            });
        }
        for lang in &self.config.languages {
            if let Some(topics) = self.topics.get(lang.as_str()) {
                for (t, list) in topics {
                    entries.push(SitemapUrl {
                        loc: urls::topic(lang, t),
                        lastmod: newest(list),
                        alts: Vec::new(),
                    });
                }
            }
        }
        for s in &self.published {
            let versions = self.by_id.get(s.id.as_str()).map_or(&[][..], Vec::as_slice);
            let alts = if versions.len() > 1 {
                versions
                    .iter()
                    .map(|v| (v.lang.clone(), urls::page(v)))
                    .collect()
            } else {
                Vec::new()
            };
            entries.push(SitemapUrl {
                loc: urls::page(s),
                lastmod: Some(s.modified()),
                alts,
            });
        }

        let urlset = |chunk: &[SitemapUrl]| {
            let mut x = String::with_capacity(chunk.len() * 256 + 256);
            x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\" xmlns:xhtml=\"http://www.w3.org/1999/xhtml\">\n");
            for SitemapUrl { loc, lastmod, alts } in chunk {
                let _ = write!(x, "<url><loc>{}</loc>", xml_escape(&self.url(loc)));
                if let Some(m) = lastmod {
                    let _ = write!(x, "<lastmod>{}</lastmod>", w3c_date(m));
                }
                for (hreflang, path) in alts {
                    let _ = write!(
                        x,
                        "<xhtml:link rel=\"alternate\" hreflang=\"{}\" href=\"{}\"/>",
                        xml_escape(hreflang),
                        xml_escape(&self.url(path))
                    );
                }
                x.push_str("</url>\n");
            }
            x.push_str("</urlset>\n");
            x
        };
        if entries.len() <= chunk {
            return vec![(urls::SITEMAP.to_string(), urlset(&entries))];
        }
        let mut files = Vec::new();
        let mut index = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<sitemapindex xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
        );
        for (i, chunk) in entries.chunks(chunk.max(1)).enumerate() {
            let name = format!("sitemap-{}.xml", i + 1);
            let _ = write!(
                index,
                "<sitemap><loc>{}</loc>",
                xml_escape(&self.url(&name))
            );
            if let Some(m) = chunk.iter().filter_map(|e| e.lastmod).max() {
                let _ = write!(index, "<lastmod>{}</lastmod>", w3c_date(&m));
            }
            index.push_str("</sitemap>\n");
            files.push((name, urlset(chunk)));
        }
        index.push_str("</sitemapindex>\n");
        files.push((urls::SITEMAP.to_string(), index));
        files
    }
}

/// One `<url>` of the sitemap; paths are below the site root.
struct SitemapUrl {
    loc: String,
    lastmod: Option<DateTime<FixedOffset>>,
    /// (hreflang, path)
    alts: Vec<(String, String)>,
}

fn xml_escape(s: &str) -> String {
    herald_content::html::escape(s)
}

/// Files below `content/assets/` as (file, `/`-separated path below it), sorted, as
/// herald-content lists them (hidden files skipped, links leaving the project refused).
fn list_assets(root: &Path, dir: &Path) -> Result<Vec<(PathBuf, String)>, SiteError> {
    let files = herald_content::asset_files(root).map_err(|e| SiteError::Invalid(e.to_string()))?;
    let mut out = Vec::new();
    for path in files {
        let rel = path.strip_prefix(dir).unwrap_or(&path);
        let mut parts = Vec::new();
        for part in rel.iter() {
            let Some(p) = part.to_str() else {
                return Err(SiteError::Invalid(format!(
                    "asset {} has a name that is not UTF-8; rename it",
                    path.display()
                )));
            };
            parts.push(p);
        }
        let rel = parts.join("/");
        out.push((path, rel));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
