//! The laid-out pages as a PDF file: content streams with marked content, subset
//! CID fonts with ToUnicode maps, the structure tree, outline, links, and the
//! PDF/A-2b metadata (XMP, sRGB output intent). Built on lopdf's object model;
//! nothing here reads the clock or draws randomness, so equal input gives equal bytes.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;

use chrono::{DateTime, FixedOffset};
use lopdf::{Dictionary, Document, Object, ObjectId, Stream, StringFormat, dictionary};

use crate::PdfError;
use crate::fonts::{Embedded, Fonts};
use crate::layout::{Job, Kid, Laid, Placed, Target};

const SRGB: &[u8] = include_bytes!("../icc/sRGB.icc");

/// Numbers as PDF wants them: short, with no exponent.
fn num(out: &mut String, v: f32) {
    // Thousandths as an integer, written with itoa: `format!` per number was a tenth
    // of a render (a page holds thousands of them).
    let milli = (f64::from(v) * 1000.0).round();
    if !milli.is_finite() || milli.abs() >= 1e15 {
        out.push('0');
        return;
    }
    let milli = milli as i64;
    if milli < 0 {
        out.push('-');
    }
    let (int, mut frac) = (milli.unsigned_abs() / 1000, milli.unsigned_abs() % 1000);
    let mut buf = itoa::Buffer::new();
    out.push_str(buf.format(int));
    if frac != 0 {
        out.push('.');
        let mut digits = 3;
        while frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        let frac = buf.format(frac);
        for _ in frac.len()..digits {
            out.push('0');
        }
        out.push_str(frac);
    }
}

/// A two-byte glyph id in a TJ array: glyphs without a position adjustment
/// between them share one hex string (`<00100011>`), a third of the bytes of
/// one string each.
fn push_cid(out: &mut String, open: &mut bool, cid: u16) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if !*open {
        out.push('<');
        *open = true;
    }
    for shift in [12, 8, 4, 0] {
        out.push(HEX[usize::from((cid >> shift) & 0xf)] as char);
    }
}

/// End the hex string `push_cid` left open, if any.
fn close_cids(out: &mut String, open: &mut bool) {
    if *open {
        out.push('>');
        *open = false;
    }
}

fn n(v: f32) -> String {
    let mut s = String::new();
    num(&mut s, v);
    s
}

/// A PDF text string: literal when plain ASCII, else UTF-16BE with a byte order mark.
pub(crate) fn text_string(s: &str) -> Object {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        Object::String(s.as_bytes().to_vec(), StringFormat::Literal)
    } else {
        let mut bytes = vec![0xfe, 0xff];
        for unit in s.encode_utf16() {
            bytes.extend_from_slice(&unit.to_be_bytes());
        }
        Object::String(bytes, StringFormat::Hexadecimal)
    }
}

fn pdf_date(d: &DateTime<FixedOffset>) -> Object {
    let off = d.offset().local_minus_utc();
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.abs();
    let s = format!(
        "D:{}{sign}{:02}'{:02}'",
        d.format("%Y%m%d%H%M%S"),
        off / 3600,
        off % 3600 / 60
    );
    Object::String(s.into_bytes(), StringFormat::Literal)
}

fn xml_escape(s: &str) -> String {
    herald_content::html::escape(s)
}

fn name(s: &str) -> Object {
    Object::Name(s.as_bytes().to_vec())
}

thread_local! {
    /// One compressor per thread, reset between streams: a new one allocates and
    /// zeroes some 300 KB of tables, which cost more than compressing a page.
    static DEFLATE: std::cell::RefCell<flate2::Compress> =
        std::cell::RefCell::new(flate2::Compress::new(flate2::Compression::fast(), true));
}

/// `data` as a zlib stream (FlateDecode).
fn deflate(data: &[u8]) -> Result<Vec<u8>, PdfError> {
    DEFLATE.with_borrow_mut(|z| {
        z.reset();
        // zlib's bound for stored blocks: the output never has to grow (font
        // programs barely compress, and each growth copied them).
        let mut out = Vec::with_capacity(data.len() + data.len() / 1000 + 64);
        loop {
            let read = usize::try_from(z.total_in()).unwrap_or(data.len());
            let status = z
                .compress_vec(&data[read..], &mut out, flate2::FlushCompress::Finish)
                .map_err(|e| PdfError::Pdf(std::io::Error::other(e).into()))?;
            if status == flate2::Status::StreamEnd {
                return Ok(out);
            }
            out.reserve(out.capacity().max(4096));
        }
    })
}

