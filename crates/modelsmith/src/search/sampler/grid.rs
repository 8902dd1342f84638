//! Grid search, define-by-run.
//!
//! # The grid
//! Each parameter takes a fixed list of values:
//! - a continuous float: `points` values evenly spaced from `low` to `high` (log-spaced for a
//!   log range; the midpoint when `points` is 1);
//! - an int or a stepped float: every value when there are at most `points` of them, otherwise
//!   `points` of them evenly spaced (log-spaced for a log range) from the lowest to the highest;
//! - a categorical: every choice.
//!
//! The grid is the product of these lists over the parameters in alphabetical order, the last
//! name varying fastest. Combination `i` is `i` written in mixed radix.
//!
//! # Which combination a trial gets
//! The parameters are those declared with [`GridSampler::with_space`], or else those seen so
//! far (in earlier trials and in this trial's requests; the latest distribution of a name
//! wins). At the start of a trial, combination `number mod size` is proposed for all of them,
//! unless an earlier trial (of any state) already took it: then the next free combination,
//! cyclically, is proposed. A trial *takes* a combination when its values of the parameters
//! it has are the grid's values; a parameter it never asked for (a conditional one) counts as
//! any value, so `momentum` is not re-enumerated for trials with `optimizer = adam`. When every
//! combination is taken, the grid starts over (`number mod size`).
//!
//! A parameter first met during a trial (define-by-run without a declared space) gets its
//! value the same way, the trial's earlier values held fixed. Parallel trials take distinct
//! combinations because their numbers differ, even before they record their values.
//!
//! [`Sampler::max_trials`] is the grid's size when the space was declared (an upper bound when
//! some parameters are conditional); otherwise `None`: it is not known before the objective
//! has run.

use std::collections::{BTreeMap, HashSet};

use super::{SampleContext, Sampler};
use crate::record::Distribution;
use crate::record::{FrozenTrial, ParamRecord};

/// At most this many combinations are examined when looking for a free one.
const MAX_SCAN: u64 = 1 << 20;

#[derive(Clone, Debug)]
pub struct GridSampler {
    /// Values per continuous parameter (and the most per int or stepped one).
    pub points: usize,
    /// The declared space, if any.
    pub space: Option<BTreeMap<String, Distribution>>,
}

impl GridSampler {
    /// A grid over whatever the objective suggests, `points` values per continuous parameter.
    pub fn new(points: usize) -> Self {
        GridSampler {
            points: points.max(1),
            space: None,
        }
    }

    /// A grid over a declared space: [`Sampler::max_trials`] is then its size.
    pub fn with_space(points: usize, space: BTreeMap<String, Distribution>) -> Self {
        GridSampler {
            points: points.max(1),
            space: Some(space),
        }
    }

    /// The grid values (internal) of one distribution, ascending and distinct.
    pub fn values(&self, dist: &Distribution) -> Vec<f64> {
        grid_values(dist, self.points)
    }

    /// The number of combinations of the declared space (saturating), if declared.
    pub fn size(&self) -> Option<u64> {
        let space = self.space.as_ref()?;
        Some(
            space
                .values()
                .map(|d| self.values(d).len() as u64)
                .fold(1u64, u64::saturating_mul),
        )
    }

    /// The space used for a trial: the declared one, or the latest distribution of each name
    /// in the history; then this trial's own parameters.
    fn known_space(&self, ctx: &SampleContext) -> BTreeMap<String, Distribution> {
        let mut space = match &self.space {
            Some(s) => s.clone(),
            None => {
                let mut latest: BTreeMap<&str, (u64, &Distribution)> = BTreeMap::new();
                for t in ctx.trials.iter().filter(|t| t.number != ctx.number) {
                    for (name, p) in &t.params {
                        let e = latest.entry(name).or_insert((t.number, &p.distribution));
                        if t.number >= e.0 {
                            *e = (t.number, &p.distribution);
                        }
                    }
                }
                latest
                    .into_iter()
                    .map(|(n, (_, d))| (n.to_string(), d.clone()))
                    .collect()
            }
        };
        for (name, p) in ctx.params {
            space.insert(name.clone(), p.distribution.clone());
        }
        space
    }
}

