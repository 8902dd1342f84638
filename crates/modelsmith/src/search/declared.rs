//! A search space declared up front (the `[space]` table of a tune config), with fixed values
//! and conditional parameters, sampled through the define-by-run [`Trial`] API.
//!
//! ```toml
//! [space]
//! optimizer  = { choices = ["sgd", "adam", "rmsprop"] }
//! lr         = { low = 1e-4, high = 0.1, log = true }
//! batch_size = { choices = [32, 64, 128] }
//! momentum   = { low = 0.5, high = 0.99, when = { optimizer = "sgd" } }
//! epochs     = 8                      # a fixed value
//! nesterov   = { type = "bool" }
//! ```

use std::collections::BTreeMap;

use serde::Serialize;

use super::study::TrialError;
use super::trial::Trial;
use crate::record::{Distribution, ParamValue};

/// One declared parameter.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParamDecl {
    pub name: String,
    pub kind: DeclKind,
    /// Sampled only when every named parameter took one of the listed values.
    pub when: BTreeMap<String, Vec<ParamValue>>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum DeclKind {
    Fixed(ParamValue),
    Sampled(Distribution),
}

/// Parameters in an order where every condition's parents come first.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SearchSpace {
    pub params: Vec<ParamDecl>,
}

impl SearchSpace {
    /// Parses a TOML table. Errors name the parameter and say what is wrong.
    pub fn from_toml(table: &toml::Table) -> Result<SearchSpace, String> {
        let mut params = Vec::new();
        for (name, value) in table {
            params.push(parse_param(name, value).map_err(|e| format!("space.{name}: {e}"))?);
        }
        order_by_conditions(params).map(|params| SearchSpace { params })
    }

    /// The sampled parameters' distributions (for grids and reports).
    pub fn distributions(&self) -> BTreeMap<String, Distribution> {
        self.params
            .iter()
            .filter_map(|p| match &p.kind {
                DeclKind::Sampled(d) => Some((p.name.clone(), d.clone())),
                DeclKind::Fixed(_) => None,
            })
            .collect()
    }

    /// Every parameter at its first value (the lower bound or first choice), conditions
    /// ignored: lets a caller check names and types before the first trial.
    pub fn probe_values(&self) -> BTreeMap<String, ParamValue> {
        self.params
            .iter()
            .map(|p| {
                let v = match &p.kind {
                    DeclKind::Fixed(v) => v.clone(),
                    DeclKind::Sampled(d) => d.to_external(d.internal_bounds().0),
                };
                (p.name.clone(), v)
            })
            .collect()
    }

    /// Samples the space in `trial`; parameters whose condition fails are left out.
    pub fn sample(&self, trial: &mut Trial) -> Result<BTreeMap<String, ParamValue>, TrialError> {
        let mut values: BTreeMap<String, ParamValue> = BTreeMap::new();
        for p in &self.params {
            let active = p
                .when
                .iter()
                .all(|(parent, allowed)| values.get(parent).is_some_and(|v| allowed.contains(v)));
            if !active {
                continue;
            }
            let v = match &p.kind {
                DeclKind::Fixed(v) => v.clone(),
                DeclKind::Sampled(d) => trial.suggest(&p.name, d.clone())?,
            };
            values.insert(p.name.clone(), v);
        }
        Ok(values)
    }
}

fn scalar(value: &toml::Value) -> Option<ParamValue> {
    Some(match value {
        toml::Value::Boolean(b) => ParamValue::Bool(*b),
        toml::Value::Integer(i) => ParamValue::Int(*i),
        toml::Value::Float(f) => ParamValue::Float(*f),
        toml::Value::String(s) => ParamValue::Str(s.clone()),
        _ => return None,
    })
}

const KEYS: &[&str] = &[
    "type", "low", "high", "log", "step", "choices", "value", "when",
];