/// A stream deflated at zlib's fastest level (lopdf's own `compress` uses the
/// slowest, which costs far more time than it saves bytes here).
fn stream(mut dict: Dictionary, content: &[u8]) -> Result<Stream, PdfError> {
    let deflated = deflate(content)?;
    dict.set("Filter", "FlateDecode");
    Ok(Stream::new(dict, deflated))
}

/// The file being written: the header, then each object as soon as it is put, then
/// (in `finish`) whatever `doc` still holds, the cross-reference table and the
/// trailer. lopdf's `Writer::write_object` writes each object's bytes exactly as
/// `Document::save` would; only the order of objects in the file differs.
struct Body {
    buf: Vec<u8>,
    /// Byte offset of each object by number (0: not written).
    offsets: Vec<usize>,
}

impl Body {
    fn new() -> Self {
        let mut buf = Vec::with_capacity(1 << 16);
        buf.extend_from_slice(b"%PDF-1.7\n%\xBB\xAD\xC0\xDE\n");
        Body {
            buf,
            offsets: Vec::new(),
        }
    }

    fn put(&mut self, (id, generation): ObjectId, object: &Object) -> Result<(), PdfError> {
        let at = id as usize;
        if self.offsets.len() <= at {
            self.offsets.resize(at + 1, 0);
        }
        self.offsets[at] = self.buf.len();
        let sep = |yes: bool| if yes { " " } else { "" };
        let _ = write!(
            Io(&mut self.buf),
            "{id} {generation} obj\n{}",
            sep(lopdf::Writer::need_separator(object))
        );
        lopdf::Writer::write_object(&mut self.buf, object).map_err(|e| PdfError::Pdf(e.into()))?;
        let _ = writeln!(
            Io(&mut self.buf),
            "{}\nendobj",
            sep(lopdf::Writer::need_end_separator(object))
        );
        Ok(())
    }

    /// Writes what `doc` holds, then the cross-reference table and trailer.
    fn finish(mut self, doc: Document) -> Result<Vec<u8>, PdfError> {
        let Document {
            objects,
            mut trailer,
            max_id,
            ..
        } = doc;
        for (id, object) in &objects {
            self.put(*id, object)?;
        }
        drop(objects);
        let size = self.offsets.len().max(max_id as usize + 1);
        let xref = self.buf.len();
        let mut out = Io(&mut self.buf);
        let _ = writeln!(out, "xref");
        // Subsections of consecutive written objects; object 0 heads the first.
        let mut id = 0;
        while id < self.offsets.len() {
            let start = id;
            while id < self.offsets.len() && (id == 0 || self.offsets[id] != 0) {
                id += 1;
            }
            let _ = writeln!(out, "{start} {}", id - start);
            for i in start..id {
                match i {
                    0 => {
                        let _ = writeln!(out, "0000000000 65535 f ");
                    }
                    _ => {
                        let _ = writeln!(out, "{:010} 00000 n ", self.offsets[i]);
                    }
                }
            }
            while id < self.offsets.len() && self.offsets[id] == 0 {
                id += 1;
            }
        }
        trailer.set("Size", size as i64);
        let _ = out.0.write_all(b"trailer\n");
        lopdf::Writer::write_object(out.0, &Object::Dictionary(trailer))
            .map_err(|e| PdfError::Pdf(e.into()))?;
        let _ = write!(out, "\nstartxref\n{xref}\n%%EOF");
        Ok(self.buf)
    }
}

/// `fmt::Write` over the byte buffer (writing to a `Vec` cannot fail).
struct Io<'b>(&'b mut Vec<u8>);

impl std::fmt::Write for Io<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Everything the writer needs about the document as a whole.
pub(crate) struct Info<'s> {
    pub title: &'s str,
    pub author: String,
    pub subject: &'s str,
    pub keywords: String,
    pub lang: &'s str,
    pub created: DateTime<FixedOffset>,
    pub modified: DateTime<FixedOffset>,
    /// The file identifier, from the input.
    pub id: [u8; 16],
    /// Sign with this, claiming this signing time (`[pdf.signing]`).
    pub signature: Option<(&'s crate::sign::Signer, DateTime<FixedOffset>)>,
}

