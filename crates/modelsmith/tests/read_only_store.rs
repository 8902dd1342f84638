//! `store::open_read_only`: what the dashboard and reports read through. A reader sees committed
//! data, never waits for a writer that holds the write lock, cannot write, and never creates a
//! store where there was none.

use modelsmith::search::{current_owner, Direction, TrialState};
use modelsmith::store::{self, SqliteStorage, Storage, StoreError};

/// The error of a read-only open that must fail.
fn open_error(url: &str) -> StoreError {
    match store::open_read_only(url) {
        Ok(_) => panic!("{url} opened"),
        Err(e) => e,
    }
}

#[test]
fn a_reader_reads_committed_data_while_a_writer_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let writer = SqliteStorage::open(&path).unwrap();
    let study = writer
        .create_study("first", Direction::Maximize, serde_json::json!({}))
        .unwrap();
    let trial = writer
        .start_trial(study.id, None, &current_owner())
        .unwrap()
        .unwrap();
    writer.report(trial.id, 0, 0.5).unwrap();
    let reader = store::open_read_only(&format!("sqlite:{}", path.display())).unwrap();

    // Another connection takes the write lock and keeps it, mid-transaction.
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch(
        "BEGIN IMMEDIATE; INSERT INTO studies (name, direction, attrs, created_at) \
         VALUES ('uncommitted', 'minimize', '{}', 0);",
    )
    .unwrap();
    // A reader that needed the write lock would fail here with "database is locked": the
    // writer keeps it until the end of the test.
    let names: Vec<String> = reader
        .list_studies()
        .unwrap()
        .into_iter()
        .map(|s| s.study.name)
        .collect();
    let trials = reader.trials(study.id).unwrap();
    assert_eq!(names, ["first"], "only committed data");
    assert_eq!(trials[0].intermediate.get(&0), Some(&0.5));
    assert_eq!(trials[0].state, TrialState::Running);
    raw.execute_batch("COMMIT").unwrap();
    assert_eq!(
        reader.list_studies().unwrap().len(),
        2,
        "then the commit shows"
    );

    // The writer is not held up by the reader either.
    writer
        .finish_trial(trial.id, TrialState::Complete, Some(0.9), None)
        .unwrap();
    assert_eq!(reader.trial(trial.id).unwrap().value, Some(0.9));

    // Nothing can be written through the reader.
    let err = reader
        .create_study("nope", Direction::Minimize, serde_json::json!({}))
        .unwrap_err();
    assert!(err.to_string().contains("readonly"), "{err}");
}

#[test]
fn opening_for_reading_never_creates_or_accepts_a_foreign_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let err = open_error(&format!("sqlite:{}", missing.display()));
    assert!(
        matches!(err, StoreError::Open { .. }) && err.is_bad_input(),
        "{err}"
    );
    assert!(err.to_string().contains("no such file"), "{err}");
    assert!(!missing.exists(), "a reader must not create a store");

    let text = dir.path().join("text.db");
    std::fs::write(&text, "not a database at all, just some text").unwrap();
    let err = open_error(text.to_str().unwrap());
    assert!(
        err.is_bad_input() && err.to_string().contains("not a SQLite database"),
        "{err}"
    );

    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); PRAGMA user_version = 3;")
        .unwrap();
    let err = open_error(foreign.to_str().unwrap());
    assert!(err.to_string().contains("another program"), "{err}");

    assert!(open_error("sqlite:").is_bad_input());
    assert!(open_error("mysql://db").is_bad_input());
}
