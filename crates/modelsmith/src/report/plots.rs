//! Every plot of a study as an SVG document. The dashboard puts these into its page and the
//! report writes them as files: one renderer for both.
//!
//! Each mark carries its trial (`data-trial`) or parameter (`data-param`) and a `<title>`
//! tooltip, so a reader can hover and a test can count.

use serde::Serialize;

use super::svg::{escape, tooltip, Scale, Svg, BOTTOM, LEFT, RIGHT, TOP};
use super::{
    short_number, thousands, Architecture, AxisKind, History, Importance, LearningCurves,
    ParallelCoordinates, ParetoFront, Residuals, StudyReport,
};
use crate::search::{Direction, TrialState};

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 360.0;

/// One drawn plot: its file/element id, a caption and the SVG document.
#[derive(Clone, Debug, Serialize)]
pub struct Plot {
    pub id: String,
    pub title: String,
    pub svg: String,
}

/// The ids [`all_plots`] can return, in page order (Pareto plots are `pareto-<objective>`).
pub const PLOT_IDS: &[&str] = &[
    "history",
    "curves",
    "parallel",
    "importance",
    "pareto",
    "architectures",
    "predicted",
    "residuals",
];

/// Every plot the study has data for, in page order. History, curves, parallel coordinates
/// and importance always appear (saying so when they are empty); Pareto plots only with
/// several objectives, architectures only for architecture searches.
pub fn all_plots(report: &StudyReport) -> Vec<Plot> {
    let mut plots = vec![
        Plot {
            id: "history".into(),
            title: "Optimization history".into(),
            svg: history_svg(&report.history),
        },
        Plot {
            id: "curves".into(),
            title: "Learning curves".into(),
            svg: curves_svg(&report.curves),
        },
        Plot {
            id: "parallel".into(),
            title: "Parallel coordinates".into(),
            svg: parallel_svg(&report.parallel),
        },
        Plot {
            id: "importance".into(),
            title: "Parameter importance".into(),
            svg: importance_svg(&report.importance),
        },
    ];
    for (objective, svg) in pareto_svgs(&report.pareto) {
        plots.push(Plot {
            id: format!("pareto-{objective}"),
            title: format!(
                "Pareto front: {} vs {objective}",
                report.pareto.objectives[0].name
            ),
            svg,
        });
    }
    if report.overview.architecture_search {
        plots.push(Plot {
            id: "architectures".into(),
            title: "Best architectures".into(),
            svg: architectures_svg(&report.architectures),
        });
    }
    if let Some(r) = &report.residuals {
        plots.push(Plot {
            id: "predicted".into(),
            title: format!("Predicted vs true {} (trial {})", r.target, r.number),
            svg: predicted_svg(r),
        });
        plots.push(Plot {
            id: "residuals".into(),
            title: format!("Residuals of {} (trial {})", r.target, r.number),
            svg: residuals_svg(r),
        });
    }
    plots
}

/// The best trial's validation predictions against the truth; the diagonal is a perfect fit.
pub fn predicted_svg(r: &Residuals) -> String {
    let mut svg = Svg::new(
        WIDTH,
        HEIGHT,
        &format!(
            "Predicted vs true {} on validation examples (trial {}; on the line: exact)",
            r.target, r.number
        ),
    );
    let (left, right, top, bottom) = plot_area();
    let all = || r.points.iter().flat_map(|&(t, p)| [t, p]);
    let x = Scale::fit(all(), left, right, false);
    let y = Scale::fit(all(), bottom, top, false);
    svg.axes(&x, &y, &format!("true {}", r.target), "predicted");
    let (lo, hi) = (x.d0.max(y.d0), x.d1.min(y.d1));
    svg.push(format!(
        r#"<line class="ms-reference" x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/>"#,
        x.map(lo),
        y.map(lo),
        x.map(hi),
        y.map(hi)
    ));
    for &(t, p) in &r.points {
        svg.push(format!(
            r#"<circle class="ms-point" data-trial="{n}" cx="{:.1}" cy="{:.1}" r="2.5">{}</circle>"#,
            x.map(t),
            y.map(p),
            tooltip(&format!(
                "true {}, predicted {}",
                short_number(t),
                short_number(p)
            )),
            n = r.number
        ));
    }
    svg.finish()
}

