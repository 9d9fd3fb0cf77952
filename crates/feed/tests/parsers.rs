//! Every feed the sample content produces parses with three independent parsers
//! (feed-rs, the `rss` crate with validation or `atom_syndication`, Python's
//! feedparser), and what they read equals the source.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use chrono::{DateTime, FixedOffset};
use common::*;
use herald_content::{Corpus, Statement};
use rss::validation::Validate;

/// The statement a feed entry stands for, found by its page URL.
fn by_url<'a>(corpus: &'a Corpus, url: &str) -> &'a Statement {
    corpus
        .statements
        .iter()
        .find(|s| format!("{}{}", corpus.config.base_url, s.page_path()) == url)
        .unwrap_or_else(|| panic!("no statement at {url}"))
}

fn tag(s: &Statement) -> String {
    herald_feed::tag_uri(AUTHORITY, s.meta.publish_at.to_utc(), &s.id, &s.lang)
}

fn utc(d: DateTime<FixedOffset>) -> DateTime<chrono::Utc> {
    d.to_utc()
}

#[test]
fn feed_rs_reads_every_feed_as_written() {
    let corpus = corpus();
    let (_, files) = render_all(&corpus, now());
    let mut entries_seen = 0;
    for (path, bytes) in feeds(&files) {
        let feed = feed_rs::parser::parse(&bytes[..]).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(!feed.id.is_empty(), "{path}: feed id");
        for e in &feed.entries {
            let link = &e.links.first().expect("entry link").href;
            let s = by_url(&corpus, link);
            assert_eq!(e.id, tag(s), "{path}");
            assert_eq!(e.title.as_ref().unwrap().content, s.meta.title, "{path}");
            assert_eq!(e.published, Some(utc(s.meta.date)), "{path}");
            if !path.ends_with("rss.xml") || s.meta.updated.is_some() {
                // RSS has no standard `updated`; feed-rs falls back to pubDate.
                let expected = utc(s.modified());
                assert!(
                    e.updated == Some(expected) || path.ends_with("rss.xml"),
                    "{path}: updated {:?} != {expected}",
                    e.updated
                );
            }
            let authors: Vec<&str> = e.authors.iter().filter_map(|a| a.name.as_deref()).collect();
            assert_eq!(authors, s.meta.issuers, "{path}");
            let cats: Vec<&str> = e.categories.iter().map(|c| c.term.as_str()).collect();
            assert_eq!(cats, s.meta.topics, "{path}");
            let body = e
                .content
                .as_ref()
                .and_then(|c| c.body.clone())
                .unwrap_or_default();
            assert!(body.contains("<p>"), "{path}: full HTML content");
            entries_seen += 1;
        }
    }
    assert!(entries_seen > 20, "only {entries_seen} entries seen");
}

#[test]
fn rss_crate_validates_every_rss_feed() {
    let corpus = corpus();
    let (_, files) = render_all(&corpus, now());
    let mut n = 0;
    for (path, bytes) in files.iter().filter(|(p, _)| p.ends_with("rss.xml")) {
        let channel = rss::Channel::read_from(&bytes[..]).unwrap_or_else(|e| panic!("{path}: {e}"));
        channel.validate().unwrap_or_else(|e| panic!("{path}: {e}"));
        let lang = path.split('/').next().unwrap();
        assert_eq!(channel.language(), Some(lang));
        let self_link = channel
            .atom_ext()
            .unwrap()
            .links()
            .iter()
            .find(|l| l.rel() == "self");
        assert_eq!(
            self_link.map(|l| l.href().to_string()),
            Some(format!("{}{path}", corpus.config.base_url))
        );
        assert!(!channel.last_build_date().unwrap().contains("UTC"));
        for item in channel.items() {
            let s = by_url(&corpus, item.link().unwrap());
            assert_eq!(item.title(), Some(s.meta.title.as_str()));
            let guid = item.guid().unwrap();
            assert!(!guid.is_permalink(), "{path}: guid isPermaLink=\"false\"");
            assert_eq!(guid.value(), tag(s));
            let date = DateTime::parse_from_rfc2822(item.pub_date().unwrap()).unwrap();
            assert_eq!(date, s.meta.date);
            assert_eq!(
                date.offset(),
                s.meta.date.offset(),
                "the statement's own offset"
            );
            let creators = item.dublin_core_ext().unwrap().creators();
            assert_eq!(creators, s.meta.issuers);
            assert_eq!(item.author(), None, "RSS author must be an e-mail address");
            let html = item.content().unwrap();
            assert!(html.contains("<h2") || html.contains("<p>"));
            // `description` is HTML: the plain summary, escaped as HTML.
            let summary = quick_xml::escape::partial_escape(s.meta.summary.as_str());
            assert_eq!(item.description(), Some(summary.as_ref()));
            match item.enclosure() {
                Some(enc) => {
                    assert_eq!(s.lang, "en");
                    assert_eq!(enc.mime_type(), "application/pdf");
                    assert_eq!(enc.length(), (40_000 + s.body().len()).to_string());
                    assert_eq!(
                        enc.url(),
                        format!("{}{}", corpus.config.base_url, herald_content::urls::pdf(s))
                    );
                }
                None => assert_ne!(s.lang, "en", "English entries have a PDF"),
            }
            n += 1;
        }
    }
    assert!(n >= 10, "{n} items");
}

