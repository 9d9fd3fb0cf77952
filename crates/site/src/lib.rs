//! herald-site: the static HTML archive.
//!
//! [`render`] turns the statements the pipeline says are published into pages
//! (an index per language, a page per statement, topic pages), `sitemap.xml`,
//! `style.css` and a copy of `content/assets/`, streaming each file into a
//! [`Sink`]. It never decides what is published, never reads the clock and
//! never parses Markdown: it renders [`Statement::document`] with
//! [`herald_content::html::to_html`] through minijinja templates.

// Dates, language and topic names and the interface strings: one table for every channel.
use herald_content::l10n as i18n;
mod meta;
mod templates;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, SecondsFormat};
use herald_content::html::{HtmlOptions, to_html};
use herald_content::key::KeyHasher;
use herald_content::{Config, Corpus, Diagnostic, FeedKind, Sink, Statement, content_dir, urls};
use minijinja::value::{Serde, Value};
use minijinja::{Environment, context};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use i18n::{Strings, direction, long_date, strings};
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
    Sizes(&'a herald_content::fast::HashMap<String, u64>),
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
    /// `[site]` as the pipeline read it once; none: read from `corpus.config`.
    pub settings: Option<&'a SiteSettings>,
    /// The statements published at this run's `now`, and nothing else: the
    /// site shows no other statement anywhere (pages, indexes, topics,
    /// sitemap, translation links).
    pub published: &'a [&'a Statement],
    pub pdfs: PdfLinks<'a>,
    /// Feed formats that exist for each language and each (language, topic)
    /// with published statements; empty when there are no feeds.
    pub feeds: &'a [FeedKind],
    pub subscribe: Option<&'a SubscribeForm>,
    /// Preview images beside statement pages, by page path (`en/2014/world-day/`);
    /// none: pages carry no `og:image`.
    pub previews: Option<&'a herald_content::fast::HashMap<String, PreviewImage>>,
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

/// A statement's link-preview image, as the page's tags describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewImage {
    /// Path below the site root, e.g. `en/2014/world-day/preview-1a2b3c4d.png`.
    pub path: String,
    pub width: u32,
    pub height: u32,
}

