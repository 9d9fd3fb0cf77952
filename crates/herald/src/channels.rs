//! The channels as the pipeline sees them: settings, order, and the calls into
//! the channel crates. Only this module knows all of them.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_content::{Corpus, Diagnostic, FeedKind, Sink, Statement, urls};
use rayon::prelude::*;

use crate::ledger::{Entry, Ledger};
use crate::output::Tally;
use crate::pipeline::ChannelReport;
use crate::{Error, Paths};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Pdf,
    Feed,
    Site,
    Mail,
}

impl Channel {
    pub const ALL: &'static [Channel] =
        &[Channel::Pdf, Channel::Feed, Channel::Site, Channel::Mail];
    /// Channels that write into `public/`, in the order they run: the PDF first
    /// (feeds and pages give its size), the site last (it links to both).
    pub const PUBLIC: &'static [Channel] = &[Channel::Pdf, Channel::Feed, Channel::Site];

    pub fn name(self) -> &'static str {
        match self {
            Channel::Pdf => "pdf",
            Channel::Feed => "feed",
            Channel::Site => "site",
            Channel::Mail => "mail",
        }
    }
}

/// Every channel's settings, read once so a bad section fails before any output.
pub struct Settings {
    pub schedules: crate::schedule::Schedules,
    pub feed: herald_feed::FeedSettings,
    pub site: herald_site::SiteSettings,
    pub pdf: herald_pdf::PdfSettings,
    /// The tag: URI authority for feed ids.
    pub authority: String,
    pub mail: herald_mail::MailSettings,
    /// `herald serve` runs at the site's origin: pages carry its subscribe form.
    pub subscribe: bool,
    /// The link-preview cards' colours and logo (read and checked once); none
    /// when `[site.preview] enabled = false`.
    pub preview: Option<herald_preview::Style>,
    /// [`pdf_files_salt`], hashed once: the content rules and the PDF channel
    /// both need it, and fonts can be megabytes.
    pdf_salt: std::sync::OnceLock<u128>,
}

fn channel_err(channel: &'static str, e: impl Into<crate::BoxError>) -> Error {
    Error::channel(channel, e)
}

impl Settings {
    pub fn load(corpus: &Corpus) -> Result<Settings, Error> {
        let config = &corpus.config;
        let schedules = crate::schedule::Schedules::from_config(config)
            .map_err(|d| Error::Content(herald_content::LoadError::Invalid(d)))?;
        let feed =
            herald_feed::FeedSettings::from_config(config).map_err(|e| channel_err("feed", e))?;
        let site =
            herald_site::SiteSettings::from_config(config).map_err(|e| channel_err("site", e))?;
        let pdf =
            herald_pdf::PdfSettings::from_config(config).map_err(|e| channel_err("pdf", e))?;
        let authority = feed.authority(config);
        let mut mail: herald_mail::MailSettings = config
            .section("mail")
            .map_err(|d| channel_err("mail", d.to_string()))?;
        mail.pdf_links = pdf.enabled;
        let serve: herald_serve::ServeSettings = config
            .section("serve")
            .map_err(|d| channel_err("serve", d.to_string()))?;
        let preview = preview_style(corpus, &site)?;
        Ok(Settings {
            preview,
            subscribe: serve.public_url.is_some(),
            mail,
            schedules,
            feed,
            site,
            pdf,
            authority,
            pdf_salt: std::sync::OnceLock::new(),
        })
    }

    /// What every PDF is made from besides its statement (see [`pdf_files_salt`]),
    /// hashed once per loaded settings, that is once per run.
    pub fn pdf_salt(&self, config: &herald_content::Config) -> u128 {
        *self
            .pdf_salt
            .get_or_init(|| pdf_files_salt(config, &self.pdf))
    }
}

/// `[site.preview]` as the renderer takes it: colours checked by herald-site,
/// the logo read (relative to herald.toml's folder) and parsed once here, so a
/// bad logo fails `check`, naming the file.
fn preview_style(
    corpus: &Corpus,
    site: &herald_site::SiteSettings,
) -> Result<Option<herald_preview::Style>, Error> {
    let p = &site.preview;
    if !p.enabled {
        return Ok(None);
    }
    let [background, text, accent] = p.colours().map_err(|e| channel_err("site", e))?;
    let logo = match &p.logo {
        None => None,
        Some(rel) => {
            let path = herald_content::content_dir(&corpus.root).join(rel);
            let bytes = std::fs::read(&path).map_err(|e| {
                channel_err(
                    "site",
                    format!(
                        "[site.preview] logo {}: {e}; give an SVG or PNG file relative to herald.toml",
                        path.display()
                    ),
                )
            })?;
            let logo = if rel.to_ascii_lowercase().ends_with(".svg") {
                herald_preview::Logo::Svg(bytes)
            } else {
                herald_preview::Logo::Png(bytes)
            };
            Some(logo)
        }
    };
    let style = herald_preview::Style {
        background,
        text,
        accent,
        logo,
    };
    if style.logo.is_some() {
        herald_preview::Renderer::new(style.clone()).map_err(|e| {
            channel_err(
                "site",
                format!("{} ({})", e, p.logo.as_deref().unwrap_or_default()),
            )
        })?;
    }
    Ok(Some(style))
}

