//! Learning-rate schedules.
//!
//! [`LrSchedule`] is the config (TOML `schedule = { kind = "cosine", warmup_epochs = 2 }`);
//! [`LrScheduler`] is the stateful object the trainer asks for the rate before every optimizer
//! step ([`LrScheduler::lr_at`]) and tells about every finished epoch
//! ([`LrScheduler::on_epoch_end`], which only `reduce_on_plateau` uses). The scheduler is
//! `Serialize`/`Deserialize` so a checkpoint resumes it exactly.
//!
//! Counting conventions: `step` is the number of optimizer updates already applied (0 for the
//! first batch of training, like Keras' `optimizer.iterations`); `epoch` is 1-based (the first
//! epoch is 1), as in the trainer's metrics.

use serde::{Deserialize, Serialize};

use super::early_stopping::Monitor;

fn default_step_factor() -> f32 {
    0.5
}
fn default_plateau_factor() -> f32 {
    0.1
}
fn default_plateau_patience() -> u32 {
    10
}
fn default_plateau_min_delta() -> f32 {
    1e-4
}

/// A learning-rate schedule. `lr0` below is the configured base learning rate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LrSchedule {
    /// `lr0` throughout.
    #[default]
    Constant,
    /// Keras' legacy `decay`: `lr0 / (1 + decay * step)`, per optimizer step, not compounded.
    InverseTime { decay: f32 },
    /// `lr0 * rate^(step / every_steps)`; with `staircase` the exponent is floored (Keras
    /// `ExponentialDecay`).
    Exponential {
        rate: f32,
        every_steps: u64,
        #[serde(default)]
        staircase: bool,
    },
    /// `lr0 * factor^floor((epoch - 1) / every_epochs)`: the first `every_epochs` epochs run at
    /// `lr0`, the next at `lr0 * factor`, and so on. `factor` defaults to 0.5.
    Step {
        #[serde(default = "default_step_factor")]
        factor: f32,
        every_epochs: u32,
    },
    /// Linear warm-up over the first `warmup_epochs` epochs (counted in steps:
    /// `warmup_epochs * steps_per_epoch`, rising from `lr0 / warmup_steps` to `lr0`), then a
    /// half-cosine from `lr0` down to `min_lr` at the last step of training. Both default to 0.
    Cosine {
        #[serde(default)]
        warmup_epochs: u32,
        #[serde(default)]
        min_lr: f32,
    },
    /// Keras `ReduceLROnPlateau`: when `monitor` has not improved by more than `min_delta` for
    /// `patience` epochs, multiply the rate by `factor` (never below `min_lr`), then wait
    /// `cooldown` epochs before counting again. Defaults as Keras: monitor val_loss, factor 0.1,
    /// patience 10, min_delta 1e-4, cooldown 0, min_lr 0.
    ReduceOnPlateau {
        #[serde(default)]
        monitor: Monitor,
        #[serde(default = "default_plateau_factor")]
        factor: f32,
        #[serde(default = "default_plateau_patience")]
        patience: u32,
        #[serde(default = "default_plateau_min_delta")]
        min_delta: f32,
        #[serde(default)]
        min_lr: f32,
        #[serde(default)]
        cooldown: u32,
    },
}

