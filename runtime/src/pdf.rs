//! A record as a PDF: its title, fields, tables of child rows, the serial number as a
//! watermark on every page, and (once signed) the signature block. Text is shaped and set in
//! the font given, which must cover Chinese (a CJK font such as WenQuanYi Micro Hei).

use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect, Transform};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::{Font, TextDirection};
use krilla::Document;

/// What goes on the pages.
#[derive(Debug, Clone, Default)]
pub struct Sheet {
    /// The heading (`报价单 / Quotation`).
    pub title: String,
    /// The serial number, also the watermark (`QT-202611-0001`).
    pub serial: String,
    /// Label and value pairs, in order.
    pub fields: Vec<(String, String)>,
    /// Tables: a caption, column labels, rows.
    pub tables: Vec<(String, Vec<String>, Vec<Vec<String>>)>,
    /// The signature block, once signed: label and value pairs.
    pub signature: Vec<(String, String)>,
    /// Who sells: label and value pairs (name, address, phone), printed before the seal area.
    pub seller: Vec<(String, String)>,
    /// Clauses printed in full: title and text.
    pub clauses: Vec<(String, String)>,
    /// Boxes for the seller's and the customer's seals (a document to send).
    pub seals: bool,
}

/// Why no PDF could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdfError {
    /// The font could not be read.
    #[error("the font cannot be read (give a TrueType/OpenType CJK font, e.g. wqy-microhei.ttc)")]
    Font,
    /// The PDF library refused.
    #[error("the PDF could not be written: {0}")]
    Write(String),
}

const WIDTH: f32 = 595.0;
const HEIGHT: f32 = 842.0;
const MARGIN: f32 = 50.0;

struct Pages {
    document: Document,
    font: Font,
    serial: String,
    lines: Vec<Vec<(f32, f32, String)>>,
    /// Rectangles to stroke, per page: x, y, width, height.
    boxes: Vec<Vec<(f32, f32, f32, f32)>>,
    y: f32,
}

impl Pages {
    fn line(&mut self, x: f32, size: f32, text: &str) {
        if self.y + size > HEIGHT - MARGIN || self.lines.is_empty() {
            self.lines.push(Vec::new());
            self.y = MARGIN;
        }
        if let Some(page) = self.lines.last_mut() {
            page.push((x, self.y + size, format!("{size}\u{0}{text}")));
        }
        self.y += size * 1.6;
    }

    fn gap(&mut self, h: f32) {
        self.y += h;
    }

    /// A row of labelled boxes across the page (the seal area), `height` tall.
    fn boxes(&mut self, labels: &[&str], height: f32) {
        if self.y + height > HEIGHT - MARGIN || self.lines.is_empty() {
            self.lines.push(Vec::new());
            self.y = MARGIN;
        }
        while self.boxes.len() < self.lines.len() {
            self.boxes.push(Vec::new());
        }
        let gap = 20.0;
        let width = (WIDTH - 2.0 * MARGIN - gap * (labels.len().max(1) - 1) as f32) / labels.len().max(1) as f32;
        for (i, label) in labels.iter().enumerate() {
            let x = MARGIN + i as f32 * (width + gap);
            if let (Some(page), Some(rects)) = (self.lines.last_mut(), self.boxes.last_mut()) {
                page.push((x + 8.0, self.y + 18.0, format!("10\u{0}{label}")));
                page.push((x + 8.0, self.y + height - 10.0, "9\u{0}日期 / Date：".to_string()));
                rects.push((x, self.y, width, height));
            }
        }
        self.y += height + 12.0;
    }