/// The best trial's errors (predicted − true) against its predictions: a good fit scatters
/// evenly around zero; a funnel or a curve is structure the model missed.
pub fn residuals_svg(r: &Residuals) -> String {
    let mut svg = Svg::new(
        WIDTH,
        HEIGHT,
        &format!(
            "Residuals (predicted − true {}) against predicted (trial {})",
            r.target, r.number
        ),
    );
    let (left, right, top, bottom) = plot_area();
    let x = Scale::fit(r.points.iter().map(|&(_, p)| p), left, right, false);
    let y = Scale::fit(
        r.points.iter().map(|&(t, p)| p - t).chain([0.0]),
        bottom,
        top,
        false,
    );
    svg.axes(&x, &y, "predicted", "residual");
    svg.push(format!(
        r#"<line class="ms-reference" x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/>"#,
        x.map(x.d0),
        y.map(0.0),
        x.map(x.d1),
        y.map(0.0)
    ));
    for &(t, p) in &r.points {
        svg.push(format!(
            r#"<circle class="ms-point" data-trial="{n}" cx="{:.1}" cy="{:.1}" r="2.5">{}</circle>"#,
            x.map(p),
            y.map(p - t),
            tooltip(&format!(
                "predicted {}, true {}, residual {}",
                short_number(p),
                short_number(t),
                short_number(p - t)
            )),
            n = r.number
        ));
    }
    svg.finish()
}

fn plot_area() -> (f64, f64, f64, f64) {
    (LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM)
}

fn direction_word(d: Direction) -> &'static str {
    match d {
        Direction::Maximize => "higher is better",
        Direction::Minimize => "lower is better",
    }
}

pub fn history_svg(h: &History) -> String {
    let mut svg = Svg::new(
        WIDTH,
        HEIGHT,
        &format!(
            "Optimization history ({}, {})",
            h.metric,
            direction_word(h.direction)
        ),
    );
    if h.points.is_empty() {
        svg.empty("no complete trials yet");
        return svg.finish();
    }
    let (left, right, top, bottom) = plot_area();
    let all = || {
        let pruned = h.pruned.iter().map(|p| (p.number, p.value));
        h.points.iter().map(|p| (p.number, p.value)).chain(pruned)
    };
    let x = Scale::fit(all().map(|(n, _)| n as f64), left, right, false);
    let y = Scale::fit(all().map(|(_, v)| v), bottom, top, false);
    svg.axes(&x, &y, "trial", &h.metric);
    // The best-so-far line is a staircase: it only moves when a trial beats it.
    let mut steps = Vec::new();
    for (i, p) in h.points.iter().enumerate() {
        if i > 0 {
            steps.push((x.map(p.number as f64), y.map(h.points[i - 1].best_so_far)));
        }
        steps.push((x.map(p.number as f64), y.map(p.best_so_far)));
    }
    // Carried on to the last trial (pruned ones included): the best stands until beaten.
    let last = all().map(|(n, _)| n).max().unwrap_or(0) as f64;
    if let Some(p) = h.points.last() {
        steps.push((x.map(last), y.map(p.best_so_far)));
    }
    svg.push(format!(
        r#"<polyline class="ms-best" points="{}">{}</polyline>"#,
        points_attr(&steps),
        tooltip("best so far")
    ));
    for p in &h.points {
        let class = if p.is_best {
            "ms-point ms-best-point"
        } else {
            "ms-point"
        };
        svg.push(format!(
            r#"<circle class="{class}" data-trial="{n}" cx="{cx:.1}" cy="{cy:.1}" r="4">{t}</circle>"#,
            n = p.number,
            cx = x.map(p.number as f64),
            cy = y.map(p.value),
            t = tooltip(&format!(
                "trial {}: {} (best so far {})",
                p.number,
                short_number(p.value),
                short_number(p.best_so_far)
            ))
        ));
    }
    for p in &h.pruned {
        svg.push(format!(
            r#"<circle class="ms-pruned-point" data-pruned="{n}" cx="{cx:.1}" cy="{cy:.1}" r="3">{t}</circle>"#,
            n = p.number,
            cx = x.map(p.number as f64),
            cy = y.map(p.value),
            t = tooltip(&format!("trial {} pruned at {}", p.number, short_number(p.value)))
        ));
    }
    legend(
        &mut svg,
        &[
            ("ms-point", "complete trial"),
            ("ms-pruned-point", "pruned (last value)"),
            ("ms-best", "best so far"),
        ],
    );
    svg.finish()
}

