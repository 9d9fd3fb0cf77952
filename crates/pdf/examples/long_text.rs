//! Time one PDF render of a statement with a long unbreakable title or body word:
//! `cargo run --release -p herald-pdf --example long_text -- title 20000`
//! (or `body 1000000`). The statement is built directly, past herald-content's limits,
//! to measure the layout engine itself.

use std::path::Path;
use std::time::Instant;

use herald_content::Config;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map_or("title", String::as_str);
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let src = "title = \"T\"\nbase_url = \"https://ex.org/\"\nlanguages = [\"en\"]\ndefault_language = \"en\"\ntime_zone = \"UTC\"\n[organization]\nname = \"Org\"\n";
    let config = Config::parse(Path::new("content/herald.toml"), src).expect("config");
    let word = "a".repeat(n);
    let (title, body) = match what {
        "title" => (word, "Body.\n".to_string()),
        _ => ("Title".to_string(), format!("{word}\n")),
    };
    // A valid statement, then the long text put in past the front matter's limits.
    let file =
        "+++\ntitle = \"T\"\ndate = 2014-07-30T09:00:00+06:00\nsummary = \"S\"\n+++\nBody.\n";
    let mut statement = herald_content::statement::parse_file(
        &config,
        Path::new("2014/x.en.md"),
        Path::new("content/statements/2014/x.en.md"),
        file.as_bytes(),
    )
    .expect("statement");
    statement.meta.title = title;
    statement.set_body(body);
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