impl Settings {
    /// The public channels this configuration runs, in [`Channel::PUBLIC`] order.
    pub fn public_channels(&self) -> Vec<Channel> {
        Channel::PUBLIC
            .iter()
            .copied()
            .filter(|ch| match ch {
                Channel::Pdf => self.pdf.enabled,
                Channel::Feed => self.feed.enabled,
                _ => true,
            })
            .collect()
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

/// The channels' content rules, run by `check` and by `publish` before anything is
/// rendered, so what a channel would refuse while rendering is a diagnostic instead.
/// The PDF's: every character it draws has a glyph in the font chain, and every
/// configured language's script is covered (a herald.toml error otherwise).
///
/// `passed` holds the coverage keys ([`coverage_key`]) of statements that passed
/// before: those are not scanned again. Returns the keys of every statement that
/// passes now.
pub fn content_rules(
    corpus: &Corpus,
    settings: &Settings,
    passed: &std::collections::HashSet<u128>,
) -> Result<Vec<u128>, Error> {
    // Keys are part of the gate: a key that cannot sign fails `check`, not a publish.
    let base = corpus
        .config
        .path
        .parent()
        .unwrap_or(std::path::Path::new("."));
    if let Some(key) = &settings.site.manifest_key {
        crate::manifest::ManifestKey::load(&base.join(key))?;
    }
    if !settings.pdf.enabled {
        return Ok(Vec::new());
    }
    if let Some(signing) = &settings.pdf.signing {
        herald_pdf::sign::Signer::load(base, signing).map_err(|e| channel_err("pdf", e))?;
    }
    let chain = herald_pdf::FontChain::new(&corpus.config, &settings.pdf)
        .map_err(|e| channel_err("pdf", e))?;
    let config = &corpus.config;
    let shown = |p: &std::path::Path| p.strip_prefix(&corpus.root).unwrap_or(p).to_path_buf();
    let mut problems: Vec<Diagnostic> = Vec::new();
    for lang in &config.languages {
        let missing = chain.uncovered_language(lang);
        if missing.is_empty() {
            continue;
        }
        let quoted = format!("\"{lang}\"");
        let source = config.source();
        let at = source
            .find("languages")
            .and_then(|k| source[k..].find(&quoted).map(|i| k + i))
            .unwrap_or(0);
        let list: String = missing
            .iter()
            .take(5)
            .map(|c| format!("{c} (U+{:04X}) ", *c as u32))
            .collect();
        problems.push(Diagnostic::at(
            "pdf-language",
            &shown(&config.path),
            source,
            at..at + quoted.len(),
            format!("no PDF font covers the script of language {lang:?}: {}", list.trim_end()),
            format!("add a font for it under [pdf], e.g. fonts = [\"fonts/NotoSans{}-Regular.ttf\"] (paths relative to herald.toml), or set [pdf] enabled = false", script_hint(lang)),
        ));
    }
    let salt = settings.pdf_salt(config);
    let found: Vec<Result<u128, Vec<Diagnostic>>> = corpus
        .statements
        .par_iter()
        .map(|s| {
            let key = coverage_key(salt, s);
            if passed.contains(&key) {
                return Ok(key);
            }
            let missing = chain.uncovered(config, s);
            if missing.is_empty() {
                Ok(key)
            } else {
                Err(missing_glyphs(corpus, s, &missing))
            }
        })
        .collect();
    let mut keys = Vec::with_capacity(found.len());
    for f in found {
        match f {
            Ok(k) => keys.push(k),
            Err(d) => problems.extend(d),
        }
    }
    if problems.is_empty() {
        return Ok(keys);
    }
    problems.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    Err(Error::Content(herald_content::LoadError::Invalid(
        herald_content::Diagnostics(problems),
    )))
}

/// The usual Noto family name part for a language's script, for the hint.
fn script_hint(lang: &str) -> &'static str {
    match lang.split('-').next().unwrap_or(lang) {
        "zh" => "SC",
        "ja" => "JP",
        "ko" => "KR",
        "he" | "yi" => "Hebrew",
        "hi" | "mr" | "ne" | "sa" => "Devanagari",
        "hy" => "Armenian",
        "ka" => "Georgian",
        "th" => "Thai",
        "bn" => "Bengali",
        "ta" => "Tamil",
        "am" | "ti" => "Ethiopic",
        _ => "",
    }
}

/// One diagnostic per character no PDF font has, at its first place in the file.
fn missing_glyphs(corpus: &Corpus, s: &Statement, missing: &[char]) -> Vec<Diagnostic> {
    let source = std::fs::read_to_string(corpus.root.join(&s.path)).unwrap_or_default();
    missing
        .iter()
        .map(|&c| {
            let code = c as u32;
            // Written as itself, as a character reference (`&#x1F600;`, `&#128512;`) or
            // as a TOML escape (`\u4E2D`, `\U0001F600`; lowercased, `\U` reads `\u`).
            let at = source.char_indices().find(|&(_, x)| x == c).map(|(i, _)| i..i + c.len_utf8()).or_else(|| {
                let lower = source.to_ascii_lowercase();
                [
                    format!("&#x{code:x};"),
                    format!("&#x{code:04x};"),
                    format!("&#{code};"),
                    format!("\\u{code:04x}"),
                    format!("\\u{code:08x}"),
                ]
                    .iter()
                    .find_map(|r| lower.find(r.as_str()).map(|i| i..i + r.len()))
            });
            let message = format!("no PDF font has a glyph for {c:?} (U+{code:04X})");
            let hint = "add a font file that has it to `fonts` under [pdf] in herald.toml, e.g. [pdf] fonts = [\"fonts/NotoSansSymbols2-Regular.ttf\"] (paths relative to herald.toml; TrueType or CFF outlines, not a colour emoji font), or remove the character";
            match at {
                Some(span) => Diagnostic::at("missing-glyph", &s.path, &source, span, message, hint),
                None => Diagnostic::file("missing-glyph", &s.path, message, hint),
            }
        })
        .collect()
}

pub struct Ctx<'a> {
    pub corpus: &'a Corpus,
    pub due: &'a [&'a Statement],
    pub now: DateTime<Utc>,
    pub entries: &'a herald_content::fast::HashMap<(String, String), Entry>,
    pub settings: &'a Settings,
    pub paths: &'a Paths,
    pub sink: &'a Tally<'a>,
    pub is_new: &'a (dyn Fn(&Statement, Channel) -> bool + Sync),
    pub dry_run: bool,
}