struct Fontmap<'e> {
    /// Chain index -> (resource name, embedded font).
    by_font: HashMap<usize, (String, &'e Embedded)>,
}

pub(crate) fn write(
    job: &Job,
    fonts: &Fonts,
    embedded: &[Embedded],
    laid: &mut Laid,
    info: &Info,
) -> Result<Vec<u8>, PdfError> {
    let mut doc = Document::with_version("1.7");
    // Objects of which a statement can have thousands (page contents, structure
    // elements) go into the file as they are made; the rest stays in `doc`.
    let mut body = Body::new();
    let g = job.geometry;
    let catalog_id = doc.new_object_id();
    let pages_id = doc.new_object_id();
    let page_ids: Vec<ObjectId> = laid.pages.iter().map(|_| doc.new_object_id()).collect();

    // Fonts.
    let fontmap = Fontmap {
        by_font: embedded
            .iter()
            .enumerate()
            .map(|(i, e)| (e.font, (format!("F{i}"), e)))
            .collect(),
    };
    let mut font_resources = Dictionary::new();
    for (i, e) in embedded.iter().enumerate() {
        let id = embed_font(&mut doc, fonts, e)?;
        font_resources.set(format!("F{i}"), Object::Reference(id));
    }
    let resources_id = doc.add_object(dictionary! { "Font" => font_resources });

    // Page contents, marked content and link rectangles.
    let mut parent_tree: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut annots: Vec<(usize, usize, [f32; 4])> = Vec::new(); // page, link, rect
    for (p, &page_id) in page_ids.iter().enumerate() {
        let (content, mcids, rects) = content_stream(fonts, &fontmap, laid, p)?;
        parent_tree.push((p, mcids));
        for (link, rect) in rects {
            annots.push((p, link, rect));
        }
        let s = stream(Dictionary::new(), content.as_bytes())?;
        drop(content);
        let content_id = doc.new_object_id();
        body.put(content_id, &Object::Stream(s))?;
        doc.objects.insert(
            page_id,
            Object::Dictionary(dictionary! {
                "Type" => "Page",
                "Parent" => pages_id,
                "MediaBox" => vec![0.into(), 0.into(), Object::Real(g.width), Object::Real(g.height)],
                "Contents" => content_id,
                "Resources" => resources_id,
                "StructParents" => p as i64,
                "Tabs" => "S",
            }),
        );
    }

    // Link annotations, each tied to its Link structure element.
    let mut annot_ids: Vec<ObjectId> = Vec::new();
    let mut page_annots: BTreeMap<usize, Vec<Object>> = BTreeMap::new();
    for (p, link, rect) in annots {
        let info_link = &laid.links[link];
        let action = match &info_link.target {
            Target::Uri(url) => {
                let url = herald_content::html::absolute_url(&job.config.base_url, url);
                Some((
                    "A",
                    Object::Dictionary(dictionary! {
                        "S" => "URI",
                        "URI" => Object::String(url.into_bytes(), StringFormat::Literal),
                    }),
                ))
            }
            Target::Anchor(a) => laid.anchors.get(a).map(|&(page, y)| {
                (
                    "Dest",
                    Object::Array(vec![
                        page_ids[page].into(),
                        name("XYZ"),
                        Object::Null,
                        Object::Real(y),
                        Object::Null,
                    ]),
                )
            }),
        };
        let Some((key, value)) = action else { continue };
        let index = annot_ids.len();
        let mut d = dictionary! {
            "Type" => "Annot",
            "Subtype" => "Link",
            "Rect" => rect.iter().map(|v| Object::Real(*v)).collect::<Vec<_>>(),
            "Border" => vec![0.into(), 0.into(), 0.into()],
            "F" => 4,
            "StructParent" => (laid.pages.len() + index) as i64,
            "P" => page_ids[p],
        };
        d.set(key, value);
        let id = doc.add_object(d);
        annot_ids.push(id);
        laid.tree.push(
            info_link.elem,
            Kid::Annot {
                page: p,
                annot: index,
            },
        );
        page_annots.entry(p).or_default().push(id.into());
    }
    for (p, list) in page_annots {
        if let Ok(Object::Dictionary(d)) = doc.get_object_mut(page_ids[p]) {
            d.set("Annots", list);
        }
    }
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => page_ids.iter().map(|id| Object::Reference(*id)).collect::<Vec<_>>(),
            "Count" => page_ids.len() as i64,
        }),
    );

    // Structure tree.
    let struct_root_id = doc.new_object_id();
    let elem_ids: Vec<Option<ObjectId>> = laid
        .tree
        .elems
        .iter()
        .enumerate()
        .map(|(i, e)| (i == laid.root || !e.kids.is_empty()).then(|| doc.new_object_id()))
        .collect();
    for (i, e) in laid.tree.elems.iter().enumerate() {
        let Some(id) = elem_ids[i] else { continue };
        let parent = match e.parent.and_then(|p| elem_ids[p]) {
            Some(p) => p,
            None => struct_root_id,
        };
        let kids: Vec<Object> = e
            .kids
            .iter()
            .filter_map(|k| match *k {
                Kid::Elem(c) => elem_ids[c].map(Object::Reference),
                Kid::Mcid { page, mcid } => Some(Object::Dictionary(dictionary! {
                    "Type" => "MCR",
                    "Pg" => page_ids[page],
                    "MCID" => i64::from(mcid),
                })),
                Kid::Annot { page, annot } => Some(Object::Dictionary(dictionary! {
                    "Type" => "OBJR",
                    "Obj" => annot_ids[annot],
                    "Pg" => page_ids[page],
                })),
            })
            .collect();
        let mut d = dictionary! {
            "Type" => "StructElem",
            "S" => name(e.tag),
            "P" => parent,
            "K" => kids,
        };
        if i == laid.root {
            d.set("Lang", text_string(info.lang));
        }
        body.put(id, &Object::Dictionary(d))?;
    }
    let mut nums = Vec::new();
    for (p, mcids) in &parent_tree {
        nums.push(Object::Integer(*p as i64));
        nums.push(Object::Array(
            mcids
                .iter()
                .map(|e| elem_ids[*e].map_or(Object::Null, Object::Reference))
                .collect(),
        ));
    }
    for (k, elem) in annot_elems(laid).into_iter().enumerate() {
        nums.push(Object::Integer((laid.pages.len() + k) as i64));
        nums.push(elem_ids[elem].map_or(Object::Null, Object::Reference));
    }
    let parent_tree_id = doc.add_object(dictionary! { "Nums" => nums });
    let mut root_kids = Vec::new();
    if let Some(id) = elem_ids[laid.root] {
        root_kids.push(Object::Reference(id));
    }
    doc.objects.insert(
        struct_root_id,
        Object::Dictionary(dictionary! {
            "Type" => "StructTreeRoot",
            "K" => root_kids,
            "ParentTree" => parent_tree_id,
            "ParentTreeNextKey" => (laid.pages.len() + annot_ids.len()) as i64,
        }),
    );

    // Outline of the headings.
    let outlines_id = outline(&mut doc, laid, &page_ids);

    // PDF/A: XMP metadata and the sRGB output intent.
    let xmp = xmp(info);
    // Left uncompressed, so that archive tools can read the metadata without a filter.
    let metadata_id = doc.add_object(Stream::new(
        dictionary! { "Type" => "Metadata", "Subtype" => "XML" },
        xmp.into_bytes(),
    ));
    // The same profile in every file: deflated once per process.
    static SRGB_DEFLATED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let icc = match SRGB_DEFLATED.get() {
        Some(bytes) => bytes.clone(),
        None => {
            let bytes = deflate(SRGB)?;
            SRGB_DEFLATED.get_or_init(|| bytes).clone()
        }
    };
    let icc = Stream::new(dictionary! { "N" => 3, "Filter" => "FlateDecode" }, icc);
    let icc_id = doc.add_object(icc);
    let intent = dictionary! {
        "Type" => "OutputIntent",
        "S" => "GTS_PDFA1",
        "OutputConditionIdentifier" => text_string("sRGB IEC61966-2.1"),
        "Info" => text_string("sRGB IEC61966-2.1"),
        "DestOutputProfile" => icc_id,
    };
    let mut catalog = dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
        "Lang" => text_string(info.lang),
        "MarkInfo" => dictionary! { "Marked" => true },
        "StructTreeRoot" => struct_root_id,
        "Metadata" => metadata_id,
        "OutputIntents" => vec![Object::Dictionary(intent)],
        "ViewerPreferences" => dictionary! { "DisplayDocTitle" => true },
    };
    if let Some(id) = outlines_id {
        catalog.set("Outlines", id);
        catalog.set("PageMode", "UseOutlines");
    }
    doc.objects.insert(catalog_id, Object::Dictionary(catalog));
    let info_id = doc.add_object(dictionary! {
        "Title" => text_string(info.title),
        "Author" => text_string(&info.author),
        "Subject" => text_string(info.subject),
        "Keywords" => text_string(&info.keywords),
        "Creator" => text_string(CREATOR),
        "Producer" => text_string(PRODUCER),
        "CreationDate" => pdf_date(&info.created),
        "ModDate" => pdf_date(&info.modified),
    });
    let id = Object::String(info.id.to_vec(), StringFormat::Hexadecimal);
    doc.trailer.set("Root", catalog_id);
    doc.trailer.set("Info", info_id);
    doc.trailer.set("ID", vec![id.clone(), id]);
    if let Some((signer, time)) = info.signature {
        signer.prepare(&mut doc, catalog_id, page_ids[0], pdf_date(&time))?;
    }
    let mut out = body.finish(doc)?;
    if let Some((signer, _)) = info.signature {
        signer.finish(&mut out)?;
    }
    Ok(out)
}

