//! `cargo xtask corpus N DIR`: a deterministic corpus of realistic statements for
//! benchmarks. Same N, same bytes.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

const TOPICS: [&str; 12] = [
    "migration",
    "trafficking",
    "health",
    "labour",
    "education",
    "climate",
    "gender-equality",
    "children",
    "water",
    "human-rights",
    "data",
    "disaster-risk",
];

const EN: &[&str] = &[
    "the agencies",
    "call on",
    "governments",
    "partners",
    "migrant workers",
    "communities",
    "to strengthen",
    "protection",
    "across the region",
    "with civil society",
    "in every province",
    "new evidence shows",
    "the number of",
    "families",
    "has grown",
    "since last year",
    "we welcome",
    "the commitment",
    "of the ministry",
    "to publish",
    "reliable data",
    "on",
    "access to",
    "services",
    "for women and girls",
    "in rural areas",
    "and remain ready",
    "to support",
    "national plans",
    "that leave no one behind",
    "funding",
    "is needed",
];
const RU: &[&str] = &[
    "агентства",
    "призывают",
    "правительства",
    "партнёров",
    "трудовых мигрантов",
    "общины",
    "укреплять",
    "защиту",
    "в регионе",
    "вместе с гражданским обществом",
    "в каждой области",
    "новые данные показывают",
    "число",
    "семей",
    "выросло",
    "с прошлого года",
    "мы приветствуем",
    "обязательство",
    "министерства",
    "публиковать",
    "надёжные данные",
    "о",
    "доступ к",
    "услугам",
    "для женщин и девочек",
    "в сельской местности",
    "и готовы",
    "поддержать",
];
const KK: &[&str] = &[
    "агенттіктер",
    "шақырады",
    "үкіметтерді",
    "серіктестерді",
    "еңбек мигранттарын",
    "қауымдастықтар",
    "қорғауды",
    "күшейтуге",
    "өңірде",
    "азаматтық қоғаммен бірге",
    "әр облыста",
    "жаңа деректер",
    "көрсетеді",
    "отбасылар",
    "саны",
    "өсті",
    "өткен жылдан бері",
    "біз құптаймыз",
    "міндеттемені",
    "министрліктің",
    "сенімді",
    "деректерді",
    "жариялауға",
    "қызметтерге",
    "қолжетімділік",
    "әйелдер мен қыздар үшін",
    "ауылдық жерлерде",
    "һәм",
    "қолдауға",
    "дайынбыз",
    "ұлттық",
];

/// A sentence of at least `len` words. Vocabulary entries may be phrases ("for women
/// and girls"): count the words they hold, or a "700-word" statement has 1,600.
fn sentence(rng: &mut fastrand::Rng, words: &[&str], len: usize) -> String {
    let mut s = String::new();
    let mut n = 0;
    while n < len {
        let w = words[rng.usize(..words.len())];
        n += w.split_whitespace().count();
        if s.is_empty() {
            let mut c = w.chars();
            if let Some(f) = c.next() {
                s.extend(f.to_uppercase());
                s.push_str(c.as_str());
            }
        } else {
            s.push(' ');
            s.push_str(w);
        }
    }
    s.push('.');
    s
}

fn paragraph(rng: &mut fastrand::Rng, words: &[&str], target: usize) -> (String, usize) {
    let mut p = String::new();
    let mut n = 0;
    while n < target {
        let len = rng.usize(8..18);
        if !p.is_empty() {
            p.push(' ');
        }
        p.push_str(&sentence(rng, words, len));
        n += len;
    }
    (p, n)
}

fn body(rng: &mut fastrand::Rng, words: &[&str], heading: &str) -> String {
    let mut b = String::new();
    let mut total = 0;
    let mut section = 1;
    while total < 700 {
        if total > 0 && rng.u8(..4) == 0 {
            let _ = writeln!(b, "## {heading} {section}\n");
            section += 1;
        }
        if rng.u8(..5) == 0 {
            for _ in 0..rng.usize(3..6) {
                let (item, n) = paragraph(rng, words, 10);
                let _ = writeln!(b, "- {item}");
                total += n;
            }
            b.push('\n');
        } else {
            let target = rng.usize(60..110);
            let (p, n) = paragraph(rng, words, target);
            let _ = writeln!(b, "{p}\n");
            total += n;
        }
    }
    b
}

/// Write `n` statements (and a herald.toml) below `dir/content/`.
pub fn generate(n: usize, dir: &Path) -> std::io::Result<usize> {
    let content = dir.join("content");
    let statements = content.join("statements");
    if statements.exists() {
        fs::remove_dir_all(&statements)?;
    }
    fs::create_dir_all(&statements)?;
    fs::write(
        content.join("herald.toml"),
        "title = \"Generated statements\"\nbase_url = \"https://bench.example.org/\"\n\
         languages = [\"en\", \"ru\", \"kk\"]\ndefault_language = \"en\"\ntime_zone = \"Asia/Almaty\"\n\n\
         [organization]\nname = \"Benchmark Country Office\"\n",
    )?;
    let mut rng = fastrand::Rng::with_seed(0x6865_7261_6c64);
    let mut files = 0;
    for i in 0..n {
        // Twenty years, 2006-2025, spread evenly with jitter.
        let day = (i * 7300 / n.max(1)) as i64 + rng.i64(0..3);
        let date = chrono::NaiveDate::from_ymd_opt(2006, 1, 1)
            .and_then(|d| d.checked_add_days(chrono::Days::new(day as u64)))
            .unwrap_or_default();
        let year = date.format("%Y").to_string();
        let t1 = TOPICS[rng.usize(..TOPICS.len())];
        let t2 = TOPICS[rng.usize(..TOPICS.len())];
        let topics = if t1 == t2 {
            format!("[\"{t1}\"]")
        } else {
            format!("[\"{t1}\", \"{t2}\"]")
        };
        let slug = format!("statement-{i:05}-{t1}");
        let dir = statements.join(&year);
        fs::create_dir_all(&dir)?;
        let variants: &[(&str, &[&str], &str, &str)] = &[
            ("en", EN, "Statement on", "Section"),
            ("ru", RU, "Заявление о", "Раздел"),
            ("kk", KK, "Мәлімдеме:", "Бөлім"),
        ];
        for (k, (lang, words, prefix, heading)) in variants.iter().enumerate() {
            // Every statement in English, one in five in Russian, one in ten in Kazakh.
            if (k == 1 && i % 5 != 0) || (k == 2 && i % 10 != 0) {
                continue;
            }
            let title = format!("{prefix} {} ({})", t1.replace('-', " "), i + 1);
            let summary = sentence(&mut rng, words, 20);
            let text = body(&mut rng, words, heading);
            let file = format!(
                "+++\ntitle = \"{title}\"\ndate = {}T10:00:00+06:00\nsummary = \"{summary}\"\n\
                 issuers = [\"Benchmark Country Office\"]\nplace = \"Astana\"\ntopics = {topics}\n+++\n{text}",
                date.format("%Y-%m-%d")
            );
            fs::write(dir.join(format!("{slug}.{lang}.md")), file)?;
            files += 1;
        }
    }
    Ok(files)
}