/// State that flows between channels in one publish.
#[derive(Default)]
pub struct Flow {
    /// PDF path below `public/` -> exact byte length.
    pub pdf_sizes: herald_content::fast::HashMap<String, u64>,
    /// Feed URLs whose bytes changed: the WebSub hub hears of them after the
    /// commit. Set by the feed channel, which runs beside the site.
    pub changed_feeds: Mutex<Vec<String>>,
}

/// A statement's permanent feed id, minted at first publication.
pub fn tag_uri(settings: &Settings, first: DateTime<Utc>, id: &str, lang: &str) -> String {
    herald_feed::tag_uri(&settings.authority, first, id, lang)
}

pub fn run(ch: Channel, ctx: &Ctx<'_>, flow: &mut Flow) -> Result<ChannelReport, Error> {
    match ch {
        Channel::Pdf => report(ch, ctx, || pdf(ctx, flow).map(|()| String::new())),
        _ => run_shared(ch, ctx, flow),
    }
}

/// [`run`] for the channels that only read what came before them (feed, site):
/// these may run side by side.
pub fn run_shared(ch: Channel, ctx: &Ctx<'_>, flow: &Flow) -> Result<ChannelReport, Error> {
    report(ch, ctx, || match ch {
        Channel::Feed => feed(ctx, flow),
        Channel::Site => site(ctx, flow).map(|()| String::new()),
        Channel::Pdf | Channel::Mail => Ok(String::new()),
    })
}

fn report(
    ch: Channel,
    ctx: &Ctx<'_>,
    work: impl FnOnce() -> Result<String, Error>,
) -> Result<ChannelReport, Error> {
    let new = ctx.due.iter().filter(|s| (ctx.is_new)(s, ch)).count();
    tracing::debug!(channel = ch.name(), "render starts");
    let mut report = ChannelReport {
        channel: ch.name(),
        new,
        live: ctx.due.len(),
        ..Default::default()
    };
    let begun = std::time::Instant::now();
    report.note = work()?;
    let stats = ctx.sink.stats();
    report.files_written = stats.written;
    report.files_unchanged = stats.unchanged;
    report.elapsed_ms = begun.elapsed().as_millis();
    Ok(report)
}