#[test]
fn atom_syndication_reads_every_atom_feed() {
    let corpus = corpus();
    let (_, files) = render_all(&corpus, now());
    let mut n = 0;
    for (path, bytes) in files.iter().filter(|(p, _)| p.ends_with("atom.xml")) {
        let feed =
            atom_syndication::Feed::read_from(&bytes[..]).unwrap_or_else(|e| panic!("{path}: {e}"));
        let lang = path.split('/').next().unwrap();
        assert_eq!(feed.lang(), Some(lang));
        let newest = feed.entries().iter().map(|e| *e.updated()).max();
        if let Some(newest) = newest {
            assert_eq!(
                *feed.updated(),
                newest,
                "{path}: updated is the newest entry's"
            );
        }
        for e in feed.entries() {
            let alt = e.links().iter().find(|l| l.rel() == "alternate").unwrap();
            let s = by_url(&corpus, alt.href());
            assert_eq!(alt.hreflang(), Some(s.lang.as_str()));
            assert_eq!(e.id(), tag(s));
            assert_eq!(e.title().as_str(), s.meta.title);
            assert_eq!(e.published(), Some(&s.meta.date));
            assert_eq!(e.updated(), &s.modified());
            assert_eq!(
                e.summary().map(|t| t.as_str()),
                Some(s.meta.summary.as_str())
            );
            assert_eq!(e.content().and_then(|c| c.content_type()), Some("html"));
            // Translations: one alternate per published language.
            let langs: Vec<&str> = e
                .links()
                .iter()
                .filter(|l| l.rel() == "alternate")
                .filter_map(|l| l.hreflang())
                .collect();
            let published: Vec<&str> = corpus
                .translations(&s.id)
                .filter(|t| t.is_due(now()))
                .map(|t| t.lang.as_str())
                .collect();
            assert_eq!(langs.len(), published.len(), "{path}: {langs:?}");
            for l in published {
                assert!(langs.contains(&l), "{path}: no alternate in {l}");
            }
            if let Some(enc) = e.links().iter().find(|l| l.rel() == "enclosure") {
                assert_eq!(enc.mime_type(), Some("application/pdf"));
                assert_eq!(
                    enc.length(),
                    Some((40_000 + s.body().len()).to_string().as_str())
                );
            }
            n += 1;
        }
    }
    assert!(n >= 10, "{n} entries");
}

