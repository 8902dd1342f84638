//! The live view of a study on stderr: one line per finished trial (number, state, value,
//! best so far, parameters) under a bar with the trial count, pruned count and ETA.

use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use modelsmith::search::{FrozenTrial, StudyObserver, TrialState};

pub struct StudyProgress {
    enabled: bool,
    bar: Option<ProgressBar>,
    metric: &'static str,
    started: Instant,
    pruned: Mutex<u64>,
}

impl StudyProgress {
    pub fn new(enabled: bool, target: u64, done: u64, metric: &'static str) -> StudyProgress {
        let bar = enabled.then(|| {
            let bar = ProgressBar::new(target);
            bar.set_style(
                ProgressStyle::with_template(
                    "trials {pos}/{len} [{bar:30}] {elapsed_precise} ETA {eta}  {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_position(done.min(target));
            bar.reset_eta();
            bar
        });
        StudyProgress {
            enabled,
            bar,
            metric,
            started: Instant::now(),
            pruned: Mutex::new(0),
        }
    }

    pub fn say(&self, line: &str) {
        if !self.enabled {
            return;
        }
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl StudyObserver for StudyProgress {
    fn on_trial_end(&self, t: &FrozenTrial, best: Option<&FrozenTrial>) {
        if !self.enabled {
            return;
        }
        let params: Vec<String> = t
            .param_values()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let seconds = t.duration_seconds().unwrap_or(0.0);
        let outcome = match t.state {
            TrialState::Complete => format!(
                "complete  {} {:.4}",
                self.metric,
                t.value.unwrap_or(f64::NAN)
            ),
            TrialState::Pruned => {
                let (step, v) = t.last_intermediate().unwrap_or((0, f64::NAN));
                format!("pruned at epoch {step}  {} {v:.4}", self.metric)
            }
            _ => format!("failed    {}", t.error.as_deref().unwrap_or("(no message)")),
        };
        let best_text = best.map_or(String::new(), |b| {
            format!("  best {:.4} (#{})", b.value.unwrap_or(f64::NAN), b.number)
        });
        self.say(&format!(
            "trial {:>3}  {outcome}{best_text}  {seconds:.1}s  {}",
            t.number,
            params.join(" ")
        ));
        let mut pruned = self.pruned.lock().unwrap_or_else(|p| p.into_inner());
        if t.state == TrialState::Pruned {
            *pruned += 1;
        }
        if let Some(bar) = &self.bar {
            if t.state != TrialState::Failed {
                bar.inc(1);
            }
            let best = best.map_or("-".into(), |b| {
                format!("{:.4}", b.value.unwrap_or(f64::NAN))
            });
            bar.set_message(format!(
                "best {} {best}  pruned {}  {:.0}s",
                self.metric,
                *pruned,
                self.started.elapsed().as_secs_f64()
            ));
        }
    }

    fn on_message(&self, message: &str) {
        self.say(message);
    }
}
