//! A cross-validated table's final model as an ensemble: the best trial's settings refit on
//! every training row from several seeds, averaged in one network
//! ([`crate::arch::ensemble`]), tested once.
//!
//! Why: on a table of a few hundred rows one refit's test score moves by whole points with its
//! seed (a test row is 0.3–3 points), more than the differences between the best trials; the
//! mean of a few refits moves far less. The members cost the refit's epochs each, so only as
//! many as fit the time left are trained (each one's time, measured, sizes the next).

use std::path::Path;
use std::time::Instant;

use super::finalize::{record_test_figures, FinalModel, FinalProgress, Finalizer};
use crate::arch::ensemble::{ensemble_genome, ensemble_weights};
use crate::arch::{Genome, TableGenome};
use crate::deploy::{export, ExportFormat};
use crate::model::{build_network, load_model, load_weights, read_weights_file, save_model};
use crate::search::FrozenTrial;
use crate::train::{evaluate, TrainConfig};
use crate::tune::{final_fit, FinalLength};
use crate::Result;

use super::measure;

impl Finalizer<'_> {
    /// Trains up to `members` refits of `config` (seeds `config.seed`, +1, …) for `length`,
    /// merges them into one network saved to `out`, and tests, measures and exports it. A
    /// member starts only if one more of the last one's duration fits before `hard_stop`; one
    /// the deadline cut short anyway is left out (the first is always kept).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fit_ensemble(
        &self,
        best: &FrozenTrial,
        table: &TableGenome,
        config: &TrainConfig,
        length: FinalLength,
        members: usize,
        hard_stop: Instant,
        out: &Path,
    ) -> Result<FinalModel> {
        let epochs = length.epochs();
        self.observer.on_message(&format!(
            "final: trial {} ({}) refit on train+validation for {epochs} epoch(s), {members} seeds averaged",
            best.number,
            Genome::Table(table.clone())
        ));
        let root = self.artifacts.root().join("final-members");
        let mut weights = Vec::with_capacity(members);
        let mut first_dir = None;
        let mut train_seconds = 0.0;
        for k in 0..members {
            let dir = root.join(format!("member-{k}"));
            let member = TrainConfig {
                seed: config.seed.wrapping_add(k as u64),
                ..config.clone()
            };
            let started = Instant::now();
            let mut progress = FinalProgress {
                observer: self.observer,
                epochs,
                hard_stop,
            };
            let report = final_fit(&member, length, None, self.data, &dir, false, &mut progress)?;
            train_seconds += report.train_seconds;
            if k > 0 && report.epochs_run < epochs {
                self.observer.on_message(&format!(
                    "final: seed {k} cut short by the budget after {} of {epochs} epochs: left out",
                    report.epochs_run
                ));
                break;
            }
            let path = dir.join("weights.safetensors");
            weights.push(read_weights_file(&path)?);
            first_dir.get_or_insert(dir);
            // Another member takes about as long as this one did: start it only if it fits.
            if Instant::now() + started.elapsed() >= hard_stop {
                break;
            }
        }
        let first_dir = first_dir.expect("the first member is always kept");
        let merged = ensemble_weights(table, &weights)?;
        let wide = Genome::Table(ensemble_genome(table, weights.len()));
        let spec = wide.to_spec(self.input_shape, self.output);

        // The first member's folder, with the ensemble's network in place of its own.
        let (mut meta, _) = load_model(&first_dir)?;
        let mut net = build_network(&spec, &meta.input_shape, meta.outputs, config.seed)?;
        load_weights(&mut net, &merged, &first_dir)?;
        let task = &self.data.info.task;
        let test = evaluate(
            &mut net,
            &self.data.test,
            task,
            config.effective_loss(task)?,
        );
        meta.spec = spec;
        meta.params = net.param_count();
        meta.macs_per_example = net.macs_per_example();
        record_test_figures(&mut meta, &test);
        if let Some(m) = meta.metrics.as_object_mut() {
            m.insert("ensemble_members".into(), weights.len().into());
        }
        save_model(out, &meta, &net)?;
        let _ = std::fs::remove_dir_all(&root);

        let latency_ms = measure::latency(out, self.config.energy.cpu_watts)?.ms;
        let onnx = out.join("model.onnx");
        export(out, ExportFormat::Onnx, &onnx)?;
        let genome = Genome::Table(table.clone());
        Ok(FinalModel {
            trial: best.number,
            architecture: format!("{} × ({genome})", weights.len()),
            params: meta.params,
            flops: 2 * meta.macs_per_example,
            latency_ms,
            metric: self.metric.name(),
            val_value: best.value.unwrap_or(f64::NAN),
            test,
            epochs,
            train_seconds,
            members: weights.len(),
            start: "scratch (refit on every training row)".into(),
            out: out.to_path_buf(),
            onnx,
        })
    }
}
