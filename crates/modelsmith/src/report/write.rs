//! `modelsmith report`: a study's plots as SVG files in a folder, with an `index.html` (or a
//! Markdown `README.md`) that shows them beside the study's summary and best trials.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::plots::{all_plots, Plot};
use super::svg::escape;
use super::{short_number, ReportError, StudyReport, TrialRow};
use crate::explain::{looks_at_markdown, LooksAt, LooksAtTable, CLASS_MAPS_CAPTION};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Html,
    Markdown,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "html" => Ok(Format::Html),
            "md" | "markdown" => Ok(Format::Markdown),
            _ => Err(format!("unknown report format '{s}' (expected html or md)")),
        }
    }
}

/// What was written.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Written {
    pub index: PathBuf,
    pub images: Vec<PathBuf>,
}

/// Writes the plots and the index page into `dir` (created if needed; files of an earlier
/// report there are replaced). With `looks_at` (what the study's final model looks at, its
/// class maps already in `dir`), the page ends with that section.
pub fn write_report(
    report: &StudyReport,
    dir: &Path,
    format: Format,
    looks_at: Option<&LooksAt>,
) -> Result<Written, ReportError> {
    let io = |path: &Path, e: std::io::Error| ReportError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let plots = all_plots(report);
    let mut images = Vec::new();
    for plot in &plots {
        let path = dir.join(format!("{}.svg", plot.id));
        std::fs::write(&path, &plot.svg).map_err(|e| io(&path, e))?;
        images.push(path);
    }
    let (name, text) = match format {
        Format::Html => ("index.html", html(report, &plots, looks_at)),
        Format::Markdown => ("README.md", markdown(report, &plots, looks_at)),
    };
    let index = dir.join(name);
    std::fs::write(&index, text).map_err(|e| io(&index, e))?;
    Ok(Written { index, images })
}

/// How many of the best trials the index lists.
const BEST_ROWS: usize = 10;

fn best_rows(report: &StudyReport) -> Vec<&TrialRow> {
    let direction = report.overview.direction;
    let mut rows: Vec<&TrialRow> = report
        .trials
        .rows
        .iter()
        .filter(|r| r.value.is_some())
        .collect();
    rows.retain(|r| r.state == crate::search::TrialState::Complete);
    rows.sort_by(|a, b| {
        direction
            .as_loss(a.value.unwrap_or(f64::NAN))
            .total_cmp(&direction.as_loss(b.value.unwrap_or(f64::NAN)))
    });
    rows.truncate(BEST_ROWS);
    rows
}

fn summary_line(report: &StudyReport) -> String {
    let o = &report.overview;
    let mut line = format!(
        "{} trials: {} complete, {} pruned, {} failed, {} running. Objective: {} ({}).",
        o.trials,
        o.complete,
        o.pruned,
        o.failed,
        o.running,
        o.metric,
        o.direction.name()
    );
    if let Some(b) = &o.best {
        let _ = write!(
            line,
            " Best: trial {} with {}.",
            b.number,
            short_number(b.value)
        );
    }
    if let Some(e) = &o.energy {
        let _ = write!(line, " Training energy: {}.", e.summary());
    }
    if let Some(g) = &o.greenest {
        let _ = write!(line, " {}", g.sentence(&o.metric));
    }
    line
}

fn param_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.as_f64().map_or(n.to_string(), short_number),
        other => other.to_string(),
    }
}

