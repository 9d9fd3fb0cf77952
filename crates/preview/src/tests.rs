//! Real renders, decoded again with the png crate.

use super::*;

fn style() -> Style {
    Style {
        background: [0x0b, 0x3d, 0x6b],
        text: [0xff, 0xff, 0xff],
        accent: [0xcf, 0xe3, 0xf7],
        logo: None,
    }
}

fn card<'a>(title: &'a str) -> Card<'a> {
    Card {
        lang: "en",
        organization: "Inter-Agency Coordination Group against Trafficking in Persons",
        title,
        date: "30 July 2014 · Astana",
        rtl: false,
    }
}

/// Decode a PNG: (width, height, RGB bytes).
fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("a valid PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// Pixels that differ between two images of the same size, inside rows `y0..y1`.
fn differing(a: &[u8], b: &[u8], y0: u32, y1: u32) -> usize {
    let row = WIDTH as usize * 3;
    (y0 as usize..y1 as usize)
        .map(|y| {
            a[y * row..(y + 1) * row]
                .chunks_exact(3)
                .zip(b[y * row..(y + 1) * row].chunks_exact(3))
                .filter(|(p, q)| p != q)
                .count()
        })
        .sum()
}

const TITLE: &str = "Joint statement on the first World Day against Trafficking in Persons";

#[test]
fn a_card_is_a_1200_by_630_png_with_its_title_drawn() {
    let r = Renderer::new(style()).expect("renderer");
    let with = r.render(&card(TITLE)).expect("render");
    let without = r.render(&card("")).expect("render");
    assert!(with.starts_with(b"\x89PNG\r\n\x1a\n"));
    let (w, h, a) = decode(&with);
    assert_eq!((w, h), (WIDTH, HEIGHT));
    let (_, _, b) = decode(&without);
    // The title's box differs by thousands of pixels; the rest is the same.
    let in_title = differing(&a, &b, TITLE_TOP as u32, TITLE_BOTTOM as u32);
    assert!(in_title > 5_000, "only {in_title} pixels of title");
    assert_eq!(differing(&a, &b, 0, TITLE_TOP as u32 - 40), 0);
    // Background where nothing is drawn, title colour where the title is.
    assert_eq!(&a[..3], &[0x0b, 0x3d, 0x6b]);
    let row = WIDTH as usize * 3;
    let white = (TITLE_TOP as usize..TITLE_BOTTOM as usize)
        .flat_map(|y| a[y * row..(y + 1) * row].chunks_exact(3))
        .filter(|p| *p == [0xff, 0xff, 0xff])
        .count();
    assert!(white > 2_000, "{white} pixels in the title colour");
    // A different title draws differently.
    let other = r.render(&card("Another title entirely")).expect("render");
    assert_ne!(decode(&other).2, a);
}

#[test]
fn renders_are_byte_identical_across_renderers_and_threads() {
    use rayon::prelude::*;
    let r1 = Renderer::new(style()).expect("renderer");
    let r2 = Renderer::new(style()).expect("renderer");
    let first = r1.render(&card(TITLE)).expect("render");
    let again: Vec<Vec<u8>> = (0..8)
        .into_par_iter()
        .map(|i| {
            let r = if i % 2 == 0 { &r1 } else { &r2 };
            r.render(&card(TITLE)).expect("render")
        })
        .collect();
    for bytes in again {
        assert!(bytes == first, "a render differs");
    }
    assert_eq!(r1.key(&card(TITLE)), r2.key(&card(TITLE)));
    assert_ne!(r1.key(&card(TITLE)), r1.key(&card("Other")));
    let mut s = style();
    s.accent = [0xff, 0xff, 0x00];
    let r3 = Renderer::new(s).expect("renderer");
    assert_ne!(
        r1.key(&card(TITLE)),
        r3.key(&card(TITLE)),
        "the style is in the key"
    );
}

#[test]
fn cyrillic_kazakh_and_arabic_have_glyphs() {
    let r = Renderer::new(style()).expect("renderer");
    let kazakh = "Әділет пен құқық: Қазақстандағы ұйымдардың үндеуі, ғылым, өңір, һәм";
    let russian = "Совместное заявление по случаю Всемирного дня борьбы с торговлей людьми";
    for text in [kazakh, russian] {
        for c in text.chars().filter(|c| !c.is_whitespace()) {
            assert!(r.bold.glyph_index(c).is_some(), "no bold glyph for {c}");
            assert!(r.regular.glyph_index(c).is_some(), "no glyph for {c}");
        }
    }
    let arabic = "بيان مشترك بمناسبة اليوم العالمي لمكافحة الاتجار بالأشخاص";
    for c in arabic.chars().filter(|c| !c.is_whitespace()) {
        assert!(r.naskh.glyph_index(c).is_some(), "no Naskh glyph for {c}");
    }
    for (lang, title, rtl) in [
        ("kk", kazakh, false),
        ("ru", russian, false),
        ("ar", arabic, true),
    ] {
        let c = Card {
            lang,
            title,
            rtl,
            ..card("")
        };
        let with = decode(&r.render(&c).expect("render")).2;
        let without = decode(
            &r.render(&Card {
                title: "",
                ..c.clone()
            })
            .expect("render"),
        )
        .2;
        let n = differing(&with, &without, TITLE_TOP as u32, TITLE_BOTTOM as u32);
        assert!(n > 5_000, "{lang}: only {n} pixels of title");
    }
    // Right to left: the title ends at the right margin, so its ink is on the right.
    let c = Card {
        lang: "ar",
        title: "بيان",
        rtl: true,
        ..card("")
    };
    let px = decode(&r.render(&c).expect("render")).2;
    let row = WIDTH as usize * 3;
    let ink_x: Vec<usize> = (TITLE_TOP as usize..TITLE_BOTTOM as usize)
        .flat_map(|y| {
            px[y * row..(y + 1) * row]
                .chunks_exact(3)
                .enumerate()
                .filter(|(_, p)| *p == [0xff, 0xff, 0xff])
                .map(|(x, _)| x)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!ink_x.is_empty());
    assert!(
        ink_x.iter().all(|x| *x > WIDTH as usize / 2),
        "rtl title is right-aligned"
    );
}

#[test]
fn long_titles_fit_and_markup_is_text() {
    let r = Renderer::new(style()).expect("renderer");
    let long = "A very long title ".repeat(30);
    let svg = r.svg(&card(&long));
    assert!(svg.contains('…'), "a title too long is cut");
    let lines = svg.matches("font-weight=\"700\"").count();
    assert!((1..=6).contains(&lines), "{lines} lines");
    let evil = r.svg(&card("</text><script>alert(1)</script> & \"q\""));
    assert!(!evil.contains("<script"), "{evil}");
    r.render(&card("</text><script>alert(1)</script> & \"q\""))
        .expect("renders");
    let word = "Наименованиеорганизацииобъединённыхнаций".repeat(3);
    r.render(&card(&word))
        .expect("an unbreakable word is cut, not overflowing");
}

#[test]
fn logos_are_drawn_and_bad_logos_are_errors() {
    let svg_logo = br##"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10" fill="#ff0000"/></svg>"##;
    let mut s = style();
    s.logo = Some(Logo::Svg(svg_logo.to_vec()));
    let r = Renderer::new(s).expect("renderer");
    let px = decode(&r.render(&card(TITLE)).expect("render")).2;
    let red = px.chunks_exact(3).filter(|p| *p == [0xff, 0, 0]).count();
    assert!(red > 100 * 100, "{red} logo pixels");

    // The same logo as PNG.
    let mut pm = tiny_skia::Pixmap::new(4, 4).expect("pixmap");
    pm.fill(tiny_skia::Color::from_rgba8(0, 0xff, 0, 0xff));
    let mut s = style();
    s.logo = Some(Logo::Png(pm.encode_png().expect("png")));
    let r = Renderer::new(s).expect("renderer");
    let px = decode(&r.render(&card(TITLE)).expect("render")).2;
    let green = px
        .chunks_exact(3)
        .filter(|p| p[1] > 0xf0 && p[0] < 0x10)
        .count();
    assert!(green > 100 * 100, "{green} logo pixels");

    let mut s = style();
    s.logo = Some(Logo::Png(b"not a png".to_vec()));
    let e = Renderer::new(s).expect_err("bad logo");
    assert!(e.to_string().contains("PNG"), "{e}");
    let mut s = style();
    s.logo = Some(Logo::Svg(b"<svg".to_vec()));
    assert!(Renderer::new(s).is_err());
}