pub fn curves_svg(c: &LearningCurves) -> String {
    let mut svg = Svg::new(
        WIDTH,
        HEIGHT,
        &format!("Learning curves ({} per epoch)", c.metric),
    );
    if c.curves.iter().all(|c| c.points.is_empty()) {
        svg.empty("no trial has reported an epoch yet");
        return svg.finish();
    }
    let (left, right, top, bottom) = plot_area();
    let all = || c.curves.iter().flat_map(|c| c.points.iter());
    let x = Scale::fit(all().map(|(s, _)| *s as f64), left, right, false);
    let y = Scale::fit(all().map(|(_, v)| *v), bottom, top, false);
    svg.axes(&x, &y, "epoch", &c.metric);
    for curve in &c.curves {
        let class = match curve.state {
            TrialState::Pruned => "ms-curve ms-pruned",
            TrialState::Running => "ms-curve ms-running",
            _ => "ms-curve",
        };
        let pts: Vec<(f64, f64)> = curve
            .points
            .iter()
            .map(|(s, v)| (x.map(*s as f64), y.map(*v)))
            .collect();
        svg.push(format!(
            r#"<polyline class="{class}" data-trial="{n}" data-state="{state}" points="{p}">{t}</polyline>"#,
            n = curve.number,
            state = curve.state.name(),
            p = points_attr(&pts),
            t = tooltip(&format!(
                "trial {} ({}, {} epochs)",
                curve.number,
                curve.state.name(),
                curve.points.len()
            ))
        ));
        // A cross where the pruner stopped the trial.
        if let (true, Some(&(px, py))) = (curve.pruned, pts.last()) {
            svg.push(format!(
                r#"<path class="ms-prune-mark" data-trial="{n}" d="M{a:.1},{b:.1}L{c:.1},{d:.1}M{a:.1},{d:.1}L{c:.1},{b:.1}">{t}</path>"#,
                n = curve.number,
                a = px - 4.0,
                b = py - 4.0,
                c = px + 4.0,
                d = py + 4.0,
                t = tooltip(&format!("trial {} pruned here", curve.number))
            ));
        }
    }
    legend(
        &mut svg,
        &[
            ("ms-curve", "complete"),
            ("ms-curve ms-pruned", "pruned (x: stopped)"),
            ("ms-curve ms-running", "running"),
        ],
    );
    svg.finish()
}

