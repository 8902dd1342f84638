//! Progress on stderr: a bar per epoch with loss, accuracy and images/s, then one summary line
//! per epoch (kept in logs even when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};
use modelsmith::energy::{forecast, format_joules};
use modelsmith::task::significant;
use modelsmith::train::{EpochMetrics, StartInfo, TrainObserver};

pub struct ProgressReporter {
    enabled: bool,
    bar: Option<ProgressBar>,
    /// The first epoch of this run and the last it may reach: the energy forecast's span.
    epochs: (u32, u32),
}

impl ProgressReporter {
    pub fn new(enabled: bool) -> ProgressReporter {
        ProgressReporter {
            enabled,
            bar: None,
            epochs: (1, 1),
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

impl TrainObserver for ProgressReporter {
    fn on_start(&mut self, info: &StartInfo) {
        self.epochs = (info.first_epoch, info.epochs);
        if self.enabled {
            self.say(&format!(
                "model: {} params, {:.1} MFLOPs/example; {} training and {} validation examples",
                info.params,
                2.0 * info.macs_per_example as f64 / 1e6,
                info.train_examples,
                info.val_examples
            ));
        }
    }

    fn on_epoch_start(&mut self, epoch: u32, epochs: u32, batches: usize) {
        if !self.enabled {
            return;
        }
        let bar = ProgressBar::new(batches as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} (eta {eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{epochs}"));
        self.bar = Some(bar);
    }

    fn on_batch(&mut self, batch: usize, loss: f32, accuracy: Option<f32>, images_per_second: f64) {
        if let Some(bar) = &self.bar {
            bar.set_position(batch as u64);
            if batch.is_multiple_of(20) {
                let acc = accuracy.map_or(String::new(), |a| format!(" acc {:.2}%", a * 100.0));
                bar.set_message(format!(
                    "loss {loss:.4}{acc} {images_per_second:.0} examples/s"
                ));
            }
        }
    }

    fn on_epoch_end(&mut self, m: &EpochMetrics) {
        self.finish();
        if !self.enabled {
            return;
        }
        let val = match m.val_scores() {
            Some(s) if s.accuracy.is_some() => format!(
                "  val_loss {:.4}  val_acc {:.2}%",
                s.loss,
                s.accuracy.unwrap_or(f32::NAN) * 100.0
            ),
            Some(s) => format!(
                "  val_loss {:.4}  val_rmse {}  val_r2 {:.4}",
                s.loss,
                significant(s.rmse.unwrap_or(f32::NAN)),
                s.r2.unwrap_or(f32::NAN)
            ),
            None => String::new(),
        };
        let acc = m
            .accuracy
            .map_or(String::new(), |a| format!("  acc {:.2}%", a * 100.0));
        // Energy so far and, while epochs remain, where the run is heading if it runs them all.
        let (first, last) = self.epochs;
        let done = (m.epoch + 1).saturating_sub(first);
        let total = (last + 1).saturating_sub(first);
        let energy = match (
            m.joules,
            m.joules
                .and_then(|j| forecast(j, done as f64, total as f64)),
        ) {
            (Some(j), Some(all)) if done < total => format!(
                "  {} (≤ {} for {last} epochs)",
                format_joules(j),
                format_joules(all)
            ),
            (Some(j), _) => format!("  {}", format_joules(j)),
            _ => String::new(),
        };
        self.say(&format!(
            "epoch {:>3}  loss {:.4}{acc}{val}  lr {:.3e}  batch {}  {:.1}s  {:.0} examples/s{energy}",
            m.epoch, m.loss, m.lr, m.batch_size, m.seconds, m.images_per_second
        ));
    }

    fn on_message(&mut self, message: &str) {
        if self.enabled {
            self.say(message);
        }
    }
}
