//! Dynamic batch size: grow the batch during training instead of (or besides) decaying the
//! learning rate (Smith et al., "Don't Decay the Learning Rate, Increase the Batch Size", 2018).
//!
//! [`BatchSchedule`] is the config (TOML `batch_schedule = { kind = "step", every_epochs = 5,
//! max = 256 }`); [`BatchSizer`] is the stateful object the trainer asks for the current size at
//! the start of each epoch and tells about each finished epoch. The batch never shrinks and never
//! exceeds `max` (if the initial size is already >= `max`, it stays as it is). `BatchSizer` is
//! `Serialize`/`Deserialize` so a checkpoint resumes it exactly.

use serde::{Deserialize, Serialize};

fn default_factor() -> u32 {
    2
}
fn default_patience() -> u32 {
    3
}

/// How the batch size changes over training. Epochs are 1-based, as in the trainer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BatchSchedule {
    /// The configured batch size throughout.
    #[default]
    Fixed,
    /// Multiply the size by `factor` (default 2) after every `every_epochs` epochs, up to `max`:
    /// epochs `1..=every_epochs` use the initial size.
    Step {
        #[serde(default = "default_factor")]
        factor: u32,
        every_epochs: u32,
        max: usize,
    },
    /// Multiply the size by `factor` (default 2), up to `max`, when the monitored loss (the
    /// validation loss, or the training loss without a validation split) has not improved by
    /// more than `min_delta` (default 0) for `patience` (default 3) epochs.
    OnPlateau {
        #[serde(default = "default_factor")]
        factor: u32,
        #[serde(default = "default_patience")]
        patience: u32,
        #[serde(default)]
        min_delta: f32,
        max: usize,
    },
}

impl BatchSchedule {
    /// The config name of this kind (`fixed`, `step`, `on_plateau`).
    pub fn kind(&self) -> &'static str {
        match self {
            BatchSchedule::Fixed => "fixed",
            BatchSchedule::Step { .. } => "step",
            BatchSchedule::OnPlateau { .. } => "on_plateau",
        }
    }

    /// Rejects nonsense settings; the message names the field and the accepted range.
    pub fn validate(&self) -> Result<(), String> {
        let kind = self.kind();
        let (factor, max) = match *self {
            BatchSchedule::Fixed => return Ok(()),
            BatchSchedule::Step {
                factor,
                every_epochs,
                max,
            } => {
                if every_epochs == 0 {
                    return Err(format!("{kind}: every_epochs must be at least 1"));
                }
                (factor, max)
            }
            BatchSchedule::OnPlateau {
                factor,
                patience,
                min_delta,
                max,
            } => {
                if patience == 0 {
                    return Err(format!("{kind}: patience must be at least 1"));
                }
                if !(min_delta.is_finite() && min_delta >= 0.0) {
                    return Err(format!("{kind}: min_delta must be >= 0, got {min_delta}"));
                }
                (factor, max)
            }
        };
        if factor < 2 {
            return Err(format!("{kind}: factor must be at least 2, got {factor}"));
        }
        if max == 0 {
            return Err(format!("{kind}: max must be at least 1"));
        }
        Ok(())
    }

    /// Checks the schedule against the initial batch size: `max` must exceed it, or the
    /// schedule would never do anything.
    pub fn validate_with_batch_size(&self, initial: usize) -> Result<(), String> {
        self.validate()?;
        match *self {
            BatchSchedule::Step { max, .. } | BatchSchedule::OnPlateau { max, .. }
                if max <= initial =>
            {
                Err(format!(
                    "{}: max ({max}) must be larger than the batch size ({initial})",
                    self.kind()
                ))
            }
            _ => Ok(()),
        }
    }
}

/// The stateful batch sizer the trainer uses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchSizer {
    schedule: BatchSchedule,
    initial: usize,
    current: usize,
    /// `on_plateau`: best loss so far and epochs since it improved.
    best: Option<f32>,
    wait: u32,
}

impl BatchSizer {
    pub fn new(schedule: BatchSchedule, initial: usize) -> BatchSizer {
        BatchSizer {
            schedule,
            initial,
            current: initial,
            best: None,
            wait: 0,
        }
    }

    pub fn schedule(&self) -> &BatchSchedule {
        &self.schedule
    }

    /// The batch size to use for the next epoch.
    pub fn current(&self) -> usize {
        self.current
    }

