//! PostgreSQL storage (`postgres://user:pass@host[:port]/db`), for studies shared by workers
//! on many machines.
//!
//! # Concurrency
//! - A pool of connections ([`r2d2`]) per process; each connection keeps its own prepared
//!   statements, so a call costs one round trip per statement.
//! - Writes that touch one row are one statement (autocommit). A trial's data is written only
//!   while the trial is running: the insert reads the trial row `FOR SHARE`, so it waits for a
//!   concurrent `finish_trial` and then sees the trial finished.
//! - [`Storage::start_trial`] hands each trial to exactly one worker: a waiting trial is claimed
//!   with `SELECT … FOR UPDATE SKIP LOCKED` (workers never wait for each other there); a new
//!   trial is numbered under a lock on the study's row, so the count against the limit and
//!   `MAX(number) + 1` are read after every earlier claim committed (no duplicates, no
//!   overshoot). `UNIQUE (study_id, number)` backs this up.
//! - Reads of a study's trials are one `REPEATABLE READ` snapshot.
//! - Transactions that fail with a serialization failure or a deadlock are run again.
//!
//! # Schema
//! [`super::schema::POSTGRES`], versioned in the table `modelsmith_schema`. Migrations run in
//! one transaction under an advisory lock, so workers starting together migrate once. A
//! database whose schema is newer than this build is refused.
//!
//! # Credentials
//! The password comes from the URL, else from the file named by
//! `MODELSMITH_STORAGE_PASSWORD_FILE`, else from `PGPASSWORD`. It never appears in a message:
//! errors name the store by [`super::redact_url`], and any text from the server or driver is
//! scrubbed of it too. TLS is used as the URL's `sslmode` says (`disable`, `prefer` — the
//! default — or `require`), verified against the system's root certificates (or
//! `SSL_CERT_FILE`).

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, IsolationLevel, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{
    redact_url, StartedTrial, Storage, StoreError, StoreResult, StudyRecord, StudySummary,
};
use crate::record::now_unix;
use crate::record::{Direction, Distribution, FrozenTrial, Owner, ParamRecord, TrialState};

use super::schema::POSTGRES as MIGRATIONS;

/// The schema version this build writes and understands.
const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Key of the advisory lock taken while migrating: "MSMT".
const MIGRATION_LOCK: i64 = 0x4D53_4D54;

/// How long a transaction that keeps failing with a serialization failure or a deadlock is
/// run again.
const RETRIES: u32 = 20;

/// Connections a process keeps at most (the study loop's threads plus its heartbeat).
const POOL_SIZE: u32 = 8;

pub struct PostgresStorage {
    pool: r2d2::Pool<Manager>,
    /// Removes the password from any text we pass on.
    scrub: Scrubber,
}

impl PostgresStorage {
    /// The schema version this build writes and understands.
    pub const SCHEMA_VERSION: i64 = SCHEMA_VERSION as i64;

    /// Connects to the database at `url` and brings its schema up to date (creating it in an
    /// empty database). A bad URL, an unreachable server, failed authentication or a database
    /// with a newer or foreign schema is [`StoreError::Open`].
    pub fn open(url: &str) -> StoreResult<Self> {
        Self::connect(url, true)
    }

    /// Like [`PostgresStorage::open`], but a database without a Modelsmith schema is refused
    /// rather than initialized (for readers: a wrong database name should not create tables).
    pub fn open_existing(url: &str) -> StoreResult<Self> {
        Self::connect(url, false)
    }

    fn connect(url: &str, create: bool) -> StoreResult<Self> {
        let shown = redact_url(url);
        let mut config = postgres::Config::from_str(url).map_err(|e| StoreError::Open {
            url: shown.clone(),
            message: format!(
                "not a valid PostgreSQL URL ({})",
                Scrubber::for_url(url).text(&e.to_string())
            ),
        })?;
        let mut scrub = Scrubber::for_url(url);
        if config.get_password().is_none() {
            if let Some(password) = password_from_env(&shown)? {
                scrub.add(&password);
                config.password(password);
            }
        }
        if config.get_user().is_none() {
            if let Ok(user) = std::env::var("PGUSER").or_else(|_| std::env::var("USER")) {
                config.user(&user);
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        // A peer that vanishes (network cut) shows up as a dead connection, not a hang.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        config.keepalives_interval(Duration::from_secs(2));
        config.keepalives_retries(3);
        config.tcp_user_timeout(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("modelsmith");
        }
        let open_error = |message: String| StoreError::Open {
            url: shown.clone(),
            message: scrub.text(&message),
        };
        let tls = tls_connector().map_err(open_error)?;

        // One connection first: a wrong password or an unreachable server is reported now and
        // once, not after the pool's retries.
        let mut client = config
            .connect(tls.clone())
            .map_err(|e| open_error(format!("cannot connect: {}", describe(&e))))?;
        migrate(&mut client, create).map_err(|e| match e {
            Fail::Store(StoreError::Open { message, .. }) => open_error(message),
            Fail::Store(e) => e,
            Fail::Sql(e) => open_error(format!("cannot set up the schema: {}", describe(&e))),
        })?;

        drop(client);

        let manager = Manager { config, tls };
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(0))
            // `has_broken` (a closed socket) is checked on return; a query on each checkout
            // would double the round trips of every call.
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(30))
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(manager);
        Ok(PostgresStorage { pool, scrub })
    }