/// The statement-independent part of a PDF's key and of its coverage check:
/// the configuration and the files it names (fonts, signing key and
/// certificates), by their bytes, so replacing a font re-renders
/// and re-checks every PDF.
fn pdf_files_salt(config: &herald_content::Config, pdf: &herald_pdf::PdfSettings) -> u128 {
    let mut k = herald_content::key::KeyHasher::new("pdf");
    k.str(config.source());
    let base = config.path.parent().unwrap_or(std::path::Path::new("."));
    let signing = pdf.signing.iter().flat_map(|s| {
        [&s.key, &s.certificate, &s.pkcs12]
            .into_iter()
            .flatten()
            .cloned()
    });
    for f in pdf.fonts.iter().cloned().chain(signing) {
        let path = base.join(&f);
        k.str(&path.to_string_lossy());
        // The bytes, not the file's times: a font replaced by one of the same
        // size within the same second is still seen, and a touched one is not
        // mistaken for new. A few megabytes, hashed at memory speed.
        match std::fs::read(&path) {
            Ok(bytes) => k.u64(0).key(xxhash_rust::xxh3::xxh3_128(&bytes)),
            Err(_) => k.u64(u64::MAX),
        };
    }
    k.finish()
}

/// The key under which a statement passed the PDF coverage rule.
pub fn coverage_key(salt: u128, s: &Statement) -> u128 {
    herald_content::key::KeyHasher::new("pdf-coverage")
        .key(salt)
        .key(s.key())
        .finish()
}

/// A due statement, its PDF's path, and the size of the PDF kept by its key
/// (`None`: it renders).
type PdfOffer<'a> = (&'a Statement, String, Option<u64>);

/// Render the PDFs whose render key changed (a new version, a new configuration,
/// or a file gone missing); keep the others as they are. Fonts are parsed only
/// when something renders.
fn pdf(ctx: &Ctx<'_>, flow: &mut Flow) -> Result<(), Error> {
    let salt = ctx.settings.pdf_salt(&ctx.corpus.config);
    // Each statement's key and reuse offer side by side: thirteen thousand paths
    // and keys are most of an edit's PDF stage, and nothing else runs yet.
    let offers: Vec<Result<PdfOffer<'_>, Error>> = ctx
        .due
        .par_iter()
        .map(|&s| {
            let path = urls::pdf(s);
            let key = herald_content::key::KeyHasher::new("pdf-file")
                .key(salt)
                .key(s.key())
                .finish();
            // The size comes from the ledger; a ledger from before sizes has the
            // file looked at once.
            let size = || {
                ctx.sink.size(&path).or_else(|| {
                    ctx.paths
                        .public
                        .join(&path)
                        .metadata()
                        .ok()
                        .map(|m| m.len())
                })
            };
            let kept = if ctx.sink.reuse(&path, key)? {
                size()
            } else {
                None
            };
            Ok((s, path, kept))
        })
        .collect();
    let mut todo: Vec<&Statement> = Vec::new();
    flow.pdf_sizes.reserve(offers.len());
    for offer in offers {
        match offer? {
            (_, path, Some(n)) => {
                flow.pdf_sizes.insert(path, n);
            }
            (s, _, None) => todo.push(s),
        }
    }
    if todo.is_empty() {
        return Ok(());
    }
    let renderer = herald_pdf::Renderer::new(&ctx.corpus.config, &ctx.settings.pdf)
        .map_err(|e| channel_err("pdf", e))?;
    let rendered: Vec<(String, u64)> = todo
        .par_iter()
        .map(|s| {
            // A signal stops the run between two PDFs.
            if ctx.sink.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let path = urls::pdf(s);
            let bytes = renderer
                .render(&ctx.corpus.config, s)
                // The error names the statement's file already.
                .map_err(|e| channel_err("pdf", e))?;
            ctx.sink.put(&path, &bytes)?;
            Ok((path, bytes.len() as u64))
        })
        .collect::<Result<_, Error>>()?;
    flow.pdf_sizes.extend(rendered);
    Ok(())
}

fn feed(ctx: &Ctx<'_>, flow: &Flow) -> Result<String, Error> {
    let entries = ctx
        .due
        .iter()
        .filter_map(|s| {
            let e = ctx.entries.get(&(s.id.clone(), s.lang.clone()))?;
            Some(herald_feed::FeedEntry {
                statement: s,
                tag: e.tag_uri.clone(),
                first_published: e.first_published,
                pdf_length: flow.pdf_sizes.get(&urls::pdf(s)).copied(),
            })
        })
        .collect();
    let input = herald_feed::FeedInput {
        settings: Some(&ctx.settings.feed),
        corpus: ctx.corpus,
        now: ctx.now,
        entries,
    };
    let report = herald_feed::render(&input, ctx.sink).map_err(|e| channel_err("feed", e))?;
    let changed = report.changed_feed_urls(&ctx.sink.changed());
    if let Ok(mut feeds) = flow.changed_feeds.lock() {
        *feeds = changed;
    }
    Ok(String::new())
}

