//! What a study's trials cost: each trial's `energy` attr (`tune::ENERGY_ATTR`, written when it
//! trained, on whichever machine) and their sum.

use serde::Serialize;

use crate::search::FrozenTrial;
use crate::tune::ENERGY_ATTR;

/// The trials' energy together.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StudyEnergy {
    pub joules: f64,
    pub co2e_grams: f64,
    /// Trials that recorded their energy (a failed trial, or one from before the meter, has
    /// none).
    pub trials: usize,
    /// How the figures were obtained (`estimate`, `rapl`), each once.
    pub methods: Vec<String>,
}

impl StudyEnergy {
    /// `41.2 kJ over 8 trials (estimate), 5.4 g CO2e`: what `studies show`, the report and
    /// `auto` print.
    pub fn summary(&self) -> String {
        format!(
            "{} over {} trials ({}), {} CO2e",
            crate::energy::format_joules(self.joules),
            self.trials,
            self.methods.join(", "),
            crate::energy::format_grams(self.co2e_grams)
        )
    }
}

/// A trial's training energy in joules, if it recorded one.
pub fn trial_joules(t: &FrozenTrial) -> Option<f64> {
    t.attrs
        .get(ENERGY_ATTR)?
        .get("joules")?
        .as_f64()
        .filter(|j| j.is_finite() && *j >= 0.0)
}

/// The sum over every trial that recorded its energy; `None` when none did.
pub fn trials_energy(trials: &[FrozenTrial]) -> Option<StudyEnergy> {
    let mut total = StudyEnergy {
        joules: 0.0,
        co2e_grams: 0.0,
        trials: 0,
        methods: Vec::new(),
    };
    for t in trials {
        let Some(joules) = trial_joules(t) else {
            continue;
        };
        let attr = &t.attrs[ENERGY_ATTR];
        total.joules += joules;
        total.co2e_grams += attr
            .get("co2e_grams")
            .and_then(|g| g.as_f64())
            .unwrap_or(0.0);
        total.trials += 1;
        if let Some(m) = attr.get("method").and_then(|m| m.as_str()) {
            if !total.methods.iter().any(|k| k == m) {
                total.methods.push(m.to_string());
            }
        }
    }
    (total.trials > 0).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testing::{study, trial};
    use crate::search::{Direction, TrialState};

    #[test]
    fn sums_the_trials_that_recorded_energy() {
        let metered = |n: u64, j: f64, method: &str| {
            let mut t = trial(n, TrialState::Complete, Some(0.9));
            t.attrs.insert(
                ENERGY_ATTR.into(),
                serde_json::json!({"joules": j, "method": method, "co2e_grams": j / 3.6e6 * 475.0}),
            );
            t
        };
        let data = study(
            Direction::Maximize,
            vec![
                metered(0, 1000.0, "estimate"),
                metered(1, 500.0, "rapl"),
                metered(2, 250.0, "estimate"),
                trial(3, TrialState::Failed, None),
            ],
        );
        let e = trials_energy(&data.trials).unwrap();
        assert_eq!(e.joules, 1750.0);
        assert_eq!(e.trials, 3);
        assert_eq!(e.methods, ["estimate", "rapl"]);
        assert!((e.co2e_grams - 1750.0 / 3.6e6 * 475.0).abs() < 1e-12);
        assert_eq!(trial_joules(&data.trials[3]), None);
        assert!(trials_energy(&[trial(0, TrialState::Complete, Some(1.0))]).is_none());
    }
}