impl LrSchedule {
    /// The config name of this kind (`constant`, `inverse_time`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            LrSchedule::Constant => "constant",
            LrSchedule::InverseTime { .. } => "inverse_time",
            LrSchedule::Exponential { .. } => "exponential",
            LrSchedule::Step { .. } => "step",
            LrSchedule::Cosine { .. } => "cosine",
            LrSchedule::ReduceOnPlateau { .. } => "reduce_on_plateau",
        }
    }

    /// Rejects nonsense settings; the message names the field and the accepted range.
    pub fn validate(&self) -> Result<(), String> {
        let kind = self.kind();
        let factor_in_unit = |name: &str, v: f32| {
            if v > 0.0 && v < 1.0 {
                Ok(())
            } else {
                Err(format!("{kind}: {name} must be in (0, 1), got {v}"))
            }
        };
        let non_negative = |name: &str, v: f32| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!("{kind}: {name} must be >= 0, got {v}"))
            }
        };
        match *self {
            LrSchedule::Constant => Ok(()),
            LrSchedule::InverseTime { decay } => non_negative("decay", decay),
            LrSchedule::Exponential {
                rate, every_steps, ..
            } => {
                if !(rate > 0.0 && rate <= 1.0) {
                    return Err(format!("{kind}: rate must be in (0, 1], got {rate}"));
                }
                if every_steps == 0 {
                    return Err(format!("{kind}: every_steps must be at least 1"));
                }
                Ok(())
            }
            LrSchedule::Step {
                factor,
                every_epochs,
            } => {
                factor_in_unit("factor", factor)?;
                if every_epochs == 0 {
                    return Err(format!("{kind}: every_epochs must be at least 1"));
                }
                Ok(())
            }
            LrSchedule::Cosine { min_lr, .. } => non_negative("min_lr", min_lr),
            LrSchedule::ReduceOnPlateau {
                factor,
                min_delta,
                min_lr,
                ..
            } => {
                factor_in_unit("factor", factor)?;
                non_negative("min_delta", min_delta)?;
                non_negative("min_lr", min_lr)
            }
        }
    }

    /// Checks the schedule against the base learning rate: a floor (`min_lr`) must be below it.
    pub fn validate_with_lr(&self, lr0: f32) -> Result<(), String> {
        self.validate()?;
        match *self {
            LrSchedule::Cosine { min_lr, .. } | LrSchedule::ReduceOnPlateau { min_lr, .. }
                if min_lr >= lr0 =>
            {
                Err(format!(
                    "{}: min_lr ({min_lr}) must be below the learning rate ({lr0})",
                    self.kind()
                ))
            }
            _ => Ok(()),
        }
    }
}

/// `reduce_on_plateau` bookkeeping (Keras' `best`, `wait`, `cooldown_counter`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Plateau {
    best: Option<f32>,
    wait: u32,
    cooldown_counter: u32,
}

/// The stateful scheduler the trainer uses. See the module docs for step/epoch numbering.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrScheduler {
    schedule: LrSchedule,
    lr0: f32,
    total_steps: u64,
    steps_per_epoch: u64,
    /// Current rate of `reduce_on_plateau` (starts at `lr0`); unused by other kinds.
    plateau_lr: f32,
    plateau: Plateau,
}

impl LrScheduler {
    /// `total_steps`: optimizer steps in the whole run (cosine's horizon); `steps_per_epoch`:
    /// for converting cosine's `warmup_epochs` into steps.
    pub fn new(schedule: LrSchedule, lr0: f32, total_steps: u64, steps_per_epoch: u64) -> Self {
        LrScheduler {
            schedule,
            lr0,
            total_steps,
            steps_per_epoch,
            plateau_lr: lr0,
            plateau: Plateau::default(),
        }
    }

    pub fn schedule(&self) -> &LrSchedule {
        &self.schedule
    }

    /// The base learning rate.
    pub fn base_lr(&self) -> f32 {
        self.lr0
    }

    /// Changes the horizon (e.g. when a resumed run is given more epochs). Only cosine uses it.
    pub fn set_total_steps(&mut self, total_steps: u64) {
        self.total_steps = total_steps;
    }

    /// The metric `on_epoch_end` expects, for `reduce_on_plateau`; `None` for the other kinds
    /// (which ignore the value).
    pub fn monitor(&self) -> Option<Monitor> {
        match self.schedule {
            LrSchedule::ReduceOnPlateau { monitor, .. } => Some(monitor),
            _ => None,
        }
    }

    /// The learning rate for the update after `step` updates, during `epoch` (1-based).
    pub fn lr_at(&self, step: u64, epoch: u32) -> f32 {
        let lr0 = self.lr0;
        match self.schedule {
            LrSchedule::Constant => lr0,
            // Computed in f32 like Keras (matches the TensorFlow fixture to the bit pattern).
            LrSchedule::InverseTime { decay } => lr0 * (1.0 / (1.0 + decay * step as f32)),
            LrSchedule::Exponential {
                rate,
                every_steps,
                staircase,
            } => {
                let mut p = step as f64 / every_steps.max(1) as f64;
                if staircase {
                    p = p.floor();
                }
                (lr0 as f64 * (rate as f64).powf(p)) as f32
            }
            LrSchedule::Step {
                factor,
                every_epochs,
            } => {
                let k = epoch.saturating_sub(1) / every_epochs.max(1);
                (lr0 as f64 * (factor as f64).powi(k as i32)) as f32
            }
            LrSchedule::Cosine {
                warmup_epochs,
                min_lr,
            } => {
                let warmup = warmup_epochs as u64 * self.steps_per_epoch;
                if step < warmup {
                    return (lr0 as f64 * (step + 1) as f64 / warmup as f64) as f32;
                }
                let span = self.total_steps.saturating_sub(warmup).max(1);
                // Reaches min_lr at the last step (step = total_steps - 1).
                let denom = span.saturating_sub(1).max(1);
                let progress = ((step - warmup) as f64 / denom as f64).min(1.0);
                let cos = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                (min_lr as f64 + (lr0 as f64 - min_lr as f64) * cos) as f32
            }
            LrSchedule::ReduceOnPlateau { .. } => self.plateau_lr,
        }
    }