/// Tell the WebSub hub of the feeds this run changed, once they are in place.
/// A hub that is down must not undo a publish: the failure is only reported.
pub fn ping_hub(settings: &Settings, topics: &[String], dry_run: bool) -> Option<String> {
    let hub = settings.feed.hub.as_ref()?;
    if topics.is_empty() || dry_run {
        return None;
    }
    Some(
        match herald_feed::ping_hub(hub, topics, Duration::from_secs(10)) {
            Ok(()) => format!("WebSub hub told of {} changed feed(s)", topics.len()),
            Err(e) => {
                tracing::warn!("WebSub ping failed: {e}");
                format!("WebSub ping failed: {e}")
            }
        },
    )
}

/// The subscribe form of the pages: the topics of `published`, posting to the
/// same origin as the pages (the CSP of `herald serve` allows no other).
fn subscribe_form(corpus: &Corpus, published: &[&Statement]) -> herald_site::SubscribeForm {
    let topics: std::collections::BTreeSet<&str> = published
        .iter()
        .flat_map(|s| s.meta.topics.iter().map(String::as_str))
        .collect();
    let topics = topics.into_iter().map(str::to_string).collect();
    herald_site::SubscribeForm {
        action: "/subscribe".into(),
        languages: corpus.config.languages.clone(),
        topics,
    }
}

/// A site error as herald reports it: a template's error is invalid content (exit
/// 3, with file and line), anything else a channel failure.
fn site_err(root: &std::path::Path, e: herald_site::SiteError) -> Error {
    match e.diagnostic(root) {
        Some(d) => invalid(d),
        None => channel_err("site", e),
    }
}

fn invalid(d: herald_content::Diagnostic) -> Error {
    Error::Content(herald_content::LoadError::Invalid(
        herald_content::Diagnostics(vec![d]),
    ))
}

/// The signer's name for the statement pages, from `[pdf.signing]`'s certificate.
fn signer_name(corpus: &Corpus, settings: &Settings) -> Result<Option<String>, Error> {
    match (&settings.pdf.signing, settings.pdf.enabled) {
        (Some(s), true) => {
            let base = corpus
                .config
                .path
                .parent()
                .unwrap_or(std::path::Path::new("."));
            herald_pdf::sign::signer_name(base, s)
                .map(Some)
                .map_err(|e| channel_err("pdf", e))
        }
        _ => Ok(None),
    }
}

/// The card of a statement's preview image: issuers (or the organization), title,
/// date and place as its page shows them.
fn preview_card<'a>(
    corpus: &'a Corpus,
    s: &'a Statement,
    org: &'a str,
    date: &'a str,
) -> herald_preview::Card<'a> {
    herald_preview::Card {
        lang: &s.lang,
        organization: org,
        title: &s.meta.title,
        date,
        rtl: herald_site::direction(&s.lang) == "rtl",
    }
    .with_default_org(&corpus.config.organization.name)
}

/// Each due statement's preview image, beside its page and named by its card's
/// key: an unchanged card keeps its file (nothing rendered), a changed one gets
/// a new name, so link-preview caches that key on the URL see the new image.
fn previews(
    ctx: &Ctx<'_>,
    style: &herald_preview::Style,
) -> Result<herald_content::fast::HashMap<String, herald_site::PreviewImage>, Error> {
    let renderer =
        herald_preview::Renderer::new(style.clone()).map_err(|e| channel_err("site", e))?;
    let texts: Vec<(String, String)> = ctx
        .due
        .par_iter()
        .map(|s| {
            let mut date = herald_site::long_date(&s.lang, &s.meta.date);
            if let Some(place) = &s.meta.place {
                date.push_str(" · ");
                date.push_str(place);
            }
            (s.meta.issuers.join(", "), date)
        })
        .collect();
    // Keys and reuse offers side by side, as for the PDFs.
    let offers: Vec<Result<(String, herald_site::PreviewImage, bool), Error>> = ctx
        .due
        .par_iter()
        .enumerate()
        .map(|(i, s)| {
            let card = preview_card(ctx.corpus, s, &texts[i].0, &texts[i].1);
            let card_key = renderer.key(&card);
            let page = urls::page(s);
            let path = format!("{page}preview-{card_key:016x}.png");
            // Named by the card's key: the same name is the same picture.
            let kept = ctx.sink.reuse(&path, u128::from(card_key))?;
            let image = herald_site::PreviewImage {
                path,
                width: herald_preview::WIDTH,
                height: herald_preview::HEIGHT,
            };
            Ok((page, image, kept))
        })
        .collect();
    let mut map = herald_content::fast::HashMap::default();
    map.reserve(ctx.due.len());
    let mut todo: Vec<(usize, String)> = Vec::new();
    for (i, offer) in offers.into_iter().enumerate() {
        let (page, image, kept) = offer?;
        if !kept {
            todo.push((i, image.path.clone()));
        }
        map.insert(page, image);
    }
    todo.par_iter().try_for_each(|(i, path)| {
        if ctx.sink.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let s = ctx.due[*i];
        let card = preview_card(ctx.corpus, s, &texts[*i].0, &texts[*i].1);
        let bytes = renderer
            .render(&card)
            .map_err(|e| channel_err("site", crate::context(s.path.display(), e)))?;
        ctx.sink.put(path, &bytes)?;
        Ok(())
    })?;
    Ok(map)
}