fn parse_param(name: &str, value: &toml::Value) -> Result<ParamDecl, String> {
    let decl = |kind| ParamDecl {
        name: name.to_string(),
        kind,
        when: BTreeMap::new(),
    };
    let table = match value {
        toml::Value::Table(t) => t,
        toml::Value::Array(_) => {
            return Err("a list is ambiguous; write { choices = [...] } for a choice".into())
        }
        other => {
            let v = scalar(other).ok_or("unsupported value")?;
            return Ok(decl(DeclKind::Fixed(v)));
        }
    };
    if let Some(unknown) = table.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(format!(
            "unknown key '{unknown}' (expected {})",
            KEYS.join(", ")
        ));
    }
    let number = |key: &str| -> Result<Option<f64>, String> {
        match table.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(i)) => Ok(Some(*i as f64)),
            Some(toml::Value::Float(f)) => Ok(Some(*f)),
            Some(_) => Err(format!("'{key}' must be a number")),
        }
    };
    let is_int = |key: &str| matches!(table.get(key), Some(toml::Value::Integer(_)) | None);
    let log = match table.get("log") {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(_) => return Err("'log' must be true or false".into()),
    };
    let ty = match table.get("type") {
        None => None,
        Some(toml::Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err("'type' must be a string".into()),
    };
    let kind = if let Some(v) = table.get("value") {
        if table.len() > 1 + table.contains_key("when") as usize {
            return Err("'value' fixes the parameter; drop the other keys".into());
        }
        DeclKind::Fixed(scalar(v).ok_or("'value' must be a number, string or bool")?)
    } else if ty == Some("bool") {
        DeclKind::Sampled(Distribution::bool())
    } else if let Some(choices) = table.get("choices") {
        let toml::Value::Array(items) = choices else {
            return Err("'choices' must be a list".into());
        };
        let choices = items
            .iter()
            .map(|v| scalar(v).ok_or("choices must be numbers, strings or bools"))
            .collect::<Result<Vec<_>, _>>()?;
        DeclKind::Sampled(Distribution::categorical(choices))
    } else {
        let (Some(low), Some(high)) = (number("low")?, number("high")?) else {
            return Err(
                "give { low, high } for a range, { choices = [...] } for a choice, \
                 { type = \"bool\" } or a fixed value"
                    .into(),
            );
        };
        let int = match ty {
            Some("int") => true,
            Some("float") => false,
            None => is_int("low") && is_int("high") && is_int("step"),
            Some(other) => {
                return Err(format!(
                    "unknown type '{other}' (expected float, int or bool)"
                ))
            }
        };
        let step = number("step")?;
        if int {
            if low.fract() != 0.0 || high.fract() != 0.0 {
                return Err("an int range needs whole-number bounds".into());
            }
            let step = step.unwrap_or(1.0);
            if step.fract() != 0.0 {
                return Err("an int range needs a whole-number step".into());
            }
            DeclKind::Sampled(Distribution::Int {
                low: low as i64,
                high: high as i64,
                log,
                step: step as i64,
            })
        } else {
            DeclKind::Sampled(Distribution::Float {
                low,
                high,
                log,
                step,
            })
        }
    };
    if let DeclKind::Sampled(d) = &kind {
        d.validate()?;
    }
    let mut when = BTreeMap::new();
    match table.get("when") {
        None => {}
        Some(toml::Value::Table(t)) => {
            for (parent, allowed) in t {
                let allowed = match allowed {
                    toml::Value::Array(items) => items.iter().map(scalar).collect(),
                    v => scalar(v).map(|v| vec![v]),
                }
                .ok_or_else(|| {
                    format!("when.{parent}: values must be numbers, strings or bools")
                })?;
                when.insert(parent.clone(), allowed);
            }
        }
        Some(_) => return Err("'when' must be a table like { optimizer = \"sgd\" }".into()),
    }
    Ok(ParamDecl { when, ..decl(kind) })
}