pub fn parallel_svg(p: &ParallelCoordinates) -> String {
    let width = (160.0 * p.axes.len() as f64).clamp(WIDTH, 1400.0);
    let mut svg = Svg::new(
        width,
        HEIGHT,
        &format!(
            "Parallel coordinates (color: {}, darker is better)",
            p.axes.last().map_or("value", |a| a.name.as_str())
        ),
    );
    if p.lines.is_empty() {
        svg.empty("no complete trials yet");
        return svg.finish();
    }
    let (top, bottom) = (TOP + 24.0, HEIGHT - 30.0);
    let (left, right) = (LEFT, width - LEFT);
    let step = if p.axes.len() > 1 {
        (right - left) / (p.axes.len() - 1) as f64
    } else {
        0.0
    };
    let scales: Vec<Scale> = p
        .axes
        .iter()
        .map(|a| match &a.kind {
            AxisKind::Numeric { low, high, log } => {
                Scale::fit([*low, *high].into_iter(), bottom, top, *log)
            }
            AxisKind::Categorical { choices } => {
                Scale::exact(-0.5, choices.len() as f64 - 0.5, bottom, top)
            }
        })
        .collect();
    let objective = scales.last().expect("the objective axis is always there");
    let (worst, best) = match p.direction {
        Direction::Maximize => (objective.d0, objective.d1),
        Direction::Minimize => (objective.d1, objective.d0),
    };
    let best_number = p
        .lines
        .iter()
        .fold(None, |b: Option<&super::ParallelLine>, l| match b {
            Some(b) if !p.direction.better(l.objective, b.objective) => Some(b),
            _ => Some(l),
        })
        .map(|l| l.number);
    // Worst lines first so the good ones are drawn on top.
    let mut lines: Vec<_> = p.lines.iter().collect();
    lines.sort_by(|a, b| {
        p.direction
            .as_loss(b.objective)
            .total_cmp(&p.direction.as_loss(a.objective))
    });
    for line in lines {
        let quality = ((line.objective - worst) / (best - worst)).clamp(0.0, 1.0);
        let pts: Vec<(f64, f64)> = line
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| Some((left + step * i as f64, scales[i].map((*v)?))))
            .collect();
        let is_best = Some(line.number) == best_number;
        svg.push(format!(
            r#"<polyline class="ms-line{b}" data-trial="{n}" stroke="{color}" points="{pts}">{t}</polyline>"#,
            b = if is_best { " ms-best-line" } else { "" },
            n = line.number,
            color = if is_best { "#ff7f0e".to_string() } else { blues(quality) },
            pts = points_attr(&pts),
            t = tooltip(&format!("trial {}: {}", line.number, short_number(line.objective)))
        ));
    }
    for (i, (axis, scale)) in p.axes.iter().zip(&scales).enumerate() {
        let ax = left + step * i as f64;
        svg.line((ax, bottom), (ax, top), "ms-axis");
        svg.text(ax, top - 10.0, "middle", "ms-label", &axis.name);
        match &axis.kind {
            AxisKind::Categorical { choices } => {
                for (c, label) in choices.iter().enumerate() {
                    svg.text(
                        ax + 5.0,
                        scale.map(c as f64) + 4.0,
                        "start",
                        "ms-tick",
                        label,
                    );
                }
            }
            AxisKind::Numeric { .. } => {
                for t in scale.ticks() {
                    svg.text(
                        ax + 5.0,
                        scale.map(t) + 4.0,
                        "start",
                        "ms-tick",
                        &scale.label(t),
                    );
                }
            }
        }
    }
    svg.finish()
}

/// Light blue (0) to dark blue (1).
fn blues(quality: f64) -> String {
    let mix = |a: f64, b: f64| (a + (b - a) * quality).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(198.0, 8.0),
        mix(219.0, 48.0),
        mix(239.0, 107.0)
    )
}