fn site(ctx: &Ctx<'_>, flow: &Flow) -> Result<(), Error> {
    let form = subscribe_form(ctx.corpus, ctx.due);
    let signer = signer_name(ctx.corpus, ctx.settings)?;
    let previews = match &ctx.settings.preview {
        Some(style) => Some(previews(ctx, style)?),
        None => None,
    };
    tracing::debug!("preview images done");
    let input = herald_site::SiteInput {
        settings: Some(&ctx.settings.site),
        corpus: ctx.corpus,
        published: ctx.due,
        pdfs: herald_site::PdfLinks::Sizes(&flow.pdf_sizes),
        feeds: if ctx.settings.feed.enabled {
            &FeedKind::ALL
        } else {
            &[]
        },
        subscribe: ctx.settings.subscribe.then_some(&form),
        integrity: herald_site::Integrity {
            signed_by: signer.as_deref(),
            manifest: ctx.settings.site.manifest_key.is_some(),
        },
        previews: previews.as_ref(),
    };
    herald_site::render(&input, ctx.sink).map_err(|e| site_err(&ctx.corpus.root, e))?;
    Ok(())
}

/// True when `content/templates/` holds a file of its own (a site override).
fn has_site_overrides(paths: &Paths) -> bool {
    std::fs::read_dir(&paths.templates).is_ok_and(|d| {
        d.filter_map(Result::ok)
            .any(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
    })
}

/// A statement with every optional field and every kind of block, in each
/// configured language: templates are checked on it too, so one that fails only on,
/// say, a correction's `updated` fails before the first correction is published.
const SAMPLE: &str = r#"+++
title = "Sample statement for the template check"
date = 2000-01-03T09:00:00+00:00
updated = 2000-01-04T09:00:00+00:00
summary = "A summary."
issuers = ["First issuer", "Second issuer"]
place = "A place"
occasion = "An occasion"
topics = ["herald-template-check"]
+++
A paragraph with *emphasis*, **strong**, `code`, a [link](https://example.org/) and a note.[^1]

## A heading

1. A list
   - with a nested item

> A quotation.

| A | B |
|---|---|
| 1 | 2 |

[^1]: The note.
"#;

/// [`SAMPLE`] in every configured language (none when the configuration refuses it).
pub fn sample_statements(corpus: &Corpus) -> Vec<Statement> {
    corpus
        .config
        .languages
        .iter()
        .filter_map(|lang| {
            let rel = std::path::PathBuf::from(format!("2000/herald-template-check.{lang}.md"));
            herald_content::statement::parse_file(&corpus.config, &rel, &rel, SAMPLE.as_bytes())
                .ok()
        })
        .collect()
}

/// The template overrides in `content/templates/` (site) and
/// `content/templates/mail/` (bulletins), rendered against `statements` (and the
/// site also against none): a template error is a diagnostic with its file and
/// line. Without overrides there is nothing to check (the built-ins are tested).
pub fn check_templates(
    corpus: &Corpus,
    settings: &Settings,
    statements: &[&Statement],
) -> Result<(), Error> {
    let paths = Paths::new(&corpus.root);
    if has_site_overrides(&paths) {
        let form = subscribe_form(corpus, statements);
        let input = herald_site::SiteInput {
            settings: Some(&settings.site),
            corpus,
            published: statements,
            pdfs: if settings.pdf.enabled {
                herald_site::PdfLinks::Every
            } else {
                herald_site::PdfLinks::None
            },
            feeds: if settings.feed.enabled {
                &FeedKind::ALL
            } else {
                &[]
            },
            subscribe: settings.subscribe.then_some(&form),
            integrity: herald_site::Integrity {
                signed_by: Some("Signer"),
                manifest: settings.site.manifest_key.is_some(),
            },
            previews: None,
        };
        herald_site::check(&input).map_err(|e| site_err(&corpus.root, e))?;
    }
    check_mail_templates(corpus, settings, statements)
}

/// The mail half of [`check_templates`]; the publish gate runs it on the
/// statements it will queue, before anything is rendered.
pub fn check_mail_templates(
    corpus: &Corpus,
    settings: &Settings,
    statements: &[&Statement],
) -> Result<(), Error> {
    if !herald_mail::has_overrides(&corpus.root) {
        return Ok(());
    }
    herald_mail::check_templates(corpus, &settings.mail, statements).map_err(|e| {
        match e.diagnostic(&corpus.root) {
            Some(d) => invalid(d),
            None => channel_err("mail", e),
        }
    })
}

pub struct MailCtx<'a> {
    pub corpus: &'a Corpus,
    pub settings: &'a Settings,
    pub ledger: &'a Ledger,
    pub paths: &'a Paths,
    pub due: &'a [&'a Statement],
    pub now: DateTime<Utc>,
    pub dry_run: bool,
    /// Due statement versions the mail channel has not queued yet (a crash or
    /// `--no-mail` may have left some from earlier runs).
    pub unqueued: &'a [&'a Statement],
    pub cancel: &'a AtomicBool,
}