fn html(report: &StudyReport, plots: &[Plot], looks_at: Option<&LooksAt>) -> String {
    let o = &report.overview;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Study {name}</title><style>\
         body{{font:14px sans-serif;margin:24px;color:#222;max-width:1200px}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ddd;padding:3px 8px;text-align:right}}\
         th{{background:#f4f4f4}}figure{{margin:18px 0}}img{{max-width:100%;border:1px solid #eee}}\
         </style></head><body>\n<h1>Study {name}</h1>\n<p>{summary}</p>\n",
        name = escape(&o.name),
        summary = escape(&summary_line(report)),
    );
    let params = &report.trials.params;
    out.push_str("<h2>Best trials</h2>\n<table><tr><th>trial</th><th>value</th>");
    for p in params {
        let _ = write!(out, "<th>{}</th>", escape(p));
    }
    out.push_str("</tr>\n");
    for row in best_rows(report) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td>",
            row.number,
            row.value.map(short_number).unwrap_or_default()
        );
        for p in params {
            let _ = write!(
                out,
                "<td>{}</td>",
                escape(&row.params.get(p).map(param_text).unwrap_or_default())
            );
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    for plot in plots {
        let _ = writeln!(
            out,
            "<figure id=\"{id}\"><img src=\"{id}.svg\" alt=\"{title}\"><figcaption>{title}</figcaption></figure>",
            id = escape(&plot.id),
            title = escape(&plot.title)
        );
    }
    if let Some(found) = looks_at {
        out.push_str(&looks_at_html(found));
    }
    out.push_str("</body></html>\n");
    out
}

/// A model's "What the model looks at" section as HTML (every text escaped; the class maps'
/// `<img src>` are `found.maps` as they are): the report's final model, the dashboard's best
/// trial.
pub fn looks_at_html(found: &LooksAt) -> String {
    let mut out = String::new();
    let out = &mut out;
    out.push_str("<h2 id=\"looks-at\">What the model looks at</h2>\n");
    let table = |out: &mut String, t: &LooksAtTable| {
        let cols = t.header.iter().filter(|h| !h.is_empty()).count();
        out.push_str("<table><tr>");
        for h in &t.header[..cols] {
            let _ = write!(out, "<th>{}</th>", escape(h));
        }
        out.push_str("</tr>\n");
        for r in &t.rows {
            out.push_str("<tr>");
            for c in &r[..cols] {
                let _ = write!(out, "<td>{}</td>", escape(c));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
    };
    if let Some((text, t)) = found.permutation() {
        let _ = writeln!(out, "<p>{}</p>", code_spans(&escape(&text)));
        table(out, &t);
    }
    let _ = writeln!(
        out,
        "<p>{}</p>",
        code_spans(&escape(&found.integrated_gradients()))
    );
    let maps = found.class_maps();
    if !maps.is_empty() {
        let _ = writeln!(out, "<p>{}</p>", escape(CLASS_MAPS_CAPTION));
        for (class, path) in maps {
            let _ = writeln!(
                out,
                "<figure style=\"display:inline-block;margin:4px\"><img src=\"{p}\" alt=\"{c}\" width=\"140\"><figcaption>{c}</figcaption></figure>",
                p = escape(path),
                c = escape(class)
            );
        }
    } else if let Some(t) = found.column_attributions() {
        table(out, &t);
    }
    std::mem::take(out)
}

/// The sentences are written for Markdown: in HTML, each `` `span` `` becomes `<code>span</code>`.
fn code_spans(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    let parts: Vec<&str> = escaped.split('`').collect();
    for (i, part) in parts.iter().enumerate() {
        if i % 2 == 1 && i + 1 == parts.len() {
            // An unpaired backtick stays as it is.
            out.push('`');
            out.push_str(part);
        } else if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}

/// One table row: `| a | b |`, with `|` inside a cell escaped so every row keeps its cells.
fn markdown_row(cells: &[String]) -> String {
    let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
    format!("| {} |\n", cells.join(" | "))
}

fn markdown(report: &StudyReport, plots: &[Plot], looks_at: Option<&LooksAt>) -> String {
    let o = &report.overview;
    let mut out = format!(
        "# Study {}\n\n{}\n\n## Best trials\n\n",
        o.name,
        summary_line(report)
    );
    let params = &report.trials.params;
    let header: Vec<String> = ["trial", "value"]
        .iter()
        .map(|h| h.to_string())
        .chain(params.iter().cloned())
        .collect();
    out.push_str(&markdown_row(&header));
    out.push_str(&markdown_row(&vec!["---".to_string(); header.len()]));
    for row in best_rows(report) {
        let cells: Vec<String> = [
            row.number.to_string(),
            row.value.map(short_number).unwrap_or_default(),
        ]
        .into_iter()
        .chain(
            params
                .iter()
                .map(|p| row.params.get(p).map(param_text).unwrap_or_default()),
        )
        .collect();
        out.push_str(&markdown_row(&cells));
    }
    for plot in plots {
        let _ = write!(
            out,
            "\n## {}\n\n![{}]({}.svg)\n",
            plot.title, plot.title, plot.id
        );
    }
    if let Some(found) = looks_at {
        out.push_str("\n## What the model looks at\n\n");
        out.push_str(&looks_at_markdown(found));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testing::{study, trial, with_param};
    use crate::search::{Direction, Distribution, TrialState};

    #[test]
    fn backtick_spans_become_code() {
        assert_eq!(
            code_spans("on `digits`: `f(x)` and `odd"),
            "on <code>digits</code>: <code>f(x)</code> and `odd"
        );
        assert_eq!(code_spans("plain"), "plain");
    }

    /// The number of cells of each line of the "Best trials" table.
    fn table_widths(md: &str) -> Vec<usize> {
        md.split("## Best trials")
            .nth(1)
            .unwrap()
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .map(|l| l.replace("\\|", "").matches('|').count() - 1)
            .collect()
    }

    #[test]
    fn the_markdown_table_has_as_many_cells_in_every_row() {
        // An architecture study: trials with no sampled parameters (once 3 header cells, 2
        // separator cells).
        let data = study(
            Direction::Maximize,
            vec![
                trial(0, TrialState::Complete, Some(0.9)),
                trial(1, TrialState::Complete, Some(0.8)),
            ],
        );
        let widths = table_widths(&markdown(&StudyReport::build(&data), &[], None));
        assert_eq!(widths, vec![2, 2, 2, 2], "{widths:?}");
        // Two parameters, one of them a choice holding '|'.
        let t = |n, v| {
            with_param(
                with_param(
                    trial(n, TrialState::Complete, Some(v)),
                    "lr",
                    Distribution::float_log(1e-4, 1e-1),
                    0.01,
                ),
                "act",
                Distribution::categorical(vec!["a|b".into(), "c".into()]),
                0.0,
            )
        };
        let data = study(Direction::Maximize, vec![t(0, 0.5), t(1, 0.7)]);
        let widths = table_widths(&markdown(&StudyReport::build(&data), &[], None));
        assert_eq!(widths, vec![4, 4, 4, 4], "{widths:?}");
    }
}