const CREATOR: &str = "herald";
const PRODUCER: &str = concat!("herald-pdf ", env!("CARGO_PKG_VERSION"));

/// The Link element each annotation belongs to, in annotation order.
fn annot_elems(laid: &Laid) -> Vec<usize> {
    let mut out: BTreeMap<usize, usize> = BTreeMap::new();
    for (i, e) in laid.tree.elems.iter().enumerate() {
        for k in &e.kids {
            if let Kid::Annot { annot, .. } = k {
                out.insert(*annot, i);
            }
        }
    }
    out.into_values().collect()
}

/// One page's content stream. Returns it, the structure element of each MCID, and
/// the link rectangles.
#[allow(clippy::type_complexity)]
fn content_stream(
    fonts: &Fonts,
    fontmap: &Fontmap,
    laid: &mut Laid,
    page: usize,
) -> Result<(String, Vec<usize>, Vec<(usize, [f32; 4])>), PdfError> {
    let mut out = String::with_capacity(8192);
    let mut mcids: Vec<usize> = Vec::new();
    let mut rects: Vec<(usize, [f32; 4])> = Vec::new();
    let mut open: Option<usize> = None;
    let mut fill: Option<[f32; 3]> = None;
    let items = std::mem::take(&mut laid.pages[page]);
    for item in &items {
        let elem = match item {
            Placed::Text {
                run,
                artifact: false,
                ..
            } => Some(run.style.elem),
            _ => None,
        };
        if open.is_some() && open != elem {
            out.push_str("EMC\n");
            open = None;
        }
        if let (Some(e), None) = (elem, open) {
            let mcid = mcids.len() as u32;
            mcids.push(e);
            laid.tree.push(e, Kid::Mcid { page, mcid });
            let _ = writeln!(out, "/{} <</MCID {mcid}>> BDC", laid.tree.elems[e].tag);
            open = Some(e);
        }
        match item {
            Placed::Text {
                x,
                y,
                run,
                artifact,
            } => {
                if *artifact {
                    out.push_str("/Artifact <</Type /Pagination>> BDC\n");
                }
                if fill != Some(run.style.color) {
                    let [r, g, b] = run.style.color;
                    let _ = writeln!(out, "{} {} {} rg", n(r), n(g), n(b));
                    fill = Some(run.style.color);
                }
                let Some((res, emb)) = fontmap.by_font.get(&run.font) else {
                    return Err(PdfError::Internal("a run's font was not embedded".into()));
                };
                let size = run.style.size;
                let _ = write!(out, "BT /{res} ");
                num(&mut out, size);
                out.push_str(" Tf 1 0 0 1 ");
                num(&mut out, *x);
                out.push(' ');
                num(&mut out, *y);
                out.push_str(" Tm ");
                let mut rise = 0.0f32;
                if run.style.rise != 0.0 {
                    rise = run.style.rise;
                    num(&mut out, rise);
                    out.push_str(" Ts ");
                }
                out.push('[');
                let (mut pen, mut cur) = (*x, *x);
                let mut open = false;
                for gl in run.glyphs.iter() {
                    let want_rise = run.style.rise + gl.dy;
                    if (want_rise - rise).abs() > 0.001 {
                        close_cids(&mut out, &mut open);
                        out.push_str("] TJ ");
                        num(&mut out, want_rise);
                        out.push_str(" Ts [");
                        rise = want_rise;
                    }
                    let target = pen + gl.dx;
                    if (cur - target).abs() > 0.001 {
                        close_cids(&mut out, &mut open);
                        num(&mut out, (cur - target) * 1000.0 / size);
                    }
                    let cid = emb.remap.get(gl.gid).unwrap_or(0);
                    push_cid(&mut out, &mut open, cid);
                    cur = target + fonts.advance_milli(run.font, gl.gid) * size / 1000.0;
                    pen += gl.advance;
                }
                close_cids(&mut out, &mut open);
                out.push_str("] TJ");
                if rise != 0.0 {
                    out.push_str(" 0 Ts");
                }
                out.push_str(" ET\n");
                if *artifact {
                    out.push_str("EMC\n");
                }
                if let Some(link) = run.style.link {
                    let (asc, desc) = fonts.metrics[run.font];
                    let rect = [*x, y + desc * size, x + run.width, y + asc * size];
                    match rects.last_mut() {
                        Some((l, r))
                            if *l == link
                                && (r[1] - rect[1]).abs() < 0.5
                                && rect[0] - r[2] < size =>
                        {
                            r[0] = r[0].min(rect[0]);
                            r[2] = r[2].max(rect[2]);
                            r[3] = r[3].max(rect[3]);
                            r[1] = r[1].min(rect[1]);
                        }
                        _ => rects.push((link, rect)),
                    }
                }
            }
            Placed::Line {
                x0,
                y0,
                x1,
                y1,
                width,
                color,
            } => {
                let [r, g, b] = *color;
                let _ = writeln!(
                    out,
                    "/Artifact BMC q {} {} {} RG {} w {} {} m {} {} l S Q EMC",
                    n(r),
                    n(g),
                    n(b),
                    n(*width),
                    n(*x0),
                    n(*y0),
                    n(*x1),
                    n(*y1)
                );
            }
        }
    }
    if open.is_some() {
        out.push_str("EMC\n");
    }
    // The page's items are not needed again: freed page by page, so a long
    // statement never holds its laid-out pages and their contents at once.
    drop(items);
    Ok((out, mcids, rects))
}