/// A progress bar on a terminal, nothing otherwise.
fn progress() -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(0)
    } else {
        indicatif::ProgressBar::hidden()
    }
}

/// Queue bulletins for due statement versions not queued before, then deliver
/// every pending bulletin (including those a crash left pending). With a
/// `[schedule] digest`, nothing is queued here: the digest job queues.
pub fn mail(ctx: &MailCtx<'_>) -> Result<Option<ChannelReport>, Error> {
    if ctx.dry_run {
        return Ok(None);
    }
    let store =
        herald_mail::MailStore::open(&ctx.paths.ledger).map_err(|e| channel_err("mail", e))?;
    // Idempotent: herald-mail never queues a subscriber twice for one statement.
    let queued = if ctx.settings.schedules.digest().is_some() {
        0
    } else {
        herald_mail::queue(
            &store,
            ctx.corpus,
            &ctx.settings.mail,
            ctx.unqueued,
            ctx.now,
        )
        .map_err(|e| channel_err("mail", e))?
    };
    deliver_pending(
        &store,
        ctx.corpus,
        ctx.settings,
        ctx.paths,
        ctx.now,
        ctx.cancel,
        queued,
    )
    .map(Some)
}

/// Deliver every pending bulletin and digest; the report names `queued` as new.
fn deliver_pending(
    store: &herald_mail::MailStore,
    corpus: &Corpus,
    settings: &Settings,
    paths: &Paths,
    now: DateTime<Utc>,
    cancel: &AtomicBool,
    queued: usize,
) -> Result<ChannelReport, Error> {
    let secret =
        herald_mail::Secret::from_env_or_file(&paths.state).map_err(|e| channel_err("mail", e))?;
    let report = herald_mail::deliver(
        store,
        corpus,
        &settings.mail,
        &secret,
        now,
        cancel,
        &progress(),
    )
    .map_err(|e| channel_err("mail", e))?;
    let mut note = format!("{queued} bulletin(s) queued, {} sent", report.sent);
    if !report.deferred.is_empty() {
        note.push_str(&format!(
            ", {} deferred (will retry)",
            report.deferred.len()
        ));
    }
    if report.cancelled {
        note.push_str(", stopped by signal (the rest stay pending)");
    }
    let trouble = report.failed.len() + report.ambiguous.len() + report.recovered_ambiguous;
    if trouble > 0 {
        note.push_str(&format!(
            ", {} failed, {} ambiguous: attention, see `herald mail status`",
            report.failed.len(),
            report.ambiguous.len() + report.recovered_ambiguous
        ));
    }
    Ok(ChannelReport {
        channel: "mail",
        new: queued,
        live: report.sent,
        note,
        failed: report.failed.len(),
        ambiguous: report.ambiguous.len() + report.recovered_ambiguous,
        ..Default::default()
    })
}

/// Ids of the statements a bulletin or digest has carried (any version).
fn mailed_ids(ledger: &Ledger) -> Result<std::collections::HashSet<String>, Error> {
    Ok(ledger
        .publications()?
        .into_iter()
        .filter(|p| p.channel == Channel::Mail.name())
        .map(|p| p.statement)
        .collect())
}

/// The ledger record that these statement versions are queued for mail.
pub fn mailed_record<'a>(
    now: DateTime<Utc>,
    started_at: DateTime<Utc>,
    statements: &[&'a Statement],
) -> crate::ledger::Record<'a> {
    crate::ledger::Record {
        now,
        started_at,
        publications: statements
            .iter()
            .map(|s| {
                (
                    s.id.as_str(),
                    s.lang.as_str(),
                    Channel::Mail.name(),
                    s.digest.as_str(),
                )
            })
            .collect(),
        ..Default::default()
    }
}

