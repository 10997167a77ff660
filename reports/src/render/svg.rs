//! Inline SVG charts for the HTML rendering, drawn by our own code: horizontal bars,
//! optionally stacked, one row per item, with the numbers written beside each bar so
//! nothing depends on reading a length. No scripts, no external fonts or files.

use std::fmt::Write as _;

/// Width of the whole chart, px.
const WIDTH: u32 = 900;
/// Height of one row, px.
const ROW: u32 = 22;
/// Height of a bar inside its row, px.
const BAR: u32 = 14;
/// Width reserved right of the bars for the numbers, px, at least (more when a note
/// needs it).
const NOTE_WIDTH: u32 = 230;
/// Width of one character of the 12 px monospace labels, in half pixels: common
/// monospace faces advance 0.6 em (7.2 px); 7.5 leaves a margin for wider ones.
const CHAR_HALF_PX: u32 = 15;
/// Labels longer than this many characters are cut (the full label is in the tooltip).
const LABEL_CHARS_MAX: usize = 44;

pub const GREEN: &str = "#2e7d32";
pub const AMBER: &str = "#f9a825";
pub const GREY: &str = "#9e9e9e";
pub const RED: &str = "#c62828";
pub const PURPLE: &str = "#7b1fa2";
pub const BLUE: &str = "#1565c0";

/// One coloured part of a bar.
pub struct Segment {
    pub value: u64,
    pub color: &'static str,
    /// Names the part in the tooltip (`planned`, `failed`, …).
    pub name: &'static str,
}

pub struct Bar {
    pub label: String,
    pub segments: Vec<Segment>,
    /// The numbers written right of the bar.
    pub note: String,
}

/// How bar lengths are scaled.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Lengths are proportional to the largest bar's total.
    Absolute,
    /// Every bar spans the full width: its segments are shares of its own total.
    Share,
}

pub struct Chart<'a> {
    /// Read by screen readers (the visible heading is the page's).
    pub title: &'a str,
    pub bars: Vec<Bar>,
    /// (colour, name) pairs explained above the bars.
    pub legend: Vec<(&'static str, &'static str)>,
    pub scale: Scale,
}

impl Chart<'_> {
    pub fn to_svg(&self) -> String {
        let label_chars = self
            .bars
            .iter()
            .map(|b| b.label.chars().count().min(LABEL_CHARS_MAX))
            .max()
            .unwrap_or(8) as u32;
        let label_width = label_chars * CHAR_HALF_PX / 2 + 12;
        // The notes get the room their longest needs (8 px gap, a margin after).
        let note_chars = self
            .bars
            .iter()
            .map(|b| b.note.chars().count())
            .max()
            .unwrap_or(0) as u32;
        let note_width = NOTE_WIDTH.max(note_chars * CHAR_HALF_PX / 2 + 16);
        let bar_width = WIDTH.saturating_sub(label_width + note_width).max(100);
        debug_assert!(
            label_width + bar_width + note_width <= WIDTH || bar_width == 100,
            "the chart's parts fit its width"
        );
        let legend_rows = u32::from(!self.legend.is_empty());
        let rows = self.bars.len().max(1) as u32;
        let height = (rows + legend_rows) * ROW + 8;
        let mut s = String::new();
        let _ = write!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{WIDTH}\" \
             height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" \
             font-family=\"ui-monospace, Menlo, Consolas, monospace\" font-size=\"12\">\
             <title>{}</title>",
            escape(self.title)
        );
        let mut x = label_width;
        for (color, name) in &self.legend {
            let _ = write!(
                s,
                "<rect x=\"{x}\" y=\"5\" width=\"12\" height=\"12\" fill=\"{color}\"/>\
                 <text x=\"{}\" y=\"15\" fill=\"#333\">{}</text>",
                x + 16,
                escape(name)
            );
            x += 16 + name.chars().count() as u32 * CHAR_HALF_PX / 2 + 18;
        }
        if self.bars.is_empty() {
            let _ = write!(
                s,
                "<text x=\"4\" y=\"{}\" fill=\"#555\">nothing to show</text>",
                legend_rows * ROW + 15
            );
        }
        let max_total = self.bars.iter().map(total).max().unwrap_or(0).max(1);
        for (i, bar) in self.bars.iter().enumerate() {
            let y = (legend_rows + i as u32) * ROW + 4;
            let _ = write!(
                s,
                "<g><title>{}</title><text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#222\">{}</text>",
                escape(&tooltip(bar)),
                label_width - 8,
                y + BAR - 2,
                escape(&cut(&bar.label))
            );
            let whole = match self.scale {
                Scale::Absolute => max_total,
                Scale::Share => total(bar).max(1),
            };
            // Track behind the bar, so an empty bar still reads as zero, not as missing.
            let _ = write!(
                s,
                "<rect x=\"{label_width}\" y=\"{y}\" width=\"{bar_width}\" height=\"{BAR}\" \
                 fill=\"#eeeeee\"/>"
            );
            let mut offset = 0u64;
            for seg in bar.segments.iter().filter(|seg| seg.value > 0) {
                let start = px(offset, whole, bar_width);
                offset += seg.value;
                // At least 2 px, so a count of 1 among thousands is still visible.
                let width = (px(offset, whole, bar_width) - start).max(2);
                let _ = write!(
                    s,
                    "<rect x=\"{}\" y=\"{y}\" width=\"{width}\" height=\"{BAR}\" fill=\"{}\"/>",
                    label_width + start,
                    seg.color
                );
            }
            let _ = write!(
                s,
                "<text x=\"{}\" y=\"{}\" fill=\"#222\">{}</text></g>",
                label_width + bar_width + 8,
                y + BAR - 2,
                escape(&bar.note)
            );
        }
        s.push_str("</svg>");
        s
    }
}

