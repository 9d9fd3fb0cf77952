//! Link previews, structured data and year archives of a real publish, read by
//! real parsers: Python's extruct (JSON-LD and OpenGraph) and the png crate.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use herald_e2e::{herald, sample_project, snapshot};

const BIN: &str = env!("CARGO_BIN_EXE_herald-under-test");
const NOW: &str = "2026-11-28T00:00:00+00:00";
const AT_EMBARGO: &str = "2027-07-30T09:00:00+05:00";
const BASE: &str = "https://statements.example.org/";

/// extruct over each (file, URL) pair: its JSON-LD and OpenGraph, as JSON.
const EXTRUCT: &str = r#"
import json, sys, extruct
args = sys.argv[1:]
out = {}
for path, url in zip(args[0::2], args[1::2]):
    with open(path, encoding="utf-8") as f:
        html = f.read()
    d = extruct.extract(html, base_url=url, syntaxes=["json-ld", "opengraph"], uniform=False)
    out[url] = d
print(json.dumps(out))
"#;

fn publish(root: &Path, now: &str) {
    let out = herald(BIN, root, &["publish", "--now", now]);
    assert!(
        out.status.success(),
        "publish failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The file below `public/` an absolute URL of the site names.
fn file_of(public: &Path, url: &str) -> std::path::PathBuf {
    let rel = url
        .strip_prefix(BASE)
        .unwrap_or_else(|| panic!("{url} is not below {BASE}"));
    let path = public.join(rel);
    if rel.is_empty() || rel.ends_with('/') {
        path.join("index.html")
    } else {
        path
    }
}

fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    assert_eq!(&bytes[12..16], b"IHDR");
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

#[test]
fn extruct_finds_one_news_article_and_open_graph_on_every_statement_page() {
    let dir = sample_project();
    let root = dir.path();
    publish(root, NOW);
    let public = root.join("public");
    let corpus = herald_content::load(root).expect("sample loads");
    let now = herald_content::statement::instant(NOW).expect("now");
    let due = corpus.due(now);
    assert!(due.len() >= 5);

    let mut args: Vec<String> = Vec::new();
    for s in &due {
        let page = herald_content::urls::page(s);
        args.push(public.join(&page).join("index.html").display().to_string());
        args.push(format!("{BASE}{page}"));
    }
    let out = Command::new("python3")
        .arg("-c")
        .arg(EXTRUCT)
        .args(&args)
        .output()
        .expect(
            "python3 runs (run the tests with `cargo xtask test`: its python3 is target/test-venv)",
        );
    assert!(
        out.status.success(),
        "extruct failed (run the tests with `cargo xtask test`: its python3 has extruct): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(parsed.len(), due.len());

    for s in &due {
        let url = format!("{BASE}{}", herald_content::urls::page(s));
        let d = &parsed[&url];
        // One NewsArticle, with the statement's dates, language and translations.
        let ld = d["json-ld"].as_array().expect("json-ld list");
        let articles: Vec<&serde_json::Value> =
            ld.iter().filter(|v| v["@type"] == "NewsArticle").collect();
        assert_eq!(articles.len(), 1, "{url}: {ld:?}");
        let a = articles[0];
        assert_eq!(a["headline"], s.meta.title.as_str(), "{url}");
        assert_eq!(a["inLanguage"], s.lang.as_str(), "{url}");
        let published =
            chrono::DateTime::parse_from_rfc3339(a["datePublished"].as_str().expect("date"))
                .expect("RFC 3339");
        assert_eq!(published, s.meta.date, "{url}");
        let modified =
            chrono::DateTime::parse_from_rfc3339(a["dateModified"].as_str().expect("date"))
                .expect("RFC 3339");
        assert_eq!(modified, s.modified(), "{url}");
        assert_eq!(a["url"], url.as_str());
        let author: Vec<&str> = a["author"]
            .as_array()
            .expect("authors")
            .iter()
            .filter_map(|o| o["name"].as_str())
            .collect();
        assert_eq!(author, s.meta.issuers, "{url}");
        let pdf = a["associatedMedia"]["contentUrl"].as_str().expect("PDF");
        assert!(
            file_of(&public, pdf).is_file(),
            "{url}: {pdf} is not in public/"
        );
        assert_eq!(a["associatedMedia"]["encodingFormat"], "application/pdf");
        // Translations: every other published language, linked both ways.
        let others: Vec<&&herald_content::Statement> = due
            .iter()
            .filter(|o| o.id == s.id && o.lang != s.lang)
            .collect();
        if others.is_empty() {
            assert!(a.get("workTranslation").is_none() && a.get("translationOfWork").is_none());
        } else if s.lang == "en" {
            let mut langs: Vec<&str> = a["workTranslation"]
                .as_array()
                .expect("workTranslation")
                .iter()
                .map(|t| {
                    let u = t["url"].as_str().expect("url");
                    assert!(file_of(&public, u).is_file(), "{u}");
                    t["inLanguage"].as_str().expect("lang")
                })
                .collect();
            langs.sort_unstable();
            let mut expected: Vec<&str> = others.iter().map(|o| o.lang.as_str()).collect();
            expected.sort_unstable();
            assert_eq!(langs, expected, "{url}");
        } else {
            let original = a["translationOfWork"]["url"].as_str().expect("original");
            assert!(
                original.starts_with(&format!("{BASE}en/")),
                "{url}: {original}"
            );
            assert!(file_of(&public, original).is_file());
        }

        // OpenGraph: one block, absolute URLs that exist in public/.
        let og = d["opengraph"].as_array().expect("opengraph");
        assert_eq!(og.len(), 1, "{url}");
        let props: Vec<(String, String)> = og[0]["properties"]
            .as_array()
            .expect("properties")
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap_or_default().to_string(),
                    p[1].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let get = |k: &str| -> Vec<&str> {
            props
                .iter()
                .filter(|(p, _)| p == k)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(get("og:type"), ["article"], "{url}");
        assert_eq!(get("og:title"), [s.meta.title.as_str()], "{url}");
        assert_eq!(get("og:url"), [url.as_str()], "{url}");
        assert!(file_of(&public, &url).is_file());
        assert_eq!(get("og:locale").len(), 1);
        assert_eq!(get("og:locale:alternate").len(), others.len(), "{url}");
        let image = get("og:image");
        assert_eq!(image.len(), 1, "{url}");
        let bytes = std::fs::read(file_of(&public, image[0])).expect("og:image exists in public/");
        assert_eq!(png_size(&bytes), (1200, 630));
        assert_eq!(get("og:image:width"), ["1200"]);
        assert_eq!(get("og:image:height"), ["630"]);
        assert!(get("og:image:alt")[0].contains(&s.meta.title));
        let published = chrono::DateTime::parse_from_rfc3339(get("article:published_time")[0])
            .expect("RFC 3339");
        assert_eq!(published, s.meta.date);
        assert_eq!(get("article:tag").len(), s.meta.topics.len());
    }
}

#[test]
fn preview_images_are_rendered_only_when_their_card_changes() {
    let dir = sample_project();
    let root = dir.path();
    publish(root, NOW);
    let pngs = |root: &Path| -> BTreeMap<String, (Vec<u8>, std::time::SystemTime)> {
        snapshot(&root.join("public"))
            .into_iter()
            .filter(|(p, _, _)| p.ends_with(".png"))
            .map(|(p, b, t)| (p, (b, t)))
            .collect()
    };
    let first = pngs(root);
    assert_eq!(first.len(), 5, "{:?}", first.keys());

    // A correction of one statement's title: its image only is drawn again, under
    // a new name; the old one is gone; the others are untouched.
    let file = root.join("content/statements/2015/migrant-workers-health.en.md");
    let text = std::fs::read_to_string(&file).expect("read");
    let title_line = text
        .lines()
        .find(|l| l.starts_with("title = "))
        .expect("title");
    std::fs::write(
        &file,
        text.replace(title_line, "title = \"A corrected title\""),
    )
    .expect("write");
    std::thread::sleep(std::time::Duration::from_millis(20));
    publish(root, NOW);
    let second = pngs(root);
    assert_eq!(second.len(), 5);
    let changed: Vec<&String> = second.keys().filter(|p| !first.contains_key(*p)).collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(changed[0].starts_with("en/2015/migrant-workers-health/preview-"));
    for (p, (bytes, mtime)) in &second {
        if let Some((b, t)) = first.get(p) {
            assert_eq!((b, t), (bytes, mtime), "{p} was rewritten");
        }
    }
    let page =
        std::fs::read_to_string(root.join("public/en/2015/migrant-workers-health/index.html"))
            .expect("page");
    assert!(
        page.contains(changed[0].as_str()),
        "the page points at the new image"
    );

    // The same content published cold: the same files, byte for byte.
    let cold = sample_project();
    std::fs::copy(
        &file,
        cold.path()
            .join("content/statements/2015/migrant-workers-health.en.md"),
    )
    .expect("copy");
    publish(cold.path(), NOW);
    let cold_pngs = pngs(cold.path());
    assert_eq!(
        cold_pngs
            .iter()
            .map(|(p, (b, _))| (p, b))
            .collect::<Vec<_>>(),
        second.iter().map(|(p, (b, _))| (p, b)).collect::<Vec<_>>()
    );
}

#[test]
fn year_pages_follow_the_embargo() {
    let dir = sample_project();
    let root = dir.path();
    publish(root, NOW);
    let public = root.join("public");
    assert!(
        !public.join("en/2027").exists(),
        "an embargoed year has no page"
    );
    let index = std::fs::read_to_string(public.join("en/index.html")).expect("index");
    assert!(
        index.contains("href=\"../en/2014/\"") || index.contains("href=\"2014/\""),
        "{index}"
    );
    assert!(!index.contains("2027/"));
    let y2014 = std::fs::read_to_string(public.join("en/2014/index.html")).expect("year page");
    assert!(y2014.contains("world-day-against-trafficking/"));
    let sitemap = std::fs::read_to_string(public.join("sitemap.xml")).expect("sitemap");
    assert!(sitemap.contains(&format!("<loc>{BASE}kk/2014/</loc>")));
    assert!(!sitemap.contains("2027"));

    publish(root, AT_EMBARGO);
    let y2027 = std::fs::read_to_string(public.join("en/2027/index.html")).expect("year page");
    assert!(y2027.contains("world-day-against-trafficking-2027/"));
    let index = std::fs::read_to_string(public.join("en/index.html")).expect("index");
    assert!(index.contains("2027/"));
}