    /// Runs `f` on a pooled connection, outside a transaction (for single statements).
    fn call<T>(&self, mut f: impl FnMut(&mut Db<'_, '_>) -> Tx<T>) -> StoreResult<T> {
        self.run(|conn| {
            let Conn { client, statements } = conn;
            f(&mut Db {
                client: Handle::Client(client),
                statements,
            })
        })
    }

    /// Runs `f` in a transaction (`READ COMMITTED`, or a read-only `REPEATABLE READ` snapshot).
    fn transaction<T>(
        &self,
        snapshot: bool,
        mut f: impl FnMut(&mut Db<'_, '_>) -> Tx<T>,
    ) -> StoreResult<T> {
        self.run(|conn| {
            let Conn { client, statements } = conn;
            let mut builder = client.build_transaction();
            if snapshot {
                builder = builder
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .read_only(true);
            }
            let mut tx = builder.start()?;
            let value = f(&mut Db {
                client: Handle::Tx(&mut tx),
                statements,
            })?;
            tx.commit()?;
            Ok(value)
        })
    }

    /// Gets a connection and runs `attempt`, again after a serialization failure or deadlock.
    fn run<T>(&self, mut attempt: impl FnMut(&mut Conn) -> Tx<T>) -> StoreResult<T> {
        let mut tries = 0;
        loop {
            let mut conn = self.pool.get().map_err(|e| {
                StoreError::Backend(format!(
                    "cannot reach PostgreSQL: {}",
                    self.scrub.text(&e.to_string())
                ))
            })?;
            match attempt(&mut conn) {
                Err(Fail::Sql(e)) if is_retryable(&e) && tries < RETRIES => {
                    tries += 1;
                    tracing::debug!("postgres: {e}; running the transaction again ({tries})");
                    let base_us = 500u64 << tries.min(6);
                    std::thread::sleep(Duration::from_micros(
                        base_us + rand::random::<u64>() % (base_us + 1),
                    ));
                }
                Err(Fail::Sql(e)) => {
                    return Err(StoreError::Backend(format!(
                        "postgres: {}",
                        self.scrub.text(&describe(&e))
                    )))
                }
                Err(Fail::Store(e)) => return Err(e),
                Ok(v) => return Ok(v),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connections.

/// A connection and the statements prepared on it.
pub struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    fn new(client: Client) -> Conn {
        Conn {
            client,
            statements: HashMap::new(),
        }
    }
}

struct Manager {
    config: postgres::Config,
    tls: MakeRustlsConnect,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        Ok(Conn::new(self.config.connect(self.tls.clone())?))
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed()
    }
}

/// TLS for `sslmode=prefer|require`: rustls with the system's root certificates.
fn tls_connector() -> Result<MakeRustlsConnect, String> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        // A certificate the system trusts but rustls cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The password when the URL has none: the file `MODELSMITH_STORAGE_PASSWORD_FILE` names (its
/// first line), else `PGPASSWORD`.
fn password_from_env(shown_url: &str) -> StoreResult<Option<String>> {
    if let Some(path) = std::env::var_os("MODELSMITH_STORAGE_PASSWORD_FILE") {
        let text = std::fs::read_to_string(&path).map_err(|e| StoreError::Open {
            url: shown_url.into(),
            message: format!(
                "cannot read the password file '{}' (MODELSMITH_STORAGE_PASSWORD_FILE): {e}",
                std::path::Path::new(&path).display()
            ),
        })?;
        let password = text.lines().next().unwrap_or("").to_string();
        if password.is_empty() {
            return Err(StoreError::Open {
                url: shown_url.into(),
                message: format!(
                    "the password file '{}' is empty",
                    std::path::Path::new(&path).display()
                ),
            });
        }
        return Ok(Some(password));
    }
    Ok(std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()))
}

/// Replaces every secret it knows with `***`.
#[derive(Clone, Default)]
struct Scrubber {
    secrets: Vec<String>,
}

impl Scrubber {
    fn for_url(url: &str) -> Scrubber {
        let mut s = Scrubber::default();
        if let Ok(super::StorageUrl::Postgres(pg)) = super::StorageUrl::parse(url) {
            if let Some(p) = pg.password() {
                s.add(&p);
            }
        }
        s
    }

