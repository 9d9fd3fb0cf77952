//! Shared by the integration tests: the sample content, published as the
//! pipeline would publish it.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use herald_content::{Corpus, MemorySink};
use herald_feed::{FeedEntry, FeedInput, FeedReport, render, tag_uri};

pub const AUTHORITY: &str = "statements.example.org";

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn corpus() -> Corpus {
    herald_content::load(&root()).expect("the sample content loads")
}

pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("date").to_utc()
}

/// The instant the sample statements are published at.
pub fn now() -> DateTime<Utc> {
    at("2026-11-28T00:00:00Z")
}

/// What the ledger would hold: each due statement first published when its
/// embargo lifted, its id minted then; a PDF for the English versions.
pub fn entries(corpus: &Corpus, now: DateTime<Utc>) -> Vec<FeedEntry<'_>> {
    corpus
        .due(now)
        .into_iter()
        .map(|s| {
            let first = s.meta.publish_at.to_utc();
            FeedEntry {
                statement: s,
                tag: tag_uri(AUTHORITY, first, &s.id, &s.lang),
                first_published: first,
                pdf_length: (s.lang == "en").then_some(40_000 + s.body().len() as u64),
            }
        })
        .collect()
}

pub fn render_all(corpus: &Corpus, now: DateTime<Utc>) -> (FeedReport, BTreeMap<String, Vec<u8>>) {
    let input = FeedInput {
        settings: None,
        corpus,
        now,
        entries: entries(corpus, now),
    };
    render_input(&input)
}

pub fn render_input(input: &FeedInput<'_>) -> (FeedReport, BTreeMap<String, Vec<u8>>) {
    let sink = MemorySink::default();
    let report = render(input, &sink).expect("render");
    (report, sink.into_files())
}

pub fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8")
}

/// The feed files (not feed.xsl), by path.
pub fn feeds(files: &BTreeMap<String, Vec<u8>>) -> impl Iterator<Item = (&String, &Vec<u8>)> {
    files.iter().filter(|(p, _)| !p.ends_with(".xsl"))
}
