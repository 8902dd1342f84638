//! Where studies live: the [`Storage`] trait and its implementations — [`MemoryStorage`] (tests,
//! library use), [`SqliteStorage`] (the embedded default, `sqlite:PATH`) and
//! [`PostgresStorage`] (`postgres://…`, shared by workers on many machines).
//!
//! # The contract every storage keeps
//! - Thread-safe (`Send + Sync`); several processes may share one SQLite file or PostgreSQL
//!   database.
//! - Trial numbers are assigned by [`Storage::start_trial`], atomically: 0, 1, 2, … per study,
//!   never reused, never duplicated, whatever the number of workers.
//! - Only a `Running` trial changes. Writing to a finished trial is [`StoreError::TrialFinished`].
//! - A trial's worker proves it is alive with heartbeats; [`Storage::fail_stale`] marks the
//!   running trials of dead workers failed, so nothing stays "running" forever.
//! - Algorithms (samplers, pruners) keep no state of their own: everything they need is in the
//!   trials this returns, which is why parallel workers just work.

mod memory;
mod postgres;
pub mod schema;
mod sqlite;
mod url;

use std::collections::BTreeMap;

pub use memory::MemoryStorage;
pub use postgres::PostgresStorage;
pub use sqlite::SqliteStorage;
pub use url::{redact_url, PostgresUrl, StorageUrl};

use crate::record::{Direction, FrozenTrial, Owner, ParamRecord, TrialState};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage URL is malformed or cannot be opened (bad input).
    #[error("storage '{url}': {message}")]
    Open { url: String, message: String },
    #[error("no study named '{0}' (see `modelsmith studies list`)")]
    NoStudy(String),
    #[error("study '{name}' exists with direction {existing}, not {requested}")]
    DirectionMismatch {
        name: String,
        existing: &'static str,
        requested: &'static str,
    },
    #[error("trial {0} is already finished and cannot change")]
    TrialFinished(i64),
    #[error("no trial with id {0}")]
    NoTrial(i64),
    /// A study cannot be deleted while workers run its trials.
    #[error("study '{name}' has {running} running trial(s); stop its workers first (a killed worker's trials are failed on the next `tune`)")]
    StudyBusy { name: String, running: usize },
    /// Anything else the backend reports (I/O, corruption, …).
    #[error("storage: {0}")]
    Backend(String),
}

impl StoreError {
    /// True for errors caused by the user's input (a bad URL, a missing study).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            StoreError::Open { .. }
                | StoreError::NoStudy(_)
                | StoreError::DirectionMismatch { .. }
                | StoreError::StudyBusy { .. }
        )
    }
}

pub type StoreResult<T> = std::result::Result<T, StoreError>;

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StudyRecord {
    pub id: i64,
    pub name: String,
    pub direction: Direction,
    /// Free-form JSON given at creation (e.g. the tune config).
    pub attrs: serde_json::Value,
    pub created_at: f64,
}

/// One row of `studies list`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StudySummary {
    pub study: StudyRecord,
    pub trials: usize,
    pub complete: usize,
    pub pruned: usize,
    pub failed: usize,
    pub running: usize,
    pub best_value: Option<f64>,
}

/// A new trial handed to a worker by [`Storage::start_trial`].
#[derive(Clone, Debug, PartialEq)]
pub struct StartedTrial {
    pub id: i64,
    pub number: u64,
    /// Parameters fixed in advance (a claimed waiting trial, e.g. a retry); empty otherwise.
    pub fixed_params: BTreeMap<String, ParamRecord>,
    pub attrs: BTreeMap<String, serde_json::Value>,
}

pub trait Storage: Send + Sync {
    /// Returns the study called `name`, creating it if needed. An existing study with another
    /// direction is [`StoreError::DirectionMismatch`]; `attrs` are kept from the first creation.
    fn create_study(
        &self,
        name: &str,
        direction: Direction,
        attrs: serde_json::Value,
    ) -> StoreResult<StudyRecord>;

    fn get_study(&self, name: &str) -> StoreResult<Option<StudyRecord>>;

    fn list_studies(&self) -> StoreResult<Vec<StudySummary>>;

    /// Deletes the study called `name` with all its trials, in one transaction; returns how
    /// many trials went. [`StoreError::NoStudy`] if there is none, [`StoreError::StudyBusy`]
    /// while any of its trials is running.
    fn delete_study(&self, name: &str) -> StoreResult<usize>;

    /// Claims work for `owner`, in one transaction: the oldest `Waiting` trial if there is one,
    /// otherwise a new trial with the next number — but only while the study has fewer than
    /// `limit` trials that are not failed (waiting, running, complete, pruned). Returns `None`
    /// when the limit is reached. The trial is `Running` with `started_at` and a heartbeat.
    fn start_trial(
        &self,
        study_id: i64,
        limit: Option<u64>,
        owner: &Owner,
    ) -> StoreResult<Option<StartedTrial>>;

    /// Adds a `Waiting` trial with fixed parameters (claimed before new ones); returns its number.
    fn enqueue_trial(
        &self,
        study_id: i64,
        params: &BTreeMap<String, ParamRecord>,
        attrs: &BTreeMap<String, serde_json::Value>,
    ) -> StoreResult<u64>;

