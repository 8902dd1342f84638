//! Parameter distributions: what one hyperparameter may take, and its internal representation.
//!
//! Samplers work on one number per parameter (the *internal* value): the float itself, the
//! integer as `f64`, or the index of a categorical choice. [`Distribution::to_external`] turns
//! it back into the [`ParamValue`] the objective sees.

use serde::{Deserialize, Serialize};

/// A value of a hyperparameter as the objective sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl ParamValue {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Int(i) => Some(*i as f64),
            ParamValue::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("param values serialize")
    }
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{}", format_float(*x)),
            ParamValue::Str(s) => write!(f, "{s}"),
        }
    }
}

/// Short, readable floats: 0.0123, 1.2e-5.
pub fn format_float(x: f64) -> String {
    if x == 0.0 || (1e-3..1e4).contains(&x.abs()) {
        let s = format!("{x:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{x:.3e}")
    }
}

impl From<bool> for ParamValue {
    fn from(v: bool) -> Self {
        ParamValue::Bool(v)
    }
}
impl From<i64> for ParamValue {
    fn from(v: i64) -> Self {
        ParamValue::Int(v)
    }
}
impl From<f64> for ParamValue {
    fn from(v: f64) -> Self {
        ParamValue::Float(v)
    }
}
impl From<&str> for ParamValue {
    fn from(v: &str) -> Self {
        ParamValue::Str(v.to_string())
    }
}
impl From<String> for ParamValue {
    fn from(v: String) -> Self {
        ParamValue::Str(v)
    }
}

/// The set a parameter is drawn from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Distribution {
    /// `low..=high`; `log` samples uniformly in log space; `step` discretizes (not with `log`).
    Float {
        low: f64,
        high: f64,
        #[serde(default)]
        log: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<f64>,
    },
    /// `low..=high` in multiples of `step` from `low`; `log` needs `step = 1`.
    Int {
        low: i64,
        high: i64,
        #[serde(default)]
        log: bool,
        #[serde(default = "one")]
        step: i64,
    },
    /// One of `choices` (internally its index). A bool is `[false, true]`.
    Categorical { choices: Vec<ParamValue> },
}

fn one() -> i64 {
    1
}

impl Distribution {
    pub fn float(low: f64, high: f64) -> Self {
        Distribution::Float {
            low,
            high,
            log: false,
            step: None,
        }
    }
    pub fn float_log(low: f64, high: f64) -> Self {
        Distribution::Float {
            low,
            high,
            log: true,
            step: None,
        }
    }
    pub fn int(low: i64, high: i64) -> Self {
        Distribution::Int {
            low,
            high,
            log: false,
            step: 1,
        }
    }
    pub fn categorical(choices: Vec<ParamValue>) -> Self {
        Distribution::Categorical { choices }
    }
    pub fn bool() -> Self {
        Distribution::Categorical {
            choices: vec![ParamValue::Bool(false), ParamValue::Bool(true)],
        }
    }

