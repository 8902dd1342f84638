//! What every search trial that trains a network shares, `tune`'s and `auto`'s alike: the
//! observer that reports each epoch's validation metric to the study and stops on the
//! pruner's word or the search's deadline ([`TrialReporter`]), what the trial keeps of its
//! training report ([`record_report`]) and its value ([`trial_value`]).

use std::time::Instant;

use crate::search::{Trial, TrialError};
use crate::task::Metric;
use crate::train::{EpochMetrics, TrainObserver, TrainReport};

/// A regression trial's validation predictions beside the truth
/// ([`crate::task::PredictionSample`]), which the report's residual plots draw.
pub const PREDICTIONS_ATTR: &str = "val_predictions";
/// What a trial keeps of its training report ([`record_report`]).
pub const REPORT_ATTR: &str = "report";

/// What a trial's training cost: `{joules, cpu_seconds, method, co2e_grams, g_per_kwh}`, so
/// that a study's total adds up over workers on any number of machines.
pub const ENERGY_ATTR: &str = "energy";

/// Reports each epoch's validation `metric` to the study (for the pruner) and to `on_epoch`,
/// and stops training when the pruner says so, storage fails, or `deadline` passes.
pub struct TrialReporter<'t, 's, 'f> {
    trial: &'t mut Trial<'s>,
    metric: Metric,
    /// The search's end: past it the trial stops, mid-epoch if need be, and completes with its
    /// completed epochs (a network whose epochs take minutes must not overrun by one).
    deadline: Option<Instant>,
    /// The epochs the trial was to train (an epoch ending past the deadline before the last
    /// one cuts it).
    epochs: u32,
    on_epoch: Option<&'f (dyn Fn(u32, Option<f32>) + Sync)>,
    pub pruned: bool,
    /// Stopped by the deadline.
    pub cut: bool,
    pub error: Option<TrialError>,
}

impl<'t, 's, 'f> TrialReporter<'t, 's, 'f> {
    pub fn new(trial: &'t mut Trial<'s>, metric: Metric, epochs: u32) -> Self {
        TrialReporter {
            trial,
            metric,
            deadline: None,
            epochs,
            on_epoch: None,
            pruned: false,
            cut: false,
            error: None,
        }
    }

    /// Stops at `deadline`.
    pub fn until(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Also tells `on_epoch(epoch, value)` after each epoch (progress lines).
    pub fn telling(mut self, on_epoch: &'f (dyn Fn(u32, Option<f32>) + Sync)) -> Self {
        self.on_epoch = Some(on_epoch);
        self
    }

    pub fn trial(&mut self) -> &mut Trial<'s> {
        self.trial
    }

    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

impl TrainObserver for TrialReporter<'_, '_, '_> {
    fn on_epoch_end(&mut self, m: &EpochMetrics) {
        let value = m.val_scores().and_then(|s| self.metric.of(&s));
        if let Some(tell) = self.on_epoch {
            tell(m.epoch, value);
        }
        let Some(value) = value else { return };
        let outcome = self
            .trial
            .report(m.epoch, value as f64)
            .and_then(|()| self.trial.should_prune());
        match outcome {
            Ok(prune) => self.pruned = prune,
            Err(e) => self.error = Some(e),
        }
        if !self.pruned && self.past_deadline() && m.epoch < self.epochs {
            self.cut = true;
        }
    }

    fn should_stop(&mut self) -> bool {
        self.pruned || self.cut || self.error.is_some()
    }

    fn interrupt(&mut self) -> bool {
        if self.past_deadline() {
            self.cut = true;
        }
        self.cut
    }
}

/// Keeps what a trial's training measured (no test figures: a search never measures them)
/// as its [`REPORT_ATTR`], and a regression's validation predictions as [`PREDICTIONS_ATTR`].
pub fn record_report(trial: &mut Trial, r: &TrainReport) -> Result<(), TrialError> {
    let report = serde_json::json!({
        "val_accuracy": r.val_accuracy,
        "val_loss": r.val_loss,
        "val_rmse": r.val_rmse,
        "val_mae": r.val_mae,
        "val_r2": r.val_r2,
        "epochs_run": r.epochs_run,
        "best_epoch": r.best_epoch,
        "stopped_early": r.stopped_early,
        "train_seconds": r.train_seconds,
        "images_per_second": r.images_per_second,
        "params": r.params,
        "flops_per_example": r.flops_per_example,
        "inherited_tensors": r.inherited_tensors,
        "initial_val_accuracy": r.initial_val_accuracy,
    });
    trial.set_attr(REPORT_ATTR, report)?;
    let f = &r.footprint;
    trial.set_attr(
        ENERGY_ATTR,
        serde_json::json!({
            "joules": f.energy.joules,
            "cpu_seconds": f.energy.cpu_seconds,
            "method": f.energy.method,
            "co2e_grams": f.co2e_grams,
            "g_per_kwh": f.carbon_intensity.g_per_kwh,
        }),
    )?;
    if let Some(sample) = &r.val_sample {
        trial.set_attr(PREDICTIONS_ATTR, sample)?;
    }
    Ok(())
}

/// The trial's value: its validation `metric`, or a failure saying there was none.
pub fn trial_value(r: &TrainReport, metric: Metric) -> Result<f64, TrialError> {
    r.val_scores()
        .and_then(|s| metric.of(&s))
        .map(f64::from)
        .ok_or_else(|| {
            TrialError::failed(format!("training produced no validation {}", metric.name()))
        })
}