impl Sampler for GridSampler {
    fn name(&self) -> &'static str {
        "grid"
    }

    fn sample_relative(&self, ctx: &SampleContext) -> BTreeMap<String, ParamRecord> {
        let space = self.known_space(ctx);
        if space.is_empty() {
            return BTreeMap::new();
        }
        let grid = Grid::new(&space, self.points);
        let combo = grid.choose(ctx, &grid.fixed(ctx.params));
        grid.dims
            .iter()
            .zip(combo)
            .map(|((name, dist, values), i)| {
                let record = ParamRecord {
                    distribution: (*dist).clone(),
                    internal: values[i],
                };
                (name.to_string(), record)
            })
            .collect()
    }

    fn sample_independent(&self, ctx: &SampleContext, name: &str, dist: &Distribution) -> f64 {
        let mut space = self.known_space(ctx);
        space.insert(name.to_string(), dist.clone());
        let grid = Grid::new(&space, self.points);
        let combo = grid.choose(ctx, &grid.fixed(ctx.params));
        let j = grid
            .dims
            .iter()
            .position(|(n, _, _)| *n == name)
            .expect("the parameter is in the space");
        dist.snap(grid.dims[j].2[combo[j]])
    }

    fn max_trials(&self) -> Option<u64> {
        self.size()
    }
}

/// The grid values of one distribution; see the module docs.
fn grid_values(dist: &Distribution, points: usize) -> Vec<f64> {
    let points = points.max(1);
    let (lo, hi) = dist.internal_bounds();
    if lo >= hi {
        return vec![lo];
    }
    let spaced = |n: usize, log: bool| -> Vec<f64> {
        (0..n)
            .map(|i| {
                let t = if n == 1 {
                    0.5
                } else {
                    i as f64 / (n - 1) as f64
                };
                if log {
                    (lo.ln() + t * (hi.ln() - lo.ln())).exp()
                } else {
                    lo + t * (hi - lo)
                }
            })
            .collect()
    };
    let mut values: Vec<f64> = match (dist, dist.cardinality()) {
        (Distribution::Categorical { choices }, _) => {
            (0..choices.len()).map(|i| i as f64).collect()
        }
        (_, Some(c)) if c <= points as u64 => {
            // Every value: low, low + step, …
            let step = match *dist {
                Distribution::Int { step, .. } => step as f64,
                Distribution::Float { step: Some(s), .. } => s,
                _ => 1.0,
            };
            (0..c).map(|i| lo + i as f64 * step).collect()
        }
        _ => spaced(points, dist.is_log()),
    };
    for v in &mut values {
        *v = dist.snap(*v);
    }
    values.dedup();
    values
}

/// The grid of one space: each parameter's values, in name order.
struct Grid<'a> {
    dims: Vec<(&'a str, &'a Distribution, Vec<f64>)>,
    size: u64,
}

impl<'a> Grid<'a> {
    fn new(space: &'a BTreeMap<String, Distribution>, points: usize) -> Self {
        let dims: Vec<_> = space
            .iter()
            .map(|(n, d)| (n.as_str(), d, grid_values(d, points)))
            .collect();
        let size = dims
            .iter()
            .map(|(_, _, v)| v.len() as u64)
            .fold(1u64, u64::saturating_mul);
        Grid { dims, size }
    }

    /// Digits of combination `i`, the last parameter varying fastest.
    fn decode(&self, mut i: u64) -> Vec<usize> {
        let mut digits = vec![0; self.dims.len()];
        for (j, (_, _, values)) in self.dims.iter().enumerate().rev() {
            let r = values.len() as u64;
            digits[j] = (i % r) as usize;
            i /= r;
        }
        digits
    }

    /// The grid index of `value` for dimension `j`, if it is one of the grid's values.
    fn index_of(&self, j: usize, value: f64) -> Option<usize> {
        let values = &self.dims[j].2;
        let tol = 1e-9 * (values[values.len() - 1] - values[0]).abs().max(1e-300);
        values.iter().position(|v| (v - value).abs() <= tol)
    }