/// A subset font as a Type0 font with an Identity-H encoding and a ToUnicode map.
fn embed_font(doc: &mut Document, fonts: &Fonts, e: &Embedded) -> Result<ObjectId, PdfError> {
    let face = &fonts.faces[e.font];
    let upem = face.units_per_em() as f32;
    let scale = |v: i16| Object::Integer((f32::from(v) * 1000.0 / upem).round() as i64);
    let cff = face.tables().cff.is_some();
    let program = if cff {
        stream(dictionary! { "Subtype" => "OpenType" }, &e.program)?
    } else {
        stream(
            dictionary! { "Length1" => e.program.len() as i64 },
            &e.program,
        )?
    };
    let program_id = doc.add_object(program);
    let bbox = face.global_bounding_box();
    let italic = face.is_italic();
    let descriptor = dictionary! {
        "Type" => "FontDescriptor",
        "FontName" => name(&e.base_name),
        "Flags" => 4 | if italic { 64 } else { 0 },
        "FontBBox" => vec![scale(bbox.x_min), scale(bbox.y_min), scale(bbox.x_max), scale(bbox.y_max)],
        "ItalicAngle" => Object::Real(face.italic_angle()),
        "Ascent" => scale(face.ascender()),
        "Descent" => scale(face.descender()),
        "CapHeight" => scale(face.capital_height().unwrap_or(face.ascender())),
        "StemV" => if face.is_bold() { 120 } else { 80 },
        if cff { "FontFile3" } else { "FontFile2" } => program_id,
    };
    let descriptor_id = doc.add_object(descriptor);
    let widths: Vec<Object> = e
        .remap
        .remapped_gids()
        .map(|old| Object::Integer(fonts.advance_milli(e.font, old).round() as i64))
        .collect();
    let mut cid = dictionary! {
        "Type" => "Font",
        "Subtype" => if cff { "CIDFontType0" } else { "CIDFontType2" },
        "BaseFont" => name(&e.base_name),
        "CIDSystemInfo" => dictionary! {
            "Registry" => Object::string_literal("Adobe"),
            "Ordering" => Object::string_literal("Identity"),
            "Supplement" => 0,
        },
        "FontDescriptor" => descriptor_id,
        "W" => vec![Object::Integer(0), Object::Array(widths)],
    };
    if !cff {
        cid.set("CIDToGIDMap", "Identity");
    }
    let cid_id = doc.add_object(cid);
    let cmap = to_unicode(fonts, e);
    let cmap_id = doc.add_object(stream(Dictionary::new(), cmap.as_bytes())?);
    Ok(doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type0",
        "BaseFont" => name(&e.base_name),
        "Encoding" => "Identity-H",
        "DescendantFonts" => vec![Object::Reference(cid_id)],
        "ToUnicode" => cmap_id,
    }))
}

