//! A typical two-page statement, and the PDFs of 1,000 statements on every core.

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use herald_content::{Config, Statement};
use herald_pdf::{PdfSettings, Renderer};
use rayon::prelude::*;

const CONFIG: &str = r#"title = "Statements"
base_url = "https://statements.example.org/"
languages = ["en", "ru"]
default_language = "en"
time_zone = "Asia/Almaty"
[organization]
name = "United Nations Country Team in Kazakhstan"
short_name = "UN Kazakhstan"
"#;

/// About 900 words: two A4 pages with headings, a list, a link and a footnote.
fn statement(config: &Config, n: usize) -> Statement {
    let sentence = "Prevention has to reach the buyers of cheap labour and services, not only the people at risk, and every partner agency renews its commitment to protect victims whatever their migration status.";
    let mut md = format!(
        "+++\ntitle = \"Joint statement number {n} on the World Day against Trafficking in Persons\"\ndate = 2014-07-30T09:00:00+06:00\nissuers = [\"Inter-Agency Coordination Group\"]\nplace = \"Astana\"\ntopics = [\"trafficking\"]\n+++\n"
    );
    for section in 0..4 {
        md.push_str(&format!("## Section {section}\n\n"));
        for _ in 0..2 {
            for _ in 0..3 {
                md.push_str(sentence);
                md.push(' ');
            }
            md.push_str("See [the report](https://example.org/report).[^1]\n\n");
        }
        md.push_str("- employers and recruiters to check their supply chains;\n- consumers to ask how goods were made;\n- governments to protect victims.\n\n");
    }
    md.push_str("[^1]: International Labour Office, 2014.\n");
    herald_content::statement::parse_file(
        config,
        Path::new("2014/bench.en.md"),
        Path::new("bench.en.md"),
        md.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{e:?}"))
}

fn bench(c: &mut Criterion) {
    let config = Config::parse(Path::new("herald.toml"), CONFIG).expect("config");
    let settings = PdfSettings::from_config(&config).expect("settings");
    let renderer = Renderer::new(&config, &settings).expect("renderer");
    let one = statement(&config, 0);
    c.bench_function("two_page_statement", |b| {
        b.iter(|| renderer.render(&config, &one).expect("render"))
    });
    // The same statement signed (PAdES B-B, ECDSA P-256), with a key made by openssl.
    let keys = tempfile::tempdir().expect("tempdir");
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args([
            "-keyout",
            "k.pem",
            "-out",
            "c.pem",
            "-days",
            "30",
            "-subj",
            "/CN=Bench",
        ])
        .current_dir(keys.path())
        .output()
        .expect("openssl")
        .status
        .success();
    assert!(ok, "openssl made no key");
    let signed_config = Config::parse(
        Path::new("herald.toml"),
        &format!(
            "{CONFIG}[pdf.signing]\nkey = {:?}\ncertificate = {:?}\n",
            keys.path().join("k.pem"),
            keys.path().join("c.pem")
        ),
    )
    .expect("config");
    let signed_settings = PdfSettings::from_config(&signed_config).expect("settings");
    let signed = Renderer::new(&signed_config, &signed_settings).expect("renderer");
    c.bench_function("two_page_statement_signed", |b| {
        b.iter(|| signed.render(&signed_config, &one).expect("render"))
    });
    let many: Vec<Statement> = (0..1000).map(|n| statement(&config, n)).collect();
    let mut group = c.benchmark_group("corpus");
    group.sample_size(10);
    group.bench_function("1000_statements_parallel", |b| {
        b.iter(|| {
            many.par_iter()
                .map(|s| renderer.render(&config, s).map(|p| p.len()))
                .try_reduce(|| 0, |a, b| Ok(a + b))
                .expect("render")
        })
    });
    group.bench_function("1000_statements_parallel_signed", |b| {
        b.iter(|| {
            many.par_iter()
                .map(|s| signed.render(&signed_config, s).map(|p| p.len()))
                .try_reduce(|| 0, |a, b| Ok(a + b))
                .expect("render")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