/// The digest's slot came due (after a publish; the caller records the slot after
/// this returns, so a missed one runs once). Queues one digest of every due statement
/// that no bulletin or digest has carried yet (by statement id: corrections are not
/// sent again), records those statements as mailed, and delivers.
pub fn digest(
    corpus: &Corpus,
    paths: &Paths,
    ledger: &mut Ledger,
    slot: DateTime<Utc>,
    now: DateTime<Utc>,
    cancel: &AtomicBool,
) -> Result<ChannelReport, Error> {
    let settings = Settings::load(corpus)?;
    let mailed = mailed_ids(ledger)?;
    let due = corpus.due(now);
    let fresh: Vec<&Statement> = due
        .iter()
        .copied()
        .filter(|s| !mailed.contains(&s.id))
        .collect();
    let store = herald_mail::MailStore::open(&paths.ledger).map_err(|e| channel_err("mail", e))?;
    // Idempotent per slot: a crash before the record below queues nobody twice.
    let key = herald_mail::digest_key(slot);
    let queued = herald_mail::queue_digest(&store, corpus, &settings.mail, &key, &fresh, now)
        .map_err(|e| channel_err("mail", e))?;
    if !fresh.is_empty() {
        ledger.commit(&mailed_record(now, now, &fresh))?;
    }
    let mut report = deliver_pending(&store, corpus, &settings, paths, now, cancel, queued)?;
    report.note = format!("digest {key}: {}", report.note);
    Ok(report)
}

/// `herald status`'s mail lines: bulletins per state, and with a digest, how many
/// published statements wait for the next one.
pub fn status_lines(
    corpus: &Corpus,
    ledger: &Ledger,
    now: DateTime<Utc>,
    out: &mut impl Write,
) -> Result<(), Error> {
    let paths = Paths::new(&corpus.root);
    let store = herald_mail::MailStore::open(&paths.ledger).map_err(|e| channel_err("mail", e))?;
    let counts = store
        .bulletin_counts()
        .map_err(|e| channel_err("mail", e))?;
    let line = if counts.is_empty() {
        "none yet".to_string()
    } else {
        counts
            .iter()
            .map(|(state, n)| format!("{n} {state}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "  bulletins: {line}");
    let (deferred, next) = store.deferred().map_err(|e| channel_err("mail", e))?;
    if deferred > 0 {
        let next = next
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  deferred: {deferred} (temporary failures), next attempt {next}"
        );
    }
    if counts.iter().any(|(s, n)| {
        *n > 0
            && matches!(
                s,
                herald_mail::BulletinState::Ambiguous | herald_mail::BulletinState::Failed
            )
    }) {
        let _ = writeln!(
            out,
            "    see `herald mail status`; `herald mail retry --ambiguous` re-sends the ambiguous ones"
        );
    }
    let digest = crate::schedule::Schedules::from_config(&corpus.config)
        .ok()
        .and_then(|s| s.digest().and_then(|d| d.next_after(now)));
    if let Some(next) = digest {
        let mailed = mailed_ids(ledger)?;
        let mut waiting: Vec<&str> = corpus
            .due(now)
            .into_iter()
            .filter(|s| s.meta.bulletin && !mailed.contains(&s.id))
            .map(|s| s.id.as_str())
            .collect();
        waiting.sort_unstable();
        waiting.dedup();
        let _ = writeln!(
            out,
            "  digest: {} statement(s) wait for the next digest, {} UTC",
            waiting.len(),
            next.format("%Y-%m-%d %H:%M")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A font's bytes decide the PDFs' key: a replacement of the same size with
    /// the same modification time is seen, a file merely touched is not.
    #[test]
    fn the_pdf_salt_follows_font_bytes_not_times() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let toml = dir.path().join("herald.toml");
        let source = "title = \"T\"\nbase_url = \"https://example.org/\"\nlanguages = [\"en\"]\n\
                      default_language = \"en\"\ntime_zone = \"UTC\"\n[organization]\nname = \"O\"\n";
        std::fs::write(&toml, source)?;
        let config = herald_content::Config::parse(&toml, source).expect("config");
        let pdf = herald_pdf::PdfSettings {
            fonts: vec!["extra.ttf".into()],
            ..Default::default()
        };
        let font = dir.path().join("extra.ttf");
        std::fs::write(&font, b"font bytes, version one")?;
        let when = std::fs::metadata(&font)?.modified()?;
        let first = pdf_files_salt(&config, &pdf);
        std::fs::write(&font, b"font bytes, version two")?;
        std::fs::File::options()
            .write(true)
            .open(&font)?
            .set_modified(when)?;
        assert_eq!(std::fs::metadata(&font)?.modified()?, when);
        let replaced = pdf_files_salt(&config, &pdf);
        assert_ne!(first, replaced, "same size and time, other bytes");
        std::fs::File::options()
            .write(true)
            .open(&font)?
            .set_modified(when + std::time::Duration::from_secs(60))?;
        assert_eq!(pdf_files_salt(&config, &pdf), replaced, "touched only");
        std::fs::remove_file(&font)?;
        assert_ne!(pdf_files_salt(&config, &pdf), replaced, "gone");
        Ok(())
    }
}
