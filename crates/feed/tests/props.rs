//! Hostile titles, summaries and bodies always give well-formed XML and valid JSON
//! whose text reads back as written, minus the characters XML 1.0 forbids.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use herald_content::html::{HtmlOptions, to_html};
use herald_content::{Corpus, Statement};
use herald_feed::text::{clean, clean_trim, is_xml_char};
use herald_feed::{FeedEntry, FeedInput, tag_uri};
use proptest::prelude::*;
use quick_xml::events::Event;

const PIECES: &[&str] = &[
    "&",
    "<",
    ">",
    "]]>",
    "&amp;",
    "&#0;",
    "\"",
    "'",
    "\u{0}",
    "\u{1}",
    "\u{b}",
    "\u{c}",
    "\u{1f}",
    "\u{7f}",
    "\u{85}",
    "\u{fffe}",
    "\u{ffff}",
    "\r",
    "\r\n",
    "\t",
    "🎉",
    "👩\u{200d}👩\u{200d}👧",
    "שלום",
    "مرحبا بالعالم",
    "\u{202e}",
    "\u{200f}",
    "e\u{301}",
    "a\u{20dd}\u{301}",
    "Қазақстан",
    "x",
    " ",
    "word",
    "*",
    "_",
    "[",
    "]",
    "(",
    ")",
    "`",
    "#",
    "<script>",
    "</p>",
    "\u{10ffff}",
];

fn hostile(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 1..max).prop_map(|v| v.concat())
}

fn statement_like(base: &Statement, title: String, summary: String, body: String) -> Statement {
    let mut s = base.clone();
    s.meta.title = title;
    s.meta.summary = summary;
    s.meta.issuers = vec!["Agency & \"Partners\" <Ltd> 🎉".into()];
    s.set_body(body);
    s
}

/// Every event of the document, or the first well-formedness error.
fn well_formed(xml: &str) -> Result<(), String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut depth = 0usize;
    loop {
        match reader.read_event() {
            Ok(Event::Start(_)) => depth += 1,
            Ok(Event::End(_)) => depth -= 1,
            Ok(Event::GeneralRef(r)) => {
                let name: &str = &r;
                match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) if !is_xml_char(c) => {
                        return Err(format!("&{name}; is not a legal char"));
                    }
                    Some(_) => {}
                    None if ["amp", "lt", "gt", "quot", "apos"].contains(&name) => {}
                    None => return Err(format!("unknown entity &{name};")),
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    if depth != 0 {
        return Err("unclosed elements".into());
    }
    Ok(())
}

fn render_one(corpus: &Corpus) -> BTreeMap<String, Vec<u8>> {
    let s = &corpus.statements[0];
    let first = at("2020-01-01T00:00:00Z");
    render_input(&FeedInput {
        settings: None,
        corpus,
        now: now(),
        entries: vec![FeedEntry {
            statement: s,
            tag: tag_uri(AUTHORITY, first, &s.id, &s.lang),
            first_published: first,
            pdf_length: Some(1234),
        }],
    })
    .1
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn hostile_text_round_trips(
        title in hostile(12),
        summary in hostile(12),
        body in hostile(40),
    ) {
        let sample = corpus();
        let base = sample.statements.iter().find(|s| s.lang == "en" && s.is_due(now())).unwrap();
        let s = statement_like(base, title.clone(), summary.clone(), body);
        let mut corpus = sample.clone();
        corpus.statements = vec![s];
        let s = &corpus.statements[0];
        let files = render_one(&corpus);

        let page = format!("{}{}", corpus.config.base_url, s.page_path());
        let html = to_html(s.document(), &HtmlOptions {
            base_url: Some(&corpus.config.base_url),
            page_url: Some(&page),
        });
        let html = clean(&html).trim_end().to_owned();
        let title = clean_trim(&title).into_owned();
        let summary = clean_trim(&summary).into_owned();

        for (path, bytes) in feeds(&files) {
            let doc = std::str::from_utf8(bytes).unwrap();
            if !path.starts_with("en/") {
                // Languages without the statement: empty feeds, still well-formed.
                prop_assert!(path.ends_with(".json") || well_formed(doc).is_ok(), "{path}");
                continue;
            }
            prop_assert!(doc.chars().all(is_xml_char), "{path}: forbidden character");
            if path.ends_with(".json") {
                let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
                let item = &v["items"][0];
                prop_assert_eq!(item["title"].as_str(), Some(title.as_str()));
                prop_assert_eq!(item["content_html"].as_str(), Some(html.as_str()));
                let got = item["summary"].as_str().unwrap_or("");
                prop_assert_eq!(got, summary.as_str());
                continue;
            }
            prop_assert!(!doc.contains("<![CDATA["), "{path}: escaping, not CDATA");
            if let Err(e) = well_formed(doc) {
                prop_assert!(false, "{}: not well-formed: {}\n{}", path, e, doc);
            }
            feed_rs::parser::parse(bytes.as_slice()).unwrap();
            if path.ends_with("atom.xml") {
                let feed = atom_syndication::Feed::read_from(bytes.as_slice()).unwrap();
                let e = &feed.entries()[0];
                prop_assert_eq!(e.title().as_str(), title.as_str());
                prop_assert_eq!(e.content().and_then(|c| c.value()).unwrap_or(""), html.as_str());
                let got = e.summary().map(|t| t.as_str()).unwrap_or("");
                prop_assert_eq!(got, summary.as_str());
                prop_assert_eq!(e.authors()[0].name(), "Agency & \"Partners\" <Ltd> 🎉");
            } else {
                let channel = rss::Channel::read_from(bytes.as_slice()).unwrap();
                let item = &channel.items()[0];
                prop_assert_eq!(item.title().unwrap_or(""), title.as_str());
                prop_assert_eq!(item.content().unwrap_or(""), html.as_str());
                let got = item.description().unwrap_or("");
                let want = quick_xml::escape::partial_escape(summary.as_str());
                prop_assert_eq!(got, want.as_ref());
            }
        }
    }
}
