//! What must hold over time: embargo, stable ids, stable bytes, archives, links.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::*;
use herald_content::{Config, Corpus};
use herald_feed::{FeedEntry, FeedError, FeedInput, render, tag_uri};

const EMBARGOED: &str = "world-day-against-trafficking-2027";

fn with_feed_settings(corpus: &mut Corpus, feed: &str) {
    let src = format!("{}\n[feed]\n{feed}\n", corpus.config.source());
    corpus.config = Config::parse(Path::new("herald.toml"), &src).unwrap();
}

fn ids(bytes: &[u8]) -> Vec<String> {
    let feed = feed_rs::parser::parse(bytes).unwrap();
    feed.entries.into_iter().map(|e| e.id).collect()
}

#[test]
fn embargoed_statements_are_in_no_feed_before_publish_at() {
    let corpus = corpus();
    let (report, files) = render_all(&corpus, now());
    for (path, bytes) in &files {
        assert!(
            !text(bytes).contains(EMBARGOED),
            "{path} leaks the embargoed statement"
        );
        assert!(!text(bytes).contains("Thirteen years"), "{path}");
    }
    assert_eq!(report.entries, 5);

    // One second before the embargo lifts: still nowhere. At the instant: there.
    let lift = at("2027-07-30T04:00:00Z");
    let (_, before) = render_all(&corpus, lift - chrono::Duration::seconds(1));
    assert!(before.values().all(|b| !text(b).contains(EMBARGOED)));
    let (_, after) = render_all(&corpus, lift);
    let atom = text(&after["en/atom.xml"]);
    assert!(atom.contains(EMBARGOED), "published at publish_at");
    assert!(text(&after["en/topics/trafficking/rss.xml"]).contains(EMBARGOED));

    // Handing an embargoed statement over is refused, not rendered.
    let s = corpus
        .statements
        .iter()
        .find(|s| s.slug == EMBARGOED)
        .unwrap();
    let mut entries = entries(&corpus, now());
    entries.push(FeedEntry {
        statement: s,
        tag: tag_uri(AUTHORITY, now(), &s.id, &s.lang),
        first_published: now(),
        pdf_length: None,
    });
    let input = FeedInput {
        settings: None,
        corpus: &corpus,
        now: now(),
        entries,
    };
    let err = render(&input, &herald_content::MemorySink::default()).unwrap_err();
    assert!(matches!(err, FeedError::NotDue { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("2027/world-day-against-trafficking-2027"),
        "{err}"
    );
}

#[test]
fn unchanged_input_gives_identical_bytes() {
    let corpus = corpus();
    let (_, first) = render_all(&corpus, now());
    let (_, again) = render_all(&corpus, now());
    assert_eq!(first, again);
    // A later run with nothing new: the build time appears nowhere.
    let (_, later) = render_all(&corpus, at("2027-01-15T10:30:00Z"));
    assert_eq!(first, later);
    // Entry order in the input does not matter either.
    let mut reversed = entries(&corpus, now());
    reversed.reverse();
    let (_, shuffled) = render_input(&FeedInput {
        settings: None,
        corpus: &corpus,
        now: now(),
        entries: reversed,
    });
    assert_eq!(first, shuffled);
}

#[test]
fn feed_dates_are_the_newest_entrys_not_the_build_time() {
    let corpus = corpus();
    let (_, files) = render_all(&corpus, now());
    let atom = text(&files["en/atom.xml"]);
    // 2016-03-01T11:00:00+06:00 is the newest English statement.
    let feed_updated = atom
        .split("<updated>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap();
    assert_eq!(feed_updated, "2016-03-01T11:00:00+06:00");
    let rss = text(&files["en/rss.xml"]);
    assert!(
        rss.contains("<lastBuildDate>Tue, 01 Mar 2016 11:00:00 +0600</lastBuildDate>"),
        "{rss}"
    );
    assert!(!rss.contains(" UTC<") && !rss.contains(" GMT<"));
    // An empty language feed is still valid, with a fixed date.
    let mut c = corpus.clone();
    c.statements.retain(|s| s.lang != "kk");
    let (_, files) = render_all(&c, now());
    let kk = text(&files["kk/atom.xml"]);
    assert!(
        kk.contains("<updated>1970-01-01T00:00:00Z</updated>"),
        "{kk}"
    );
    feed_rs::parser::parse(kk.as_bytes()).unwrap();
    rss::Channel::read_from(files["kk/rss.xml"].as_slice()).unwrap();
}

#[test]
fn ids_survive_a_new_slug_and_a_new_base_url() {
    let corpus = corpus();
    let (_, before) = render_all(&corpus, now());

    let mut moved = corpus.clone();
    let src = moved.config.source().replace(
        "https://statements.example.org/",
        "https://news.example.net/un/",
    );
    moved.config = Config::parse(Path::new("herald.toml"), &src).unwrap();
    // Entries keep the ids the ledger stored at first publication.
    let entries_before = entries(&corpus, now());
    for s in &mut moved.statements {
        if s.id == "2015/migrant-workers-health" {
            s.slug = "health-of-migrant-workers".into();
        }
    }
    let moved_entries: Vec<FeedEntry<'_>> = entries_before
        .iter()
        .map(|e| {
            let s = moved
                .statements
                .iter()
                .find(|s| s.id == e.statement.id && s.lang == e.statement.lang)
                .unwrap();
            FeedEntry {
                statement: s,
                ..e.clone()
            }
        })
        .collect();
    let (_, after) = render_input(&FeedInput {
        settings: None,
        corpus: &moved,
        now: now(),
        entries: moved_entries,
    });

    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (path, old) in feeds(&before) {
        let new = &after[path];
        assert_ne!(old, new, "{path}: links moved");
        assert_eq!(ids(old), ids(new), "{path}: entry ids");
        let feed_id = |b: &[u8]| feed_rs::parser::parse(b).unwrap().id;
        if path.ends_with("atom.xml") {
            // RSS and JSON Feed have no feed id; Atom's must not move either.
            assert_eq!(feed_id(old), feed_id(new), "{path}: feed id");
        }
    }
    let atom = text(&after["en/atom.xml"]);
    assert!(atom.contains("https://news.example.net/un/en/2015/health-of-migrant-workers/"));
    assert!(!atom.contains("statements.example.org/en/"));
}

#[test]
fn archives_hold_the_full_history_and_full_pages_do_not_change() {
    let mut corpus = corpus();
    with_feed_settings(&mut corpus, "limit = 2");
    // Publish English statements one by one; record the archive pages each time.
    let english: Vec<_> = corpus
        .due(now())
        .into_iter()
        .filter(|s| s.lang == "en")
        .collect();
    assert_eq!(english.len(), 3);
    let publish = |n: usize| {
        let mut es = entries(&corpus, now());
        let keep: BTreeSet<&str> = english
            .iter()
            .rev()
            .take(n)
            .map(|s| s.id.as_str())
            .collect();
        es.retain(|e| keep.contains(e.statement.id.as_str()));
        render_input(&FeedInput {
            settings: None,
            corpus: &corpus,
            now: now(),
            entries: es,
        })
        .1
    };
    let two = publish(2);
    let three = publish(3);
    // Two entries: one full archive page, no link beyond it.
    let page1 = text(&two["en/archive/1/atom.xml"]);
    assert!(page1.contains("<fh:archive/>"));
    assert!(
        page1
            .contains(r#"<link rel="current" href="https://statements.example.org/en/atom.xml"/>"#)
    );
    assert!(!page1.contains("prev-archive") && !page1.contains("next-archive"));
    assert!(!two.contains_key("en/archive/2/atom.xml"));
    // The current feed links its newest archive page.
    let current = text(&three["en/atom.xml"]);
    assert!(current.contains(r#"<link rel="prev-archive" href="https://statements.example.org/en/archive/1/atom.xml"/>"#), "{current}");
    assert!(!current.contains("<fh:archive/>"));
    assert_eq!(ids(current.as_bytes()).len(), 2, "limit");
    // A full page keeps its entries and bytes when newer statements arrive.
    assert_eq!(two["en/archive/1/atom.xml"], three["en/archive/1/atom.xml"]);
    assert_eq!(two["en/archive/1/rss.xml"], three["en/archive/1/rss.xml"]);
    assert_eq!(
        two["en/archive/1/feed.json"],
        three["en/archive/1/feed.json"]
    );
    // Walking back from the current feed reaches every statement.
    let mut all: BTreeSet<String> = ids(current.as_bytes()).into_iter().collect();
    all.extend(ids(page1.as_bytes()));
    assert_eq!(all.len(), 3);
    // RSS and JSON Feed carry the same chain.
    let rss = text(&three["en/rss.xml"]);
    assert!(rss.contains(r#"<atom:link rel="prev-archive" href="https://statements.example.org/en/archive/1/rss.xml"/>"#), "{rss}");
    let json: serde_json::Value = serde_json::from_slice(&three["en/feed.json"]).unwrap();
    assert_eq!(
        json["next_url"],
        "https://statements.example.org/en/archive/1/feed.json"
    );
    rss::Channel::read_from(three["en/archive/1/rss.xml"].as_slice()).unwrap();
}

#[test]
fn archive_pages_chain_both_ways() {
    let mut corpus = corpus();
    with_feed_settings(&mut corpus, "limit = 1");
    let (_, files) = render_all(&corpus, now());
    let page = |n: usize| text(&files[&format!("en/archive/{n}/atom.xml")]).to_string();
    let link = |rel: &str, n: usize| {
        format!(
            r#"<link rel="{rel}" href="https://statements.example.org/en/archive/{n}/atom.xml"/>"#
        )
    };
    assert!(page(1).contains(&link("next-archive", 2)) && !page(1).contains("prev-archive"));
    assert!(
        page(2).contains(&link("prev-archive", 1)) && page(2).contains(&link("next-archive", 3))
    );
    assert!(page(3).contains(&link("prev-archive", 2)) && !page(3).contains("next-archive"));
    assert!(text(&files["en/atom.xml"]).contains(&link("prev-archive", 3)));
    // Topic feeds have their own archives.
    assert!(files.contains_key("en/topics/migration/archive/1/atom.xml"));
}

#[test]
fn hub_and_stylesheet_are_linked() {
    let mut corpus = corpus();
    with_feed_settings(&mut corpus, "hub = \"https://hub.example.net/\"\nlimit = 1");
    let (report, files) = render_all(&corpus, now());
    let atom = text(&files["en/atom.xml"]);
    assert!(atom.contains(r#"<link rel="hub" href="https://hub.example.net/"/>"#));
    assert!(atom.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<?xml-stylesheet type=\"text/xsl\" href=\"../feed.xsl\"?>"));
    let rss = text(&files["ru/rss.xml"]);
    assert!(rss.contains(r#"<atom:link href="https://hub.example.net/" rel="hub"/>"#));
    assert!(rss.contains("<?xml-stylesheet type=\"text/xsl\" href=\"../feed.xsl\"?>"));
    let topic_rss = text(&files["ru/topics/migration/rss.xml"]);
    assert!(topic_rss.contains("href=\"../../../feed.xsl\""));
    assert!(text(&files["en/archive/1/atom.xml"]).contains("href=\"../../../feed.xsl\""));
    let json: serde_json::Value = serde_json::from_slice(&files["kk/feed.json"]).unwrap();
    assert_eq!(json["hubs"][0]["type"], "WebSub");
    assert!(files.contains_key("feed.xsl"));
    let topic = "https://statements.example.org/en/topics/migration/atom.xml".to_string();
    assert!(report.feeds.iter().any(|f| f.url == topic));
    assert!(report.feeds.iter().all(|f| !f.path.contains("/archive/")));
    // The hub hears about the subscription feeds that changed, not archives or the XSL.
    let changed = [
        "en/topics/migration/atom.xml",
        "en/archive/1/atom.xml",
        "feed.xsl",
    ];
    assert_eq!(report.changed_feed_urls(&changed), vec![topic]);
}

#[test]
fn translations_and_languages() {
    let corpus = corpus();
    let (_, files) = render_all(&corpus, now());
    let ru = text(&files["ru/atom.xml"]);
    assert!(ru.contains(r#"<feed xmlns="http://www.w3.org/2005/Atom" xmlns:fh="http://purl.org/syndication/history/1.0" xml:lang="ru">"#));
    assert!(ru.contains(r#"<entry xml:lang="ru">"#));
    for lang in ["en", "kk"] {
        let href = format!(
            r#"hreflang="{lang}" href="https://statements.example.org/{lang}/2014/world-day-against-trafficking/"/>"#
        );
        assert!(ru.contains(&href), "{href}");
    }
    assert!(text(&files["kk/rss.xml"]).contains("<language>kk</language>"));
}

#[test]
fn xslt_turns_feeds_into_a_readable_page() {
    let mut corpus = corpus();
    with_feed_settings(&mut corpus, "limit = 1");
    let (_, files) = render_all(&corpus, now());
    // Lay the files out as in public/, and let xsltproc follow each feed's own
    // xml-stylesheet instruction, as a browser would.
    let public = tempfile::tempdir().unwrap();
    for (path, bytes) in &files {
        let file = public.path().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, bytes).unwrap();
    }
    for (feed, title) in [
        (
            "en/atom.xml",
            "Labour migration in Central Asia: what the 2015 figures tell us",
        ),
        (
            "en/rss.xml",
            "Labour migration in Central Asia: what the 2015 figures tell us",
        ),
        ("en/topics/health/atom.xml", "migrant"),
        (
            "en/archive/1/rss.xml",
            "Joint statement on the first World Day against Trafficking in Persons",
        ),
    ] {
        let out = Command::new("xsltproc")
            .arg(public.path().join(feed))
            .output()
            .expect("xsltproc runs (run `cargo xtask test`, which installs it)");
        assert!(
            out.status.success(),
            "{feed}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let html = String::from_utf8(out.stdout).unwrap();
        assert!(
            html.contains("To subscribe, copy this address into your feed reader"),
            "{html}"
        );
        assert!(
            html.contains(&format!("https://statements.example.org/{feed}")),
            "{feed}: {html}"
        );
        assert!(html.contains(title), "{feed}: {html}");
        assert!(html.contains(r#"<html lang="en">"#), "{html}");
    }
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let corpus = corpus();
    let mut es = entries(&corpus, now());
    es.push(es[0].clone());
    let sink = herald_content::MemorySink::default();
    let err = render(
        &FeedInput {
            settings: None,
            corpus: &corpus,
            now: now(),
            entries: es,
        },
        &sink,
    )
    .unwrap_err();
    assert!(matches!(err, FeedError::Duplicate { .. }), "{err}");

    let mut es = entries(&corpus, now());
    es[0].tag = "https://example.org/1".into();
    let err = render(
        &FeedInput {
            settings: None,
            corpus: &corpus,
            now: now(),
            entries: es,
        },
        &sink,
    )
    .unwrap_err();
    assert!(err.to_string().contains("not a tag: URI"), "{err}");

    let mut es = entries(&corpus, now());
    es[1].tag = es[0].tag.clone();
    let err = render(
        &FeedInput {
            settings: None,
            corpus: &corpus,
            now: now(),
            entries: es,
        },
        &sink,
    )
    .unwrap_err();
    assert!(matches!(err, FeedError::SharedTag { .. }), "{err}");

    let mut bad = corpus.clone();
    with_feed_settings(&mut bad, "limit = 0");
    let err = render(
        &FeedInput {
            settings: None,
            corpus: &bad,
            now: now(),
            entries: vec![],
        },
        &sink,
    )
    .unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
}

#[test]
fn tag_uris_follow_rfc_4151() {
    let t = tag_uri(
        "Statements.Example.org",
        at("2014-07-30T03:00:00Z"),
        "2014/world-day-against-trafficking",
        "en",
    );
    assert_eq!(
        t,
        "tag:statements.example.org,2014-07-30:2014/world-day-against-trafficking.en"
    );
    assert!(herald_feed::is_tag_uri(&t));
    // The date is the UTC day of first publication.
    let late = tag_uri(
        "press@un.example",
        at("2014-07-30T23:59:59Z"),
        "2014/x",
        "pt-BR",
    );
    assert_eq!(late, "tag:press@un.example,2014-07-30:2014/x.pt-BR");
    assert!(herald_feed::is_tag_uri(&late));
    assert!(!herald_feed::is_tag_uri("tag:example.org:x"));
    assert!(!herald_feed::is_tag_uri("tag:example.org,2014-13-01:x"));
    assert!(!herald_feed::is_tag_uri("tag:example.org,2014:a b"));
}

#[test]
fn one_document_alone_equals_the_one_in_the_full_render() {
    let corpus = corpus();
    let (_, files) = render_all(&corpus, now());
    let input = FeedInput {
        settings: None,
        corpus: &corpus,
        now: now(),
        entries: entries(&corpus, now()),
    };
    let feeds = herald_feed::Feeds::new(&input).unwrap();
    for kind in herald_content::FeedKind::ALL {
        for (lang, topic) in [("en", None), ("kk", Some("migration")), ("ru", None)] {
            let path = herald_content::urls::feed(lang, topic, kind);
            assert_eq!(
                feeds.document(lang, topic, kind).unwrap(),
                files[&path],
                "{path}"
            );
        }
    }
}

#[test]
fn links_inside_content_are_absolute() {
    let corpus = corpus();
    let (_, files) = render_all(&corpus, now());
    let atom = atom_syndication::Feed::read_from(files["en/atom.xml"].as_slice()).unwrap();
    let html: String = atom
        .entries()
        .iter()
        .filter_map(|e| e.content().and_then(|c| c.value()))
        .collect();
    assert!(
        html.contains(
            r##"href="https://statements.example.org/en/2016/labour-migration-in-figures/#fn-1""##
        ),
        "{html}"
    );
    for relative in ["href=\"/", "href=\"#", "src=\"/", "href=\"../"] {
        assert!(!html.contains(relative), "{relative} in {html}");
    }
}

/// A sink that hands back, as the earlier run's files, the documents given.
struct Earlier {
    earlier: std::collections::BTreeMap<String, Vec<u8>>,
    written: herald_content::MemorySink,
}

impl herald_content::Sink for Earlier {
    fn put(&self, path: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.written.put(path, bytes)
    }

    fn previous(&self, path: &str) -> Option<Vec<u8>> {
        self.earlier.get(path).cloned()
    }
}

/// An entry whose HTML key is unchanged takes its HTML from the JSON document
/// being replaced, in every format; one whose key differs is made again.
#[test]
fn unchanged_entries_take_their_html_from_the_replaced_json_document() {
    let corpus = corpus();
    let (_, files) = render_all(&corpus, now());
    let path = "en/feed.json";
    let mut doc: serde_json::Value = serde_json::from_slice(&files[path]).unwrap();
    let items = doc["items"].as_array_mut().unwrap();
    assert!(items.len() >= 2, "two entries to work with");
    let key = items[0]["_herald"]["html_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(key.len(), 32, "{key}");
    items[0]["content_html"] = "<p>taken over</p>".into();
    // Another key: this entry's HTML is not the one written.
    items[1]["content_html"] = "<p>stale</p>".into();
    items[1]["_herald"]["html_key"] = format!("{:032x}", 7).into();
    let sink = Earlier {
        earlier: [(path.to_string(), serde_json::to_vec(&doc).unwrap())].into(),
        written: herald_content::MemorySink::default(),
    };
    let input = FeedInput {
        settings: None,
        corpus: &corpus,
        now: now(),
        entries: entries(&corpus, now()),
    };
    render(&input, &sink).unwrap();
    let again = sink.written.into_files();
    for name in ["en/feed.json", "en/atom.xml", "en/rss.xml"] {
        let t = text(&again[name]);
        assert!(t.contains("taken over"), "{name} made the HTML again");
        assert!(!t.contains("stale"), "{name} took HTML under another key");
    }
    // The other documents had nothing to take: as before.
    assert_eq!(again["ru/feed.json"], files["ru/feed.json"]);
}
