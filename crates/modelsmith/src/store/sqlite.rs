//! SQLite storage, the embedded default (`sqlite:PATH`): one file that several threads and
//! processes share.
//!
//! # Concurrency
//! - The file is in WAL mode: readers never wait for the writer and the writer never waits for
//!   readers; writers take turns.
//! - Every write is one short `BEGIN IMMEDIATE` transaction: the write lock is taken up front,
//!   so two transactions can never both hold a read snapshot and wait for each other to upgrade
//!   (the deadlock SQLite reports as "database is locked" without waiting).
//! - A busy handler waits (with growing, jittered sleeps, about 30 s in all) whenever SQLite
//!   finds the file locked; on top of that, a whole transaction that still fails with
//!   `SQLITE_BUSY`/`SQLITE_LOCKED` (the cases in which SQLite does not call the handler) is
//!   rolled back and run again, for up to a minute. Each transaction is a pure function of the
//!   database, so running it again is safe.
//! - Within a process, one [`SqliteStorage`] is one connection behind a mutex; threads that
//!   each open their own share the file the same way processes do.
//!
//! # Schema
//! Versioned with `PRAGMA user_version` (and marked as ours with `PRAGMA application_id`);
//! [`MIGRATIONS`] are applied in order, all pending ones in one transaction. A file written by a
//! newer Modelsmith (a version we do not know) is refused rather than misread.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, Value, ValueRef};
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, ToSql};

use super::{StartedTrial, Storage, StoreError, StoreResult, StudyRecord, StudySummary};
use crate::record::now_unix;
use crate::record::{Direction, Distribution, FrozenTrial, Owner, ParamRecord, TrialState};

/// `PRAGMA application_id` of a Modelsmith store: "MSMT".
const APPLICATION_ID: i64 = 0x4D53_4D54;

use super::schema::SQLITE as MIGRATIONS;

/// The schema version this build writes and understands.
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long a transaction that keeps failing with "busy" is retried, from its first attempt.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// Busy-handler calls before SQLite gives up on a lock (about 30 s of sleeps, see
/// [`busy_handler`]).
const BUSY_HANDLER_CALLS: i32 = 1_500;

pub struct SqliteStorage {
    conn: Mutex<Connection>,
}

