//! Render every statement of a project to PDF files: `cargo run -p herald-pdf
//! --example render -- <project root> <out dir>`. For looking at the output.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let out = PathBuf::from(args.next().unwrap_or_else(|| "target/pdf".into()));
    let corpus = herald_content::load(&root)?;
    let settings = herald_pdf::PdfSettings::from_config(&corpus.config)?;
    let renderer = herald_pdf::Renderer::new(&corpus.config, &settings)?;
    std::fs::create_dir_all(&out)?;
    for s in &corpus.statements {
        let bytes = renderer.render(&corpus.config, s)?;
        let path = out.join(format!("{}.pdf", s.file_stem()));
        std::fs::write(&path, bytes)?;
        println!("{}", path.display());
    }
    Ok(())
}
