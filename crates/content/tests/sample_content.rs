//! The sample content shipped in `content/` is valid and complete.

use std::path::Path;

#[test]
fn sample_content_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let corpus = match herald_content::load(&root) {
        Ok(c) => c,
        Err(e) => panic!("sample content invalid:\n{e}"),
    };
    assert_eq!(corpus.statements.len(), 6);
    let langs: Vec<&str> = corpus
        .translations("2014/world-day-against-trafficking")
        .map(|s| s.lang.as_str())
        .collect();
    assert_eq!(langs, ["en", "ru", "kk"]);
    let now = herald_content::statement::instant("2026-11-28T00:00:00Z").expect("date");
    assert_eq!(corpus.due(now).len(), 5);
    assert_eq!(
        corpus.embargoed(now)[0].id,
        "2027/world-day-against-trafficking-2027"
    );
    let figures = corpus
        .get("2016/labour-migration-in-figures", "en")
        .expect("present");
    let doc = figures.document();
    assert!(
        doc.blocks
            .iter()
            .any(|b| matches!(b, herald_content::Block::Table { .. }))
    );
    assert_eq!(doc.footnotes.len(), 1);
}