    fn finish(mut self) -> Result<Vec<u8>, PdfError> {
        let settings = PageSettings::from_wh(WIDTH, HEIGHT).ok_or_else(|| PdfError::Write("page size".into()))?;
        let mut boxes = std::mem::take(&mut self.boxes).into_iter();
        for page_lines in std::mem::take(&mut self.lines) {
            let mut page = self.document.start_page_with(settings.clone());
            let mut surface = page.surface();
            // The watermark: the serial number, large, light, across the page.
            surface.push_transform(&Transform::from_rotate_at(-35.0, WIDTH / 2.0, HEIGHT / 2.0));
            surface.set_fill(Some(Fill {
                paint: rgb::Color::new(200, 200, 200).into(),
                opacity: NormalizedF32::new(0.5).unwrap_or(NormalizedF32::ONE),
                rule: Default::default(),
            }));
            let mark = self.serial.chars().count() as f32 * 30.0 * 0.6;
            surface.draw_text(
                Point::from_xy(WIDTH / 2.0 - mark / 2.0, HEIGHT / 2.0),
                self.font.clone(),
                54.0,
                &self.serial,
                false,
                TextDirection::Auto,
            );
            surface.pop();
            // The seal area's boxes, stroked in grey.
            let rects = boxes.next().unwrap_or_default();
            if !rects.is_empty() {
                let mut path = PathBuilder::new();
                for (x, y, w, h) in rects {
                    if let Some(rect) = Rect::from_xywh(x, y, w, h) {
                        path.push_rect(rect);
                    }
                }
                if let Some(path) = path.finish() {
                    surface.set_fill(None);
                    surface.set_stroke(Some(Stroke {
                        paint: rgb::Color::new(120, 120, 120).into(),
                        width: 0.8,
                        ..Default::default()
                    }));
                    surface.draw_path(&path);
                    surface.set_stroke(None);
                }
            }
            surface.set_fill(Some(Fill::default()));
            for (x, y, packed) in page_lines {
                let (size, text) = packed.split_once('\u{0}').unwrap_or(("10", &packed));
                let size: f32 = size.parse().unwrap_or(10.0);
                surface.draw_text(Point::from_xy(x, y), self.font.clone(), size, text, false, TextDirection::Auto);
            }
            surface.finish();
            page.finish();
        }
        self.document.finish().map_err(|e| PdfError::Write(format!("{e:?}")))
    }
}

/// Renders a sheet with a font (`index` picks a face in a collection: 0 for the first).
pub fn render(sheet: &Sheet, font: Vec<u8>, index: u32) -> Result<Vec<u8>, PdfError> {
    let font = Font::new(font.into(), index).ok_or(PdfError::Font)?;
    let mut p = Pages {
        document: Document::new(),
        font,
        serial: sheet.serial.clone(),
        lines: Vec::new(),
        boxes: Vec::new(),
        y: MARGIN,
    };
    p.line(MARGIN, 20.0, &sheet.title);
    p.line(MARGIN, 12.0, &format!("No. {}", sheet.serial));
    p.gap(8.0);
    for (label, value) in &sheet.fields {
        // Long values wrap at about 40 wide characters.
        let chars: Vec<char> = value.chars().collect();
        let mut first = true;
        for chunk in chars.chunks(40) {
            let text: String = chunk.iter().collect();
            let shown = if first { format!("{label}：{text}") } else { format!("      {text}") };
            p.line(MARGIN, 10.5, &shown);
            first = false;
        }
        if chars.is_empty() {
            p.line(MARGIN, 10.5, &format!("{label}："));
        }
    }
    for (caption, columns, rows) in &sheet.tables {
        p.gap(8.0);
        p.line(MARGIN, 12.0, caption);
        let width = (WIDTH - 2.0 * MARGIN) / columns.len().max(1) as f32;
        let header = columns.join(" | ");
        p.line(MARGIN, 9.5, &header);
        for row in rows {
            let cells: Vec<String> = row.iter().map(|c| c.chars().take((width / 6.0) as usize).collect()).collect();
            p.line(MARGIN, 9.5, &cells.join(" | "));
        }
    }
    for (title, text) in &sheet.clauses {
        p.gap(6.0);
        p.line(MARGIN, 11.0, title);
        let chars: Vec<char> = text.chars().collect();
        for chunk in chars.chunks(42) {
            p.line(MARGIN + 12.0, 10.0, &chunk.iter().collect::<String>());
        }
    }
    if !sheet.seller.is_empty() {
        p.gap(12.0);
        for (label, value) in &sheet.seller {
            p.line(MARGIN, 10.5, &format!("{label}：{value}"));
        }
    }
    if sheet.seals {
        p.gap(8.0);
        p.boxes(&["卖方盖章 / Seller's seal", "客户签章 / Customer's seal"], 110.0);
    }
    if !sheet.signature.is_empty() {
        p.gap(16.0);
        p.line(MARGIN, 12.0, "客户签署 / Customer signature");
        for (label, value) in &sheet.signature {
            p.line(MARGIN, 10.0, &format!("{label}：{value}"));
        }
    }
    p.finish()
}