    /// Tells the sizer that `epoch` (1-based) ended with loss `val_loss` (lower is better; only
    /// `on_plateau` reads it, NaN never improves). Returns the new size if it changed.
    pub fn on_epoch_end(&mut self, epoch: u32, val_loss: f32) -> Option<usize> {
        let next = match self.schedule {
            BatchSchedule::Fixed => self.current,
            BatchSchedule::Step {
                factor,
                every_epochs,
                max,
            } => {
                let k = epoch / every_epochs.max(1);
                let mut size = self.initial;
                for _ in 0..k {
                    if size >= max {
                        break;
                    }
                    size = size.saturating_mul(factor as usize).min(max);
                }
                size.max(self.current)
            }
            BatchSchedule::OnPlateau {
                factor,
                patience,
                min_delta,
                max,
            } => {
                let improved =
                    !val_loss.is_nan() && self.best.is_none_or(|best| val_loss + min_delta < best);
                if improved {
                    self.best = Some(val_loss);
                    self.wait = 0;
                    self.current
                } else {
                    self.wait += 1;
                    if self.wait >= patience && self.current < max {
                        self.wait = 0;
                        self.current.saturating_mul(factor as usize).min(max)
                    } else {
                        self.current
                    }
                }
            }
        };
        if next != self.current {
            self.current = next;
            Some(next)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Wrap {
        batch_schedule: BatchSchedule,
    }

    fn parse(s: &str) -> Result<BatchSchedule, toml::de::Error> {
        toml::from_str::<Wrap>(s).map(|w| w.batch_schedule)
    }

    #[test]
    fn serde_names_defaults_and_typos() {
        assert_eq!(
            parse(r#"batch_schedule = { kind = "fixed" }"#).unwrap(),
            BatchSchedule::Fixed
        );
        assert_eq!(
            parse(r#"batch_schedule = { kind = "step", every_epochs = 5, max = 256 }"#).unwrap(),
            BatchSchedule::Step {
                factor: 2,
                every_epochs: 5,
                max: 256
            }
        );
        assert_eq!(
            parse(r#"batch_schedule = { kind = "on_plateau", max = 512 }"#).unwrap(),
            BatchSchedule::OnPlateau {
                factor: 2,
                patience: 3,
                min_delta: 0.0,
                max: 512
            }
        );
        assert!(parse(r#"batch_schedule = { kind = "step", every = 5, max = 256 }"#).is_err());
        assert!(parse(r#"batch_schedule = { kind = "step", every_epochs = 5 }"#).is_err());
        assert!(parse(r#"batch_schedule = { kind = "linear" }"#).is_err());
        let s = BatchSchedule::OnPlateau {
            factor: 4,
            patience: 1,
            min_delta: 0.01,
            max: 64,
        };
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""kind":"on_plateau""#), "{json}");
        assert_eq!(serde_json::from_str::<BatchSchedule>(&json).unwrap(), s);
    }

    #[test]
    fn validation() {
        assert!(BatchSchedule::Fixed.validate().is_ok());
        let bad = [
            BatchSchedule::Step {
                factor: 1,
                every_epochs: 1,
                max: 64,
            },
            BatchSchedule::Step {
                factor: 2,
                every_epochs: 0,
                max: 64,
            },
            BatchSchedule::Step {
                factor: 2,
                every_epochs: 1,
                max: 0,
            },
            BatchSchedule::OnPlateau {
                factor: 2,
                patience: 0,
                min_delta: 0.0,
                max: 64,
            },
            BatchSchedule::OnPlateau {
                factor: 2,
                patience: 1,
                min_delta: -1.0,
                max: 64,
            },
        ];
        for s in bad {
            let msg = s.validate().expect_err(&format!("{s:?}"));
            assert!(msg.starts_with(s.kind()), "{msg}");
        }
        let s = BatchSchedule::Step {
            factor: 2,
            every_epochs: 1,
            max: 64,
        };
        assert!(s.validate_with_batch_size(32).is_ok());
        assert!(s.validate_with_batch_size(64).is_err());
    }

    #[test]
    fn fixed_never_changes() {
        let mut b = BatchSizer::new(BatchSchedule::Fixed, 32);
        for e in 1..20 {
            assert_eq!(b.on_epoch_end(e, 1.0), None);
        }
        assert_eq!(b.current(), 32);
    }

    #[test]
    fn step_grows_every_n_epochs_up_to_max() {
        let mut b = BatchSizer::new(
            BatchSchedule::Step {
                factor: 2,
                every_epochs: 2,
                max: 100,
            },
            16,
        );
        let mut sizes = vec![b.current()];
        let mut changes = Vec::new();
        for e in 1..=10 {
            if let Some(s) = b.on_epoch_end(e, 1.0) {
                changes.push((e, s));
            }
            sizes.push(b.current());
        }
        // Size used in epochs 1..=11.
        assert_eq!(sizes, vec![16, 16, 32, 32, 64, 64, 100, 100, 100, 100, 100]);
        assert_eq!(changes, vec![(2, 32), (4, 64), (6, 100)]);
    }

    #[test]
    fn on_plateau_grows_when_loss_stalls() {
        let mut b = BatchSizer::new(
            BatchSchedule::OnPlateau {
                factor: 2,
                patience: 2,
                min_delta: 0.0,
                max: 128,
            },
            32,
        );
        let losses = [1.0, 0.8, 0.8, 0.85, 0.7, 0.71, f32::NAN, 0.7, 0.7, 0.7, 0.7];
        let got: Vec<Option<usize>> = losses
            .iter()
            .enumerate()
            .map(|(i, &l)| b.on_epoch_end(i as u32 + 1, l))
            .collect();
        assert_eq!(
            got,
            vec![
                None,
                None,
                None,
                Some(64),
                None,
                None,
                Some(128),
                None,
                None,
                None,
                None
            ]
        );
        assert_eq!(b.current(), 128);
    }

    #[test]
    fn state_round_trip_resumes_identically() {
        let sched = BatchSchedule::OnPlateau {
            factor: 2,
            patience: 1,
            min_delta: 0.0,
            max: 1024,
        };
        let losses = [1.0, 0.9, 0.95, 0.8, 0.85, 0.9, 0.7];
        let mut full = BatchSizer::new(sched.clone(), 8);
        let want: Vec<Option<usize>> = losses
            .iter()
            .enumerate()
            .map(|(i, &l)| full.on_epoch_end(i as u32 + 1, l))
            .collect();
        let mut first = BatchSizer::new(sched, 8);
        for (i, &l) in losses[..3].iter().enumerate() {
            first.on_epoch_end(i as u32 + 1, l);
        }
        let mut resumed: BatchSizer =
            serde_json::from_str(&serde_json::to_string(&first).unwrap()).unwrap();
        for (i, &l) in losses.iter().enumerate().skip(3) {
            assert_eq!(resumed.on_epoch_end(i as u32 + 1, l), want[i]);
        }
        assert_eq!(resumed, full);
    }
}
