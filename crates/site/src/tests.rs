//! Render real corpora into a MemorySink and check the HTML with a real parser.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use herald_content::statement::instant;
use herald_content::{Corpus, FeedKind, MemorySink, Sink, Statement};
use scraper::{Html, Selector};

use super::*;

const CONFIG: &str = r#"title = "Test Office — Statements"
base_url = "https://statements.example.org/news/"
languages = ["en", "ru", "kk"]
default_language = "en"
time_zone = "Asia/Almaty"

[organization]
name = "Test Office"
email = "press@example.org"
"#;

fn statement(title: &str, date: &str, extra: &str, body: &str) -> String {
    format!("+++\ntitle = {title:?}\ndate = {date}\n{extra}+++\n{body}\n")
}

/// A project in a temporary folder: `files` are paths below `content/`.
fn project(config_extra: &str, files: &[(&str, String)]) -> (tempfile::TempDir, Corpus) {
    let dir = tempfile::tempdir().expect("tempdir");
    let content = dir.path().join("content");
    std::fs::create_dir_all(content.join("statements")).expect("mkdir");
    std::fs::write(
        content.join("herald.toml"),
        format!("{CONFIG}{config_extra}"),
    )
    .expect("config");
    for (path, text) in files {
        let p = content.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    let corpus = herald_content::load(dir.path()).expect("valid corpus");
    (dir, corpus)
}

fn sample() -> Corpus {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    herald_content::load(&root).expect("sample content loads")
}

fn now() -> chrono::DateTime<chrono::Utc> {
    instant("2026-11-28T00:00:00Z").expect("now")
}

fn render_all(input: &SiteInput<'_>) -> (SiteReport, BTreeMap<String, Vec<u8>>) {
    let sink = MemorySink::default();
    let report = render(input, &sink).expect("renders");
    (report, sink.into_files())
}

fn text(files: &BTreeMap<String, Vec<u8>>, path: &str) -> String {
    let bytes = files.get(path).unwrap_or_else(|| {
        panic!(
            "{path} not written; have {:?}",
            files.keys().collect::<Vec<_>>()
        )
    });
    String::from_utf8(bytes.clone()).expect("UTF-8")
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).expect("selector")
}

fn attrs(doc: &Html, selector: &str, attr: &str) -> Vec<String> {
    doc.select(&sel(selector))
        .filter_map(|e| e.value().attr(attr).map(str::to_string))
        .collect()
}