    /// A trial's digits: `Some` where it has the parameter on the grid, `None` where it
    /// lacks it; `None` overall when it has a value off the grid (or another distribution).
    fn digits_of(&self, params: &BTreeMap<String, ParamRecord>) -> Option<Vec<Option<usize>>> {
        let mut out = Vec::with_capacity(self.dims.len());
        for (j, (name, dist, _)) in self.dims.iter().enumerate() {
            match params.get(*name) {
                None => out.push(None),
                Some(p) if &p.distribution == *dist => {
                    out.push(Some(self.index_of(j, p.internal)?))
                }
                Some(_) => return None,
            }
        }
        Some(out)
    }

    /// This trial's values so far, as digits (`None` where free).
    fn fixed(&self, params: &BTreeMap<String, ParamRecord>) -> Vec<Option<usize>> {
        self.dims
            .iter()
            .enumerate()
            .map(|(j, (name, dist, _))| {
                params
                    .get(*name)
                    .filter(|p| &p.distribution == *dist)
                    .and_then(|p| self.index_of(j, p.internal))
            })
            .collect()
    }

    /// The combination for this trial: the first free one from `number mod size` that agrees
    /// with `fixed`; failing that, `number mod size` with `fixed` imposed.
    fn choose(&self, ctx: &SampleContext, fixed: &[Option<usize>]) -> Vec<usize> {
        // Taken combinations: complete ones in a set, partial ones (conditional parameters)
        // matched as patterns.
        let mut full: HashSet<Vec<usize>> = HashSet::new();
        let mut partial: Vec<Vec<Option<usize>>> = Vec::new();
        for t in ctx.trials.iter().filter(|t| t.number != ctx.number) {
            if let Some(digits) = taken_by(self, t) {
                if digits.iter().all(Option::is_some) {
                    full.insert(digits.into_iter().map(Option::unwrap).collect());
                } else {
                    partial.push(digits);
                }
            }
        }
        let start = ctx.number % self.size.max(1);
        let agrees = |c: &[usize]| fixed.iter().zip(c).all(|(f, d)| f.is_none_or(|f| f == *d));
        let free = |c: &[usize]| {
            !full.contains(c)
                && !partial
                    .iter()
                    .any(|p| p.iter().zip(c).all(|(p, d)| p.is_none_or(|p| p == *d)))
        };
        let scan = self.size.min(MAX_SCAN);
        for k in 0..scan {
            let c = self.decode((start + k) % self.size.max(1));
            if agrees(&c) && free(&c) {
                return c;
            }
        }
        let mut c = self.decode(start);
        for (d, f) in c.iter_mut().zip(fixed) {
            if let Some(f) = f {
                *d = *f;
            }
        }
        c
    }
}