fn to_unicode(fonts: &Fonts, e: &Embedded) -> String {
    let mut entries: Vec<(u16, &str)> = fonts.used[e.font]
        .iter()
        .filter(|(_, t)| !t.is_empty())
        .filter_map(|(old, t)| e.remap.get(*old).map(|new| (new, t.as_str())))
        .collect();
    entries.sort_unstable();
    let mut out = String::from(
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
         /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
         /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
         1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
    );
    for chunk in entries.chunks(100) {
        let _ = writeln!(out, "{} beginbfchar", chunk.len());
        for (cid, text) in chunk {
            let _ = write!(out, "<{cid:04X}> <");
            for unit in text.encode_utf16() {
                let _ = write!(out, "{unit:04X}");
            }
            out.push_str(">\n");
        }
        out.push_str("endbfchar\n");
    }
    out.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
    out
}

/// The outline (bookmarks) of the headings, nested by level.
fn outline(doc: &mut Document, laid: &Laid, page_ids: &[ObjectId]) -> Option<ObjectId> {
    let entries = &laid.outline;
    if entries.is_empty() {
        return None;
    }
    let root = doc.new_object_id();
    let ids: Vec<ObjectId> = entries.iter().map(|_| doc.new_object_id()).collect();
    // Parent of each entry: the nearest earlier entry of a smaller level.
    let mut parent: Vec<Option<usize>> = Vec::with_capacity(entries.len());
    let mut stack: Vec<usize> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        while stack.last().is_some_and(|&s| entries[s].level >= e.level) {
            stack.pop();
        }
        parent.push(stack.last().copied());
        stack.push(i);
    }
    let kids = |p: Option<usize>| -> Vec<usize> {
        (0..entries.len()).filter(|&i| parent[i] == p).collect()
    };
    let descendants = |i: usize| -> i64 {
        let mut count = 0;
        let mut j = i + 1;
        while j < entries.len() && entries[j].level > entries[i].level {
            count += 1;
            j += 1;
        }
        count
    };
    for (i, e) in entries.iter().enumerate() {
        let siblings = kids(parent[i]);
        let pos = siblings.iter().position(|&s| s == i).unwrap_or(0);
        let mut d = dictionary! {
            "Title" => text_string(&e.title),
            "Parent" => parent[i].map_or(root, |p| ids[p]),
            "Dest" => vec![page_ids[e.page].into(), name("XYZ"), Object::Null, Object::Real(e.y), Object::Null],
        };
        if pos > 0 {
            d.set("Prev", ids[siblings[pos - 1]]);
        }
        if let Some(&next) = siblings.get(pos + 1) {
            d.set("Next", ids[next]);
        }
        let own = kids(Some(i));
        if let (Some(&f), Some(&l)) = (own.first(), own.last()) {
            d.set("First", ids[f]);
            d.set("Last", ids[l]);
            d.set("Count", descendants(i));
        }
        doc.objects.insert(ids[i], Object::Dictionary(d));
    }
    let top = kids(None);
    let mut d = dictionary! { "Type" => "Outlines", "Count" => entries.len() as i64 };
    if let (Some(&f), Some(&l)) = (top.first(), top.last()) {
        d.set("First", ids[f]);
        d.set("Last", ids[l]);
    }
    doc.objects.insert(root, Object::Dictionary(d));
    Some(root)
}