/// Why a transaction failed: SQLite (maybe busy, then retried) or the contract.
enum Fail {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Sql(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

type Tx<T> = Result<T, Fail>;

impl SqliteStorage {
    /// The schema version this build writes and understands (`PRAGMA user_version`).
    pub const SCHEMA_VERSION: i64 = SCHEMA_VERSION;

    /// Opens (creating if needed) the store at `path`, switches it to WAL and brings its schema
    /// up to date. The parent directory must exist. A file that is not a Modelsmith store (not
    /// SQLite, corrupt, another program's database, or a newer schema) is [`StoreError::Open`].
    pub fn open(path: &Path) -> StoreResult<Self> {
        let url = format!("sqlite:{}", path.display());
        let open_error = |message: String| StoreError::Open {
            url: url.clone(),
            message,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.is_dir() {
                return Err(open_error(format!(
                    "directory '{}' does not exist",
                    parent.display()
                )));
            }
        }
        if path.is_dir() {
            return Err(open_error("is a directory, not a database file".into()));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| open_error(describe_open_error(&e)))?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.busy_handler(Some(busy_handler))
            .map_err(|e| open_error(describe_open_error(&e)))?;
        let opened = retry(|| configure(&conn)).and_then(|()| migrate(&conn, &url));
        match opened {
            Ok(()) => Ok(SqliteStorage {
                conn: Mutex::new(conn),
            }),
            Err(Fail::Store(e)) => Err(e),
            Err(Fail::Sql(e)) => Err(open_error(describe_open_error(&e))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        // A panic mid-transaction would leave it open: end it so the next one starts clean.
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        conn
    }

    /// Runs `f` in a write transaction (`BEGIN IMMEDIATE`), retried while the file is busy.
    fn write<T>(&self, mut f: impl FnMut(&Connection) -> Tx<T>) -> StoreResult<T> {
        let conn = self.lock();
        finish(retry(|| transaction(&conn, "BEGIN IMMEDIATE", &mut f)))
    }

    /// Runs `f` in a read transaction (one consistent snapshot), retried while busy.
    fn read<T>(&self, mut f: impl FnMut(&Connection) -> Tx<T>) -> StoreResult<T> {
        let conn = self.lock();
        finish(retry(|| transaction(&conn, "BEGIN DEFERRED", &mut f)))
    }
}

/// Read-only access, for the dashboard and reports: they must never slow the workers down.
impl SqliteStorage {
    /// Opens an existing store with `SQLITE_OPEN_READ_ONLY`. In WAL mode a reader sees the
    /// last committed snapshot and takes no lock that a writer waits for; every write through
    /// this connection fails. The schema must be the current one (a reader cannot migrate).
    pub fn open_read_only(path: &Path) -> StoreResult<Self> {
        let url = format!("sqlite:{}", path.display());
        let open_error = |message: String| StoreError::Open {
            url: url.clone(),
            message,
        };
        if !path.is_file() {
            return Err(open_error(if path.exists() {
                "not a file".into()
            } else {
                "no such file (studies are created by `modelsmith tune`)".into()
            }));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| open_error(describe_open_error(&e)))?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.busy_handler(Some(busy_handler))
            .map_err(|e| open_error(describe_open_error(&e)))?;
        let checked = retry(|| {
            transaction(&conn, "BEGIN DEFERRED", &mut |conn| {
                let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
                let app_id: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
                Ok((version, app_id))
            })
        });
        match checked {
            Ok((version, app_id)) if version != 0 && app_id != APPLICATION_ID => Err(open_error(
                "a SQLite database of another program, not a Modelsmith store".into(),
            )),
            Ok((0, _)) => Err(open_error(
                "not a Modelsmith store (no schema; studies are created by `modelsmith tune`)"
                    .into(),
            )),
            Ok((version, _)) if version != SCHEMA_VERSION => Err(open_error(format!(
                "schema version {version}, this Modelsmith reads {SCHEMA_VERSION} \
                 (open it once with `modelsmith studies list` to upgrade an older one)"
            ))),
            Ok(_) => Ok(SqliteStorage {
                conn: Mutex::new(conn),
            }),
            Err(Fail::Store(e)) => Err(e),
            Err(Fail::Sql(e)) => Err(open_error(describe_open_error(&e))),
        }
    }
}

fn finish<T>(result: Tx<T>) -> StoreResult<T> {
    result.map_err(|e| match e {
        Fail::Store(e) => e,
        Fail::Sql(e) => StoreError::Backend(one_line(&e.to_string())),
    })
}

/// SQLite's busy handler: sleeps 1, 2, 4, 8, 16, then 20 ms (plus up to 50% jitter, so that
/// waiting writers don't wake in lockstep) and gives up after [`BUSY_HANDLER_CALLS`] calls.
fn busy_handler(calls: i32) -> bool {
    if calls >= BUSY_HANDLER_CALLS {
        return false;
    }
    let base_us = (1_000u64 << calls.clamp(0, 4)).min(20_000);
    let jitter_us = rand::random::<u64>() % (base_us / 2 + 1);
    std::thread::sleep(Duration::from_micros(base_us + jitter_us));
    true
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Runs `attempt` again while it fails with "busy", for up to [`RETRY_FOR`].
fn retry<T>(mut attempt: impl FnMut() -> Tx<T>) -> Tx<T> {
    let start = Instant::now();
    let mut tries = 0u32;
    loop {
        match attempt() {
            Err(Fail::Sql(e)) if is_busy(&e) && start.elapsed() < RETRY_FOR => {
                tries += 1;
                tracing::debug!("sqlite busy ({e}); retrying transaction (try {tries})");
                let base_us = (500u64 << tries.min(6)).min(25_000);
                let jitter_us = rand::random::<u64>() % (base_us + 1);
                std::thread::sleep(Duration::from_micros(base_us + jitter_us));
            }
            other => return other,
        }
    }
}

/// One attempt: `begin`, `f`, `COMMIT`; rolled back on any failure.
fn transaction<T>(
    conn: &Connection,
    begin: &str,
    f: &mut impl FnMut(&Connection) -> Tx<T>,
) -> Tx<T> {
    conn.execute_batch(begin)?;
    let result = f(conn).and_then(|v| {
        conn.execute_batch("COMMIT")?;
        Ok(v)
    });
    if result.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

/// Per-connection settings, and WAL (a property of the file, set once).
fn configure(conn: &Connection) -> Tx<()> {
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!("SQLite storage could not switch to WAL (journal mode is {mode})");
        }
    }
    // In WAL mode NORMAL cannot corrupt the file; a power cut may lose the last commits.
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    Ok(())
}

/// Brings the schema to [`SCHEMA_VERSION`]; refuses files that are not ours or are newer.
fn migrate(conn: &Connection, url: &str) -> Tx<()> {
    let versions = |conn: &Connection| -> Tx<(i64, i64)> {
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let app_id: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
        Ok((version, app_id))
    };
    let check = |conn: &Connection, version: i64, app_id: i64| -> Tx<()> {
        let open_error = |message: String| {
            Fail::Store(StoreError::Open {
                url: url.into(),
                message,
            })
        };
        let foreign =
            || open_error("a SQLite database of another program, not a Modelsmith store".into());
        if version == 0 {
            let tables: i64 =
                conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))?;
            if tables > 0 {
                return Err(foreign());
            }
        } else if app_id != APPLICATION_ID {
            return Err(foreign());
        } else if version > SCHEMA_VERSION {
            return Err(open_error(format!(
                "schema version {version} is newer than this Modelsmith supports \
                 ({SCHEMA_VERSION}); upgrade Modelsmith to open it"
            )));
        }
        Ok(())
    };

    // The common case, an up-to-date store, takes no write lock.
    let current = retry(|| {
        transaction(conn, "BEGIN DEFERRED", &mut |conn| {
            let (version, app_id) = versions(conn)?;
            check(conn, version, app_id)?;
            Ok(version == SCHEMA_VERSION)
        })
    })?;
    if current {
        return Ok(());
    }
    // Another process may be migrating too: the write lock serializes us, and we re-check.
    retry(|| {
        transaction(conn, "BEGIN IMMEDIATE", &mut |conn| {
            let (version, app_id) = versions(conn)?;
            check(conn, version, app_id)?;
            for migration in &MIGRATIONS[version as usize..] {
                conn.execute_batch(migration)?;
            }
            if version < SCHEMA_VERSION {
                conn.execute_batch(&format!(
                    "PRAGMA application_id = {APPLICATION_ID}; \
                     PRAGMA user_version = {SCHEMA_VERSION};"
                ))?;
            }
            Ok(())
        })
    })
}

/// A one-line description of an error met while opening.
fn describe_open_error(e: &rusqlite::Error) -> String {
    let detail = one_line(&e.to_string());
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => format!("not a SQLite database ({detail})"),
        Some(ErrorCode::DatabaseCorrupt) => format!("the database file is corrupt ({detail})"),
        Some(ErrorCode::CannotOpen) => format!("cannot open the file ({detail})"),
        Some(ErrorCode::ReadOnly) => format!("the file is read-only ({detail})"),
        _ => detail,
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn backend(message: String) -> Fail {
    Fail::Store(StoreError::Backend(message))
}

/// An `f64` column. SQLite turns a bound NaN into NULL, so NaN is written as the text `'NaN'`
/// (a REAL column keeps text that is not a number as text) and read back as NaN.
struct Real(f64);

impl ToSql for Real {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(if self.0.is_nan() {
            ToSqlOutput::Borrowed(ValueRef::Text(b"NaN"))
        } else {
            ToSqlOutput::Owned(Value::Real(self.0))
        })
    }
}

impl FromSql for Real {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value {
            ValueRef::Real(x) => Ok(Real(x)),
            ValueRef::Integer(i) => Ok(Real(i as f64)),
            ValueRef::Text(b"NaN") => Ok(Real(f64::NAN)),
            _ => Err(FromSqlError::InvalidType),
        }
    }
}

fn opt_real(r: Option<Real>) -> Option<f64> {
    r.map(|r| r.0)
}

fn parse_direction(s: &str) -> Tx<Direction> {
    s.parse()
        .map_err(|e: String| backend(format!("bad study direction: {e}")))
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str, what: impl Fn() -> String) -> Tx<T> {
    serde_json::from_str(text).map_err(|e| backend(format!("{}: bad JSON: {e}", what())))
}

fn to_json<T: serde::Serialize>(value: &T) -> Tx<String> {
    serde_json::to_string(value).map_err(|e| backend(format!("cannot encode JSON: {e}")))
}

fn study_exists(conn: &Connection, study_id: i64) -> Tx<()> {
    let found = conn
        .prepare_cached("SELECT 1 FROM studies WHERE id = ?1")?
        .query_row([study_id], |_| Ok(()))
        .optional()?;
    found.ok_or_else(|| Fail::Store(StoreError::NoStudy(format!("#{study_id}"))))
}

/// `NoTrial` for an unknown id, `TrialFinished` for a trial that is not running.
fn require_running(conn: &Connection, trial_id: i64) -> Tx<()> {
    let state: Option<String> = conn
        .prepare_cached("SELECT state FROM trials WHERE id = ?1")?
        .query_row([trial_id], |r| r.get(0))
        .optional()?;
    match state.as_deref() {
        None => Err(StoreError::NoTrial(trial_id).into()),
        Some("running") => Ok(()),
        Some(_) => Err(StoreError::TrialFinished(trial_id).into()),
    }
}

/// The number the next trial of the study gets.
fn next_number(conn: &Connection, study_id: i64) -> Tx<i64> {
    Ok(conn
        .prepare_cached("SELECT COALESCE(MAX(number) + 1, 0) FROM trials WHERE study_id = ?1")?
        .query_row([study_id], |r| r.get(0))?)
}

fn insert_params(
    conn: &Connection,
    trial_id: i64,
    params: &BTreeMap<String, ParamRecord>,
) -> Tx<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR REPLACE INTO trial_params (trial_id, name, distribution, internal) \
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (name, p) in params {
        stmt.execute(params![
            trial_id,
            name,
            to_json(&p.distribution)?,
            Real(p.internal)
        ])?;
    }
    Ok(())
}