fn total(bar: &Bar) -> u64 {
    bar.segments.iter().map(|s| s.value).sum()
}

/// `value` of `whole` as pixels of `width`, in integer arithmetic.
fn px(value: u64, whole: u64, width: u32) -> u32 {
    (u128::from(value) * u128::from(width) / u128::from(whole.max(1))) as u32
}

fn tooltip(bar: &Bar) -> String {
    let parts: Vec<String> = bar
        .segments
        .iter()
        .map(|s| format!("{} {}", s.value, s.name))
        .collect();
    format!("{}: {}", bar.label, parts.join(", "))
}

fn cut(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS_MAX {
        label.to_string()
    } else {
        let head: String = label.chars().take(LABEL_CHARS_MAX - 1).collect();
        head + "…"
    }
}

/// Escapes text for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0, even escaped.
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(scale: Scale, bars: Vec<Bar>) -> String {
        Chart {
            title: "t <&>",
            bars,
            legend: vec![(GREEN, "passed"), (RED, "failed")],
            scale,
        }
        .to_svg()
    }

    fn bar(label: &str, pass: u64, fail: u64) -> Bar {
        Bar {
            label: label.to_string(),
            segments: vec![
                Segment {
                    value: pass,
                    color: GREEN,
                    name: "passed",
                },
                Segment {
                    value: fail,
                    color: RED,
                    name: "failed",
                },
            ],
            note: format!("{pass}/{}", pass + fail),
        }
    }

    #[test]
    fn a_long_note_gets_the_room_it_needs_inside_the_chart() {
        let mut long = bar("core", 10, 0);
        long.note = "100 % of 1250 runs, 25 scenarios, 3 inert".to_string();
        let svg = chart(Scale::Absolute, vec![long]);
        // 41 chars: 41 * 7.5 + 16 = 323 px of notes; labels 4 * 7.5 + 12 = 42 px.
        let bar_width = 900 - 42 - 323;
        assert!(
            svg.contains(&format!(
                "width=\"{bar_width}\" height=\"14\" fill=\"#2e7d32\""
            )),
            "{svg}"
        );
        let note_x = 42 + bar_width + 8;
        assert!(svg.contains(&format!("<text x=\"{note_x}\"")), "{svg}");
        assert!(
            note_x + 41 * 15 / 2 <= 900,
            "the note ends inside the chart"
        );
    }

    #[test]
    fn bars_are_scaled_and_labels_escaped() {
        let svg = chart(Scale::Absolute, vec![bar("<a>", 10, 0), bar("b", 5, 0)]);
        assert!(svg.contains("<title>t &lt;&amp;&gt;</title>"), "{svg}");
        assert!(svg.contains(">&lt;a&gt;</text>"), "{svg}");
        assert!(!svg.contains("<a>"), "{svg}");
        // Label column: 3 chars * 7.5 + 12 = 34 px; bars: 900 - 34 - 230 = 636 px.
        assert!(
            svg.contains("x=\"34\" y=\"26\" width=\"636\" height=\"14\" fill=\"#2e7d32\""),
            "{svg}"
        );
        assert!(
            svg.contains("x=\"34\" y=\"48\" width=\"318\" height=\"14\" fill=\"#2e7d32\""),
            "{svg}"
        );
    }

    #[test]
    fn share_bars_fill_the_width_and_tiny_parts_stay_visible() {
        let svg = chart(Scale::Share, vec![bar("abc", 999, 1)]);
        assert!(
            svg.contains("width=\"635\" height=\"14\" fill=\"#2e7d32\""),
            "{svg}"
        );
        assert!(
            svg.contains("x=\"669\" y=\"26\" width=\"2\" height=\"14\" fill=\"#c62828\""),
            "{svg}"
        );
        assert!(chart(Scale::Share, vec![]).contains("nothing to show"));
    }
}