/// Resolve a relative href against the page's path below the site root.
fn resolve(page: &str, href: &str) -> String {
    let mut parts: Vec<&str> = page.split('/').collect();
    parts.pop(); // the file name
    for seg in href.split('/') {
        match seg {
            ".." => {
                parts.pop();
            }
            "." => {}
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// Structure every page must have.
fn check_page(path: &str, html: &str, lang: &str) {
    let doc = Html::parse_document(html);
    assert!(html.starts_with("<!DOCTYPE html>"), "{path}: no doctype");
    assert!(
        doc.errors.is_empty(),
        "{path}: HTML parse errors {:?}",
        doc.errors
    );
    assert_eq!(
        attrs(&doc, "html", "lang"),
        vec![lang.to_string()],
        "{path}: html lang"
    );
    assert_eq!(doc.select(&sel("h1")).count(), 1, "{path}: one h1");
    assert_eq!(
        doc.select(&sel("main#main")).count(),
        1,
        "{path}: main landmark"
    );
    assert_eq!(doc.select(&sel("header.site")).count(), 1, "{path}: banner");
    assert_eq!(
        doc.select(&sel("footer.site")).count(),
        1,
        "{path}: contentinfo"
    );
    assert_eq!(
        attrs(&doc, "a.skip", "href"),
        vec!["#main".to_string()],
        "{path}: skip link"
    );
    // The only script element is data (JSON-LD), which browsers never run.
    assert_eq!(
        doc.select(&sel("script:not([type=\"application/ld+json\"])"))
            .count(),
        0,
        "{path}: no executable script"
    );
    // Headings never skip a level on the way down.
    let mut last = 0;
    for h in doc.select(&sel("h1, h2, h3, h4, h5, h6")) {
        let level: usize = h.value().name()[1..].parse().expect("level");
        assert!(level <= last + 1, "{path}: h{level} after h{last}");
        last = level;
    }
    for t in attrs(&doc, "time", "datetime") {
        assert!(
            chrono::DateTime::parse_from_rfc3339(&t).is_ok(),
            "{path}: bad datetime {t}"
        );
    }
    assert_eq!(
        attrs(&doc, "link[rel=stylesheet]", "href").len(),
        1,
        "{path}: stylesheet"
    );
}

#[test]
fn sample_site_has_every_page_and_no_embargoed_statement() {
    let corpus = sample();
    let due = corpus.due(now());
    let embargoed = corpus.embargoed(now());
    assert!(
        !embargoed.is_empty(),
        "the sample has an embargoed statement"
    );
    let (report, files) = render_all(&SiteInput::new(&corpus, &due));

    for s in &due {
        let path = format!("{}index.html", urls::page(s));
        check_page(&path, &text(&files, &path), &s.lang);
    }
    for lang in ["en", "ru", "kk"] {
        let path = format!("{lang}/index.html");
        check_page(&path, &text(&files, &path), lang);
        let path = format!("{lang}/topics/index.html");
        check_page(&path, &text(&files, &path), lang);
    }
    check_page("index.html", &text(&files, "index.html"), "en");
    check_page(
        "en/topics/trafficking/index.html",
        &text(&files, "en/topics/trafficking/index.html"),
        "en",
    );
    assert!(files.contains_key("style.css"));
    assert!(files.contains_key("sitemap.xml"));
    assert_eq!(report.statement_pages, due.len());
    assert_eq!(report.files, files.keys().cloned().collect::<Vec<_>>());

    // Nothing of the embargoed statement, in any file.
    for s in &embargoed {
        for (path, bytes) in &files {
            let t = String::from_utf8_lossy(bytes);
            assert!(!t.contains(&s.slug), "{path} names embargoed {}", s.slug);
            assert!(
                !t.contains(&s.meta.title),
                "{path} shows embargoed {}",
                s.meta.title
            );
            assert!(!path.contains(&s.slug), "{path} is an embargoed page");
        }
    }

    // The index lists the language's statements, newest first.
    let doc = Html::parse_document(&text(&files, "en/index.html"));
    let listed = attrs(&doc, "ol.entries h2 a", "href");
    let expected: Vec<String> = due
        .iter()
        .filter(|s| s.lang == "en")
        .map(|s| format!("../{}", urls::page(s)))
        .collect();
    assert_eq!(listed, expected);
}

#[test]
fn embargoed_statement_appears_once_due() {
    let corpus = sample();
    let later = instant("2027-08-01T00:00:00Z").expect("now");
    let due = corpus.due(later);
    let (_, files) = render_all(&SiteInput::new(&corpus, &due));
    let page = "en/2027/world-day-against-trafficking-2027/index.html";
    check_page(page, &text(&files, page), "en");
    assert!(text(&files, "en/index.html").contains("world-day-against-trafficking-2027"));
    assert!(text(&files, "sitemap.xml").contains("world-day-against-trafficking-2027"));
}

#[test]
fn translations_are_linked_with_hreflang() {
    let corpus = sample();
    let due = corpus.due(now());
    let (_, files) = render_all(&SiteInput::new(&corpus, &due));
    let path = "en/2014/world-day-against-trafficking/index.html";
    let doc = Html::parse_document(&text(&files, path));
    let links: Vec<(String, String, String)> = doc
        .select(&sel("nav.translations a"))
        .map(|a| {
            let v = a.value();
            (
                v.attr("hreflang").unwrap_or("").to_string(),
                v.attr("lang").unwrap_or("").to_string(),
                resolve(path, v.attr("href").unwrap_or("")),
            )
        })
        .collect();
    assert_eq!(
        links,
        vec![
            (
                "ru".into(),
                "ru".into(),
                "ru/2014/world-day-against-trafficking/".into()
            ),
            (
                "kk".into(),
                "kk".into(),
                "kk/2014/world-day-against-trafficking/".into()
            ),
        ]
    );
    for (_, _, target) in &links {
        assert!(
            files.contains_key(&format!("{target}index.html")),
            "{target} exists"
        );
    }
    let alternates: Vec<(String, String)> = doc
        .select(&sel("head link[rel=alternate][hreflang]"))
        .map(|l| {
            (
                l.value().attr("hreflang").unwrap_or("").to_string(),
                l.value().attr("href").unwrap_or("").to_string(),
            )
        })
        .collect();
    let base = "https://statements.example.org/";
    assert_eq!(
        alternates,
        vec![
            (
                "en".into(),
                format!("{base}en/2014/world-day-against-trafficking/")
            ),
            (
                "ru".into(),
                format!("{base}ru/2014/world-day-against-trafficking/")
            ),
            (
                "kk".into(),
                format!("{base}kk/2014/world-day-against-trafficking/")
            ),
            (
                "x-default".into(),
                format!("{base}en/2014/world-day-against-trafficking/")
            ),
        ]
    );
    // The Kazakh page speaks Kazakh.
    let kk = text(&files, "kk/2014/world-day-against-trafficking/index.html");
    assert!(
        kk.contains("Бұл мәлімдеме басқа тілдерде"),
        "kk interface strings"
    );
    assert!(kk.contains("2014 жылғы 30 шілде"), "kk date");
    // A statement without translations has no translation block.
    let single = corpus
        .statements
        .iter()
        .find(|s| s.id == "2015/migrant-workers-health")
        .expect("sample statement");
    let single_path = format!("{}index.html", urls::page(single));
    let doc = Html::parse_document(&text(&files, &single_path));
    assert_eq!(doc.select(&sel("nav.translations")).count(), 0);
    // Its language switcher falls back to the other languages' indexes...
    let switch: Vec<String> = attrs(&doc, "nav.languages a", "href")
        .iter()
        .map(|h| resolve(&single_path, h))
        .collect();
    assert_eq!(switch, vec!["ru/", "kk/"]);
    assert_eq!(doc.select(&sel("head link[hreflang]")).count(), 0);
    // ...while a translated statement's leads to its translations.
    let doc = Html::parse_document(&text(&files, path));
    let switch: Vec<String> = attrs(&doc, "nav.languages a", "href")
        .iter()
        .map(|h| resolve(path, h))
        .collect();
    assert_eq!(
        switch,
        vec![
            "ru/2014/world-day-against-trafficking/",
            "kk/2014/world-day-against-trafficking/"
        ]
    );
}

#[test]
fn corrections_are_noted() {
    let corpus = sample();
    let due = corpus.due(now());
    let (_, files) = render_all(&SiteInput::new(&corpus, &due));
    let corrected = due
        .iter()
        .find(|s| s.meta.updated.is_some())
        .expect("the sample has a correction");
    let updated = corrected.meta.updated.expect("updated");
    let path = format!("{}index.html", urls::page(corrected));
    let doc = Html::parse_document(&text(&files, &path));
    let note = doc.select(&sel("p.note")).next().expect("correction note");
    let when: Vec<&str> = note
        .select(&sel("time"))
        .filter_map(|t| t.value().attr("datetime"))
        .collect();
    assert_eq!(
        when,
        vec![updated.to_rfc3339_opts(SecondsFormat::Secs, true)]
    );
    // Uncorrected statements carry no note.
    let plain = due
        .iter()
        .find(|s| s.meta.updated.is_none())
        .expect("plain");
    let doc = Html::parse_document(&text(&files, &format!("{}index.html", urls::page(plain))));
    assert_eq!(doc.select(&sel("p.note")).count(), 0);
}

#[test]
fn feeds_pdf_and_subscribe_form() {
    let corpus = sample();
    let due = corpus.due(now());
    let s = corpus
        .get("2014/world-day-against-trafficking", "en")
        .expect("sample statement");
    let sizes: herald_content::fast::HashMap<String, u64> =
        [(urls::pdf(s), 240_001)].into_iter().collect();
    let form = SubscribeForm {
        action: "https://statements.example.org/subscribe".into(),
        languages: vec!["en".into(), "ru".into(), "kk".into()],
        topics: vec!["migration".into(), "trafficking".into()],
    };
    let input = SiteInput {
        pdfs: PdfLinks::Sizes(&sizes),
        feeds: &FeedKind::ALL,
        subscribe: Some(&form),
        integrity: Default::default(),
        ..SiteInput::new(&corpus, &due)
    };
    let (_, files) = render_all(&input);
    let path = format!("{}index.html", urls::page(s));
    let html = text(&files, &path);
    let doc = Html::parse_document(&html);

    // Autodiscovery: the language feed, then each of the statement's topics.
    let feeds: Vec<(String, String)> = doc
        .select(&sel("head link[rel=alternate][type]"))
        .map(|l| {
            (
                l.value().attr("type").unwrap_or("").to_string(),
                resolve(&path, l.value().attr("href").unwrap_or("")),
            )
        })
        .collect();
    assert_eq!(
        feeds[0],
        ("application/atom+xml".into(), "en/atom.xml".into())
    );
    assert_eq!(
        feeds[1],
        ("application/rss+xml".into(), "en/rss.xml".into())
    );
    assert_eq!(
        feeds[2],
        ("application/feed+json".into(), "en/feed.json".into())
    );
    assert!(feeds.contains(&(
        "application/atom+xml".into(),
        "en/topics/trafficking/atom.xml".into()
    )));
    assert_eq!(feeds.len(), 3 * (1 + s.meta.topics.len()));
    // Visible links too.
    let visible: Vec<String> = attrs(&doc, "footer .follow a", "href")
        .iter()
        .map(|h| resolve(&path, h))
        .collect();
    assert_eq!(visible, vec!["en/atom.xml", "en/rss.xml", "en/feed.json"]);

    // PDF beside the page, with its size.
    let pdf = doc.select(&sel("p.pdf a")).next().expect("pdf link");
    assert_eq!(
        resolve(&path, pdf.value().attr("href").unwrap_or("")),
        urls::pdf(s)
    );
    assert_eq!(pdf.value().attr("type"), Some("application/pdf"));
    let pdf_text: String = doc.select(&sel("p.pdf")).flat_map(|p| p.text()).collect();
    assert!(pdf_text.contains("241 KB"), "{pdf_text}");
    // No size given: no link for that statement.
    let other = corpus
        .get("2015/migrant-workers-health", "en")
        .expect("sample");
    let doc2 = Html::parse_document(&text(&files, &format!("{}index.html", urls::page(other))));
    assert_eq!(doc2.select(&sel("p.pdf")).count(), 0);

    // The subscribe form: plain POST, labelled, the page's language chosen.
    let form_el = doc.select(&sel("form")).next().expect("form");
    assert_eq!(form_el.value().attr("method"), Some("post"));
    assert_eq!(
        form_el.value().attr("action"),
        Some("https://statements.example.org/subscribe")
    );
    assert_eq!(
        attrs(&doc, "form input[type=email][required]", "name"),
        vec!["email"]
    );
    assert_eq!(attrs(&doc, "label[for=subscribe-email]", "for").len(), 1);
    assert_eq!(
        attrs(&doc, "form select[name=lang] option[selected]", "value"),
        vec!["en"]
    );
    assert_eq!(
        attrs(&doc, "form input[type=checkbox][name=topics]", "value"),
        vec!["migration", "trafficking"]
    );
    let ru = Html::parse_document(&text(&files, "ru/index.html"));
    assert_eq!(
        attrs(&ru, "form select[name=lang] option[selected]", "value"),
        vec!["ru"]
    );

    // Topic page: its own feeds discovered and listed.
    let tpath = "en/topics/trafficking/index.html";
    let topic = Html::parse_document(&text(&files, tpath));
    let listed: Vec<String> = attrs(&topic, "main .follow a", "href")
        .iter()
        .map(|h| resolve(tpath, h))
        .collect();
    assert_eq!(
        listed,
        vec![
            "en/topics/trafficking/atom.xml",
            "en/topics/trafficking/rss.xml",
            "en/topics/trafficking/feed.json"
        ]
    );
}

#[test]
fn titles_are_shown_not_run() {
    let evil = "<script>alert(1)</script> & \"quotes\"";
    let (_dir, corpus) = project(
        "",
        &[(
            "statements/2020/evil.en.md",
            statement(
                evil,
                "2020-01-02T10:00:00+06:00",
                "place = \"<img src=x onerror=alert(2)>\"\ntopics = [\"rights\"]\n",
                "Body with <b onclick=\"alert(3)\">bold</b> and <script>alert(4)</script>.",
            ),
        )],
    );
    let due = corpus.due(now());
    let (_, files) = render_all(&SiteInput::new(&corpus, &due));
    for (path, bytes) in &files {
        if !path.ends_with(".html") {
            continue;
        }
        let html = String::from_utf8_lossy(bytes);
        let doc = Html::parse_document(&html);
        assert_eq!(
            doc.select(&sel("script:not([type=\"application/ld+json\"])"))
                .count(),
            0,
            "{path}"
        );
        assert_eq!(doc.select(&sel("img")).count(), 0, "{path}");
        assert_eq!(
            doc.select(&sel("[onclick], [onerror]")).count(),
            0,
            "{path}"
        );
        // No script element but the JSON-LD one: the title inside it cannot close it.
        assert_eq!(
            html.matches("<script").count(),
            html.matches("<script type=\"application/ld+json\">")
                .count(),
            "{path}"
        );
        assert_eq!(
            html.matches("</script>").count(),
            html.matches("<script").count(),
            "{path}"
        );
    }
    let doc = Html::parse_document(&text(&files, "en/2020/evil/index.html"));
    let ld: Vec<String> = doc
        .select(&sel("script[type=\"application/ld+json\"]"))
        .map(|e| e.text().collect())
        .collect();
    assert_eq!(ld.len(), 1);
    let json: serde_json::Value = serde_json::from_str(&ld[0]).expect("JSON-LD is JSON");
    assert_eq!(json["headline"], evil);
    let doc = Html::parse_document(&text(&files, "en/2020/evil/index.html"));
    let h1: String = doc.select(&sel("h1")).flat_map(|e| e.text()).collect();
    assert_eq!(h1, evil);
    let title: String = doc.select(&sel("title")).flat_map(|e| e.text()).collect();
    assert!(title.starts_with(evil), "{title}");
    let index = Html::parse_document(&text(&files, "en/index.html"));
    let entry: String = index
        .select(&sel("ol.entries h2"))
        .flat_map(|e| e.text())
        .collect();
    assert_eq!(entry, evil);
}

#[test]
fn templates_can_be_overridden() {
    let (dir, corpus) = project(
        "",
        &[
            (
                "statements/2020/one.en.md",
                statement("One", "2020-01-02T10:00:00+06:00", "", "Text."),
            ),
            (
                "templates/statement.html",
                "{% extends \"base.html\" %}{% block main %}<h1 class=\"custom\">{{ statement.title }}</h1>{% include \"sig.html\" %}{{ body }}{% endblock %}".into(),
            ),
            ("templates/sig.html", "<p class=\"sig\">{{ site.organization.name }}</p>".into()),
            ("templates/style.css", "body { color: red }".into()),
            ("assets/logo.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"/>".into()),
            ("assets/.hidden", "secret".into()),
        ],
    );
    let due = corpus.due(now());
    let (report, files) = render_all(&SiteInput::new(&corpus, &due));
    let doc = Html::parse_document(&text(&files, "en/2020/one/index.html"));
    let h1: Vec<String> = doc
        .select(&sel("h1.custom"))
        .map(|e| e.text().collect())
        .collect();
    assert_eq!(h1, vec!["One"]);
    let sig: String = doc.select(&sel("p.sig")).flat_map(|e| e.text()).collect();
    assert_eq!(sig, "Test Office");
    // The rest of the site keeps the built-in templates.
    check_page("en/index.html", &text(&files, "en/index.html"), "en");
    assert_eq!(text(&files, "style.css"), "body { color: red }");
    assert_eq!(
        text(&files, "assets/logo.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\"/>"
    );
    assert!(!files.contains_key("assets/.hidden"));
    assert_eq!(report.assets, 1);

    // A mistake in an override is reported with the template's name.
    std::fs::write(
        dir.path().join("content/templates/statement.html"),
        "{% extends \"base.html\" %}{% block main %}<h1>{{ statment.title }}</h1>{% endblock %}",
    )
    .expect("write");
    let sink = MemorySink::default();
    let err = render(&SiteInput::new(&corpus, &due), &sink).expect_err("undefined variable");
    let msg = err.to_string();
    assert!(msg.contains("statement.html"), "{msg}");
    assert!(msg.contains("undefined"), "{msg}");
    // Found before anything was written.
    assert!(sink.into_files().is_empty());
}

#[test]
fn large_indexes_are_paginated() {
    let files_in: Vec<(String, String)> = (1..=5)
        .map(|i| {
            (
                format!("statements/2020/s{i}.en.md"),
                statement(
                    &format!("Statement {i}"),
                    &format!("2020-01-0{i}T10:00:00+06:00"),
                    "topics = [\"health\"]\n",
                    "Text.",
                ),
            )
        })
        .collect();
    let refs: Vec<(&str, String)> = files_in
        .iter()
        .map(|(p, t)| (p.as_str(), t.clone()))
        .collect();
    let (_dir, corpus) = project("\n[site]\nper_page = 2\n", &refs);
    let due = corpus.due(now());
    let (report, files) = render_all(&SiteInput::new(&corpus, &due));
    let titles = |path: &str| -> Vec<String> {
        let doc = Html::parse_document(&text(&files, path));
        doc.select(&sel("ol.entries h2"))
            .map(|e| e.text().collect())
            .collect()
    };
    assert_eq!(titles("en/index.html"), vec!["Statement 5", "Statement 4"]);
    assert_eq!(
        titles("en/page/2/index.html"),
        vec!["Statement 3", "Statement 2"]
    );
    assert_eq!(titles("en/page/3/index.html"), vec!["Statement 1"]);
    assert!(!files.contains_key("en/page/4/index.html"));
    assert!(!files.contains_key("en/page/1/index.html"));
    assert_eq!(
        titles("en/topics/health/page/3/index.html"),
        vec!["Statement 1"]
    );
    let p2 = "en/page/2/index.html";
    check_page(p2, &text(&files, p2), "en");
    let doc = Html::parse_document(&text(&files, p2));
    let prev = attrs(&doc, ".pagination a[rel=prev]", "href");
    let next = attrs(&doc, ".pagination a[rel=next]", "href");
    assert_eq!(resolve(p2, &prev[0]), "en/");
    assert_eq!(resolve(p2, &next[0]), "en/page/3/");
    // Languages without statements still get an (empty) index: 3 en + ru + kk + root.
    assert_eq!(report.index_pages, 6);
    assert!(text(&files, "ru/index.html").contains("Заявлений пока нет."));
}

#[test]
fn same_input_same_bytes() {
    let corpus = sample();
    let due = corpus.due(now());
    let mut reversed = due.clone();
    reversed.reverse();
    let (_, a) = render_all(&SiteInput::new(&corpus, &due));
    let (_, b) = render_all(&SiteInput::new(&corpus, &reversed));
    assert_eq!(a, b);
}

/// Every `<url>` of a sitemap: (loc, lastmod, [(hreflang, href)]), checked for well-formedness.
type UrlEntry = (String, String, Vec<(String, String)>);

fn parse_sitemap(xml: &str) -> Vec<UrlEntry> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    let mut cur: Option<UrlEntry> = None;
    let mut field = String::new();
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) => {
                let name = e.name().as_ref().to_string();
                if name == "url" {
                    cur = Some(Default::default());
                }
                field = name;
            }
            Event::Empty(e) if e.name().as_ref() == "xhtml:link" => {
                let get = |k: &str| {
                    e.attributes()
                        .filter_map(Result::ok)
                        .find(|a| a.key.as_ref() == k)
                        .map(|a| {
                            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .expect("attr")
                                .to_string()
                        })
                        .unwrap_or_default()
                };
                if let Some(c) = cur.as_mut() {
                    c.2.push((get("hreflang"), get("href")));
                }
            }
            Event::Text(t) => {
                let v = t.xml10_content().to_string();
                if let Some(c) = cur.as_mut() {
                    match field.as_str() {
                        "loc" => c.0 = v,
                        "lastmod" => c.1 = v,
                        _ => {}
                    }
                }
            }
            Event::End(e) => {
                if e.name().as_ref() == "url" {
                    out.extend(cur.take());
                }
                field.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out
}

#[test]
fn sitemap_lists_pages_with_alternates() {
    let corpus = sample();
    let due = corpus.due(now());
    let (_, files) = render_all(&SiteInput::new(&corpus, &due));
    let xml = text(&files, "sitemap.xml");
    let urls_ = parse_sitemap(&xml);
    let base = "https://statements.example.org/";
    for s in &due {
        let loc = format!("{base}{}", urls::page(s));
        let entry = urls_
            .iter()
            .find(|u| u.0 == loc)
            .unwrap_or_else(|| panic!("{loc} in sitemap"));
        assert_eq!(
            entry.1,
            s.modified().to_rfc3339_opts(SecondsFormat::Secs, true)
        );
    }
    let tr = urls_
        .iter()
        .find(|u| u.0 == format!("{base}ru/2014/world-day-against-trafficking/"))
        .expect("ru page");
    let langs: Vec<&str> = tr.2.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(langs, vec!["en", "ru", "kk"]);
    // The corrected statement's lastmod is its update.
    let corrected: Vec<&&Statement> = due.iter().filter(|s| s.meta.updated.is_some()).collect();
    assert!(!corrected.is_empty(), "the sample has a correction");
    // Language indexes with x-default.
    let en = urls_
        .iter()
        .find(|u| u.0 == format!("{base}en/"))
        .expect("en index");
    assert!(en.2.contains(&("x-default".to_string(), base.to_string())));
}

#[test]
fn big_sitemaps_are_split_into_an_index() {
    let corpus = sample();
    let due = corpus.due(now());
    let input = SiteInput::new(&corpus, &due);
    let settings = SiteSettings::from_config(&corpus.config).expect("settings");
    let env = templates::environment(Path::new("/nonexistent")).expect("env");
    let site = Site::new(&input, settings, env);
    let whole = site.sitemap_in(usize::MAX);
    assert_eq!(whole.len(), 1);
    let total = parse_sitemap(&whole[0].1).len();
    let parts = site.sitemap_in(3);
    assert_eq!(parts.len(), total.div_ceil(3) + 1);
    let (name, index) = parts.last().expect("index");
    assert_eq!(name, "sitemap.xml");
    assert!(index.contains("<sitemapindex"), "{index}");
    assert!(
        index.contains("<loc>https://statements.example.org/sitemap-1.xml</loc>"),
        "{index}"
    );
    let split: usize = parts[..parts.len() - 1]
        .iter()
        .map(|(_, x)| parse_sitemap(x).len())
        .sum();
    assert_eq!(split, total);
}

#[test]
fn bad_settings_are_clear_errors() {
    let (_d, corpus) = project("\n[site]\nper_page = 0\n", &[]);
    let err = render(&SiteInput::new(&corpus, &[]), &MemorySink::default()).expect_err("invalid");
    assert!(
        err.to_string().contains("per_page must be at least 1"),
        "{err}"
    );
    let (_d, corpus) = project("\n[site]\nper_pages = 10\n", &[]);
    let err = render(&SiteInput::new(&corpus, &[]), &MemorySink::default()).expect_err("invalid");
    assert!(err.to_string().contains("per_pages"), "{err}");
}

#[test]
fn topic_names_come_from_settings() {
    let (_d, corpus) = project(
        "\n[site.topic_names.human-rights]\nen = \"Human rights\"\nru = \"Права человека\"\n",
        &[
            (
                "statements/2020/one.en.md",
                statement(
                    "One",
                    "2020-01-02T10:00:00+06:00",
                    "topics = [\"human-rights\", \"labour-migration\"]\n",
                    "Text.",
                ),
            ),
            (
                "statements/2020/one.ru.md",
                statement(
                    "Одно",
                    "2020-01-02T10:00:00+06:00",
                    "topics = [\"human-rights\"]\n",
                    "Текст.",
                ),
            ),
        ],
    );
    let due = corpus.due(now());
    let (_, files) = render_all(&SiteInput::new(&corpus, &due));
    let ru = Html::parse_document(&text(&files, "ru/topics/human-rights/index.html"));
    let h1: String = ru.select(&sel("h1")).flat_map(|e| e.text()).collect();
    assert_eq!(h1, "Тема: Права человека");
    let en = Html::parse_document(&text(&files, "en/topics/index.html"));
    let names: Vec<String> = en
        .select(&sel("ul.topics a"))
        .map(|e| e.text().collect())
        .collect();
    assert_eq!(names, vec!["Human rights", "Labour migration"]);
    // Only the languages that have the topic are alternates.
    let alts = attrs(&ru, "head link[hreflang]", "hreflang");
    assert_eq!(alts, vec!["en", "ru"]);
}

struct FailingSink;
impl Sink for FailingSink {
    fn put(&self, _path: &str, _bytes: &[u8]) -> std::io::Result<()> {
        Err(std::io::Error::other("disk full"))
    }
}

#[test]
fn sink_errors_name_the_file() {
    let corpus = sample();
    let due = corpus.due(now());
    let err = render(&SiteInput::new(&corpus, &due), &FailingSink).expect_err("fails");
    let msg = err.to_string();
    assert!(
        msg.starts_with("cannot write ") && msg.contains("disk full"),
        "{msg}"
    );
}

#[test]
fn the_parse_error_check_can_fail() {
    // check_page relies on the parser reporting errors; make sure it does.
    let doc = Html::parse_document("<!DOCTYPE html><html><body><p></div></body></html>");
    assert!(!doc.errors.is_empty());
}

fn meta_content(doc: &Html, attr: &str, key: &str) -> Vec<String> {
    attrs(doc, &format!("head meta[{attr}=\"{key}\"]"), "content")
}

fn json_ld(doc: &Html) -> Vec<serde_json::Value> {
    doc.select(&sel("script[type=\"application/ld+json\"]"))
        .map(|e| {
            let t: String = e.text().collect();
            serde_json::from_str(&t).expect("JSON-LD is JSON")
        })
        .collect()
}

#[test]
fn statement_pages_carry_link_preview_tags_and_a_news_article() {
    let corpus = sample();
    let due = corpus.due(now());
    let en = corpus
        .get("2014/world-day-against-trafficking", "en")
        .expect("en");
    let ru = corpus
        .get("2014/world-day-against-trafficking", "ru")
        .expect("ru");
    let sizes: herald_content::fast::HashMap<String, u64> =
        [(urls::pdf(en), 240_001)].into_iter().collect();
    let previews: herald_content::fast::HashMap<String, PreviewImage> = due
        .iter()
        .map(|s| {
            (
                urls::page(s),
                PreviewImage {
                    path: format!("{}preview.png", urls::page(s)),
                    width: 1200,
                    height: 630,
                },
            )
        })
        .collect();
    let input = SiteInput {
        pdfs: PdfLinks::Sizes(&sizes),
        previews: Some(&previews),
        ..SiteInput::new(&corpus, &due)
    };
    let (_, files) = render_all(&input);
    let base = "https://statements.example.org/";

    let doc = Html::parse_document(&text(&files, &format!("{}index.html", urls::page(en))));
    let og = |k: &str| meta_content(&doc, "property", k);
    assert_eq!(og("og:type"), ["article"]);
    assert_eq!(og("og:title"), [en.meta.title.as_str()]);
    assert_eq!(og("og:description"), [en.meta.summary.as_str()]);
    assert_eq!(og("og:url"), [format!("{base}{}", urls::page(en))]);
    assert_eq!(og("og:locale"), ["en_US"]);
    assert_eq!(og("og:locale:alternate"), ["ru_RU", "kk_KZ"]);
    assert_eq!(
        og("og:image"),
        [format!("{base}{}preview.png", urls::page(en))]
    );
    assert_eq!(og("og:image:width"), ["1200"]);
    assert_eq!(og("og:image:height"), ["630"]);
    assert!(og("og:image:alt")[0].starts_with(&en.meta.title));
    assert_eq!(og("article:published_time"), ["2014-07-30T09:00:00+06:00"]);
    assert_eq!(
        og("article:modified_time"),
        [en.modified().to_rfc3339_opts(SecondsFormat::Secs, true)]
    );
    assert_eq!(og("article:tag").len(), en.meta.topics.len());
    assert_eq!(
        meta_content(&doc, "name", "twitter:card"),
        ["summary_large_image"]
    );
    assert_eq!(meta_content(&doc, "name", "twitter:image"), og("og:image"));

    let ld = json_ld(&doc);
    assert_eq!(ld.len(), 1);
    let a = &ld[0];
    assert_eq!(a["@type"], "NewsArticle");
    assert_eq!(a["headline"], en.meta.title.as_str());
    assert_eq!(a["inLanguage"], "en");
    assert_eq!(a["datePublished"], "2014-07-30T09:00:00+06:00");
    assert_eq!(
        a["author"][0]["name"],
        "Inter-Agency Coordination Group against Trafficking in Persons"
    );
    assert_eq!(
        a["associatedMedia"]["contentUrl"],
        format!("{base}{}", urls::pdf(en)).as_str()
    );
    assert_eq!(a["associatedMedia"]["encodingFormat"], "application/pdf");
    let tr: Vec<&str> = a["workTranslation"]
        .as_array()
        .expect("translations")
        .iter()
        .filter_map(|t| t["inLanguage"].as_str())
        .collect();
    assert_eq!(tr, ["ru", "kk"]);
    assert!(a.get("translationOfWork").is_none());

    // A translation points at its original; no PDF size known means no contentSize.
    let doc = Html::parse_document(&text(&files, &format!("{}index.html", urls::page(ru))));
    let a = &json_ld(&doc)[0];
    assert_eq!(a["inLanguage"], "ru");
    assert_eq!(
        a["translationOfWork"]["url"],
        format!("{base}{}", urls::page(en)).as_str()
    );
    assert!(a.get("workTranslation").is_none());
    assert!(a.get("associatedMedia").is_none());
    assert_eq!(meta_content(&doc, "property", "og:locale"), ["ru_RU"]);

    // Site-level tags on list pages; no JSON-LD there.
    for page in [
        "en/index.html",
        "ru/topics/index.html",
        "en/topics/trafficking/index.html",
        "en/2014/index.html",
    ] {
        let doc = Html::parse_document(&text(&files, page));
        assert_eq!(
            meta_content(&doc, "property", "og:type"),
            ["website"],
            "{page}"
        );
        let url = meta_content(&doc, "property", "og:url");
        assert_eq!(url, attrs(&doc, "link[rel=canonical]", "href"), "{page}");
        assert!(url[0].starts_with(base), "{page}");
        assert_eq!(
            meta_content(&doc, "name", "twitter:card"),
            ["summary"],
            "{page}"
        );
        assert!(json_ld(&doc).is_empty(), "{page}");
    }
}

#[test]
fn without_previews_there_is_no_og_image() {
    let corpus = sample();
    let due = corpus.due(now());
    let (_, files) = render_all(&SiteInput::new(&corpus, &due));
    let s = due[0];
    let doc = Html::parse_document(&text(&files, &format!("{}index.html", urls::page(s))));
    assert!(meta_content(&doc, "property", "og:image").is_empty());
    assert_eq!(meta_content(&doc, "name", "twitter:card"), ["summary"]);
    assert!(json_ld(&doc)[0].get("image").is_none());
}

#[test]
fn year_pages_list_exactly_that_years_due_statements() {
    let year = |y: &str, n: u32, extra: &str| {
        (
            format!("statements/{y}/s{n}.en.md"),
            statement(
                &format!("Statement {y} number {n}"),
                &format!("{y}-0{n}-02T10:00:00+06:00"),
                extra,
                "Body.",
            ),
        )
    };
    let files_in: Vec<(String, String)> = vec![
        year("2019", 1, ""),
        year("2019", 2, ""),
        year("2020", 1, ""),
        year("2020", 3, "publish_at = 2030-01-01T00:00:00+00:00\n"),
        year("2021", 1, "draft = true\n"),
    ];
    let refs: Vec<(&str, String)> = files_in
        .iter()
        .map(|(p, t)| (p.as_str(), t.clone()))
        .collect();
    let (_dir, corpus) = project("", &refs);
    let due = corpus.due(now());
    let (report, files) = render_all(&SiteInput::new(&corpus, &due));
    assert_eq!(report.year_pages, 2);
    assert!(
        !files.contains_key("en/2021/index.html"),
        "a year of drafts only has no page"
    );
    assert!(
        !files.contains_key("ru/2019/index.html"),
        "no ru statements"
    );

    let listed = |path: &str| {
        let doc = Html::parse_document(&text(&files, path));
        check_page(path, &text(&files, path), "en");
        doc.select(&sel("ol.entries h2 a"))
            .map(|a| a.text().collect::<String>())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed("en/2019/index.html"),
        ["Statement 2019 number 2", "Statement 2019 number 1"]
    );
    // The embargoed 2020 statement is not there.
    assert_eq!(listed("en/2020/index.html"), ["Statement 2020 number 1"]);
    for (path, bytes) in &files {
        assert!(
            !String::from_utf8_lossy(bytes).contains("2020 number 3"),
            "{path} shows the embargoed statement"
        );
    }

    // The index links every year, newest first, with its count.
    let doc = Html::parse_document(&text(&files, "en/index.html"));
    let years: Vec<(String, String)> = doc
        .select(&sel("nav.years li"))
        .map(|li| {
            let a = li.select(&sel("a")).next().expect("link");
            (
                resolve("en/index.html", a.value().attr("href").unwrap_or("")),
                li.text().collect::<String>(),
            )
        })
        .collect();
    assert_eq!(
        years,
        [
            ("en/2020/".to_string(), "2020 (1)".to_string()),
            ("en/2019/".to_string(), "2019 (2)".to_string())
        ]
    );
    // The year page marks its own year and links the other.
    let doc = Html::parse_document(&text(&files, "en/2019/index.html"));
    assert_eq!(
        doc.select(&sel("nav.years [aria-current=page]"))
            .map(|e| e.text().collect::<String>())
            .collect::<Vec<_>>(),
        ["2019"]
    );
    let sitemap = text(&files, "sitemap.xml");
    assert!(sitemap.contains("<loc>https://statements.example.org/news/en/2019/</loc>"));
    assert!(sitemap.contains("<loc>https://statements.example.org/news/en/2020/</loc>"));
    assert!(!sitemap.contains("en/2021/"));
}

#[test]
fn preview_settings_are_checked() {
    let (_dir, corpus) = project(
        "\n[site.preview]\nbackground = \"#ffffff\"\ntext = \"#777777\"\n",
        &[],
    );
    let e = SiteSettings::from_config(&corpus.config).expect_err("low contrast");
    assert!(e.to_string().contains("contrast"), "{e}");
    let (_dir, corpus) = project("\n[site.preview]\nbackground = \"blue\"\n", &[]);
    let e = SiteSettings::from_config(&corpus.config).expect_err("bad colour");
    assert!(e.to_string().contains("#rrggbb"), "{e}");
    let (_dir, corpus) = project("\n[site.preview]\nlogo = \"logo.gif\"\n", &[]);
    assert!(SiteSettings::from_config(&corpus.config).is_err());
    let (_dir, corpus) = project("\n[site.preview]\ncolour = \"#000000\"\n", &[]);
    let e = SiteSettings::from_config(&corpus.config).expect_err("unknown key");
    assert!(e.to_string().contains("colour"), "{e}");
    let (_dir, corpus) = project(
        "\n[site.preview]\nbackground = \"#ffffff\"\ntext = \"#111111\"\naccent = \"#0b4f8a\"\nlogo = \"assets/logo.svg\"\n",
        &[],
    );
    let s = SiteSettings::from_config(&corpus.config).expect("valid");
    assert_eq!(s.preview.logo.as_deref(), Some("assets/logo.svg"));
}

/// The custom properties of one `:root { ... }` block of the stylesheet.
fn css_vars(block: &str) -> HashMap<String, [u8; 3]> {
    block
        .split(';')
        .filter_map(|decl| {
            let (k, v) = decl.split_once(':')?;
            let k = k.trim();
            let v = v.trim();
            let rgb = if v.len() == 4 && v.starts_with('#') {
                let b = v.as_bytes();
                parse_colour(&format!(
                    "#{0}{0}{1}{1}{2}{2}",
                    b[1] as char, b[2] as char, b[3] as char
                ))?
            } else {
                parse_colour(v)?
            };
            Some((k.strip_prefix("--")?.to_string(), rgb))
        })
        .collect()
}

#[test]
fn every_colour_pair_of_the_stylesheet_reaches_aa() {
    let css = std::str::from_utf8(templates::TEMPLATES_CSS).expect("UTF-8");
    // Light, dark, print: each `:root {` block, later ones overriding the first.
    let blocks: Vec<&str> = css
        .match_indices(":root {")
        .map(|(i, _)| {
            let rest = &css[i + 7..];
            &rest[..rest.find('}').expect("block end")]
        })
        .collect();
    assert_eq!(blocks.len(), 3, "light, dark and print palettes");
    let light = css_vars(blocks[0]);
    // Foreground on background pairs the stylesheet uses.
    let pairs = [
        ("text", "bg"),
        ("muted", "bg"),
        ("link", "bg"),
        ("visited", "bg"),
        ("bg", "link"), // the button
        ("text", "accent"),
        ("muted", "accent"),
        ("link", "accent"),
        ("visited", "accent"),
    ];
    for (name, block) in [("light", None), ("dark", Some(1)), ("print", Some(2))] {
        let mut vars = light.clone();
        if let Some(b) = block {
            vars.extend(css_vars(blocks[b]));
        }
        for (fg, bg) in pairs {
            let ratio = contrast(vars[fg], vars[bg]);
            assert!(ratio >= 4.5, "{name}: --{fg} on --{bg} is {ratio:.2}:1");
        }
    }
    // The rule is the border of the inputs' fieldsets only; inputs use --muted (3:1 for UI).
    assert!(contrast(light["muted"], light["bg"]) >= 3.0);
}

#[test]
fn contrast_matches_wcag() {
    assert!((contrast([0, 0, 0], [255, 255, 255]) - 21.0).abs() < 1e-9);
    assert!((contrast([0x77, 0x77, 0x77], [255, 255, 255]) - 4.48).abs() < 0.01);
}