impl<'a> SiteInput<'a> {
    /// Pages only: no PDF or feed links, no subscribe form.
    pub fn new(corpus: &'a Corpus, published: &'a [&'a Statement]) -> Self {
        SiteInput {
            settings: None,
            corpus,
            published,
            pdfs: PdfLinks::None,
            feeds: &[],
            subscribe: None,
            integrity: Integrity::default(),
            previews: None,
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
    pub topic_names: i18n::TopicNames,
    /// A minisign secret key (unencrypted; relative to the folder of herald.toml):
    /// publish signs `.well-known/herald/manifest.json` with it.
    pub manifest_key: Option<std::path::PathBuf>,
    /// The link-preview images: `[site.preview]`.
    pub preview: PreviewSettings,
}

impl Default for SiteSettings {
    fn default() -> Self {
        SiteSettings {
            per_page: 50,
            topic_names: i18n::TopicNames::default(),
            manifest_key: None,
            preview: PreviewSettings::default(),
        }
    }
}

/// `[site.preview]`: colours (`#rrggbb`) and an optional logo of the 1200×630
/// link-preview image of each statement page.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PreviewSettings {
    /// Write preview images (default true).
    pub enabled: bool,
    pub background: String,
    /// The title's colour.
    pub text: String,
    /// The organization line, the date and the rule.
    pub accent: String,
    /// An SVG or PNG file, relative to `herald.toml`'s folder.
    pub logo: Option<String>,
}

impl Default for PreviewSettings {
    fn default() -> Self {
        PreviewSettings {
            enabled: true,
            background: "#0b3d6b".into(),
            text: "#ffffff".into(),
            accent: "#cfe3f7".into(),
            logo: None,
        }
    }
}

/// `#rrggbb` as RGB.
pub fn parse_colour(s: &str) -> Option<[u8; 3]> {
    let hex = s.strip_prefix('#')?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

/// WCAG 2.x contrast ratio of two sRGB colours (1 to 21).
pub fn contrast(a: [u8; 3], b: [u8; 3]) -> f64 {
    let lum = |c: [u8; 3]| {
        let lin = |v: u8| {
            let v = f64::from(v) / 255.0;
            if v <= 0.04045 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2])
    };
    let (x, y) = (lum(a), lum(b));
    (x.max(y) + 0.05) / (x.min(y) + 0.05)
}

impl PreviewSettings {
    /// The three colours, checked: each `#rrggbb`, and text and accent readable on
    /// the background (WCAG AA, 4.5:1).
    pub fn colours(&self) -> Result<[[u8; 3]; 3], SiteError> {
        let mut out = [[0u8; 3]; 3];
        for (i, (key, value)) in [
            ("background", &self.background),
            ("text", &self.text),
            ("accent", &self.accent),
        ]
        .into_iter()
        .enumerate()
        {
            out[i] = parse_colour(value).ok_or_else(|| {
                SiteError::Invalid(format!(
                    "herald.toml [site.preview] {key} = {value:?} is not a colour: write it as \"#rrggbb\", e.g. \"#0b3d6b\""
                ))
            })?;
        }
        for (i, key) in [(1, "text"), (2, "accent")] {
            let ratio = contrast(out[0], out[i]);
            if ratio < 4.5 {
                return Err(SiteError::Invalid(format!(
                    "herald.toml [site.preview]: {key} {} on background {} has a contrast of {ratio:.2}:1; choose colours with at least 4.5:1 (WCAG AA)",
                    if i == 1 { &self.text } else { &self.accent },
                    self.background
                )));
            }
        }
        Ok(out)
    }
}

impl SiteSettings {
    /// Read and check `[site]`.
    pub fn from_config(config: &Config) -> Result<SiteSettings, SiteError> {
        let s: SiteSettings = config
            .section("site")
            .map_err(|d| SiteError::Settings(Box::new(d)))?;
        s.preview.colours()?;
        if let Some(logo) = &s.preview.logo {
            let lower = logo.to_ascii_lowercase();
            if !(lower.ends_with(".svg") || lower.ends_with(".png")) {
                return Err(SiteError::Invalid(format!(
                    "herald.toml [site.preview] logo = {logo:?}: give an .svg or .png file (relative to herald.toml)"
                )));
            }
        }
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
    /// Year archives (`en/2014/`).
    pub year_pages: usize,
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
    let settings = match input.settings {
        Some(s) => s.clone(),
        None => SiteSettings::from_config(config)?,
    };
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
        if let Some(years) = site.years.get(lang.as_str()) {
            for year in years.keys() {
                jobs.push(Job::Year { lang, year });
            }
        }
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

    let salt = site.salt(&template_dir)?;
    let done: Vec<(Kind, Vec<String>)> = jobs
        .par_iter()
        .map(|job| {
            // A page whose key is the one it was last rendered from is kept as it is.
            if let Some((kind, path, key)) = site.keyed(job, salt) {
                let kept = sink.reuse(&path, key).map_err(|source| SiteError::Write {
                    path: path.clone(),
                    source,
                })?;
                if kept {
                    return Ok((kind, vec![path]));
                }
            }
            site.run(job, &template_dir, sink)
        })
        .collect::<Result<_, _>>()?;
    let mut report = SiteReport::default();
    for (kind, files) in done {
        match kind {
            Kind::Statement => report.statement_pages += 1,
            Kind::Index => report.index_pages += 1,
            Kind::Year => report.year_pages += 1,
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
    Year {
        lang: &'a str,
        year: &'a str,
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
    Year,
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
    /// OpenGraph and Twitter card tags.
    meta: Vec<meta::MetaTag>,
}

#[derive(Serialize)]
struct YearCount {
    year: String,
    href: String,
    count: usize,
    current: bool,
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
    /// Per language: year -> statements, newest first.
    years: HashMap<&'a str, BTreeMap<&'a str, Vec<&'a Statement>>>,
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

/// A year's archive: `en/2014/`.
fn year_path(lang: &str, year: &str) -> String {
    format!("{lang}/{year}/")
}

fn topics_path(lang: &str) -> String {
    format!("{}topics/", urls::index(lang))
}

/// `human-rights` -> `Human rights`.
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
        let mut years: HashMap<&str, BTreeMap<&str, Vec<&Statement>>> = HashMap::new();
        for s in &published {
            years
                .entry(&s.lang)
                .or_default()
                .entry(&s.year)
                .or_default()
                .push(s);
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
            years,
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
        self.settings
            .topic_names
            .name(lang, topic, &self.config.default_language)
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
        urls::absolute(&self.config.base_url, path)
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
            Job::Year { lang, year } => {
                let path = format!("{}index.html", year_path(lang, year));
                let html = self.year_html(lang, year, &path)?;
                Ok((Kind::Year, vec![put(path, html.as_bytes())?]))
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

    /// What every page shares, as one key: the configuration (settings, topic
    /// names, languages), every file in `content/templates/` (an override may
    /// include any of them), and the inputs the pipeline passes for all pages.
    fn salt(&self, template_dir: &Path) -> Result<u128, SiteError> {
        let mut k = KeyHasher::new("site");
        k.str(self.config.source());
        if let Ok(dir) = std::fs::read_dir(template_dir) {
            let mut files: Vec<PathBuf> = dir
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
                .map(|e| e.path())
                .collect();
            files.sort();
            for f in files {
                let bytes = std::fs::read(&f).map_err(|source| SiteError::Read {
                    path: f.clone(),
                    source,
                })?;
                k.str(&f.to_string_lossy()).bytes(&bytes);
            }
        }
        for f in self.input.feeds {
            k.str(f.label());
        }
        match self.input.subscribe {
            None => k.u64(0),
            Some(f) => {
                k.u64(1).str(&f.action);
                for l in &f.languages {
                    k.str(l);
                }
                k.u64(f.topics.len() as u64);
                for t in &f.topics {
                    k.str(t);
                }
                &mut k
            }
        };
        k.opt(self.input.integrity.signed_by)
            .u64(u64::from(self.input.integrity.manifest))
            .u64(u64::from(self.input.previews.is_some()))
            .u64(match self.input.pdfs {
                PdfLinks::None => 0,
                PdfLinks::Every => 1,
                PdfLinks::Sizes(_) => 2,
            });
        Ok(k.finish())
    }

    /// A page job's kind, path and render key: everything its page shows beyond
    /// the `salt`. `None` for jobs rendered every time (stylesheet, sitemap, assets).
    fn keyed(&self, job: &Job<'_>, salt: u128) -> Option<(Kind, String, u128)> {
        let statements = |k: &mut KeyHasher, list: &[&Statement]| {
            k.u64(list.len() as u64);
            for s in list {
                k.key(s.key());
            }
        };
        let years = |k: &mut KeyHasher, lang: &str| {
            for (y, list) in self.years.get(lang).into_iter().flatten() {
                k.str(y).u64(list.len() as u64);
            }
        };
        let page_of = |k: &mut KeyHasher, list: &[&'a Statement], page: usize| {
            k.u64(page as u64).u64(self.page_count(list.len()) as u64);
            statements(k, self.page_slice(list, page));
        };
        let mut k = KeyHasher::new("site-page");
        k.key(salt);
        let (kind, path) = match job {
            Job::Stylesheet | Job::Sitemap | Job::Asset { .. } => return None,
            Job::Root | Job::Index { .. } => {
                let (lang, page, path) = match job {
                    Job::Index { lang, page } => (
                        *lang,
                        *page,
                        format!("{}index.html", index_page_path(lang, *page)),
                    ),
                    _ => (
                        self.config.default_language.as_str(),
                        1,
                        "index.html".to_string(),
                    ),
                };
                let list = self.by_lang.get(lang).map_or(&[][..], Vec::as_slice);
                k.str(lang);
                page_of(&mut k, list, page);
                years(&mut k, lang);
                (Kind::Index, path)
            }
            Job::Topics { lang } => {
                k.str(lang);
                for (t, list) in self.topics.get(lang).into_iter().flatten() {
                    k.str(t).u64(list.len() as u64);
                }
                (Kind::Topic, format!("{}index.html", topics_path(lang)))
            }
            Job::Year { lang, year } => {
                let list = self.in_year(lang, year);
                k.str(lang).str(year);
                statements(&mut k, list);
                years(&mut k, lang);
                for l in &self.config.languages {
                    let has = self
                        .years
                        .get(l.as_str())
                        .is_some_and(|y| y.contains_key(year));
                    k.u64(u64::from(has));
                }
                (Kind::Year, format!("{}index.html", year_path(lang, year)))
            }
            Job::Topic { lang, topic, page } => {
                let list = self.in_topic(lang, topic);
                k.str(lang).str(topic);
                page_of(&mut k, list, *page);
                for l in &self.config.languages {
                    let has = self
                        .topics
                        .get(l.as_str())
                        .is_some_and(|t| t.contains_key(topic));
                    k.u64(u64::from(has));
                }
                (
                    Kind::Topic,
                    format!("{}index.html", topic_page_path(lang, topic, *page)),
                )
            }
            Job::Statement(s) => {
                let versions = self.by_id.get(s.id.as_str()).map_or(&[][..], Vec::as_slice);
                k.key(s.key());
                statements(&mut k, versions);
                let pdf = urls::pdf(s);
                match self.input.pdfs {
                    PdfLinks::Sizes(sizes) => {
                        k.opt(sizes.get(&pdf).map(|n| n.to_string()).as_deref())
                    }
                    _ => k.str(&pdf),
                };
                let image = self.input.previews.and_then(|p| p.get(&urls::page(s)));
                k.opt(image.map(|p| p.path.as_str()));
                (Kind::Statement, format!("{}index.html", urls::page(s)))
            }
        };
        Some((kind, path, k.finish()))
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
        let total = self.page_count(list.len());
        let pagination = Pagination {
            current: page,
            total,
            label: i18n::page_of(lang, page, total),
            newer: (page > 1).then(|| path_of(page - 1)),
            older: (page < total).then(|| path_of(page + 1)),
        };
        (self.page_slice(list, page), pagination)
    }

    /// The statements on page `page` (from 1) of `list`.
    fn page_slice<'l>(&self, list: &'l [&'a Statement], page: usize) -> &'l [&'a Statement] {
        let per = self.settings.per_page;
        let start = (page - 1).saturating_mul(per).min(list.len());
        let end = start.saturating_add(per).min(list.len());
        &list[start..end]
    }

    /// The statements of `year` in `lang`, newest first.
    fn in_year(&self, lang: &str, year: &str) -> &[&'a Statement] {
        self.years
            .get(lang)
            .and_then(|y| y.get(year))
            .map_or(&[][..], Vec::as_slice)
    }

    /// The statements of `topic` in `lang`, newest first.
    fn in_topic(&self, lang: &str, topic: &str) -> &[&'a Statement] {
        self.topics
            .get(lang)
            .and_then(|t| t.get(topic))
            .map_or(&[][..], Vec::as_slice)
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
        // The root index is a copy of the default language's first page.
        let canonical = self.url(&index_page_path(lang, page));
        let others = self.other_languages(lang);
        let head = Head {
            meta: self.site_tags(lang, &self.config.title, &canonical, &others),
            canonical,
            alternates,
            feeds: self.head_feeds(lang, &[]),
        };
        let ctx = context! {
            root => root_for(path),
            head => Serde(head),
            entries => Serde(self.entries(slice)),
            pagination => Serde(pagination),
            years => Serde(self.year_counts(lang, None)),
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
        let canonical = self.url(&topics_path(lang));
        let others = self.other_languages(lang);
        let head = Head {
            meta: self.site_tags(lang, i18n::strings(lang).topics, &canonical, &others),
            canonical,
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

    /// The years of `lang` with their statement counts, newest first.
    fn year_counts(&self, lang: &str, current: Option<&str>) -> Vec<YearCount> {
        self.years
            .get(lang)
            .into_iter()
            .flatten()
            .rev()
            .map(|(y, list)| YearCount {
                year: (*y).to_string(),
                href: year_path(lang, y),
                count: list.len(),
                current: current == Some(*y),
            })
            .collect()
    }

    /// The configured languages other than `lang`.
    fn other_languages(&self, lang: &str) -> Vec<&str> {
        self.config
            .languages
            .iter()
            .map(String::as_str)
            .filter(|l| *l != lang)
            .collect()
    }

    /// Site-level link-preview tags of a list page.
    fn site_tags(
        &self,
        lang: &str,
        title: &str,
        url: &str,
        alternates: &[&str],
    ) -> Vec<meta::MetaTag> {
        let mut tags = meta::Tags::default();
        meta::common(
            &mut tags,
            &meta::Page {
                kind: "website",
                site_name: &self.config.title,
                title,
                description: Some(&self.config.organization.name),
                url,
                lang,
                alternates,
                image: None,
            },
        );
        tags.0
    }

    /// `en/2014/`: every statement of that year in that language, newest first.
    fn year_html(&self, lang: &str, year: &str, path: &str) -> Result<String, SiteError> {
        let list = self.in_year(lang, year);
        let mut alternates = Vec::new();
        let mut others: Vec<&str> = Vec::new();
        for l in &self.config.languages {
            if self
                .years
                .get(l.as_str())
                .is_some_and(|y| y.contains_key(year))
            {
                alternates.push(Alternate {
                    hreflang: l.clone(),
                    url: self.url(&year_path(l, year)),
                });
                if l != lang {
                    others.push(l);
                }
            }
        }
        if alternates.len() < 2 {
            alternates.clear();
        }
        let canonical = self.url(&year_path(lang, year));
        let heading = i18n::year_title(lang, year);
        let head = Head {
            meta: self.site_tags(lang, &heading, &canonical, &others),
            canonical,
            alternates,
            feeds: self.head_feeds(lang, &[]),
        };
        let ctx = context! {
            root => root_for(path),
            head => Serde(head),
            year => year,
            heading => heading,
            entries => Serde(self.entries(list)),
            years => Serde(self.year_counts(lang, Some(year))),
            pagination => Serde(Pagination {
                current: 1,
                total: 1,
                label: i18n::page_of(lang, 1, 1),
                newer: None,
                older: None,
            }),
            ..self.chrome(lang)
        };
        self.render_template("year.html", ctx)
    }

    fn topic_html(
        &self,
        lang: &str,
        topic: &str,
        page: usize,
        path: &str,
    ) -> Result<String, SiteError> {
        let list = self.in_topic(lang, topic);
        let (slice, pagination) =
            self.paginate(lang, list, page, |n| topic_page_path(lang, topic, n));
        let mut alternates = Vec::new();
        let mut others: Vec<&str> = Vec::new();
        for l in &self.config.languages {
            if self
                .topics
                .get(l.as_str())
                .is_some_and(|t| t.contains_key(topic))
            {
                if page == 1 {
                    alternates.push(Alternate {
                        hreflang: l.clone(),
                        url: self.url(&urls::topic(l, topic)),
                    });
                }
                if l != lang {
                    others.push(l);
                }
            }
        }
        let canonical = self.url(&topic_page_path(lang, topic, page));
        let head = Head {
            meta: self.site_tags(lang, &self.topic_name(lang, topic), &canonical, &others),
            canonical,
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
        // The tree the statement holds: parsed once, shared with every channel.
        let body = to_html(s.document(), &HtmlOptions::default());
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
        let canonical = self.url(&urls::page(s));
        let (tags, jsonld) = self.statement_meta(s, versions, &canonical, pdf.as_ref());
        let head = Head {
            meta: tags,
            canonical,
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
            // JSON with every `<` escaped (meta::script_json): data, never markup.
            jsonld => Value::from_safe_string(jsonld),
            ..self.chrome(&s.lang)
        };
        self.render_template("statement.html", ctx)
    }

    /// A statement page's link-preview tags and its schema.org `NewsArticle`.
    fn statement_meta(
        &self,
        s: &Statement,
        versions: &[&Statement],
        url: &str,
        pdf: Option<&PdfView>,
    ) -> (Vec<meta::MetaTag>, String) {
        let published = w3c_date(&s.meta.date);
        let modified = w3c_date(&s.modified());
        let date_text = i18n::long_date(&s.lang, &s.meta.date);
        let org = &self.config.organization;
        let by = if s.meta.issuers.is_empty() {
            org.name.clone()
        } else {
            s.meta.issuers.join(", ")
        };
        let alt = format!("{} — {by}, {date_text}", s.meta.title);
        let image = self
            .input
            .previews
            .and_then(|p| p.get(&urls::page(s)))
            .map(|p| meta::ImageTag {
                url: self.url(&p.path),
                width: p.width,
                height: p.height,
                alt: &alt,
            });
        let others: Vec<&str> = versions
            .iter()
            .filter(|v| v.lang != s.lang)
            .map(|v| v.lang.as_str())
            .collect();
        let mut tags = meta::Tags::default();
        meta::common(
            &mut tags,
            &meta::Page {
                kind: "article",
                site_name: &self.config.title,
                title: &s.meta.title,
                description: Some(&s.meta.summary),
                url,
                lang: &s.lang,
                alternates: &others,
                image: image.as_ref(),
            },
        );
        tags.og("article:published_time", published.clone())
            .og("article:modified_time", modified.clone());
        for t in &s.meta.topics {
            tags.og("article:tag", self.topic_name(&s.lang, t));
        }

        let issuers: Vec<serde_json::Value> = if s.meta.issuers.is_empty() {
            vec![meta::organization(&org.name, org.url.as_deref())]
        } else {
            s.meta
                .issuers
                .iter()
                .map(|i| meta::organization(i, None))
                .collect()
        };
        let mut article = serde_json::json!({
            "@context": "https://schema.org",
            "@type": "NewsArticle",
            "@id": format!("{url}#article"),
            "url": url,
            "mainEntityOfPage": url,
            "headline": s.meta.title,
            "description": s.meta.summary,
            "datePublished": published,
            "dateModified": modified,
            "inLanguage": s.lang,
            "author": issuers,
            "publisher": issuers,
            "isPartOf": { "@type": "WebSite", "name": self.config.title, "url": self.config.base_url },
        });
        if !s.meta.topics.is_empty() {
            let names: Vec<String> = s
                .meta
                .topics
                .iter()
                .map(|t| self.topic_name(&s.lang, t))
                .collect();
            article["keywords"] = serde_json::json!(names);
        }
        if let Some(place) = &s.meta.place {
            article["locationCreated"] = serde_json::json!({ "@type": "Place", "name": place });
        }
        if let Some(img) = &image {
            article["image"] = serde_json::json!({
                "@type": "ImageObject",
                "url": img.url,
                "width": img.width,
                "height": img.height,
                "caption": img.alt,
            });
        }
        if let Some(p) = pdf {
            let mut media = serde_json::json!({
                "@type": "MediaObject",
                "contentUrl": self.url(&p.href),
                "encodingFormat": "application/pdf",
                "inLanguage": s.lang,
            });
            if let Some(size) = &p.size {
                media["contentSize"] = serde_json::json!(size);
            }
            article["associatedMedia"] = media;
        }
        // The original is the default language's version (else the first listed);
        // the others are its translations.
        let original = versions
            .iter()
            .find(|v| v.lang == self.config.default_language)
            .or_else(|| versions.first());
        if let Some(o) = original.filter(|_| versions.len() > 1) {
            let reference = |v: &Statement| {
                meta::article_ref(&self.url(&urls::page(v)), &v.lang, &v.meta.title)
            };
            if o.lang == s.lang {
                let list: Vec<serde_json::Value> = versions
                    .iter()
                    .filter(|v| v.lang != s.lang)
                    .map(|v| reference(v))
                    .collect();
                article["workTranslation"] = serde_json::json!(list);
            } else {
                article["translationOfWork"] = reference(o);
            }
        }
        (tags.0, meta::script_json(&article))
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
        for lang in &self.config.languages {
            if let Some(years) = self.years.get(lang.as_str()) {
                for (y, list) in years {
                    let alts: Vec<(String, String)> = self
                        .config
                        .languages
                        .iter()
                        .filter(|l| {
                            self.years
                                .get(l.as_str())
                                .is_some_and(|ys| ys.contains_key(y))
                        })
                        .map(|l| (l.clone(), year_path(l, y)))
                        .collect();
                    entries.push(SitemapUrl {
                        loc: year_path(lang, y),
                        lastmod: newest(list),
                        alts: if alts.len() > 1 { alts } else { Vec::new() },
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