    fn set_param(&self, trial_id: i64, name: &str, param: &ParamRecord) -> StoreResult<()>;

    /// Records the value at `step`; reporting the same step again overwrites it.
    fn report(&self, trial_id: i64, step: u32, value: f64) -> StoreResult<()>;

    fn set_attr(&self, trial_id: i64, key: &str, value: &serde_json::Value) -> StoreResult<()>;

    /// Ends a running trial. `state` must be finished (complete, pruned or failed).
    fn finish_trial(
        &self,
        trial_id: i64,
        state: TrialState,
        value: Option<f64>,
        error: Option<&str>,
    ) -> StoreResult<()>;

    /// Refreshes the heartbeat of running trials (finished ones are ignored).
    fn heartbeat(&self, trial_ids: &[i64]) -> StoreResult<()>;

    /// Every trial of the study, ordered by number.
    fn trials(&self, study_id: i64) -> StoreResult<Vec<FrozenTrial>>;

    fn trial(&self, trial_id: i64) -> StoreResult<FrozenTrial>;

    /// The study's trials numbered `first_number` and up, ordered by number. Finished trials
    /// never change, so a caller that holds the earlier ones reads only what is new.
    fn trials_from(&self, study_id: i64, first_number: u64) -> StoreResult<Vec<FrozenTrial>> {
        let mut trials = self.trials(study_id)?;
        trials.retain(|t| t.number >= first_number);
        Ok(trials)
    }

    /// The study's running trials (what a check for dead workers needs; storages with an
    /// index on the state answer without reading every trial).
    fn running_trials(&self, study_id: i64) -> StoreResult<Vec<FrozenTrial>> {
        let mut trials = self.trials(study_id)?;
        trials.retain(|t| t.state == TrialState::Running);
        Ok(trials)
    }

    /// Marks failed every running trial for which `is_dead(trial)` holds (with the given error
    /// text), each in its own short transaction that re-checks the state; returns their numbers.
    fn fail_stale(
        &self,
        study_id: i64,
        is_dead: &dyn Fn(&FrozenTrial) -> bool,
        error: &str,
    ) -> StoreResult<Vec<u64>> {
        let mut failed = Vec::new();
        for t in self.running_trials(study_id)? {
            if is_dead(&t) {
                match self.finish_trial(t.id, TrialState::Failed, None, Some(error)) {
                    Ok(()) => failed.push(t.number),
                    // Finished by its own worker or another cleaner in the meantime.
                    Err(StoreError::TrialFinished(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(failed)
    }
}

/// Like [`open`], but a SQLite file must already exist and a PostgreSQL database must already
/// hold studies (for reading studies: a typo in the path or database name should not create an
/// empty store).
pub fn open_existing(url: &str) -> StoreResult<Box<dyn Storage>> {
    open_existing_parsed(url, StorageUrl::parse(url)?)
}

fn open_existing_parsed(url: &str, parsed: StorageUrl) -> StoreResult<Box<dyn Storage>> {
    match parsed {
        StorageUrl::Postgres(pg) => Ok(Box::new(PostgresStorage::open_existing(pg.as_str())?)),
        StorageUrl::Sqlite(path) if !path.exists() => Err(StoreError::Open {
            url: url.into(),
            message: "no such file (studies are created by `modelsmith tune`)".into(),
        }),
        other => open_parsed(other),
    }
}

/// Opens a storage for reading only (dashboards, reports): a SQLite file is opened with
/// `SQLITE_OPEN_READ_ONLY` (it must exist and hold a current Modelsmith schema), so readers
/// never take a lock a worker waits for; other storages open as [`open_existing`] does.
pub fn open_read_only(url: &str) -> StoreResult<Box<dyn Storage>> {
    match StorageUrl::parse(url)? {
        StorageUrl::Sqlite(path) => Ok(Box::new(SqliteStorage::open_read_only(&path)?)),
        other => open_existing_parsed(url, other),
    }
}

/// Opens a storage from its URL (see [`StorageUrl`] for the forms): `sqlite:PATH` (or a bare
/// path ending in `.db`), `memory:`, `postgres://user[:password]@host[:port]/db[?sslmode=require]`
/// (also `postgresql://`).
pub fn open(url: &str) -> StoreResult<Box<dyn Storage>> {
    open_parsed(StorageUrl::parse(url)?)
}

fn open_parsed(parsed: StorageUrl) -> StoreResult<Box<dyn Storage>> {
    Ok(match parsed {
        StorageUrl::Postgres(pg) => Box::new(PostgresStorage::open(pg.as_str())?),
        StorageUrl::Sqlite(path) => Box::new(SqliteStorage::open(&path)?),
        StorageUrl::Memory => Box::new(MemoryStorage::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_postgres_url_is_an_open_error_without_the_password() {
        for url in [
            "postgres://alice:topsecret@host:notaport/db",
            "postgres://alice:topsecret@host/db?nosuchoption=1",
        ] {
            let err = match open(url) {
                Err(e) => e,
                Ok(_) => panic!("{url} opened"),
            };
            assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
            let text = err.to_string();
            assert!(!text.contains("topsecret"), "{text}");
            assert!(text.contains("alice:***@host"), "{text}");
            assert!(!text.contains('\n'), "{text}");
        }
    }
}
