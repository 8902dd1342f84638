//! A small SVG writer for the plots: elements as text, scales with readable ticks, and one
//! shared stylesheet so a file opened alone looks like the plot on the page.

use std::fmt::Write;

use super::short_number;

/// The stylesheet every plot carries (classes are prefixed `ms-` so inline SVGs in a page
/// don't collide with its own styles).
const STYLE: &str = "
.ms-bg{fill:#fff}
.ms-title{font:600 14px sans-serif;fill:#222}
.ms-label{font:12px sans-serif;fill:#444}
.ms-tick{font:11px sans-serif;fill:#555;paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
.ms-axis{stroke:#999;stroke-width:1}
.ms-grid{stroke:#eee;stroke-width:1}
.ms-empty{font:13px sans-serif;fill:#888}
.ms-point{fill:#1f77b4;fill-opacity:.75}
.ms-point.ms-best-point{fill:#ff7f0e;fill-opacity:1}
.ms-pruned-point{fill:none;stroke:#d62728;stroke-opacity:.6}
.ms-best{fill:none;stroke:#ff7f0e;stroke-width:2}
.ms-curve{fill:none;stroke:#1f77b4;stroke-width:1.3;stroke-opacity:.7}
.ms-curve.ms-pruned{stroke:#d62728;stroke-dasharray:4 3}
.ms-curve.ms-running{stroke:#2ca02c}
.ms-prune-mark{stroke:#d62728;stroke-width:2}
.ms-line{fill:none;stroke-width:1.4;stroke-opacity:.75}
.ms-line.ms-best-line{stroke-width:3;stroke-opacity:1}
.ms-bar{fill:#1f77b4}
.ms-front{fill:#d62728;fill-opacity:1}
.ms-front-line{fill:none;stroke:#d62728;stroke-width:1.5}
.ms-layer{fill:#eef4fb;stroke:#1f77b4;stroke-width:1}
.ms-layer-text{font:11px monospace;fill:#222}
.ms-link{stroke:#999;stroke-width:1;fill:none}
.ms-skip{stroke:#ff7f0e;stroke-width:1.3;fill:none}
.ms-legend{font:11px sans-serif;fill:#444}
.ms-reference{stroke:#888;stroke-width:1;stroke-dasharray:5 4}
";

/// Plot margins: room for tick labels on the left and below, the title on top.
pub const LEFT: f64 = 72.0;
pub const RIGHT: f64 = 24.0;
pub const TOP: f64 = 52.0;
pub const BOTTOM: f64 = 46.0;

pub struct Svg {
    pub width: f64,
    pub height: f64,
    body: String,
}

impl Svg {
    /// An empty plot of `width` x `height` with a white background and `title` on top.
    pub fn new(width: f64, height: f64, title: &str) -> Svg {
        let mut svg = Svg {
            width,
            height,
            body: String::new(),
        };
        svg.push(format!(
            r#"<rect class="ms-bg" width="{width}" height="{height}"/>"#
        ));
        svg.text(LEFT, 22.0, "start", "ms-title", title);
        svg
    }

    pub fn push(&mut self, element: impl AsRef<str>) {
        self.body.push_str(element.as_ref());
        self.body.push('\n');
    }

    pub fn text(&mut self, x: f64, y: f64, anchor: &str, class: &str, content: &str) {
        self.push(format!(
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" class="{class}">{}</text>"#,
            escape(content)
        ));
    }

    /// Text turned 90° counter-clockwise around its anchor (a y-axis label).
    pub fn vertical_text(&mut self, x: f64, y: f64, class: &str, content: &str) {
        self.push(format!(
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="middle" class="{class}" transform="rotate(-90 {x:.1} {y:.1})">{}</text>"#,
            escape(content)
        ));
    }

    pub fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), class: &str) {
        self.push(format!(
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" class="{class}"/>"#
        ));
    }

    /// A message in the middle of the plot area when there is nothing to draw.
    pub fn empty(&mut self, message: &str) {
        let (x, y) = (self.width / 2.0, self.height / 2.0);
        self.text(x, y, "middle", "ms-empty", message);
    }

    /// The frame of a plot area: x and y axes with ticks, grid lines and labels.
    pub fn axes(&mut self, x: &Scale, y: &Scale, x_label: &str, y_label: &str) {
        let (bottom, top) = (y.r0, y.r1);
        let (left, right) = (x.r0, x.r1);
        for t in y.ticks() {
            let py = y.map(t);
            self.line((left, py), (right, py), "ms-grid");
            self.text(left - 6.0, py + 4.0, "end", "ms-tick", &y.label(t));
        }
        for t in x.ticks() {
            let px = x.map(t);
            self.line((px, bottom), (px, bottom + 4.0), "ms-axis");
            self.text(px, bottom + 17.0, "middle", "ms-tick", &x.label(t));
        }
        self.line((left, bottom), (right, bottom), "ms-axis");
        self.line((left, bottom), (left, top), "ms-axis");
        self.text(
            (left + right) / 2.0,
            bottom + 36.0,
            "middle",
            "ms-label",
            x_label,
        );
        self.vertical_text(16.0, (top + bottom) / 2.0, "ms-label", y_label);
    }

    pub fn finish(self) -> String {
        let mut out = String::with_capacity(self.body.len() + STYLE.len() + 200);
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}"><style>{STYLE}</style>"#,
            w = self.width,
            h = self.height
        );
        out.push('\n');
        out.push_str(&self.body);
        out.push_str("</svg>\n");
        out
    }
}

/// XML-escapes text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `<title>` child: the tooltip a browser shows on hover.
pub fn tooltip(text: &str) -> String {
    format!("<title>{}</title>", escape(text))
}

/// Maps data `d0..d1` onto pixels `r0..r1` (linearly, or in log10 space).
#[derive(Clone, Debug)]
pub struct Scale {
    pub d0: f64,
    pub d1: f64,
    pub r0: f64,
    pub r1: f64,
    pub log: bool,
}

impl Scale {
    /// A scale over the data's range, padded by 5% (and widened when all values are equal).
    pub fn fit(values: impl Iterator<Item = f64>, r0: f64, r1: f64, log: bool) -> Scale {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if log {
            let (l, h) = (lo.log10(), hi.log10());
            let pad = ((h - l) * 0.05).max(0.05);
            return Scale {
                d0: 10f64.powf(l - pad),
                d1: 10f64.powf(h + pad),
                r0,
                r1,
                log,
            };
        }
        let pad = if hi > lo {
            (hi - lo) * 0.05
        } else {
            lo.abs().max(1.0) * 0.05
        };
        Scale {
            d0: lo - pad,
            d1: hi + pad,
            r0,
            r1,
            log,
        }
    }

    /// A scale that spans exactly `d0..d1`.
    pub fn exact(d0: f64, d1: f64, r0: f64, r1: f64) -> Scale {
        let (d0, d1) = if d1 > d0 {
            (d0, d1)
        } else {
            (d0 - 0.5, d0 + 0.5)
        };
        Scale {
            d0,
            d1,
            r0,
            r1,
            log: false,
        }
    }

    pub fn map(&self, v: f64) -> f64 {
        let (v, d0, d1) = if self.log {
            (v.max(1e-300).log10(), self.d0.log10(), self.d1.log10())
        } else {
            (v, self.d0, self.d1)
        };
        let f = if d1 > d0 { (v - d0) / (d1 - d0) } else { 0.5 };
        self.r0 + f * (self.r1 - self.r0)
    }

    /// About five round values inside the domain (powers of ten on a log scale).
    pub fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (l, h) = (
                self.d0.log10().ceil() as i32,
                self.d1.log10().floor() as i32,
            );
            if h - l >= 1 {
                let every = ((h - l) / 6 + 1) as usize;
                return (l..=h).step_by(every).map(|e| 10f64.powi(e)).collect();
            }
        }
        nice_ticks(self.d0, self.d1, 5)
    }

    pub fn label(&self, v: f64) -> String {
        if self.log {
            let e = v.log10();
            if (e - e.round()).abs() < 1e-9 {
                // Powers of ten: 1e-4, 0.01, 1, 100, 1e5.
                let e = e.round() as i32;
                return if (-2..=4).contains(&e) {
                    short_number(10f64.powi(e))
                } else {
                    format!("1e{e}")
                };
            }
            // Less than a decade shown: plain ticks, three significant digits.
            let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
            let rounded: f64 = format!("{v:.digits$}").parse().unwrap_or(v);
            let power = 10f64.powi(v.abs().log10().floor() as i32 - 2);
            return short_number(if digits == 0 {
                (v / power).round() * power
            } else {
                rounded
            });
        }
        // Round away float noise (0.30000000000000004) before formatting.
        let step = (self.d1 - self.d0).abs() / 50.0;
        let digits = (-step.log10().floor()).clamp(0.0, 12.0) as usize;
        let rounded: f64 = format!("{v:.digits$}").parse().unwrap_or(v);
        short_number(rounded)
    }
}

/// Round tick values (1, 2 or 5 times a power of ten apart) covering `lo..hi`.
pub fn nice_ticks(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    if hi <= lo || !lo.is_finite() || !hi.is_finite() {
        return vec![lo];
    }
    let raw = (hi - lo) / count.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_inside_the_range() {
        assert_eq!(
            nice_ticks(0.0, 1.0, 5),
            [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        let t = nice_ticks(0.83, 0.97, 5);
        assert!(t.iter().all(|v| (0.83..=0.97).contains(v)) && t.len() >= 3);
        let log = Scale::fit([1e-4, 1e-1].into_iter(), 0.0, 100.0, true);
        assert_eq!(log.ticks(), [1e-4, 1e-3, 1e-2, 1e-1]);
        assert!(log.map(1e-4) < log.map(1e-2) && log.map(1e-2) < log.map(1e-1));
        let labels: Vec<String> = log.ticks().iter().map(|t| log.label(*t)).collect();
        assert_eq!(labels, ["1e-4", "1e-3", "0.01", "0.1"]);
        // Less than a decade on a log axis: plain round ticks, each labeled as itself.
        let narrow = Scale::fit([21_000.0, 38_000.0].into_iter(), 0.0, 100.0, true);
        let labels: Vec<String> = narrow.ticks().iter().map(|t| narrow.label(*t)).collect();
        assert!(labels.len() >= 2, "{labels:?}");
        let mut unique = labels.clone();
        unique.dedup();
        assert_eq!(unique, labels, "distinct labels");
        assert!(labels.contains(&"30,000".to_string()), "{labels:?}");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape(r#"a<b & "c""#), "a&lt;b &amp; &quot;c&quot;");
    }
}