pub fn importance_svg(imp: &Importance) -> String {
    let rows = imp.params.len().max(1) as f64;
    let height = (TOP + 30.0 + 28.0 * rows + BOTTOM).max(180.0);
    let mut svg = Svg::new(WIDTH, height, "Parameter importance");
    svg.text(
        LEFT,
        38.0,
        "start",
        "ms-tick",
        &format!("{}, from {} complete trials", imp.method, imp.trials_used),
    );
    if imp.params.is_empty() {
        svg.empty(imp.note.as_deref().unwrap_or("nothing to show"));
        return svg.finish();
    }
    let label_width = 170.0;
    let (left, right) = (LEFT + label_width, WIDTH - RIGHT - 50.0);
    let x = Scale::exact(0.0, 1.0, left, right);
    let top = TOP + 16.0;
    for (i, p) in imp.params.iter().enumerate() {
        let y = top + 28.0 * i as f64;
        svg.text(left - 8.0, y + 15.0, "end", "ms-label", &p.name);
        let w = (x.map(p.importance) - left).max(1.0);
        svg.push(format!(
            r#"<rect class="ms-bar" data-param="{name}" data-importance="{v}" x="{left:.1}" y="{y:.1}" width="{w:.1}" height="20">{t}</rect>"#,
            name = escape(&p.name),
            v = p.importance,
            t = tooltip(&format!(
                "{}: {:.1}% (error +{})",
                p.name,
                p.importance * 100.0,
                short_number(p.error_increase)
            ))
        ));
        svg.text(
            left + w + 6.0,
            y + 15.0,
            "start",
            "ms-tick",
            &format!("{:.1}%", p.importance * 100.0),
        );
    }
    svg.finish()
}

/// One scatter per secondary objective: the study's value against it, the front of that pair
/// highlighted and joined. Returns `(objective name, svg)`.
pub fn pareto_svgs(front: &ParetoFront) -> Vec<(String, String)> {
    if front.objectives.len() < 2 {
        return Vec::new();
    }
    let first = &front.objectives[0];
    front.objectives[1..]
        .iter()
        .enumerate()
        .map(|(k, objective)| {
            let j = k + 1;
            let mut svg = Svg::new(
                WIDTH,
                HEIGHT,
                &format!("Pareto front: {} vs {} (red: not beaten on both)", first.name, objective.name),
            );
            let (left, right, top, bottom) = plot_area();
            let log = front.points.iter().all(|p| p.values[j] > 0.0);
            let x = Scale::fit(front.points.iter().map(|p| p.values[j]), left, right, log);
            let y = Scale::fit(front.points.iter().map(|p| p.values[0]), bottom, top, false);
            svg.axes(&x, &y, &objective.name, &first.name);
            // The 2-D front of this pair: no point at least as good on both and better on one.
            let loss = |p: &super::ParetoPoint| {
                (first.direction.as_loss(p.values[0]), objective.direction.as_loss(p.values[j]))
            };
            let on_pair_front = |p: &super::ParetoPoint| {
                let (a, b) = loss(p);
                !front.points.iter().any(|q| {
                    let (c, d) = loss(q);
                    c <= a && d <= b && (c < a || d < b)
                })
            };
            let mut front_points: Vec<(f64, f64)> = front
                .points
                .iter()
                .filter(|p| on_pair_front(p))
                .map(|p| (x.map(p.values[j]), y.map(p.values[0])))
                .collect();
            front_points.sort_by(|a, b| a.0.total_cmp(&b.0));
            svg.push(format!(
                r#"<polyline class="ms-front-line" points="{}"/>"#,
                points_attr(&front_points)
            ));
            for p in &front.points {
                let on = on_pair_front(p);
                svg.push(format!(
                    r#"<circle class="ms-point{c}" data-trial="{n}" data-front="{on}" cx="{cx:.1}" cy="{cy:.1}" r="4">{t}</circle>"#,
                    c = if on { " ms-front" } else { "" },
                    n = p.number,
                    cx = x.map(p.values[j]),
                    cy = y.map(p.values[0]),
                    t = tooltip(&format!(
                        "trial {}: {} {}, {} {}",
                        p.number,
                        first.name,
                        short_number(p.values[0]),
                        objective.name,
                        short_number(p.values[j])
                    ))
                ));
            }
            (objective.name.clone(), svg.finish())
        })
        .collect()
}