    /// Tells the scheduler an epoch ended with the monitored `value` (see [`Self::monitor`];
    /// ignored unless the schedule is `reduce_on_plateau`). Returns a one-line message when the
    /// rate was reduced, for the trainer to show.
    pub fn on_epoch_end(&mut self, value: f32) -> Option<String> {
        let LrSchedule::ReduceOnPlateau {
            monitor,
            factor,
            patience,
            min_delta,
            min_lr,
            cooldown,
        } = self.schedule
        else {
            return None;
        };
        // Keras ReduceLROnPlateau.on_epoch_end.
        let p = &mut self.plateau;
        let in_cooldown = p.cooldown_counter > 0;
        if in_cooldown {
            p.cooldown_counter -= 1;
            p.wait = 0;
        }
        if monitor.improves(value, p.best, min_delta) {
            p.best = Some(value);
            p.wait = 0;
        } else if p.cooldown_counter == 0 {
            p.wait += 1;
            if p.wait >= patience {
                let old = self.plateau_lr;
                if old > min_lr {
                    let new = (old * factor).max(min_lr);
                    self.plateau_lr = new;
                    p.cooldown_counter = cooldown;
                    p.wait = 0;
                    let message = format!(
                        "{monitor} has not improved for {patience} epochs: learning rate {old:.3e} -> {new:.3e}"
                    );
                    tracing::debug!("{message}");
                    return Some(message);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const REFERENCE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../engine/tests/fixtures/tensorflow_reference.json"
    );

    #[test]
    fn inverse_time_matches_keras_reference() {
        let text = std::fs::read_to_string(REFERENCE)
            .unwrap_or_else(|e| panic!("reading {REFERENCE}: {e}"));
        let json: Value = serde_json::from_str(&text).unwrap();
        let cases: Vec<&Value> = json["cases"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["op"] == "lr_schedule")
            .collect();
        assert!(!cases.is_empty(), "no lr_schedule case in the reference");
        for case in cases {
            let h = &case["hparams"];
            assert_eq!(h["kind"], "inverse_time");
            let lr0 = h["lr0"].as_f64().unwrap() as f32;
            let decay = h["decay"].as_f64().unwrap() as f32;
            let s = LrScheduler::new(LrSchedule::InverseTime { decay }, lr0, 100_000, 100);
            let steps = case["steps"].as_array().unwrap();
            let lrs = case["lr"].as_array().unwrap();
            assert_eq!(steps.len(), lrs.len());
            for (step, want) in steps.iter().zip(lrs) {
                let step = step.as_u64().unwrap();
                let want = want.as_f64().unwrap();
                let got = s.lr_at(step, 1) as f64;
                let rel = (got - want).abs() / want;
                assert!(rel <= 1e-6, "step {step}: got {got}, Keras {want}");
            }
        }
    }

    #[test]
    fn serde_from_toml() {
        #[derive(Deserialize)]
        struct Wrap {
            schedule: LrSchedule,
        }
        let parse = |s: &str| toml::from_str::<Wrap>(s).map(|w| w.schedule);
        assert_eq!(
            parse(r#"schedule = { kind = "constant" }"#).unwrap(),
            LrSchedule::Constant
        );
        assert_eq!(
            parse(r#"schedule = { kind = "inverse_time", decay = 1e-6 }"#).unwrap(),
            LrSchedule::InverseTime { decay: 1e-6 }
        );
        assert_eq!(
            parse(r#"schedule = { kind = "cosine", warmup_epochs = 2 }"#).unwrap(),
            LrSchedule::Cosine {
                warmup_epochs: 2,
                min_lr: 0.0
            }
        );
        assert_eq!(
            parse(r#"schedule = { kind = "reduce_on_plateau", patience = 3 }"#).unwrap(),
            LrSchedule::ReduceOnPlateau {
                monitor: Monitor::ValLoss,
                factor: 0.1,
                patience: 3,
                min_delta: 1e-4,
                min_lr: 0.0,
                cooldown: 0
            }
        );
        assert_eq!(
            parse(r#"schedule = { kind = "step", every_epochs = 10 }"#).unwrap(),
            LrSchedule::Step {
                factor: 0.5,
                every_epochs: 10
            }
        );
        // Typos and missing required fields fail.
        assert!(parse(r#"schedule = { kind = "cosine", warmup = 2 }"#).is_err());
        assert!(parse(r#"schedule = { kind = "exponential", rate = 0.9 }"#).is_err());
        assert!(parse(r#"schedule = { kind = "linear" }"#).is_err());
        for s in [
            LrSchedule::Constant,
            LrSchedule::Exponential {
                rate: 0.9,
                every_steps: 100,
                staircase: true,
            },
            LrSchedule::ReduceOnPlateau {
                monitor: Monitor::ValAccuracy,
                factor: 0.5,
                patience: 2,
                min_delta: 0.0,
                min_lr: 1e-5,
                cooldown: 1,
            },
        ] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<LrSchedule>(&json).unwrap(), s);
        }
    }

    #[test]
    fn validation() {
        let bad = [
            LrSchedule::InverseTime { decay: -1.0 },
            LrSchedule::Exponential {
                rate: 1.5,
                every_steps: 10,
                staircase: false,
            },
            LrSchedule::Exponential {
                rate: 0.5,
                every_steps: 0,
                staircase: false,
            },
            LrSchedule::Step {
                factor: 0.0,
                every_epochs: 1,
            },
            LrSchedule::Step {
                factor: 0.5,
                every_epochs: 0,
            },
            LrSchedule::Cosine {
                warmup_epochs: 0,
                min_lr: -1.0,
            },
            LrSchedule::ReduceOnPlateau {
                monitor: Monitor::ValLoss,
                factor: 1.0,
                patience: 1,
                min_delta: 0.0,
                min_lr: 0.0,
                cooldown: 0,
            },
        ];
        for s in bad {
            let msg = s.validate().expect_err(&format!("{s:?}"));
            assert!(msg.starts_with(s.kind()), "{msg}");
        }
        let cos = LrSchedule::Cosine {
            warmup_epochs: 1,
            min_lr: 0.1,
        };
        assert!(cos.validate().is_ok());
        assert!(cos.validate_with_lr(0.01).is_err());
        assert!(cos.validate_with_lr(1.0).is_ok());
    }

    #[test]
    fn exponential_and_step() {
        let s = LrScheduler::new(
            LrSchedule::Exponential {
                rate: 0.5,
                every_steps: 10,
                staircase: false,
            },
            1.0,
            100,
            10,
        );
        assert_eq!(s.lr_at(0, 1), 1.0);
        assert!((s.lr_at(5, 1) - 0.5f32.sqrt()).abs() < 1e-6);
        assert!((s.lr_at(20, 3) - 0.25).abs() < 1e-7);
        let s = LrScheduler::new(
            LrSchedule::Exponential {
                rate: 0.5,
                every_steps: 10,
                staircase: true,
            },
            1.0,
            100,
            10,
        );
        assert_eq!(s.lr_at(9, 1), 1.0);
        assert_eq!(s.lr_at(10, 2), 0.5);
        assert_eq!(s.lr_at(29, 3), 0.25);

        let s = LrScheduler::new(
            LrSchedule::Step {
                factor: 0.1,
                every_epochs: 2,
            },
            1.0,
            100,
            10,
        );
        let lrs: Vec<f32> = (1..=5).map(|e| s.lr_at(0, e)).collect();
        assert_eq!(lrs[0], 1.0);
        assert_eq!(lrs[1], 1.0);
        assert!((lrs[2] - 0.1).abs() < 1e-7 && (lrs[3] - 0.1).abs() < 1e-7);
        assert!((lrs[4] - 0.01).abs() < 1e-8);
    }

    #[test]
    fn cosine_with_warmup() {
        // 2 warm-up epochs of 5 steps, 30 steps in all.
        let s = LrScheduler::new(
            LrSchedule::Cosine {
                warmup_epochs: 2,
                min_lr: 0.01,
            },
            1.0,
            30,
            5,
        );
        // Linear warm-up: 0.1, 0.2, ..., 1.0 over steps 0..10.
        for step in 0..10 {
            let want = (step + 1) as f32 / 10.0;
            assert!((s.lr_at(step, 1) - want).abs() < 1e-6);
        }
        assert_eq!(s.lr_at(10, 3), 1.0);
        // Monotone decay to min_lr exactly at the last step, and it stays there.
        let mut prev = 1.0;
        for step in 11..30 {
            let lr = s.lr_at(step, 3);
            assert!(lr < prev, "step {step}");
            prev = lr;
        }
        assert!((s.lr_at(29, 6) - 0.01).abs() < 1e-7);
        assert!((s.lr_at(100, 9) - 0.01).abs() < 1e-7);
        // Midpoint is halfway between lr0 and min_lr.
        let mid = LrScheduler::new(
            LrSchedule::Cosine {
                warmup_epochs: 0,
                min_lr: 0.0,
            },
            1.0,
            101,
            10,
        );
        assert_eq!(mid.lr_at(0, 1), 1.0);
        assert!((mid.lr_at(50, 5) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn reduce_on_plateau_keras_semantics() {
        let mut s = LrScheduler::new(
            LrSchedule::ReduceOnPlateau {
                monitor: Monitor::ValLoss,
                factor: 0.5,
                patience: 2,
                min_delta: 0.0,
                min_lr: 0.2,
                cooldown: 2,
            },
            1.0,
            1000,
            10,
        );
        assert_eq!(s.monitor(), Some(Monitor::ValLoss));
        let mut lrs = Vec::new();
        let mut messages = 0;
        // Improve, then flat forever.
        for (i, v) in [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
            .into_iter()
            .enumerate()
        {
            assert_eq!(
                s.lr_at(i as u64 * 10, i as u32 + 1),
                *lrs.last().unwrap_or(&1.0)
            );
            if s.on_epoch_end(v).is_some() {
                messages += 1;
            }
            lrs.push(s.lr_at(0, 0));
        }
        // Epoch 4: 2 epochs without improvement -> 0.5; cooldown 2 (as in Keras, epoch 5 does
        // not count, epoch 6 does), epochs 6, 7 -> 0.25; epochs 9, 10 -> max(0.125, 0.2) = 0.2.
        assert_eq!(
            lrs,
            vec![1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2]
        );
        assert_eq!(messages, 3);
        // At min_lr: no more reductions or messages.
        for _ in 0..10 {
            assert!(s.on_epoch_end(0.9).is_none());
        }
        assert_eq!(s.lr_at(0, 0), 0.2);

        // Accuracy monitor: higher is better.
        let mut s = LrScheduler::new(
            LrSchedule::ReduceOnPlateau {
                monitor: Monitor::ValAccuracy,
                factor: 0.1,
                patience: 1,
                min_delta: 0.0,
                min_lr: 0.0,
                cooldown: 0,
            },
            1.0,
            1000,
            10,
        );
        assert!(s.on_epoch_end(0.5).is_none());
        assert!(s.on_epoch_end(0.6).is_none());
        assert!(s.on_epoch_end(0.55).is_some());
        assert!((s.lr_at(0, 0) - 0.1).abs() < 1e-7);
    }

    #[test]
    fn other_kinds_ignore_epoch_end_and_state_round_trips() {
        let mut s = LrScheduler::new(LrSchedule::InverseTime { decay: 0.01 }, 0.1, 10, 1);
        assert!(s.on_epoch_end(1.0).is_none());
        assert_eq!(s.monitor(), None);

        let sched = LrSchedule::ReduceOnPlateau {
            monitor: Monitor::Loss,
            factor: 0.5,
            patience: 1,
            min_delta: 0.0,
            min_lr: 0.0,
            cooldown: 0,
        };
        let values = [1.0, 1.1, 0.8, 0.9, 0.95, 0.7, 0.71];
        let mut full = LrScheduler::new(sched.clone(), 1.0, 100, 10);
        let want: Vec<f32> = values
            .iter()
            .map(|&v| {
                full.on_epoch_end(v);
                full.lr_at(0, 0)
            })
            .collect();
        let mut first = LrScheduler::new(sched, 1.0, 100, 10);
        for &v in &values[..3] {
            first.on_epoch_end(v);
        }
        let mut resumed: LrScheduler =
            serde_json::from_str(&serde_json::to_string(&first).unwrap()).unwrap();
        for (i, &v) in values.iter().enumerate().skip(3) {
            resumed.on_epoch_end(v);
            assert_eq!(resumed.lr_at(0, 0), want[i]);
        }
        assert_eq!(resumed, full);
    }
}
