//! Writing a 10,000-entry Atom feed and RSS feed (the entries' HTML already
//! rendered, as `Feeds` shares it between every feed), and the whole render of
//! such a site. Prints the peak memory of one full render first.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use chrono::{DateTime, Duration};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use herald_content::urls::{FeedKind, Sink};
use herald_content::{Config, Corpus, Statement};
use herald_feed::{FeedEntry, FeedInput, Feeds, render, tag_uri};

const N: usize = 10_000;

fn corpus() -> Corpus {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut corpus = herald_content::load(&root).unwrap();
    let src = format!("{}\n[feed]\nlimit = {N}\n", corpus.config.source());
    corpus.config = Config::parse(Path::new("herald.toml"), &src).unwrap();
    let templates: Vec<Statement> = corpus
        .statements
        .iter()
        .filter(|s| s.lang == "en" && !s.meta.draft)
        .cloned()
        .collect();
    let start = templates[0].meta.date;
    corpus.statements = (0..N)
        .map(|i| {
            let mut s = templates[i % templates.len()].clone();
            s.meta.date = start - Duration::hours(i as i64);
            s.meta.publish_at = s.meta.date;
            s.year = format!("{}", 2000 + i / 1000);
            s.slug = format!("statement-{i}");
            s.id = format!("{}/{}", s.year, s.slug);
            s
        })
        .collect();
    corpus
}

fn input(corpus: &Corpus) -> FeedInput<'_> {
    FeedInput {
        settings: None,
        corpus,
        // Every generated statement is due by then; the clock is never read.
        now: DateTime::parse_from_rfc3339("2100-01-01T00:00:00Z")
            .unwrap()
            .to_utc(),
        entries: corpus
            .statements
            .iter()
            .map(|s| FeedEntry {
                statement: s,
                tag: tag_uri(
                    "statements.example.org",
                    s.meta.publish_at.to_utc(),
                    &s.id,
                    &s.lang,
                ),
                first_published: s.meta.publish_at.to_utc(),
                pdf_length: Some(123_456),
            })
            .collect(),
    }
}

/// Counts bytes and drops them: the bench measures writing, not storing.
struct Discard(std::sync::atomic::AtomicUsize);

impl Sink for Discard {
    fn put(&self, _: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.0
            .fetch_add(bytes.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// Peak resident memory of the process so far, in KiB (Linux).
fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn bench(c: &mut Criterion) {
    let corpus = corpus();
    let input = input(&corpus);

    let before = peak_kib();
    let sink = Discard(Default::default());
    let report = render(&input, &sink).unwrap();
    let written = sink.0.into_inner();
    if let (Some(before), Some(after)) = (before, peak_kib()) {
        eprintln!(
            "full render of {N} entries: {} files, {:.1} MB written, peak memory +{:.1} MB (process peak {:.1} MB)",
            report.files.len(),
            written as f64 / 1e6,
            (after - before) as f64 / 1024.0,
            after as f64 / 1024.0
        );
    }

    bare_quick_xml(c, &corpus);

    let feeds = Feeds::new(&input).unwrap();
    let mut group = c.benchmark_group("write 10k-entry feed");
    group.sample_size(10);
    for kind in [FeedKind::Atom, FeedKind::Rss, FeedKind::Json] {
        let bytes = feeds.document("en", None, kind).unwrap().len();
        eprintln!("{}: {:.1} MB", kind.label(), bytes as f64 / 1e6);
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(kind.label(), |b| {
            b.iter(|| feeds.document("en", None, kind).unwrap())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("render 10k entries");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(written as u64));
    group.bench_function("prepare + every feed", |b| {
        b.iter(|| render(&input, &Discard(Default::default())).unwrap())
    });
    group.finish();
}

/// The yardstick: quick-xml alone writing the same entries' text (title, id, dates,
/// summary, content HTML), escaped by quick-xml, with no feed logic at all.
fn bare_quick_xml(c: &mut Criterion, corpus: &Corpus) {
    use herald_content::html::{HtmlOptions, to_html};
    use quick_xml::Writer;
    use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};

    let base = corpus.config.base_url.as_str();
    let entries: Vec<[String; 6]> = corpus
        .statements
        .iter()
        .map(|s| {
            let url = format!("{base}{}", s.page_path());
            let html = to_html(
                s.document(),
                &HtmlOptions {
                    base_url: Some(base),
                    page_url: Some(&url),
                },
            );
            [
                s.meta.title.clone(),
                tag_uri(
                    "statements.example.org",
                    s.meta.publish_at.to_utc(),
                    &s.id,
                    &s.lang,
                ),
                s.meta.date.to_rfc3339(),
                s.modified().to_rfc3339(),
                s.meta.summary.clone(),
                html,
            ]
        })
        .collect();
    let write = || {
        let mut w = Writer::new(Vec::with_capacity(32 << 20));
        w.write_event(Event::Start(BytesStart::new("feed")))
            .unwrap();
        for e in &entries {
            w.write_event(Event::Start(BytesStart::new("entry")))
                .unwrap();
            for (name, text) in ["title", "id", "published", "updated", "summary", "content"]
                .iter()
                .zip(e)
            {
                w.write_event(Event::Start(BytesStart::new(*name))).unwrap();
                w.write_event(Event::Text(BytesText::new(text))).unwrap();
                w.write_event(Event::End(BytesEnd::new(*name))).unwrap();
            }
            w.write_event(Event::End(BytesEnd::new("entry"))).unwrap();
        }
        w.write_event(Event::End(BytesEnd::new("feed"))).unwrap();
        w.into_inner()
    };
    let bytes = write().len();
    let mut group = c.benchmark_group("bare quick-xml, same 10k entries");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("Writer + BytesText::new", |b| b.iter(write));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