/// The best architectures side by side, one column of layer boxes each (name, type, output
/// shape, parameters); an orange arc marks a layer that reads something other than the layer
/// above it (a residual shortcut).
pub fn architectures_svg(archs: &[Architecture]) -> String {
    let column = 300.0;
    let box_h = 30.0;
    let gap = 8.0;
    let rows = archs.iter().map(|a| a.layers.len()).max().unwrap_or(0) as f64;
    let width = (LEFT + column * archs.len() as f64).max(WIDTH);
    let height = (TOP + 60.0 + rows * (box_h + gap) + 20.0).max(200.0);
    let mut svg = Svg::new(
        width,
        height,
        "Best architectures (layer, output shape, parameters)",
    );
    if archs.is_empty() {
        svg.empty("no complete trial with an architecture (genome) yet");
        return svg.finish();
    }
    for (k, arch) in archs.iter().enumerate() {
        let x0 = LEFT / 2.0 + column * k as f64;
        svg.text(
            x0,
            TOP + 14.0,
            "start",
            "ms-label",
            &format!(
                "#{} trial {}: {}",
                k + 1,
                arch.number,
                short_number(arch.value)
            ),
        );
        svg.text(
            x0,
            TOP + 30.0,
            "start",
            "ms-tick",
            &format!(
                "{} params, {} FLOPs, input {:?}",
                thousands(arch.params as i64),
                thousands(arch.flops as i64),
                arch.input_shape
            ),
        );
        let mut y_of = std::collections::HashMap::new();
        y_of.insert("input".to_string(), TOP + 36.0);
        let mut previous = "input".to_string();
        for (i, layer) in arch.layers.iter().enumerate() {
            let y = TOP + 44.0 + i as f64 * (box_h + gap);
            if i > 0 {
                svg.line((x0 + 120.0, y - gap), (x0 + 120.0, y), "ms-link");
            }
            for input in layer.inputs.iter().filter(|n| **n != previous) {
                if let Some(&from) = y_of.get(input) {
                    let (xa, ya, yb) = (x0 + column - 40.0, from + box_h / 2.0, y + box_h / 2.0);
                    svg.push(format!(
                        r#"<path class="ms-skip" d="M{a:.1},{ya:.1}C{c:.1},{ya:.1} {c:.1},{yb:.1} {a:.1},{yb:.1}">{t}</path>"#,
                        a = xa - 10.0,
                        c = xa + 8.0,
                        t = tooltip(&format!("{} reads {input}", layer.name))
                    ));
                }
            }
            svg.push(format!(
                r#"<rect class="ms-layer" data-trial="{n}" data-layer="{name}" x="{x0:.1}" y="{y:.1}" width="{w:.1}" height="{box_h}" rx="4">{t}</rect>"#,
                n = arch.number,
                name = escape(&layer.name),
                w = column - 60.0,
                t = tooltip(&format!("{} ({}) reads {}", layer.name, layer.kind, layer.inputs.join(", ")))
            ));
            let shape: Vec<String> = layer.output_shape.iter().map(usize::to_string).collect();
            svg.text(
                x0 + 6.0,
                y + 13.0,
                "start",
                "ms-layer-text",
                &format!("{} {}", layer.kind, layer.name),
            );
            svg.text(
                x0 + 6.0,
                y + 25.0,
                "start",
                "ms-layer-text",
                &format!(
                    "[{}]  {} params",
                    shape.join("x"),
                    thousands(layer.params as i64)
                ),
            );
            y_of.insert(layer.name.clone(), y);
            previous = layer.name.clone();
        }
    }
    svg.finish()
}

/// A legend under the title: a short sample of each class and its label.
fn legend(svg: &mut Svg, entries: &[(&str, &str)]) {
    let mut x = LEFT;
    let y = 38.0;
    for (class, label) in entries {
        if class.contains("point") {
            svg.push(format!(
                r#"<circle class="{class}" cx="{:.1}" cy="{y}" r="4"/>"#,
                x + 8.0
            ));
        } else {
            svg.line((x, y), (x + 16.0, y), class);
        }
        svg.text(x + 22.0, y + 4.0, "start", "ms-legend", label);
        x += 30.0 + 6.5 * label.len() as f64;
    }
}

fn points_attr(points: &[(f64, f64)]) -> String {
    points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect::<Vec<_>>()
        .join(" ")
}
