//! Time one PDF render of a statement with a long unbreakable title or body word:
//! `cargo run --release -p herald-pdf --example long_text -- title 20000`
//! (or `body 1000000`). The statement is built directly, past herald-content's limits,
//! to measure the layout engine itself.

use std::path::Path;
use std::time::Instant;

use herald_content::{Config, FrontMatter, Statement};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map_or("title", String::as_str);
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let src = "title = \"T\"\nbase_url = \"https://ex.org/\"\nlanguages = [\"en\"]\ndefault_language = \"en\"\ntime_zone = \"UTC\"\n[organization]\nname = \"Org\"\n";
    let config = Config::parse(Path::new("content/herald.toml"), src).expect("config");
    let date = chrono::DateTime::parse_from_rfc3339("2014-07-30T09:00:00+06:00").expect("date");
    let word = "a".repeat(n);
    let (title, body) = match what {
        "title" => (word, "Body.\n".to_string()),
        _ => ("Title".to_string(), format!("{word}\n")),
    };
    let statement = Statement {
        id: "2014/x".into(),
        lang: "en".into(),
        slug: "x".into(),
        year: "2014".into(),
        path: "content/statements/2014/x.en.md".into(),
        meta: FrontMatter {
            title,
            date,
            publish_at: date,
            updated: None,
            summary: "S".into(),
            issuers: Vec::new(),
            place: None,
            occasion: None,
            topics: Vec::new(),
            bulletin: true,
            draft: false,
        },
        body,
        digest: "0".into(),
    };
    let settings = herald_pdf::PdfSettings::default();
    let renderer = herald_pdf::Renderer::new(&config, &settings).expect("renderer");
    let t = Instant::now();
    let bytes = renderer.render(&config, &statement).expect("render");
    println!(
        "{what} of {n} chars: {:.3} s, {} bytes",
        t.elapsed().as_secs_f64(),
        bytes.len()
    );
}
