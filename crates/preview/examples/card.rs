//! Write a sample card: `cargo run -p herald-preview --example card -- OUT.png [TITLE] [LANG]`.
//! With OUT ending in `.svg`, the SVG the renderer rasterizes (to time other renderers on it).

use herald_preview::{Card, Renderer, Style};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = args.first().map_or("card.png", String::as_str);
    let title = args.get(1).map_or(
        "Joint statement on the first World Day against Trafficking in Persons",
        String::as_str,
    );
    let lang = args.get(2).map_or("en", String::as_str);
    let r = Renderer::new(Style {
        background: [0x0b, 0x3d, 0x6b],
        text: [0xff, 0xff, 0xff],
        accent: [0xcf, 0xe3, 0xf7],
        logo: None,
    })?;
    let card = Card {
        lang,
        organization: "United Nations Country Team in Kazakhstan",
        title,
        date: "30 July 2014 · Astana",
        rtl: lang == "ar",
    };
    if out.ends_with(".svg") {
        std::fs::write(out, r.svg(&card))?;
        return Ok(());
    }
    let start = std::time::Instant::now();
    let bytes = r.render(&card)?;
    eprintln!("{} bytes in {:?}", bytes.len(), start.elapsed());
    std::fs::write(out, bytes)?;
    Ok(())
}