#[test]
fn json_feed_is_valid_json_feed_1_1() {
    let corpus = corpus();
    let (_, files) = render_all(&corpus, now());
    for (path, bytes) in files.iter().filter(|(p, _)| p.ends_with("feed.json")) {
        let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(v["version"], "https://jsonfeed.org/version/1.1");
        assert_eq!(
            v["feed_url"],
            format!("{}{path}", corpus.config.base_url),
            "{path}"
        );
        for item in v["items"].as_array().unwrap() {
            let s = by_url(&corpus, item["url"].as_str().unwrap());
            assert_eq!(item["id"], tag(s));
            assert_eq!(item["title"], s.meta.title.as_str());
            assert_eq!(item["summary"], s.meta.summary.as_str());
            assert_eq!(
                DateTime::parse_from_rfc3339(item["date_published"].as_str().unwrap()).unwrap(),
                s.meta.date
            );
            assert_eq!(item["language"], s.lang.as_str());
            if s.lang == "en" {
                let a = &item["attachments"][0];
                assert_eq!(a["mime_type"], "application/pdf");
                assert_eq!(a["size_in_bytes"], 40_000 + s.body().len() as u64);
            }
        }
    }
}

const FEEDPARSER: &str = r#"
import json, sys, feedparser
out = {}
for path in sys.argv[1:]:
    d = feedparser.parse(path)
    out[path] = {
        "bozo": bool(d.bozo),
        "bozo_exception": str(d.get("bozo_exception", "")),
        "version": d.version,
        "language": d.feed.get("language"),
        "title": d.feed.get("title"),
        "entries": [
            {
                "id": e.get("id"),
                "title": e.get("title"),
                "link": e.get("link"),
                "published": e.get("published"),
                "summary": e.get("summary"),
                "authors": [a.get("name") for a in e.get("authors", [])],
                "enclosures": [[x.get("href"), x.get("length"), x.get("type")] for x in e.get("enclosures", [])],
            }
            for e in d.entries
        ],
    }
json.dump(out, sys.stdout)
"#;

#[test]
fn python_feedparser_reads_every_feed() {
    let corpus = corpus();
    let (_, files) = render_all(&corpus, now());
    let dir = tempfile::tempdir().unwrap();
    let mut paths = BTreeMap::new();
    // feedparser 6 reads RSS and Atom; JSON Feed is read by feed-rs and serde_json above.
    for (path, bytes) in feeds(&files).filter(|(p, _)| p.ends_with(".xml")) {
        let file = dir.path().join(path.replace('/', "_"));
        std::fs::write(&file, bytes).unwrap();
        paths.insert(file.to_string_lossy().into_owned(), path.clone());
    }
    let out = Command::new("python3")
        .arg("-c")
        .arg(FEEDPARSER)
        .args(paths.keys())
        .output()
        .expect(
            "python3 runs (run the tests with `cargo xtask test`: its python3 is target/test-venv)",
        );
    assert!(
        out.status.success(),
        "feedparser failed (run the tests with `cargo xtask test`: its python3 has feedparser): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed.len(), paths.len());
    let mut n = 0;
    for (file, d) in &parsed {
        let path = &paths[file];
        assert_eq!(d["bozo"], false, "{path}: {}", d["bozo_exception"]);
        let version = d["version"].as_str().unwrap();
        let expected = if path.ends_with("atom.xml") {
            "atom10"
        } else {
            "rss20"
        };
        assert_eq!(version, expected, "{path}");
        let lang = path.split('/').next().unwrap();
        assert_eq!(d["language"], lang, "{path}");
        for e in d["entries"].as_array().unwrap() {
            let s = by_url(&corpus, e["link"].as_str().unwrap());
            assert_eq!(e["id"], tag(s), "{path}");
            assert_eq!(e["title"], s.meta.title.as_str(), "{path}");
            assert_eq!(e["summary"], s.meta.summary.as_str(), "{path}");
            let published = e["published"].as_str().unwrap();
            let parsed = DateTime::parse_from_rfc3339(published)
                .or_else(|_| DateTime::parse_from_rfc2822(published))
                .unwrap();
            assert_eq!(parsed, s.meta.date, "{path}");
            assert_eq!(e["authors"], serde_json::json!(s.meta.issuers), "{path}");
            if s.lang == "en" {
                let enc = &e["enclosures"][0];
                assert_eq!(enc[1], (40_000 + s.body().len()).to_string(), "{path}");
                assert_eq!(enc[2], "application/pdf");
            }
            n += 1;
        }
    }
    assert!(n >= 20, "{n} entries");
}