fn insert_attrs(
    conn: &Connection,
    trial_id: i64,
    attrs: &BTreeMap<String, serde_json::Value>,
) -> Tx<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR REPLACE INTO trial_attrs (trial_id, key, value) VALUES (?1, ?2, ?3)",
    )?;
    for (key, value) in attrs {
        stmt.execute(params![trial_id, key, to_json(value)?])?;
    }
    Ok(())
}

fn select_study(conn: &Connection, name: &str) -> Tx<Option<StudyRecord>> {
    let row = conn
        .prepare_cached(
            "SELECT id, name, direction, attrs, created_at FROM studies WHERE name = ?1",
        )?
        .query_row([name], study_row)
        .optional()?;
    row.map(StudyRow::decode).transpose()
}

struct StudyRow {
    id: i64,
    name: String,
    direction: String,
    attrs: String,
    created_at: f64,
}

fn study_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StudyRow> {
    Ok(StudyRow {
        id: r.get(0)?,
        name: r.get(1)?,
        direction: r.get(2)?,
        attrs: r.get(3)?,
        created_at: r.get::<_, Real>(4)?.0,
    })
}

impl StudyRow {
    fn decode(self) -> Tx<StudyRecord> {
        Ok(StudyRecord {
            direction: parse_direction(&self.direction)?,
            attrs: parse_json(&self.attrs, || format!("study '{}' attrs", self.name))?,
            id: self.id,
            name: self.name,
            created_at: self.created_at,
        })
    }
}

