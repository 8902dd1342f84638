//! SQLite storage (placeholder until the SQLite implementation lands).

use std::path::Path;

use super::{StoreError, StoreResult};

pub struct SqliteStorage;

impl SqliteStorage {
    pub fn open(path: &Path) -> StoreResult<Self> {
        Err(StoreError::Open {
            url: format!("sqlite:{}", path.display()),
            message: "SQLite storage is not built yet".into(),
        })
    }
}

// Placeholder so the crate builds: `open` never returns a value of this type.
impl super::Storage for SqliteStorage {
    fn create_study(
        &self,
        _: &str,
        _: crate::search::Direction,
        _: serde_json::Value,
    ) -> StoreResult<super::StudyRecord> {
        unreachable!()
    }
    fn get_study(&self, _: &str) -> StoreResult<Option<super::StudyRecord>> {
        unreachable!()
    }
    fn list_studies(&self) -> StoreResult<Vec<super::StudySummary>> {
        unreachable!()
    }
    fn start_trial(
        &self,
        _: i64,
        _: Option<u64>,
        _: &crate::search::Owner,
    ) -> StoreResult<Option<super::StartedTrial>> {
        unreachable!()
    }
    fn enqueue_trial(
        &self,
        _: i64,
        _: &std::collections::BTreeMap<String, crate::search::ParamRecord>,
        _: &std::collections::BTreeMap<String, serde_json::Value>,
    ) -> StoreResult<u64> {
        unreachable!()
    }
    fn set_param(&self, _: i64, _: &str, _: &crate::search::ParamRecord) -> StoreResult<()> {
        unreachable!()
    }
    fn report(&self, _: i64, _: u32, _: f64) -> StoreResult<()> {
        unreachable!()
    }
    fn set_attr(&self, _: i64, _: &str, _: &serde_json::Value) -> StoreResult<()> {
        unreachable!()
    }
    fn finish_trial(
        &self,
        _: i64,
        _: crate::search::TrialState,
        _: Option<f64>,
        _: Option<&str>,
    ) -> StoreResult<()> {
        unreachable!()
    }
    fn heartbeat(&self, _: &[i64]) -> StoreResult<()> {
        unreachable!()
    }
    fn trials(&self, _: i64) -> StoreResult<Vec<crate::search::FrozenTrial>> {
        unreachable!()
    }
    fn trial(&self, _: i64) -> StoreResult<crate::search::FrozenTrial> {
        unreachable!()
    }
}
