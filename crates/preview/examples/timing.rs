//! Time preview renders on one thread: `cargo run --release -p herald-preview --example timing [N]`.
//! Prints the median, fastest and slowest render (layout, rasterizing, PNG) and the PNG sizes.

use herald_preview::{Card, Renderer, Style};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let t0 = Instant::now();
    let r = Renderer::new(Style {
        background: [0x0b, 0x3d, 0x6b],
        text: [0xff, 0xff, 0xff],
        accent: [0xcf, 0xe3, 0xf7],
        logo: None,
    })?;
    let setup = t0.elapsed();
    let titles = [
        "Joint statement on the first World Day against Trafficking in Persons",
        "Совместное заявление по случаю Всемирного дня борьбы с торговлей людьми",
        "Адам саудасына қарсы бірінші Дүниежүзілік күнге орай бірлескен мәлімдеме",
        "Migrant workers' health",
    ];
    let mut ms = Vec::with_capacity(n);
    let mut sizes = Vec::with_capacity(n);
    for i in 0..n {
        let title = format!("{} {i}", titles[i % titles.len()]);
        let card = Card {
            lang: ["en", "ru", "kk", "en"][i % 4],
            organization: "United Nations Country Team in Kazakhstan",
            title: &title,
            date: "30 July 2014 · Astana",
            rtl: false,
        };
        let t = Instant::now();
        let png = r.render(&card)?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        sizes.push(png.len());
    }
    ms.sort_by(f64::total_cmp);
    sizes.sort_unstable();
    println!(
        "renderer setup {:.1} ms; {n} renders: median {:.2} ms, range {:.2}-{:.2} ms; PNG median {} bytes, range {}-{}",
        setup.as_secs_f64() * 1000.0,
        ms[n / 2],
        ms[0],
        ms[n - 1],
        sizes[n / 2],
        sizes[0],
        sizes[n - 1]
    );
    Ok(())
}
