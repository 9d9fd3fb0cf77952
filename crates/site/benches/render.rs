//! Render a generated corpus (deterministic: same statements every run) into a
//! sink that only counts bytes, so the figure is herald-site's own work.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use herald_content::statement::{instant, parse_file};
use herald_content::{Config, Corpus, FeedKind, Sink, Statement};
use herald_site::{PdfLinks, SiteInput, SubscribeForm, render};

const CONFIG: &str = r#"title = "Bench Office — Statements"
base_url = "https://statements.example.org/"
languages = ["en", "ru", "kk"]
default_language = "en"
time_zone = "Asia/Almaty"
[organization]
name = "Bench Office"
"#;

const TOPICS: [&str; 12] = [
    "migration",
    "trafficking",
    "health",
    "education",
    "climate",
    "gender",
    "children",
    "labour",
    "human-rights",
    "water",
    "data",
    "refugees",
];

const WORDS: [&str; 16] = [
    "the",
    "agencies",
    "call",
    "on",
    "governments",
    "to",
    "protect",
    "workers",
    "and",
    "their",
    "families",
    "across",
    "borders",
    "with",
    "equal",
    "rights",
];

/// A small deterministic generator (xorshift), so no crate and no clock is involved.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn paragraph(rng: &mut Rng, words: usize) -> String {
    let mut p = String::new();
    for i in 0..words {
        if i > 0 {
            p.push(' ');
        }
        p.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    p.push('.');
    p
}

/// About 700 words: paragraphs, two headings, a list.
fn body(rng: &mut Rng) -> String {
    let mut b = String::new();
    for section in 0..3 {
        if section > 0 {
            b.push_str(&format!("## Section {section}\n\n"));
        }
        for _ in 0..3 {
            b.push_str(&paragraph(rng, 70));
            b.push_str("\n\n");
        }
        if section == 1 {
            for _ in 0..4 {
                b.push_str(&format!("- {}\n", paragraph(rng, 8)));
            }
            b.push('\n');
        }
    }
    b
}

fn corpus(n: usize) -> Corpus {
    let config = Config::parse(Path::new("herald.toml"), CONFIG).expect("config");
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut statements = Vec::new();
    let mut i = 0;
    while statements.len() < n {
        let year = 2006 + (i % 20);
        let day = 1 + (i / 20) % 28;
        let month = 1 + (i / 560) % 12;
        let t1 = TOPICS[rng.below(12) as usize];
        let t2 = TOPICS[rng.below(12) as usize];
        let langs: &[&str] = if i % 5 == 0 {
            &["en", "ru", "kk"]
        } else {
            &["en"]
        };
        let text = body(&mut rng);
        for lang in langs {
            let src = format!(
                "+++\ntitle = \"Statement {i} on {t1} & {t2}\"\ndate = {year}-{month:02}-{day:02}T09:00:00+06:00\nplace = \"Astana\"\nissuers = [\"Bench Office\"]\ntopics = [\"{t1}\", \"{t2}\"]\n+++\n{text}"
            );
            let rel = PathBuf::from(format!("{year}/statement-{i}.{lang}.md"));
            let s = parse_file(&config, &rel, &rel, src.as_bytes()).expect("valid statement");
            statements.push(s);
        }
        i += 1;
    }
    statements.sort_by(|a, b| b.meta.date.cmp(&a.meta.date).then_with(|| a.id.cmp(&b.id)));
    Corpus {
        root: PathBuf::from("/nonexistent/bench-root"),
        config,
        statements,
    }
}

#[derive(Default)]
struct CountingSink(AtomicU64);
impl Sink for CountingSink {
    fn put(&self, _path: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.0.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

fn bench(c: &mut Criterion) {
    let now = instant("2030-01-01T00:00:00Z").expect("now");
    let form = SubscribeForm {
        action: "/subscribe".into(),
        languages: vec!["en".into(), "ru".into(), "kk".into()],
        topics: TOPICS.iter().map(|t| t.to_string()).collect(),
    };
    let mut group = c.benchmark_group("site");
    group.sample_size(10);
    for n in [1_000, 10_000] {
        let corpus = corpus(n);
        let due: Vec<&Statement> = corpus.due(now);
        let input = SiteInput {
            pdfs: PdfLinks::Every,
            feeds: &FeedKind::ALL,
            subscribe: Some(&form),
            integrity: Default::default(),
            ..SiteInput::new(&corpus, &due)
        };
        let sink = CountingSink::default();
        let report = render(&input, &sink).expect("renders");
        let bytes = sink.0.load(Ordering::Relaxed);
        eprintln!(
            "{n} statements: {} files, {} statement pages, {:.1} MB",
            report.files.len(),
            report.statement_pages,
            bytes as f64 / 1e6
        );
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("render", n), &input, |b, input| {
            b.iter(|| render(input, &CountingSink::default()).expect("renders"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