fn xmp_date(d: &DateTime<FixedOffset>) -> String {
    d.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// The XMP packet: the same facts as the Info dictionary, and the PDF/A-2b claim.
fn xmp(info: &Info) -> String {
    format!(
        r#"<?xpacket begin="{bom}" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about=""
 xmlns:dc="http://purl.org/dc/elements/1.1/"
 xmlns:xmp="http://ns.adobe.com/xap/1.0/"
 xmlns:pdf="http://ns.adobe.com/pdf/1.3/"
 xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/">
<dc:format>application/pdf</dc:format>
<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{title}</rdf:li></rdf:Alt></dc:title>
<dc:creator><rdf:Seq><rdf:li>{author}</rdf:li></rdf:Seq></dc:creator>
<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{subject}</rdf:li></rdf:Alt></dc:description>
<dc:language><rdf:Bag><rdf:li>{lang}</rdf:li></rdf:Bag></dc:language>
<pdf:Keywords>{keywords}</pdf:Keywords>
<pdf:Producer>{producer}</pdf:Producer>
<xmp:CreatorTool>{creator}</xmp:CreatorTool>
<xmp:CreateDate>{created}</xmp:CreateDate>
<xmp:ModifyDate>{modified}</xmp:ModifyDate>
<xmp:MetadataDate>{modified}</xmp:MetadataDate>
<pdfaid:part>2</pdfaid:part>
<pdfaid:conformance>B</pdfaid:conformance>
</rdf:Description>
</rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"#,
        bom = '\u{feff}',
        title = xml_escape(info.title),
        author = xml_escape(&info.author),
        subject = xml_escape(info.subject),
        lang = xml_escape(info.lang),
        keywords = xml_escape(&info.keywords),
        producer = xml_escape(PRODUCER),
        creator = xml_escape(CREATOR),
        created = xmp_date(&info.created),
        modified = xmp_date(&info.modified),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `format!` version `num` replaced.
    fn by_format(v: f32) -> String {
        let v = if v.abs() < 0.0005 { 0.0 } else { v };
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        (if s == "-0" { "0" } else { s }).to_string()
    }

    #[test]
    fn numbers_are_written_as_format_would() {
        let mut differ = 0;
        for i in -200_000..200_000 {
            let v = i as f32 * 0.0137;
            let mut out = String::new();
            num(&mut out, v);
            if out != by_format(v) {
                // Only a tie at the third decimal may round the other way.
                let (a, b): (f64, f64) = (
                    out.parse().expect("number"),
                    by_format(v).parse().expect("number"),
                );
                assert!((a - b).abs() < 0.0011, "{v}: {out} vs {}", by_format(v));
                differ += 1;
            }
        }
        assert!(differ < 400, "{differ} differ");
        for (v, s) in [
            (0.0, "0"),
            (-0.0001, "0"),
            (595.276, "595.276"),
            (-12.5, "-12.5"),
            (10.0, "10"),
            (0.05, "0.05"),
            (-0.004, "-0.004"),
        ] {
            let mut out = String::new();
            num(&mut out, v);
            assert_eq!(out, s);
        }
    }

    #[test]
    fn glyphs_without_adjustment_share_one_hex_string() {
        let (mut out, mut open) = (String::new(), false);
        push_cid(&mut out, &mut open, 0x0a3f);
        push_cid(&mut out, &mut open, 0x0001);
        close_cids(&mut out, &mut open);
        out.push_str("-20");
        close_cids(&mut out, &mut open);
        push_cid(&mut out, &mut open, 0xffff);
        close_cids(&mut out, &mut open);
        assert_eq!(out, "<0A3F0001>-20<FFFF>");
    }

    #[test]
    fn numbers_are_short_and_plain() {
        assert_eq!(n(1.0), "1");
        assert_eq!(n(-0.0001), "0");
        assert_eq!(n(12.3456), "12.346");
        assert_eq!(n(-3.5), "-3.5");
    }

    #[test]
    fn text_strings() {
        assert_eq!(
            text_string("Plain"),
            Object::String(b"Plain".to_vec(), StringFormat::Literal)
        );
        let Object::String(bytes, StringFormat::Hexadecimal) = text_string("Ә") else {
            panic!("not hex");
        };
        assert_eq!(bytes, vec![0xfe, 0xff, 0x04, 0xd8]);
    }

    #[test]
    fn dates_keep_their_offset() {
        let d = DateTime::parse_from_rfc3339("2014-07-30T09:00:00+06:00").expect("date");
        assert_eq!(
            pdf_date(&d),
            Object::String(b"D:20140730090000+06'00'".to_vec(), StringFormat::Literal)
        );
        assert_eq!(xmp_date(&d), "2014-07-30T09:00:00+06:00");
    }
}