/// Orders parameters so that parents come before the parameters conditioned on them; unknown
/// parents, impossible parent values and cycles are errors.
fn order_by_conditions(mut pending: Vec<ParamDecl>) -> Result<Vec<ParamDecl>, String> {
    let names: Vec<String> = pending.iter().map(|p| p.name.clone()).collect();
    for p in &pending {
        for (parent, allowed) in &p.when {
            let Some(parent_decl) = pending.iter().find(|q| &q.name == parent) else {
                return Err(format!(
                    "space.{}: condition on unknown parameter '{parent}' (known: {})",
                    p.name,
                    names.join(", ")
                ));
            };
            let possible = |v: &ParamValue| match &parent_decl.kind {
                DeclKind::Fixed(f) => f == v,
                DeclKind::Sampled(d) => d.to_internal(v).is_some(),
            };
            if let Some(bad) = allowed.iter().find(|v| !possible(v)) {
                return Err(format!(
                    "space.{}: condition {parent} = {bad} can never hold",
                    p.name
                ));
            }
        }
    }
    let mut ordered: Vec<ParamDecl> = Vec::new();
    while !pending.is_empty() {
        let ready = pending.iter().position(|p| {
            p.when
                .keys()
                .all(|parent| ordered.iter().any(|q| &q.name == parent))
        });
        match ready {
            Some(i) => ordered.push(pending.remove(i)),
            None => {
                let stuck: Vec<&str> = pending.iter().map(|p| p.name.as_str()).collect();
                return Err(format!(
                    "space: conditions form a cycle among {}",
                    stuck.join(", ")
                ));
            }
        }
    }
    Ok(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(text: &str) -> Result<SearchSpace, String> {
        SearchSpace::from_toml(&toml::from_str(text).unwrap())
    }

    #[test]
    fn parses_every_kind_and_orders_conditions() {
        let s = space(
            r#"
            momentum = { low = 0.5, high = 0.99, when = { optimizer = "sgd" } }
            optimizer = { choices = ["sgd", "adam"] }
            lr = { low = 1e-4, high = 0.1, log = true }
            batch_size = { low = 16, high = 128, step = 16 }
            epochs = 8
            nesterov = { type = "bool" }
            dropout = { low = 0, high = 0.5, type = "float" }
            "#,
        )
        .unwrap();
        let order: Vec<&str> = s.params.iter().map(|p| p.name.as_str()).collect();
        let pos = |n| order.iter().position(|o| *o == n).unwrap();
        assert!(pos("optimizer") < pos("momentum"));
        let d = s.distributions();
        assert_eq!(d["lr"], Distribution::float_log(1e-4, 0.1));
        assert!(matches!(
            d["batch_size"],
            Distribution::Int { step: 16, .. }
        ));
        assert!(matches!(d["dropout"], Distribution::Float { .. }));
        assert_eq!(d["nesterov"], Distribution::bool());
        assert!(!d.contains_key("epochs"));
        assert_eq!(s.probe_values()["epochs"], ParamValue::Int(8));
    }

    #[test]
    fn bad_spaces_are_explained() {
        let err = |t| space(t).unwrap_err();
        assert!(err("lr = { low = 0.1, high = 0.01 }").contains("space.lr: empty range"));
        assert!(err("lr = { low = 0, high = 0.1, log = true }").contains("log"));
        assert!(err("lr = { lo = 0, high = 0.1 }").contains("unknown key 'lo'"));
        assert!(err("o = { choices = [] }").contains("at least one"));
        assert!(err("m = { low = 0, high = 1, when = { opt = 'sgd' } }")
            .contains("unknown parameter 'opt'"));
        assert!(err(
            "opt = { choices = ['adam'] }\nm = { low = 0, high = 1, when = { opt = 'sgd' } }"
        )
        .contains("can never hold"));
        assert!(err(
            "a = { choices = [1, 2], when = { b = 1 } }\nb = { choices = [1, 2], when = { a = 1 } }"
        )
        .contains("cycle"));
        assert!(err("x = [1, 2]").contains("choices"));
    }
}
