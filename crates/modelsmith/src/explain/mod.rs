//! Explaining a trained model's predictions: which inputs a prediction rests on.
//!
//! Every method explains one output of the model for one input — a class's probability, or a
//! regression target's value in its own units ([`ExplainedOutput`]) — and answers with one
//! attribution per model input value ([`Attribution`]), which [`Units`] sum back to pixels or to
//! table columns (a one-hot block summed to its column). Gradients come from the engine's own
//! backward pass ([`Explainer::value_and_gradient`], the network in [`Mode::Explain`]); the
//! methods are:
//! - [`Method::Saliency`] and [`Method::InputXGradient`]: the gradient, and the gradient times
//!   the input's distance from the baseline;
//! - [`Method::IntegratedGradients`]: the gradient averaged along the straight path from a
//!   [`Baseline`] to the input (Gauss-Legendre nodes, every step of many inputs batched through
//!   the engine), times that distance; its sum equals `f(x) - f(baseline)` up to the reported
//!   completeness error;
//! - [`Method::Occlusion`]: the fall of the output when a window (a table's column) is replaced
//!   by the baseline;
//! - [`Method::GradCam`]: the last convolution's channels weighted by their mean gradient;
//! - [`permutation`]: a table column's importance to the model's test score, with confidence
//!   intervals.
//!
//! [`faithfulness`] checks an explanation against the model: deleting the most attributed units
//! first must lower the output faster than deleting them in random order.
//!
//! [`Mode::Explain`]: modelsmith_engine::Mode::Explain

mod baseline;
pub mod faithfulness;
mod gradcam;
mod gradients;
pub mod heatmap;
pub(crate) mod integrated;
mod method;
mod occlusion;
mod overview;
pub mod permutation;
mod summary;
mod units;

pub use baseline::Baseline;
pub use gradients::{ExplainedOutput, Explainer};
pub use integrated::{gauss_legendre, DEFAULT_MAX_STEPS, DEFAULT_STEPS, DEFAULT_TOLERANCE};
pub use method::{Attribution, Completeness, ExplainOptions, Method};
pub use overview::{
    file_safe, looks_at, looks_at_markdown, overview, write_class_maps, LooksAt, LooksAtTable,
    Overview, CLASS_MAPS_CAPTION, OVERVIEW_EXAMPLES,
};
pub use summary::{
    explain_data, output_names, CompletenessSummary, DataExplanation, OutputMap, DEFAULT_LIMIT,
};
pub use units::Units;