/// The combination pattern a trial took, if it took one (at least one parameter on the grid
/// and none off it).
fn taken_by(grid: &Grid, t: &FrozenTrial) -> Option<Vec<Option<usize>>> {
    let digits = grid.digits_of(&t.params)?;
    digits.iter().any(Option::is_some).then_some(digits)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::record::ParamValue;
    use crate::search::{Direction, OptimizeOptions, Study, StudyOptions};
    use crate::store::MemoryStorage;

    fn study(sampler: GridSampler) -> Study {
        let options = StudyOptions {
            sampler: Arc::new(sampler),
            ..Default::default()
        };
        Study::new(
            Arc::new(MemoryStorage::new()),
            "grid",
            Direction::Minimize,
            options,
        )
        .unwrap()
    }

    fn space() -> BTreeMap<String, Distribution> {
        BTreeMap::from([
            ("lr".to_string(), Distribution::float_log(1e-3, 1e-1)),
            ("units".to_string(), Distribution::int(1, 2)),
            (
                "act".to_string(),
                Distribution::categorical(vec!["relu".into(), "tanh".into()]),
            ),
        ])
    }

    #[test]
    fn values_follow_the_distribution() {
        let g = GridSampler::new(3);
        let log = g.values(&Distribution::float_log(1e-3, 1e-1));
        assert_eq!(log.len(), 3);
        assert!((log[1] - 1e-2).abs() < 1e-12);
        assert_eq!(
            g.values(&Distribution::float(0.0, 1.0)),
            vec![0.0, 0.5, 1.0]
        );
        assert_eq!(g.values(&Distribution::int(1, 3)), vec![1.0, 2.0, 3.0]);
        assert_eq!(g.values(&Distribution::int(0, 100)), vec![0.0, 50.0, 100.0]);
        let stepped = Distribution::Int {
            low: 16,
            high: 64,
            log: false,
            step: 16,
        };
        assert_eq!(g.values(&stepped).len(), 3);
        assert_eq!(
            GridSampler::new(5).values(&stepped),
            vec![16.0, 32.0, 48.0, 64.0]
        );
        assert_eq!(
            GridSampler::new(1).values(&Distribution::float(0.0, 2.0)),
            vec![1.0]
        );
        let cat = Distribution::categorical(vec!["a".into(), "b".into(), "c".into(), "d".into()]);
        assert_eq!(g.values(&cat), vec![0.0, 1.0, 2.0, 3.0]);
    }

    #[test]
    fn every_combination_exactly_once_with_a_declared_space() {
        let sampler = GridSampler::with_space(3, space());
        assert_eq!(sampler.max_trials(), Some(3 * 2 * 2));
        let study = study(sampler);
        study
            .optimize(&OptimizeOptions::trials(12), |t| {
                let lr = t.suggest_float_log("lr", 1e-3, 1e-1)?;
                let units = t.suggest_int("units", 1, 2)?;
                let act = t.suggest_categorical("act", &["relu", "tanh"])?;
                Ok(lr * units as f64 + if act == "relu" { 0.0 } else { 1.0 })
            })
            .unwrap();
        let combos: HashSet<String> = study
            .trials()
            .unwrap()
            .iter()
            .map(|t| format!("{:?}", t.param_values()))
            .collect();
        assert_eq!(combos.len(), 12);
    }

    #[test]
    fn define_by_run_grid_without_a_declared_space() {
        let sampler = GridSampler::new(3);
        assert_eq!(sampler.max_trials(), None);
        let study = study(sampler);
        study
            .optimize(&OptimizeOptions::trials(6), |t| {
                let x = t.suggest_float("x", 0.0, 1.0)?;
                let flag = t.suggest_bool("flag")?;
                Ok(x + flag as u8 as f64)
            })
            .unwrap();
        let combos: HashSet<String> = study
            .trials()
            .unwrap()
            .iter()
            .map(|t| format!("{:?}", t.param_values()))
            .collect();
        assert_eq!(combos.len(), 6);
    }

    #[test]
    fn conditional_parameters_are_not_enumerated_where_absent() {
        let space = BTreeMap::from([
            (
                "opt".to_string(),
                Distribution::categorical(vec!["adam".into(), "sgd".into()]),
            ),
            ("momentum".to_string(), Distribution::float(0.0, 0.9)),
        ]);
        let study = study(GridSampler::with_space(2, space));
        // adam once, sgd with both momenta: 3 distinct trials cover the grid.
        study
            .optimize(&OptimizeOptions::trials(3), |t| {
                let opt = t.suggest_categorical("opt", &["adam", "sgd"])?;
                if opt == "sgd" {
                    return t.suggest_float("momentum", 0.0, 0.9);
                }
                Ok(1.0)
            })
            .unwrap();
        let trials = study.trials().unwrap();
        let seen: HashSet<String> = trials
            .iter()
            .map(|t| format!("{:?}", t.param_values()))
            .collect();
        assert_eq!(seen.len(), 3);
        let adam = trials
            .iter()
            .filter(|t| t.param_values()["opt"] == ParamValue::Str("adam".into()))
            .count();
        assert_eq!(adam, 1);
    }
}