    /// Checks the bounds; the message says what is wrong (the caller adds the parameter name).
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Distribution::Float {
                low,
                high,
                log,
                step,
            } => {
                if !low.is_finite() || !high.is_finite() {
                    return Err(format!("bounds must be finite, got [{low}, {high}]"));
                }
                if low > high {
                    return Err(format!("empty range: low {low} > high {high}"));
                }
                if log && low <= 0.0 {
                    return Err(format!("a log range needs low > 0, got {low}"));
                }
                if let Some(s) = step {
                    if log {
                        return Err("step cannot be combined with log".into());
                    }
                    if !(s > 0.0 && s.is_finite()) {
                        return Err(format!("step must be > 0, got {s}"));
                    }
                }
                Ok(())
            }
            Distribution::Int {
                low,
                high,
                log,
                step,
            } => {
                if low > high {
                    return Err(format!("empty range: low {low} > high {high}"));
                }
                if step < 1 {
                    return Err(format!("step must be >= 1, got {step}"));
                }
                if log && low < 1 {
                    return Err(format!("a log range needs low >= 1, got {low}"));
                }
                if log && step != 1 {
                    return Err("step cannot be combined with log".into());
                }
                Ok(())
            }
            Distribution::Categorical { ref choices } => {
                if choices.is_empty() {
                    return Err("needs at least one choice".into());
                }
                for (i, a) in choices.iter().enumerate() {
                    if choices[..i].contains(a) {
                        return Err(format!("choice {a} is listed twice"));
                    }
                }
                Ok(())
            }
        }
    }

    pub fn is_categorical(&self) -> bool {
        matches!(self, Distribution::Categorical { .. })
    }

    pub fn is_log(&self) -> bool {
        match self {
            Distribution::Float { log, .. } | Distribution::Int { log, .. } => *log,
            Distribution::Categorical { .. } => false,
        }
    }

    /// True when only one value is possible (samplers need not model it).
    pub fn is_single(&self) -> bool {
        match *self {
            Distribution::Float { low, high, .. } => low == high,
            Distribution::Int {
                low, high, step, ..
            } => high - low < step,
            Distribution::Categorical { ref choices } => choices.len() == 1,
        }
    }

    /// The internal bounds `(low, high)`: for a categorical `(0, n - 1)`. Ints and steps:
    /// the largest reachable value.
    pub fn internal_bounds(&self) -> (f64, f64) {
        match *self {
            Distribution::Float {
                low, high, step, ..
            } => match step {
                Some(s) => (low, low + ((high - low) / s + 1e-9).floor() * s),
                None => (low, high),
            },
            Distribution::Int {
                low, high, step, ..
            } => (low as f64, (low + (high - low) / step * step) as f64),
            Distribution::Categorical { ref choices } => (0.0, (choices.len() - 1) as f64),
        }
    }

    /// Number of distinct values, or `None` for a continuous range.
    pub fn cardinality(&self) -> Option<u64> {
        match *self {
            Distribution::Float {
                low, high, step, ..
            } => step.map(|s| ((high - low) / s + 1e-9).floor() as u64 + 1),
            Distribution::Int {
                low, high, step, ..
            } => Some(((high - low) / step) as u64 + 1),
            Distribution::Categorical { ref choices } => Some(choices.len() as u64),
        }
    }

    /// Snaps any number into the distribution: clamps to the bounds and rounds to the step,
    /// the integer, or the nearest category index. Samplers call this on what they propose.
    pub fn snap(&self, internal: f64) -> f64 {
        let (lo, hi) = self.internal_bounds();
        let x = if internal.is_nan() { lo } else { internal };
        let x = x.clamp(lo, hi);
        match *self {
            Distribution::Float { low, step, .. } => match step {
                Some(s) => (low + ((x - low) / s).round() * s).clamp(lo, hi),
                None => x,
            },
            Distribution::Int { low, step, .. } => {
                let (low, step) = (low as f64, step as f64);
                (low + ((x - low) / step).round() * step).clamp(lo, hi)
            }
            Distribution::Categorical { .. } => x.round(),
        }
    }

    /// True when `internal` is a value this distribution can produce.
    pub fn contains(&self, internal: f64) -> bool {
        internal.is_finite() && self.snap(internal) == internal
    }

    /// The value the objective sees for an internal value.
    pub fn to_external(&self, internal: f64) -> ParamValue {
        match self {
            Distribution::Float { .. } => ParamValue::Float(internal),
            Distribution::Int { .. } => ParamValue::Int(internal.round() as i64),
            Distribution::Categorical { choices } => {
                choices[(internal.round().max(0.0) as usize).min(choices.len() - 1)].clone()
            }
        }
    }

    /// The internal value of an external one, if it belongs to the distribution.
    pub fn to_internal(&self, value: &ParamValue) -> Option<f64> {
        let internal = match self {
            Distribution::Categorical { choices } => {
                choices.iter().position(|c| c == value)? as f64
            }
            _ => value.as_f64()?,
        };
        self.contains(internal).then_some(internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapping_respects_steps_ints_and_categories() {
        let d = Distribution::Float {
            low: 0.0,
            high: 1.0,
            log: false,
            step: Some(0.25),
        };
        assert_eq!(d.snap(0.3), 0.25);
        assert_eq!(d.snap(7.0), 1.0);
        assert_eq!(d.cardinality(), Some(5));
        let i = Distribution::Int {
            low: 16,
            high: 100,
            log: false,
            step: 16,
        };
        assert_eq!(i.internal_bounds(), (16.0, 96.0));
        assert_eq!(i.snap(40.0), 48.0);
        assert_eq!(i.to_external(48.0), ParamValue::Int(48));
        let c = Distribution::categorical(vec!["sgd".into(), "adam".into()]);
        assert_eq!(c.to_external(c.snap(0.7)), ParamValue::Str("adam".into()));
        assert_eq!(c.to_internal(&"sgd".into()), Some(0.0));
        assert_eq!(c.to_internal(&"lion".into()), None);
    }

    #[test]
    fn invalid_distributions_are_explained() {
        assert!(Distribution::float(1.0, 0.0)
            .validate()
            .unwrap_err()
            .contains("empty range"));
        assert!(Distribution::float_log(0.0, 1.0)
            .validate()
            .unwrap_err()
            .contains("log"));
        assert!(Distribution::categorical(vec![])
            .validate()
            .unwrap_err()
            .contains("at least one"));
        assert!(
            Distribution::categorical(vec![ParamValue::Int(1), ParamValue::Int(1)])
                .validate()
                .is_err()
        );
    }
}