/// Which trials [`load_trials`] reads.
#[derive(Clone, Copy)]
enum Scope {
    /// A study's trials numbered from the second value on.
    Study(i64, u64),
    Trial(i64),
}

impl Scope {
    /// A condition on `trials AS t`, with its two values as `?1` and `?2`.
    fn filter(self) -> (&'static str, [i64; 2]) {
        match self {
            Scope::Study(id, from) => ("t.study_id = ?1 AND t.number >= ?2", [id, from as i64]),
            Scope::Trial(id) => ("t.id = ?1 AND t.number >= ?2", [id, 0]),
        }
    }
}

/// Trials with everything they own, ordered by number: one query per table, whatever the
/// number of trials.
fn load_trials(conn: &Connection, scope: Scope) -> Tx<Vec<FrozenTrial>> {
    let (filter, key) = scope.filter();
    let mut trials = Vec::new();
    let mut index: HashMap<i64, usize> = HashMap::new();

    let mut stmt = conn.prepare_cached(&format!(
        "SELECT t.id, t.number, t.state, t.value, t.started_at, t.finished_at, t.heartbeat_at, \
                t.owner_host, t.owner_pid, t.owner_start_ticks, t.error \
         FROM trials t WHERE {filter} ORDER BY t.number"
    ))?;
    let mut rows = stmt.query(key)?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let state: String = r.get(2)?;
        let state = TrialState::parse(&state)
            .ok_or_else(|| backend(format!("trial {id}: unknown state '{state}'")))?;
        let host: Option<String> = r.get(7)?;
        let owner = match host {
            Some(host) => Some(Owner {
                host,
                pid: r.get::<_, Option<i64>>(8)?.unwrap_or(0) as u32,
                start_ticks: r.get::<_, Option<i64>>(9)?.unwrap_or(0) as u64,
            }),
            None => None,
        };
        index.insert(id, trials.len());
        trials.push(FrozenTrial {
            id,
            number: r.get::<_, i64>(1)? as u64,
            state,
            params: BTreeMap::new(),
            value: opt_real(r.get(3)?),
            intermediate: BTreeMap::new(),
            attrs: BTreeMap::new(),
            started_at: opt_real(r.get(4)?),
            finished_at: opt_real(r.get(5)?),
            heartbeat_at: opt_real(r.get(6)?),
            owner,
            error: r.get(10)?,
        });
    }
    drop(rows);
    drop(stmt);
    if trials.is_empty() {
        return Ok(trials);
    }

    let mut stmt = conn.prepare_cached(&format!(
        "SELECT p.trial_id, p.name, p.distribution, p.internal \
         FROM trial_params p JOIN trials t ON t.id = p.trial_id WHERE {filter}"
    ))?;
    let mut rows = stmt.query(key)?;
    // Trials of a study share a handful of distributions: parse each text once.
    let mut distributions: HashMap<String, Distribution> = HashMap::new();
    while let Some(r) = rows.next()? {
        let (trial_id, name): (i64, String) = (r.get(0)?, r.get(1)?);
        let text = r.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?;
        let distribution = match distributions.get(text) {
            Some(d) => d.clone(),
            None => {
                let d: Distribution = parse_json(text, || {
                    format!("trial {trial_id} parameter '{name}' distribution")
                })?;
                distributions.insert(text.to_string(), d.clone());
                d
            }
        };
        let internal = r.get::<_, Real>(3)?.0;
        if let Some(&i) = index.get(&trial_id) {
            trials[i].params.insert(
                name,
                ParamRecord {
                    distribution,
                    internal,
                },
            );
        }
    }
    drop(rows);
    drop(stmt);

    let mut stmt = conn.prepare_cached(&format!(
        "SELECT v.trial_id, v.step, v.value \
         FROM trial_values v JOIN trials t ON t.id = v.trial_id WHERE {filter}"
    ))?;
    let mut rows = stmt.query(key)?;
    while let Some(r) = rows.next()? {
        let trial_id: i64 = r.get(0)?;
        if let Some(&i) = index.get(&trial_id) {
            trials[i]
                .intermediate
                .insert(r.get::<_, u32>(1)?, r.get::<_, Real>(2)?.0);
        }
    }
    drop(rows);
    drop(stmt);

    let mut stmt = conn.prepare_cached(&format!(
        "SELECT a.trial_id, a.key, a.value \
         FROM trial_attrs a JOIN trials t ON t.id = a.trial_id WHERE {filter}"
    ))?;
    let mut rows = stmt.query(key)?;
    while let Some(r) = rows.next()? {
        let (trial_id, attr_key): (i64, String) = (r.get(0)?, r.get(1)?);
        let text = r.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?;
        let value = parse_json(text, || format!("trial {trial_id} attr '{attr_key}'"))?;
        if let Some(&i) = index.get(&trial_id) {
            trials[i].attrs.insert(attr_key, value);
        }
    }
    Ok(trials)
}