    fn add(&mut self, secret: &str) {
        if !secret.is_empty() {
            self.secrets.push(secret.to_string());
        }
    }

    /// A long secret is replaced wherever it appears; a short one (a few letters are part of
    /// many words: `p` of `postgres`) only where it stands alone between non-alphanumerics.
    fn text(&self, text: &str) -> String {
        let mut out = one_line(text);
        for secret in &self.secrets {
            out = if secret.chars().count() >= 4 {
                out.replace(secret.as_str(), "***")
            } else {
                replace_whole(&out, secret)
            };
        }
        out
    }
}

/// `text` with every occurrence of `word` not adjoined by a letter or digit replaced by `***`.
fn replace_whole(text: &str, word: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(word) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + word.len()..].chars().next();
        let alone =
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric);
        out.push_str(&rest[..i]);
        out.push_str(if alone { "***" } else { word });
        rest = &rest[i + word.len()..];
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------------------------
// Statements.

/// Why a call failed: the database (maybe retried) or the contract.
enum Fail {
    Sql(postgres::Error),
    Store(StoreError),
}

impl From<postgres::Error> for Fail {
    fn from(e: postgres::Error) -> Self {
        Fail::Sql(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

type Tx<T> = Result<T, Fail>;

enum Handle<'a, 'c> {
    Client(&'a mut Client),
    Tx(&'a mut postgres::Transaction<'c>),
}

/// A connection (or a transaction on it) with its statement cache.
struct Db<'a, 'c> {
    client: Handle<'a, 'c>,
    statements: &'a mut HashMap<&'static str, Statement>,
}

type Row = postgres::Row;

impl Db<'_, '_> {
    fn statement(&mut self, sql: &'static str) -> Tx<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = match &mut self.client {
            Handle::Client(c) => c.prepare(sql)?,
            Handle::Tx(t) => t.prepare(sql)?,
        };
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    fn query(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Tx<Vec<Row>> {
        let s = self.statement(sql)?;
        Ok(match &mut self.client {
            Handle::Client(c) => c.query(&s, params)?,
            Handle::Tx(t) => t.query(&s, params)?,
        })
    }

    fn query_opt(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Tx<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    fn execute(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Tx<u64> {
        let s = self.statement(sql)?;
        Ok(match &mut self.client {
            Handle::Client(c) => c.execute(&s, params)?,
            Handle::Tx(t) => t.execute(&s, params)?,
        })
    }
}

fn is_retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::T_R_SERIALIZATION_FAILURE) | Some(&SqlState::T_R_DEADLOCK_DETECTED)
    )
}

/// The server's own message when there is one ("password authentication failed for user …"),
/// else the driver's, with its cause.
fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return one_line(db.message());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text = format!("{text}: {s_text}");
        }
        source = s.source();
    }
    one_line(&text)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn backend(message: String) -> Fail {
    Fail::Store(StoreError::Backend(message))
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str, what: impl Fn() -> String) -> Tx<T> {
    serde_json::from_str(text).map_err(|e| backend(format!("{}: bad JSON: {e}", what())))
}

fn to_json<T: serde::Serialize>(value: &T) -> Tx<String> {
    serde_json::to_string(value).map_err(|e| backend(format!("cannot encode JSON: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Schema.

/// Brings the schema to [`SCHEMA_VERSION`] (creating it when `create`), refusing databases
/// whose schema is newer or not ours.
fn migrate(client: &mut Client, create: bool) -> Tx<()> {
    let open = |message: String| {
        Fail::Store(StoreError::Open {
            url: String::new(), // filled in by the caller
            message,
        })
    };
    // The common case, an up-to-date store, takes no lock.
    if let Some(version) = schema_version(client)? {
        if version == SCHEMA_VERSION {
            return Ok(());
        }
    }
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    // Under the lock: whoever migrated before us is done.
    let version = match schema_version_in(&mut tx)? {
        Some(v) => v,
        None => {
            let studies: Option<String> = tx
                .query_one("SELECT to_regclass('studies')::text", &[])?
                .get(0);
            if studies.is_some() {
                return Err(open(
                    "the database has a 'studies' table that is not Modelsmith's \
                     (use another database or schema)"
                        .into(),
                ));
            }
            if !create {
                return Err(open(
                    "no Modelsmith studies in this database (studies are created by \
                     `modelsmith tune`)"
                        .into(),
                ));
            }
            tx.batch_execute(
                "CREATE TABLE modelsmith_schema (version INTEGER NOT NULL);
                 INSERT INTO modelsmith_schema (version) VALUES (0);",
            )?;
            0
        }
    };
    if version > SCHEMA_VERSION {
        return Err(open(format!(
            "schema version {version} is newer than this Modelsmith supports \
             ({SCHEMA_VERSION}); upgrade Modelsmith to open it"
        )));
    }
    for migration in &MIGRATIONS[version as usize..] {
        tx.batch_execute(migration)?;
    }
    tx.execute(
        "UPDATE modelsmith_schema SET version = $1",
        &[&SCHEMA_VERSION],
    )?;
    tx.commit()?;
    Ok(())
}

fn schema_version(client: &mut Client) -> Tx<Option<i32>> {
    let mut tx = client.transaction()?;
    let v = schema_version_in(&mut tx)?;
    tx.commit()?;
    Ok(v)
}

fn schema_version_in(tx: &mut postgres::Transaction<'_>) -> Tx<Option<i32>> {
    let table: Option<String> = tx
        .query_one("SELECT to_regclass('modelsmith_schema')::text", &[])?
        .get(0);
    if table.is_none() {
        return Ok(None);
    }
    let row = tx.query_opt("SELECT version FROM modelsmith_schema", &[])?;
    Ok(Some(row.map_or(0, |r| r.get(0))))
}

// ---------------------------------------------------------------------------------------------
// Rows.

fn study_from_row(r: &Row) -> Tx<StudyRecord> {
    let name: String = r.get(1);
    let direction: String = r.get(2);
    let attrs: String = r.get(3);
    Ok(StudyRecord {
        id: r.get(0),
        direction: direction
            .parse()
            .map_err(|e: String| backend(format!("bad study direction: {e}")))?,
        attrs: parse_json(&attrs, || format!("study '{name}' attrs"))?,
        name,
        created_at: r.get(4),
    })
}

fn select_study(db: &mut Db<'_, '_>, name: &str) -> Tx<Option<StudyRecord>> {
    db.query_opt(
        "SELECT id, name, direction, attrs, created_at FROM studies WHERE name = $1",
        &[&name],
    )?
    .map(|r| study_from_row(&r))
    .transpose()
}

/// Locks the study's row (serializing the numbering of its new trials); `NoStudy` if absent.
fn lock_study(db: &mut Db<'_, '_>, study_id: i64) -> Tx<()> {
    db.query_opt(
        "SELECT id FROM studies WHERE id = $1 FOR UPDATE",
        &[&study_id],
    )?
    .map(|_| ())
    .ok_or_else(|| Fail::Store(StoreError::NoStudy(format!("#{study_id}"))))
}

/// After a guarded write changed nothing: `NoTrial` or `TrialFinished`.
fn not_running(db: &mut Db<'_, '_>, trial_id: i64) -> Fail {
    match db.query_opt("SELECT state FROM trials WHERE id = $1", &[&trial_id]) {
        Ok(None) => StoreError::NoTrial(trial_id).into(),
        Ok(Some(_)) => StoreError::TrialFinished(trial_id).into(),
        Err(e) => e,
    }
}

fn insert_params(
    db: &mut Db<'_, '_>,
    trial_id: i64,
    params: &BTreeMap<String, ParamRecord>,
) -> Tx<()> {
    for (name, p) in params {
        db.execute(
            "INSERT INTO trial_params (trial_id, name, distribution, internal) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (trial_id, name) DO UPDATE \
             SET distribution = EXCLUDED.distribution, internal = EXCLUDED.internal",
            &[&trial_id, name, &to_json(&p.distribution)?, &p.internal],
        )?;
    }
    Ok(())
}

fn insert_attrs(
    db: &mut Db<'_, '_>,
    trial_id: i64,
    attrs: &BTreeMap<String, serde_json::Value>,
) -> Tx<()> {
    for (key, value) in attrs {
        db.execute(
            "INSERT INTO trial_attrs (trial_id, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (trial_id, key) DO UPDATE SET value = EXCLUDED.value",
            &[&trial_id, key, &to_json(value)?],
        )?;
    }
    Ok(())
}

/// Which trials [`load_trials`] reads.
#[derive(Clone, Copy)]
enum Scope {
    /// A study's trials numbered from the second value on.
    Study(i64, u64),
    Trial(i64),
    /// A study's running trials.
    Running(i64),
}

/// The SQL of [`load_trials`], one set per scope (statements are cached by their text).
struct ScopeSql {
    trials: &'static str,
    params: &'static str,
    values: &'static str,
    attrs: &'static str,
}

macro_rules! scope_sql {
    ($filter:literal) => {
        ScopeSql {
            trials: concat!(
                "SELECT t.id, t.number, t.state, t.value, t.started_at, t.finished_at, ",
                "t.heartbeat_at, t.owner_host, t.owner_pid, t.owner_start_ticks, t.error ",
                "FROM trials t WHERE ",
                $filter,
                " ORDER BY t.number"
            ),
            params: concat!(
                "SELECT p.trial_id, p.name, p.distribution, p.internal ",
                "FROM trial_params p JOIN trials t ON t.id = p.trial_id WHERE ",
                $filter
            ),
            values: concat!(
                "SELECT v.trial_id, v.step, v.value ",
                "FROM trial_values v JOIN trials t ON t.id = v.trial_id WHERE ",
                $filter
            ),
            attrs: concat!(
                "SELECT a.trial_id, a.key, a.value ",
                "FROM trial_attrs a JOIN trials t ON t.id = a.trial_id WHERE ",
                $filter
            ),
        }
    };
}

const STUDY_SQL: ScopeSql = scope_sql!("t.study_id = $1 AND t.number >= $2");
const TRIAL_SQL: ScopeSql = scope_sql!("t.id = $1 AND t.number >= $2");
const RUNNING_SQL: ScopeSql =
    scope_sql!("t.study_id = $1 AND t.number >= $2 AND t.state = 'running'");

impl Scope {
    fn sql(self) -> (&'static ScopeSql, [i64; 2]) {
        match self {
            Scope::Study(id, from) => (&STUDY_SQL, [id, from as i64]),
            Scope::Trial(id) => (&TRIAL_SQL, [id, 0]),
            Scope::Running(id) => (&RUNNING_SQL, [id, 0]),
        }
    }
}

/// Trials with everything they own, ordered by number: one query per table.
fn load_trials(db: &mut Db<'_, '_>, scope: Scope) -> Tx<Vec<FrozenTrial>> {
    let (sql, [a, b]) = scope.sql();
    let key: [&(dyn ToSql + Sync); 2] = [&a, &b];
    let mut trials = Vec::new();
    let mut index: HashMap<i64, usize> = HashMap::new();
    for r in db.query(sql.trials, &key)? {
        let id: i64 = r.get(0);
        let state: String = r.get(2);
        let state = TrialState::parse(&state)
            .ok_or_else(|| backend(format!("trial {id}: unknown state '{state}'")))?;
        let owner = r.get::<_, Option<String>>(7).map(|host| Owner {
            host,
            pid: r.get::<_, Option<i64>>(8).unwrap_or(0) as u32,
            start_ticks: r.get::<_, Option<i64>>(9).unwrap_or(0) as u64,
        });
        index.insert(id, trials.len());
        trials.push(FrozenTrial {
            id,
            number: r.get::<_, i64>(1) as u64,
            state,
            params: BTreeMap::new(),
            value: r.get(3),
            intermediate: BTreeMap::new(),
            attrs: BTreeMap::new(),
            started_at: r.get(4),
            finished_at: r.get(5),
            heartbeat_at: r.get(6),
            owner,
            error: r.get(10),
        });
    }
    if trials.is_empty() {
        return Ok(trials);
    }
    // Trials of a study share a handful of distributions: parse each text once.
    let mut distributions: HashMap<String, Distribution> = HashMap::new();
    for r in db.query(sql.params, &key)? {
        let (trial_id, name, text): (i64, String, String) = (r.get(0), r.get(1), r.get(2));
        let distribution = match distributions.get(&text) {
            Some(d) => d.clone(),
            None => {
                let d: Distribution = parse_json(&text, || {
                    format!("trial {trial_id} parameter '{name}' distribution")
                })?;
                distributions.insert(text, d.clone());
                d
            }
        };
        if let Some(&i) = index.get(&trial_id) {
            trials[i].params.insert(
                name,
                ParamRecord {
                    distribution,
                    internal: r.get(3),
                },
            );
        }
    }
    for r in db.query(sql.values, &key)? {
        let trial_id: i64 = r.get(0);
        if let Some(&i) = index.get(&trial_id) {
            trials[i]
                .intermediate
                .insert(r.get::<_, i64>(1) as u32, r.get(2));
        }
    }
    for r in db.query(sql.attrs, &key)? {
        let (trial_id, key, text): (i64, String, String) = (r.get(0), r.get(1), r.get(2));
        let value = parse_json(&text, || format!("trial {trial_id} attr '{key}'"))?;
        if let Some(&i) = index.get(&trial_id) {
            trials[i].attrs.insert(key, value);
        }
    }
    Ok(trials)
}

// ---------------------------------------------------------------------------------------------
// The contract.

impl Storage for PostgresStorage {
    fn create_study(
        &self,
        name: &str,
        direction: Direction,
        attrs: serde_json::Value,
    ) -> StoreResult<StudyRecord> {
        let attrs_json = serde_json::to_string(&attrs)
            .map_err(|e| StoreError::Backend(format!("cannot encode study attrs: {e}")))?;
        self.call(|db| {
            // Racing creators: one insert wins, everyone reads the winner's row.
            db.execute(
                "INSERT INTO studies (name, direction, attrs, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
                &[&name, &direction.name(), &attrs_json, &now_unix()],
            )?;
            let existing = select_study(db, name)?
                .ok_or_else(|| backend(format!("study '{name}' vanished after its creation")))?;
            if existing.direction != direction {
                return Err(StoreError::DirectionMismatch {
                    name: name.into(),
                    existing: existing.direction.name(),
                    requested: direction.name(),
                }
                .into());
            }
            Ok(existing)
        })
    }

    fn get_study(&self, name: &str) -> StoreResult<Option<StudyRecord>> {
        self.call(|db| select_study(db, name))
    }

    fn delete_study(&self, name: &str) -> StoreResult<usize> {
        self.transaction(false, |db| {
            let study = select_study(db, name)?
                .ok_or_else(|| Fail::Store(StoreError::NoStudy(name.into())))?;
            // Locks the study's row: no worker numbers a new trial of it meanwhile.
            db.query("SELECT id FROM studies WHERE id = $1 FOR UPDATE", &[&study.id])?;
            let running: i64 = db
                .query(
                    "SELECT COUNT(*) FROM trials WHERE study_id = $1 AND state = 'running'",
                    &[&study.id],
                )?
                .first()
                .map_or(0, |r| r.get(0));
            if running > 0 {
                return Err(Fail::Store(StoreError::StudyBusy {
                    name: name.into(),
                    running: running as usize,
                }));
            }
            db.execute(
                "DELETE FROM trial_params WHERE trial_id IN (SELECT id FROM trials WHERE study_id = $1)",
                &[&study.id],
            )?;
            db.execute(
                "DELETE FROM trial_values WHERE trial_id IN (SELECT id FROM trials WHERE study_id = $1)",
                &[&study.id],
            )?;
            db.execute(
                "DELETE FROM trial_attrs WHERE trial_id IN (SELECT id FROM trials WHERE study_id = $1)",
                &[&study.id],
            )?;
            let deleted = db.execute("DELETE FROM trials WHERE study_id = $1", &[&study.id])?;
            db.execute("DELETE FROM studies WHERE id = $1", &[&study.id])?;
            Ok(deleted as usize)
        })
    }

    fn list_studies(&self) -> StoreResult<Vec<StudySummary>> {
        self.transaction(true, |db| {
            let mut summaries = Vec::new();
            let mut index = HashMap::new();
            for r in db.query(
                "SELECT id, name, direction, attrs, created_at FROM studies ORDER BY id",
                &[],
            )? {
                let study = study_from_row(&r)?;
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
            for r in db.query(
                "SELECT study_id, state, COUNT(*) FROM trials GROUP BY study_id, state",
                &[],
            )? {
                let (study_id, state, n): (i64, String, i64) = (r.get(0), r.get(1), r.get(2));
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
            // The best value as `search::best_trial` picks it: complete, finite, first best.
            for r in db.query(
                "SELECT study_id, value FROM trials \
                 WHERE state = 'complete' AND value IS NOT NULL ORDER BY study_id, number",
                &[],
            )? {
                let (study_id, value): (i64, f64) = (r.get(0), r.get(1));
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
        let (host, pid, ticks) = (&owner.host, owner.pid as i64, owner.start_ticks as i64);
        self.transaction(false, |db| {
            let now = now_unix();
            // A waiting trial nobody else is claiming right now.
            let waiting = db.query_opt(
                "SELECT id FROM trials WHERE study_id = $1 AND state = 'waiting' \
                 ORDER BY number LIMIT 1 FOR UPDATE SKIP LOCKED",
                &[&study_id],
            )?;
            if let Some(row) = waiting {
                let id: i64 = row.get(0);
                db.execute(
                    "UPDATE trials SET state = 'running', started_at = $2, heartbeat_at = $2, \
                     owner_host = $3, owner_pid = $4, owner_start_ticks = $5 WHERE id = $1",
                    &[&id, &now, host, &pid, &ticks],
                )?;
                let t = load_trials(db, Scope::Trial(id))?
                    .pop()
                    .ok_or(StoreError::NoTrial(id))?;
                return Ok(Some(StartedTrial {
                    id,
                    number: t.number,
                    fixed_params: t.params,
                    attrs: t.attrs,
                }));
            }
            // A new trial: counted and numbered under the study's lock.
            lock_study(db, study_id)?;
            let row = db
                .query_opt(
                    "SELECT COUNT(*) FILTER (WHERE state <> 'failed'), \
                            COALESCE(MAX(number) + 1, 0) \
                     FROM trials WHERE study_id = $1",
                    &[&study_id],
                )?
                .ok_or_else(|| backend("COUNT returned no row".into()))?;
            let (active, number): (i64, i64) = (row.get(0), row.get(1));
            if limit.is_some_and(|l| active as u64 >= l) {
                return Ok(None);
            }
            let row = db
                .query_opt(
                    "INSERT INTO trials (study_id, number, state, started_at, heartbeat_at, \
                     owner_host, owner_pid, owner_start_ticks) \
                     VALUES ($1, $2, 'running', $3, $3, $4, $5, $6) RETURNING id",
                    &[&study_id, &number, &now, host, &pid, &ticks],
                )?
                .ok_or_else(|| backend("INSERT returned no id".into()))?;
            Ok(Some(StartedTrial {
                id: row.get(0),
                number: number as u64,
                fixed_params: BTreeMap::new(),
                attrs: BTreeMap::new(),
            }))
        })
    }

    fn enqueue_trial(
        &self,
        study_id: i64,
        params: &BTreeMap<String, ParamRecord>,
        attrs: &BTreeMap<String, serde_json::Value>,
    ) -> StoreResult<u64> {
        self.transaction(false, |db| {
            lock_study(db, study_id)?;
            let row = db
                .query_opt(
                    "INSERT INTO trials (study_id, number, state) \
                     SELECT $1, COALESCE(MAX(number) + 1, 0), 'waiting' \
                     FROM trials WHERE study_id = $1 RETURNING id, number",
                    &[&study_id],
                )?
                .ok_or_else(|| backend("INSERT returned no id".into()))?;
            let (id, number): (i64, i64) = (row.get(0), row.get(1));
            insert_params(db, id, params)?;
            insert_attrs(db, id, attrs)?;
            Ok(number as u64)
        })
    }

    fn set_param(&self, trial_id: i64, name: &str, param: &ParamRecord) -> StoreResult<()> {
        let distribution = serde_json::to_string(&param.distribution)
            .map_err(|e| StoreError::Backend(format!("cannot encode JSON: {e}")))?;
        self.call(|db| {
            let n = db.execute(
                "INSERT INTO trial_params (trial_id, name, distribution, internal) \
                 SELECT id, $2, $3, $4 FROM trials WHERE id = $1 AND state = 'running' FOR SHARE \
                 ON CONFLICT (trial_id, name) DO UPDATE \
                 SET distribution = EXCLUDED.distribution, internal = EXCLUDED.internal",
                &[&trial_id, &name, &distribution, &param.internal],
            )?;
            if n == 0 {
                return Err(not_running(db, trial_id));
            }
            Ok(())
        })
    }

    fn report(&self, trial_id: i64, step: u32, value: f64) -> StoreResult<()> {
        self.call(|db| {
            let n = db.execute(
                "INSERT INTO trial_values (trial_id, step, value) \
                 SELECT id, $2, $3 FROM trials WHERE id = $1 AND state = 'running' FOR SHARE \
                 ON CONFLICT (trial_id, step) DO UPDATE SET value = EXCLUDED.value",
                &[&trial_id, &i64::from(step), &value],
            )?;
            if n == 0 {
                return Err(not_running(db, trial_id));
            }
            Ok(())
        })
    }

    fn set_attr(&self, trial_id: i64, key: &str, value: &serde_json::Value) -> StoreResult<()> {
        let text = serde_json::to_string(value)
            .map_err(|e| StoreError::Backend(format!("cannot encode JSON: {e}")))?;
        self.call(|db| {
            let n = db.execute(
                "INSERT INTO trial_attrs (trial_id, key, value) \
                 SELECT id, $2, $3 FROM trials WHERE id = $1 AND state = 'running' FOR SHARE \
                 ON CONFLICT (trial_id, key) DO UPDATE SET value = EXCLUDED.value",
                &[&trial_id, &key, &text],
            )?;
            if n == 0 {
                return Err(not_running(db, trial_id));
            }
            Ok(())
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
        self.call(|db| {
            let n = db.execute(
                "UPDATE trials SET state = $2, value = $3, error = $4, finished_at = $5 \
                 WHERE id = $1 AND state = 'running'",
                &[&trial_id, &state.name(), &value, &error, &now_unix()],
            )?;
            if n == 0 {
                return Err(not_running(db, trial_id));
            }
            Ok(())
        })
    }

    fn heartbeat(&self, trial_ids: &[i64]) -> StoreResult<()> {
        if trial_ids.is_empty() {
            return Ok(());
        }
        self.call(|db| {
            db.execute(
                "UPDATE trials SET heartbeat_at = $2 WHERE id = ANY($1) AND state = 'running'",
                &[&trial_ids, &now_unix()],
            )?;
            Ok(())
        })
    }

    fn trials(&self, study_id: i64) -> StoreResult<Vec<FrozenTrial>> {
        self.transaction(true, |db| load_trials(db, Scope::Study(study_id, 0)))
    }

    fn trials_from(&self, study_id: i64, first_number: u64) -> StoreResult<Vec<FrozenTrial>> {
        self.transaction(true, |db| {
            load_trials(db, Scope::Study(study_id, first_number))
        })
    }

    fn running_trials(&self, study_id: i64) -> StoreResult<Vec<FrozenTrial>> {
        self.transaction(true, |db| load_trials(db, Scope::Running(study_id)))
    }

    fn trial(&self, trial_id: i64) -> StoreResult<FrozenTrial> {
        self.transaction(true, |db| {
            load_trials(db, Scope::Trial(trial_id))?
                .pop()
                .ok_or_else(|| StoreError::NoTrial(trial_id).into())
        })
    }

    /// As the default, but a trial is failed only if it is still running *and* has not beaten
    /// since it was judged: a worker that was merely slow and beats in between keeps it.
    fn fail_stale(
        &self,
        study_id: i64,
        is_dead: &dyn Fn(&FrozenTrial) -> bool,
        error: &str,
    ) -> StoreResult<Vec<u64>> {
        let mut failed = Vec::new();
        for t in self.running_trials(study_id)? {
            if !is_dead(&t) {
                continue;
            }
            let n = self.call(|db| {
                db.execute(
                    "UPDATE trials SET state = 'failed', error = $2, finished_at = $3 \
                     WHERE id = $1 AND state = 'running' \
                       AND heartbeat_at IS NOT DISTINCT FROM $4",
                    &[&t.id, &error, &now_unix(), &t.heartbeat_at],
                )
            })?;
            if n == 1 {
                failed.push(t.number);
            }
        }
        Ok(failed)
    }
}

#[cfg(test)]
mod scrub_tests {
    use super::*;

    #[test]
    fn a_short_password_is_scrubbed_where_it_stands_alone_only() {
        let scrub = Scrubber::for_url("postgres://postgres:p@localhost/db");
        assert_eq!(
            scrub.text("password authentication failed for user \"postgres\" (p)"),
            "password authentication failed for user \"postgres\" (***)"
        );
        let scrub = Scrubber::for_url("postgres://u:hunter2@h/db");
        assert_eq!(scrub.text("bad: xhunter2x"), "bad: x***x");
    }
}