impl Storage for SqliteStorage {
    fn create_study(
        &self,
        name: &str,
        direction: Direction,
        attrs: serde_json::Value,
    ) -> StoreResult<StudyRecord> {
        let attrs_json = serde_json::to_string(&attrs)
            .map_err(|e| StoreError::Backend(format!("cannot encode study attrs: {e}")))?;
        self.write(|conn| {
            if let Some(existing) = select_study(conn, name)? {
                if existing.direction != direction {
                    return Err(StoreError::DirectionMismatch {
                        name: name.into(),
                        existing: existing.direction.name(),
                        requested: direction.name(),
                    }
                    .into());
                }
                return Ok(existing);
            }
            let created_at = now_unix();
            conn.prepare_cached(
                "INSERT INTO studies (name, direction, attrs, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                name,
                direction.name(),
                attrs_json,
                Real(created_at)
            ])?;
            Ok(StudyRecord {
                id: conn.last_insert_rowid(),
                name: name.into(),
                direction,
                attrs: attrs.clone(),
                created_at,
            })
        })
    }

    fn get_study(&self, name: &str) -> StoreResult<Option<StudyRecord>> {
        self.read(|conn| select_study(conn, name))
    }

    fn delete_study(&self, name: &str) -> StoreResult<usize> {
        self.write(|conn| {
            let study = select_study(conn, name)?
                .ok_or_else(|| Fail::Store(StoreError::NoStudy(name.into())))?;
            let running: i64 = conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM trials WHERE study_id = ?1 AND state = 'running'",
                )?
                .query_row([study.id], |r| r.get(0))?;
            if running > 0 {
                return Err(Fail::Store(StoreError::StudyBusy {
                    name: name.into(),
                    running: running as usize,
                }));
            }
            for table in ["trial_params", "trial_values", "trial_attrs"] {
                conn.execute(
                    &format!(
                        "DELETE FROM {table} WHERE trial_id IN \
                         (SELECT id FROM trials WHERE study_id = ?1)"
                    ),
                    [study.id],
                )?;
            }
            let deleted = conn.execute("DELETE FROM trials WHERE study_id = ?1", [study.id])?;
            conn.execute("DELETE FROM studies WHERE id = ?1", [study.id])?;
            Ok(deleted)
        })
    }

    fn list_studies(&self) -> StoreResult<Vec<StudySummary>> {
        self.read(|conn| {
            let mut summaries = Vec::new();
            let mut index = HashMap::new();
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, direction, attrs, created_at FROM studies ORDER BY id",
            )?;
            let rows: Vec<StudyRow> = stmt
                .query_map([], study_row)?
                .collect::<rusqlite::Result<_>>()?;
            for row in rows {
                let study = row.decode()?;
                index.insert(study.id, summaries.len());
                summaries.push(StudySummary {
                    study,
                    trials: 0,
                    complete: 0,
                    pruned: 0,
                    failed: 0,
                    running: 0,
                    best_value: None,
                });
            }

            let mut stmt = conn.prepare_cached(
                "SELECT study_id, state, COUNT(*) FROM trials GROUP BY study_id, state",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let (study_id, state, n): (i64, String, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
                let Some(&i) = index.get(&study_id) else {
                    continue;
                };
                let s = &mut summaries[i];
                let n = n as usize;
                s.trials += n;
                match TrialState::parse(&state) {
                    Some(TrialState::Complete) => s.complete += n,
                    Some(TrialState::Pruned) => s.pruned += n,
                    Some(TrialState::Failed) => s.failed += n,
                    Some(TrialState::Running) => s.running += n,
                    Some(TrialState::Waiting) => {}
                    None => return Err(backend(format!("unknown trial state '{state}'"))),
                }
            }
            drop(rows);

            // The best value as `search::best_trial` picks it: complete, finite, first best.
            let mut stmt = conn.prepare_cached(
                "SELECT study_id, value FROM trials \
                 WHERE state = 'complete' AND value IS NOT NULL ORDER BY study_id, number",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let study_id: i64 = r.get(0)?;
                let value = r.get::<_, Real>(1)?.0;
                let Some(&i) = index.get(&study_id) else {
                    continue;
                };
                let s = &mut summaries[i];
                if value.is_finite()
                    && s.best_value
                        .is_none_or(|b| s.study.direction.better(value, b))
                {
                    s.best_value = Some(value);
                }
            }
            Ok(summaries)
        })
    }

    fn start_trial(
        &self,
        study_id: i64,
        limit: Option<u64>,
        owner: &Owner,
    ) -> StoreResult<Option<StartedTrial>> {
        self.write(|conn| {
            study_exists(conn, study_id)?;
            let now = Real(now_unix());
            let owner_params = (&owner.host, owner.pid, owner.start_ticks as i64);
            let waiting: Option<i64> = conn
                .prepare_cached(
                    "SELECT id FROM trials WHERE study_id = ?1 AND state = 'waiting' \
                     ORDER BY number LIMIT 1",
                )?
                .query_row([study_id], |r| r.get(0))
                .optional()?;
            let id = match waiting {
                Some(id) => {
                    conn.prepare_cached(
                        "UPDATE trials SET state = 'running', started_at = ?2, heartbeat_at = ?2, \
                         owner_host = ?3, owner_pid = ?4, owner_start_ticks = ?5 WHERE id = ?1",
                    )?
                    .execute(params![
                        id,
                        now,
                        owner_params.0,
                        owner_params.1,
                        owner_params.2
                    ])?;
                    id
                }
                None => {
                    let active: i64 = conn
                        .prepare_cached(
                            "SELECT COUNT(*) FROM trials WHERE study_id = ?1 AND state <> 'failed'",
                        )?
                        .query_row([study_id], |r| r.get(0))?;
                    if limit.is_some_and(|l| active as u64 >= l) {
                        return Ok(None);
                    }
                    let number = next_number(conn, study_id)?;
                    conn.prepare_cached(
                        "INSERT INTO trials (study_id, number, state, started_at, heartbeat_at, \
                         owner_host, owner_pid, owner_start_ticks) \
                         VALUES (?1, ?2, 'running', ?3, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![
                        study_id,
                        number,
                        now,
                        owner_params.0,
                        owner_params.1,
                        owner_params.2
                    ])?;
                    conn.last_insert_rowid()
                }
            };
            let t = load_trials(conn, Scope::Trial(id))?
                .pop()
                .ok_or(StoreError::NoTrial(id))?;
            Ok(Some(StartedTrial {
                id,
                number: t.number,
                fixed_params: t.params,
                attrs: t.attrs,
            }))
        })
    }

    fn enqueue_trial(
        &self,
        study_id: i64,
        params: &BTreeMap<String, ParamRecord>,
        attrs: &BTreeMap<String, serde_json::Value>,
    ) -> StoreResult<u64> {
        self.write(|conn| {
            study_exists(conn, study_id)?;
            let number = next_number(conn, study_id)?;
            conn.prepare_cached(
                "INSERT INTO trials (study_id, number, state) VALUES (?1, ?2, 'waiting')",
            )?
            .execute(params![study_id, number])?;
            let id = conn.last_insert_rowid();
            insert_params(conn, id, params)?;
            insert_attrs(conn, id, attrs)?;
            Ok(number as u64)
        })
    }

    fn set_param(&self, trial_id: i64, name: &str, param: &ParamRecord) -> StoreResult<()> {
        let one = BTreeMap::from([(name.to_string(), param.clone())]);
        self.write(|conn| {
            require_running(conn, trial_id)?;
            insert_params(conn, trial_id, &one)
        })
    }

    fn report(&self, trial_id: i64, step: u32, value: f64) -> StoreResult<()> {
        self.write(|conn| {
            require_running(conn, trial_id)?;
            conn.prepare_cached(
                "INSERT OR REPLACE INTO trial_values (trial_id, step, value) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![trial_id, step, Real(value)])?;
            Ok(())
        })
    }

    fn set_attr(&self, trial_id: i64, key: &str, value: &serde_json::Value) -> StoreResult<()> {
        let one = BTreeMap::from([(key.to_string(), value.clone())]);
        self.write(|conn| {
            require_running(conn, trial_id)?;
            insert_attrs(conn, trial_id, &one)
        })
    }

    fn finish_trial(
        &self,
        trial_id: i64,
        state: TrialState,
        value: Option<f64>,
        error: Option<&str>,
    ) -> StoreResult<()> {
        assert!(state.is_finished(), "finish_trial needs a finished state");
        self.write(|conn| {
            require_running(conn, trial_id)?;
            conn.prepare_cached(
                "UPDATE trials SET state = ?2, value = ?3, error = ?4, finished_at = ?5 \
                 WHERE id = ?1",
            )?
            .execute(params![
                trial_id,
                state.name(),
                value.map(Real),
                error,
                Real(now_unix())
            ])?;
            Ok(())
        })
    }

    fn heartbeat(&self, trial_ids: &[i64]) -> StoreResult<()> {
        if trial_ids.is_empty() {
            return Ok(());
        }
        self.write(|conn| {
            let now = Real(now_unix());
            let mut stmt = conn.prepare_cached(
                "UPDATE trials SET heartbeat_at = ?2 WHERE id = ?1 AND state = 'running'",
            )?;
            for &id in trial_ids {
                stmt.execute(params![id, now])?;
            }
            Ok(())
        })
    }

    fn trials(&self, study_id: i64) -> StoreResult<Vec<FrozenTrial>> {
        self.read(|conn| load_trials(conn, Scope::Study(study_id, 0)))
    }

    fn trials_from(&self, study_id: i64, first_number: u64) -> StoreResult<Vec<FrozenTrial>> {
        self.read(|conn| load_trials(conn, Scope::Study(study_id, first_number)))
    }

    fn trial(&self, trial_id: i64) -> StoreResult<FrozenTrial> {
        self.read(|conn| {
            load_trials(conn, Scope::Trial(trial_id))?
                .pop()
                .ok_or_else(|| StoreError::NoTrial(trial_id).into())
        })
    }
}
