//! The storage contract, checked against every implementation: each conformance function takes
//! a `&dyn Storage` and runs on `MemoryStorage` (module `memory`), on a fresh `SqliteStorage`
//! file (module `sqlite`) and on a fresh schema of the PostgreSQL test server (module
//! `postgres`; see `pg/mod.rs`). Behaviour of one backend (files, schema, WAL, several
//! connections, authentication) follows in `sqlite_file` and `postgres_server`.

mod pg;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use modelsmith::search::{Direction, Distribution, FrozenTrial, Owner, ParamRecord, TrialState};
use modelsmith::store::{MemoryStorage, SqliteStorage, Storage, StoreError};
use serde_json::json;

fn owner(pid: u32) -> Owner {
    Owner {
        host: "test-host".into(),
        pid,
        // Above i64::MAX: must survive SQLite's signed integers.
        start_ticks: u64::MAX - pid as u64,
    }
}

fn param(low: f64, high: f64, internal: f64) -> ParamRecord {
    ParamRecord {
        distribution: Distribution::float_log(low, high),
        internal,
    }
}

fn cat_param(internal: f64) -> ParamRecord {
    ParamRecord {
        distribution: Distribution::categorical(vec![
            modelsmith::search::ParamValue::Str("relu".into()),
            modelsmith::search::ParamValue::Int(3),
            modelsmith::search::ParamValue::Bool(true),
        ]),
        internal,
    }
}

fn study(s: &dyn Storage, name: &str) -> i64 {
    s.create_study(name, Direction::Minimize, json!({}))
        .unwrap()
        .id
}

fn start(s: &dyn Storage, study_id: i64, limit: Option<u64>) -> Option<(i64, u64)> {
    s.start_trial(study_id, limit, &owner(1))
        .unwrap()
        .map(|t| (t.id, t.number))
}

// ---------------------------------------------------------------------------------------------
// Conformance: every storage.

fn study_create_get_and_direction(s: &dyn Storage) {
    assert_eq!(s.get_study("a").unwrap(), None);
    let a = s
        .create_study("a", Direction::Maximize, json!({"config": {"epochs": 3}}))
        .unwrap();
    assert_eq!(a.name, "a");
    assert_eq!(a.direction, Direction::Maximize);
    assert_eq!(a.attrs, json!({"config": {"epochs": 3}}));
    assert!(a.created_at > 1.0e9);
    // Creating again returns the same study; the first attrs are kept.
    let again = s
        .create_study("a", Direction::Maximize, json!({"other": 1}))
        .unwrap();
    assert_eq!(again, a);
    assert_eq!(s.get_study("a").unwrap(), Some(a.clone()));
    match s.create_study("a", Direction::Minimize, json!({})) {
        Err(StoreError::DirectionMismatch {
            name,
            existing,
            requested,
        }) => {
            assert_eq!(
                (name.as_str(), existing, requested),
                ("a", "maximize", "minimize")
            );
        }
        other => panic!("expected DirectionMismatch, got {other:?}"),
    }
    let b = s
        .create_study("b", Direction::Minimize, json!(null))
        .unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(s.get_study("b").unwrap(), Some(b));
    assert_eq!(s.get_study("c").unwrap(), None);
}

fn list_studies_summaries(s: &dyn Storage) {
    assert!(s.list_studies().unwrap().is_empty());
    let min = study(s, "min");
    let max = s
        .create_study("max", Direction::Maximize, json!({"k": "v"}))
        .unwrap()
        .id;
    let _empty = study(s, "empty");
    // min: complete 3.0, complete 1.0, complete NaN, complete -inf (not finite), pruned 0.5
    // (pruned never counts as best), failed, running, waiting.
    for (state, value) in [
        (TrialState::Complete, Some(3.0)),
        (TrialState::Complete, Some(1.0)),
        (TrialState::Complete, Some(f64::NAN)),
        (TrialState::Complete, Some(f64::NEG_INFINITY)),
        (TrialState::Complete, None),
        (TrialState::Pruned, Some(0.5)),
        (TrialState::Failed, None),
    ] {
        let (id, _) = start(s, min, None).unwrap();
        s.finish_trial(id, state, value, None).unwrap();
    }
    start(s, min, None).unwrap();
    s.enqueue_trial(min, &BTreeMap::new(), &BTreeMap::new())
        .unwrap();
    for v in [0.25, 0.75, 0.5] {
        let (id, _) = start(s, max, None).unwrap();
        s.finish_trial(id, TrialState::Complete, Some(v), None)
            .unwrap();
    }

    let list = s.list_studies().unwrap();
    let names: Vec<&str> = list.iter().map(|l| l.study.name.as_str()).collect();
    assert_eq!(names, ["min", "max", "empty"]);
    let m = &list[0];
    assert_eq!(
        (m.trials, m.complete, m.pruned, m.failed, m.running),
        (9, 5, 1, 1, 1)
    );
    assert_eq!(m.best_value, Some(1.0));
    let x = &list[1];
    assert_eq!(x.study.attrs, json!({"k": "v"}));
    assert_eq!(x.study.direction, Direction::Maximize);
    assert_eq!(
        (x.trials, x.complete, x.pruned, x.failed, x.running),
        (3, 3, 0, 0, 0)
    );
    assert_eq!(x.best_value, Some(0.75));
    let e = &list[2];
    assert_eq!((e.trials, e.best_value), (0, None));
}

fn start_trial_numbering_and_limit(s: &dyn Storage) {
    let a = study(s, "a");
    let b = study(s, "b");
    let (a0, n0) = start(s, a, Some(3)).unwrap();
    let (_, n1) = start(s, a, Some(3)).unwrap();
    // Numbers are per study.
    let (b0, nb0) = start(s, b, None).unwrap();
    assert_eq!((n0, n1, nb0), (0, 1, 0));
    assert_ne!(a0, b0);
    let (a2, n2) = start(s, a, Some(3)).unwrap();
    assert_eq!(n2, 2);
    assert_eq!(start(s, a, Some(3)), None, "limit of 3 reached");
    // Complete and pruned trials still count; failed ones do not.
    s.finish_trial(a0, TrialState::Complete, Some(1.0), None)
        .unwrap();
    s.finish_trial(a2, TrialState::Pruned, None, None).unwrap();
    assert_eq!(start(s, a, Some(3)), None);
    let t1 = s.trials(a).unwrap()[1].id;
    s.finish_trial(t1, TrialState::Failed, None, Some("boom"))
        .unwrap();
    let (_, n3) = start(s, a, Some(3)).unwrap();
    assert_eq!(n3, 3, "numbers are never reused");
    assert_eq!(start(s, a, Some(3)), None);
    assert_eq!(start(s, a, Some(0)), None);
    assert_eq!(start(s, a, None).map(|t| t.1), Some(4));

    let t = s.trial(s.trials(a).unwrap()[3].id).unwrap();
    assert_eq!(t.state, TrialState::Running);
    assert_eq!(t.owner, Some(owner(1)));
    assert!(t.started_at.is_some() && t.heartbeat_at == t.started_at);
    assert_eq!(t.finished_at, None);

    let numbers: Vec<u64> = s.trials(a).unwrap().iter().map(|t| t.number).collect();
    assert_eq!(numbers, [0, 1, 2, 3, 4]);
    assert!(matches!(
        s.start_trial(9_999, None, &owner(1)),
        Err(StoreError::NoStudy(_))
    ));
    assert!(s.trials(9_999).unwrap().is_empty());
}

fn waiting_trials_are_claimed_first(s: &dyn Storage) {
    let a = study(s, "a");
    let (first, _) = start(s, a, None).unwrap();
    let fixed = BTreeMap::from([
        ("lr".to_string(), param(1e-5, 1e-1, -3.5)),
        ("act".to_string(), cat_param(2.0)),
    ]);
    let attrs = BTreeMap::from([("retry_of".to_string(), json!(0))]);
    assert_eq!(s.enqueue_trial(a, &fixed, &attrs).unwrap(), 1);
    assert_eq!(
        s.enqueue_trial(a, &BTreeMap::new(), &BTreeMap::new())
            .unwrap(),
        2
    );
    let queued = &s.trials(a).unwrap()[1];
    assert_eq!(queued.state, TrialState::Waiting);
    assert_eq!(queued.params, fixed);
    assert_eq!(queued.attrs, attrs);
    assert_eq!(
        (queued.started_at, queued.heartbeat_at, &queued.owner),
        (None, None, &None)
    );

    // Waiting trials count toward the limit but are claimed even when it is reached.
    let claimed = s.start_trial(a, Some(2), &owner(7)).unwrap().unwrap();
    assert_eq!(claimed.number, 1);
    assert_eq!(claimed.fixed_params, fixed);
    assert_eq!(claimed.attrs, attrs);
    let t = s.trial(claimed.id).unwrap();
    assert_eq!(t.state, TrialState::Running);
    assert_eq!(t.owner, Some(owner(7)));
    assert!(t.started_at.is_some());

    let second = s.start_trial(a, Some(2), &owner(8)).unwrap().unwrap();
    assert_eq!(second.number, 2);
    assert!(second.fixed_params.is_empty() && second.attrs.is_empty());
    assert_eq!(start(s, a, Some(3)), None);
    // A new trial after the queue is empty continues the numbering.
    s.finish_trial(first, TrialState::Failed, None, None)
        .unwrap();
    assert_eq!(start(s, a, Some(3)).map(|t| t.1), Some(3));
    assert!(matches!(
        s.enqueue_trial(9_999, &fixed, &attrs),
        Err(StoreError::NoStudy(_))
    ));
}

fn trial_data_round_trip(s: &dyn Storage) {
    let a = study(s, "a");
    let (id, number) = start(s, a, None).unwrap();
    s.set_param(id, "lr", &param(1e-5, 1e-1, -2.3)).unwrap();
    s.set_param(id, "act", &cat_param(1.0)).unwrap();
    s.set_param(id, "lr", &param(1e-5, 1e-1, -4.0)).unwrap(); // overwrite
    s.report(id, 0, 0.9).unwrap();
    s.report(id, 1, 0.7).unwrap();
    s.report(id, 1, 0.6).unwrap(); // same step overwrites
    s.report(id, 5, f64::NAN).unwrap();
    s.report(id, 7, f64::INFINITY).unwrap();
    s.set_attr(id, "seed", &json!(42)).unwrap();
    s.set_attr(
        id,
        "spec",
        &json!({"layers": [1, 2, {"x": null}], "s": "é\"'"}),
    )
    .unwrap();
    s.set_attr(id, "seed", &json!(43)).unwrap();

    let t = s.trial(id).unwrap();
    assert_eq!(t.number, number);
    assert_eq!(t.state, TrialState::Running);
    assert_eq!(t.params.len(), 2);
    assert_eq!(t.params["lr"], param(1e-5, 1e-1, -4.0));
    assert_eq!(t.params["act"], cat_param(1.0));
    assert_eq!(
        t.param_values()["act"],
        modelsmith::search::ParamValue::Int(3)
    );
    let steps: Vec<u32> = t.intermediate.keys().copied().collect();
    assert_eq!(steps, [0, 1, 5, 7]);
    assert_eq!(t.intermediate[&0], 0.9);
    assert_eq!(t.intermediate[&1], 0.6);
    assert!(t.intermediate[&5].is_nan());
    assert_eq!(t.intermediate[&7], f64::INFINITY);
    assert_eq!(t.attrs["seed"], json!(43));
    assert_eq!(
        t.attrs["spec"],
        json!({"layers": [1, 2, {"x": null}], "s": "é\"'"})
    );
    assert_eq!(t.value, None);

    s.finish_trial(id, TrialState::Complete, Some(0.6), None)
        .unwrap();
    let done = s.trial(id).unwrap();
    assert_eq!(done.state, TrialState::Complete);
    assert_eq!(done.value, Some(0.6));
    assert_eq!(done.error, None);
    let (started, finished) = (done.started_at.unwrap(), done.finished_at.unwrap());
    assert!(finished >= started);
    // (NaN != NaN: compare the printed forms.)
    assert_eq!(
        format!("{:?}", s.trials(a).unwrap()),
        format!("{:?}", [done])
    );

    // A failed trial keeps its error text; a NaN final value survives.
    let (f, _) = start(s, a, None).unwrap();
    s.finish_trial(f, TrialState::Failed, None, Some("CUDA exploded\nline 2"))
        .unwrap();
    assert_eq!(
        s.trial(f).unwrap().error.as_deref(),
        Some("CUDA exploded\nline 2")
    );
    let (n, _) = start(s, a, None).unwrap();
    s.finish_trial(n, TrialState::Complete, Some(f64::NAN), None)
        .unwrap();
    assert!(s.trial(n).unwrap().value.unwrap().is_nan());
}

fn finished_trials_are_immutable(s: &dyn Storage) {
    let a = study(s, "a");
    let (id, _) = start(s, a, None).unwrap();
    s.report(id, 0, 1.0).unwrap();
    s.finish_trial(id, TrialState::Pruned, Some(1.0), None)
        .unwrap();
    let before = s.trial(id).unwrap();
    let finished =
        |r: Result<(), StoreError>| matches!(r, Err(StoreError::TrialFinished(x)) if x == id);
    assert!(finished(s.report(id, 1, 2.0)));
    assert!(finished(s.set_param(id, "x", &param(1.0, 2.0, 0.5))));
    assert!(finished(s.set_attr(id, "k", &json!(1))));
    assert!(finished(s.finish_trial(
        id,
        TrialState::Complete,
        Some(0.0),
        None
    )));
    assert_eq!(s.trial(id).unwrap(), before);

    // A waiting trial is not running either.
    s.enqueue_trial(a, &BTreeMap::new(), &BTreeMap::new())
        .unwrap();
    let waiting = s.trials(a).unwrap()[1].id;
    assert!(matches!(
        s.report(waiting, 0, 1.0),
        Err(StoreError::TrialFinished(_))
    ));

    let missing = 123_456;
    let no_trial =
        |r: Result<(), StoreError>| matches!(r, Err(StoreError::NoTrial(x)) if x == missing);
    assert!(no_trial(s.report(missing, 0, 1.0)));
    assert!(no_trial(s.set_param(missing, "x", &param(1.0, 2.0, 0.5))));
    assert!(no_trial(s.set_attr(missing, "k", &json!(1))));
    assert!(no_trial(s.finish_trial(
        missing,
        TrialState::Failed,
        None,
        None
    )));
    assert!(matches!(s.trial(missing), Err(StoreError::NoTrial(_))));
}

fn heartbeat_refreshes_running_only(s: &dyn Storage) {
    let a = study(s, "a");
    let (run, _) = start(s, a, None).unwrap();
    let (done, _) = start(s, a, None).unwrap();
    s.finish_trial(done, TrialState::Complete, Some(1.0), None)
        .unwrap();
    let run_before = s.trial(run).unwrap().heartbeat_at.unwrap();
    let done_before = s.trial(done).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    s.heartbeat(&[run, done, 987_654]).unwrap();
    s.heartbeat(&[]).unwrap();
    let run_after = s.trial(run).unwrap().heartbeat_at.unwrap();
    assert!(
        run_after > run_before,
        "{run_after} should be after {run_before}"
    );
    assert_eq!(s.trial(done).unwrap(), done_before);
}

fn fail_stale_marks_dead_workers(s: &dyn Storage) {
    let a = study(s, "a");
    let mut ids = Vec::new();
    for pid in [10, 20, 10, 30] {
        let t = s.start_trial(a, None, &owner(pid)).unwrap().unwrap();
        ids.push(t.id);
    }
    // Trial 2 (pid 10) finished normally: not touched.
    s.finish_trial(ids[2], TrialState::Complete, Some(0.1), None)
        .unwrap();
    s.enqueue_trial(a, &BTreeMap::new(), &BTreeMap::new())
        .unwrap();
    let dead = |t: &FrozenTrial| t.owner.as_ref().is_some_and(|o| o.pid == 10 || o.pid == 30);
    let failed = s.fail_stale(a, &dead, "worker died").unwrap();
    assert_eq!(failed, [0, 3]);
    let trials = s.trials(a).unwrap();
    let states: Vec<TrialState> = trials.iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        [
            TrialState::Failed,
            TrialState::Running,
            TrialState::Complete,
            TrialState::Failed,
            TrialState::Waiting
        ]
    );
    assert_eq!(trials[0].error.as_deref(), Some("worker died"));
    assert!(trials[0].finished_at.is_some());
    assert_eq!(trials[2].error, None);
    assert!(s.fail_stale(a, &dead, "again").unwrap().is_empty());
}

/// The same operations give the same trials (timestamps aside) on every storage.
fn same_history_as_memory(s: &dyn Storage) {
    /// (counts, completes, best value) per study.
    type Summary = Vec<(usize, usize, Option<f64>)>;
    fn script(s: &dyn Storage) -> (Vec<FrozenTrial>, Summary) {
        let a = study(s, "a");
        s.enqueue_trial(
            a,
            &BTreeMap::from([("lr".to_string(), param(1e-4, 1.0, -1.0))]),
            &BTreeMap::from([("why".to_string(), json!("retry"))]),
        )
        .unwrap();
        for i in 0..6u32 {
            let t = s.start_trial(a, Some(5), &owner(i)).unwrap().unwrap();
            s.set_param(t.id, "units", &cat_param(f64::from(i % 3)))
                .unwrap();
            for step in 0..i {
                s.report(t.id, step, f64::from(step) * 0.5 + f64::from(i))
                    .unwrap();
            }
            s.set_attr(t.id, "i", &json!(i)).unwrap();
            let state =
                [TrialState::Complete, TrialState::Pruned, TrialState::Failed][i as usize % 3];
            let value = (state != TrialState::Failed).then_some(f64::from(10 - i));
            s.finish_trial(
                t.id,
                state,
                value,
                (state == TrialState::Failed).then_some("x"),
            )
            .unwrap();
        }
        let trials = s
            .trials(a)
            .unwrap()
            .into_iter()
            .map(|mut t| {
                for time in [&mut t.started_at, &mut t.finished_at, &mut t.heartbeat_at] {
                    *time = time.map(|_| 0.0);
                }
                t
            })
            .collect();
        let summary = s
            .list_studies()
            .unwrap()
            .iter()
            .map(|l| (l.trials, l.complete, l.best_value))
            .collect();
        (trials, summary)
    }
    assert_eq!(script(s), script(&MemoryStorage::new()));
}

fn trials_from_and_running_trials_are_slices_of_trials(s: &dyn Storage) {
    let a = study(s, "a");
    let other = study(s, "other");
    start(s, other, None).unwrap();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(start(s, a, None).unwrap().0);
    }
    s.set_param(ids[3], "lr", &param(1e-4, 1e-1, 0.01)).unwrap();
    for &id in &ids[..3] {
        s.finish_trial(id, TrialState::Complete, Some(1.0), None)
            .unwrap();
    }
    let all = s.trials(a).unwrap();
    let from: Vec<FrozenTrial> = s.trials_from(a, 2).unwrap();
    assert_eq!(from, all[2..].to_vec());
    assert_eq!(s.trials_from(a, 0).unwrap(), all);
    assert!(s.trials_from(a, 99).unwrap().is_empty());
    let running: Vec<u64> = s
        .running_trials(a)
        .unwrap()
        .iter()
        .map(|t| t.number)
        .collect();
    assert_eq!(running, vec![3, 4]);
}

fn delete_study_removes_it_whole_and_spares_the_others(s: &dyn Storage) {
    let a = study(s, "doomed");
    let b = study(s, "kept");
    for sid in [a, b] {
        for i in 0..3 {
            let (id, _) = start(s, sid, None).unwrap();
            s.set_param(id, "lr", &param(1e-5, 1.0, -2.0)).unwrap();
            s.report(id, 0, 0.5).unwrap();
            s.set_attr(id, "i", &json!(i)).unwrap();
            s.finish_trial(id, TrialState::Complete, Some(0.5), None)
                .unwrap();
        }
    }
    // A running trial keeps the study.
    let (running, _) = start(s, a, None).unwrap();
    match s.delete_study("doomed") {
        Err(StoreError::StudyBusy { running: 1, .. }) => {}
        other => panic!("{other:?}"),
    }
    s.finish_trial(running, TrialState::Failed, None, Some("stopped"))
        .unwrap();
    assert_eq!(s.delete_study("doomed").unwrap(), 4);
    assert!(s.get_study("doomed").unwrap().is_none());
    assert!(matches!(
        s.delete_study("doomed"),
        Err(StoreError::NoStudy(_))
    ));
    let names: Vec<String> = s
        .list_studies()
        .unwrap()
        .into_iter()
        .map(|x| x.study.name)
        .collect();
    assert_eq!(names, vec!["kept"]);
    assert_eq!(s.trials(b).unwrap().len(), 3);
    // A new study of the same name starts empty, numbered from 0, and no other study's
    // trials appear in it.
    let again = study(s, "doomed");
    assert!(s.trials(again).unwrap().is_empty());
    assert_eq!(start(s, again, None).unwrap().1, 0);
    let c = study(s, "third");
    assert!(s.trials(c).unwrap().is_empty());
    assert_eq!(s.trials(b).unwrap().len(), 3);
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $( #[test] fn $name() { super::$name(&modelsmith::store::MemoryStorage::new()); } )*
        }
        mod sqlite {
            $( #[test] fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let s = modelsmith::store::SqliteStorage::open(&dir.path().join("s.db")).unwrap();
                super::$name(&s);
            } )*
        }
        mod postgres {
            $( #[test] fn $name() {
                let Some(url) = super::pg::fresh_schema(concat!("storage_", stringify!($name)))
                else {
                    return;
                };
                let s = modelsmith::store::PostgresStorage::open(&url).unwrap();
                super::$name(&s);
            } )*
        }
    };
}

conformance!(
    study_create_get_and_direction,
    list_studies_summaries,
    start_trial_numbering_and_limit,
    waiting_trials_are_claimed_first,
    trial_data_round_trip,
    finished_trials_are_immutable,
    heartbeat_refreshes_running_only,
    fail_stale_marks_dead_workers,
    same_history_as_memory,
    trials_from_and_running_trials_are_slices_of_trials,
    delete_study_removes_it_whole_and_spares_the_others,
);

// ---------------------------------------------------------------------------------------------
// SQLite only.

mod sqlite_file {
    use super::*;

    fn raw(path: &Path) -> rusqlite::Connection {
        rusqlite::Connection::open(path).unwrap()
    }

    fn open_error(path: &Path) -> String {
        match SqliteStorage::open(path) {
            Err(e @ StoreError::Open { .. }) => {
                assert!(e.is_bad_input());
                let msg = e.to_string();
                assert!(!msg.contains('\n'), "one line: {msg}");
                assert!(msg.contains(&path.display().to_string()), "{msg}");
                msg
            }
            Err(e) => panic!("expected an Open error, got {e:?}"),
            Ok(_) => panic!("expected an Open error, got a storage"),
        }
    }

    #[test]
    fn reopen_sees_the_same_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("study.db");
        let (record, trials) = {
            let s = SqliteStorage::open(&path).unwrap();
            let record = s
                .create_study("keep", Direction::Maximize, json!({"a": [1, 2.5]}))
                .unwrap();
            for i in 0..3 {
                let (id, _) = start(&s, record.id, None).unwrap();
                s.set_param(id, "lr", &param(1e-5, 1.0, -1.5 - f64::from(i)))
                    .unwrap();
                s.report(id, 0, 0.123_456_789_012_345_6).unwrap();
                s.set_attr(id, "i", &json!(i)).unwrap();
                if i < 2 {
                    s.finish_trial(id, TrialState::Complete, Some(f64::from(i) / 3.0), None)
                        .unwrap();
                }
            }
            s.enqueue_trial(record.id, &BTreeMap::new(), &BTreeMap::new())
                .unwrap();
            let trials = s.trials(record.id).unwrap();
            (record, trials)
        };
        let s = SqliteStorage::open(&path).unwrap();
        assert_eq!(s.get_study("keep").unwrap(), Some(record.clone()));
        assert_eq!(s.trials(record.id).unwrap(), trials);
        assert_eq!(s.list_studies().unwrap()[0].best_value, Some(1.0 / 3.0));
        // Through the URL as the CLI opens it.
        let s = modelsmith::store::open(&format!("sqlite:{}", path.display())).unwrap();
        assert_eq!(s.trials(record.id).unwrap(), trials);
        // Numbering goes on after a reopen: the waiting trial (3) first, then 4.
        assert_eq!(start(&*s, record.id, None).unwrap().1, 3);
        assert_eq!(start(&*s, record.id, None).unwrap().1, 4);
    }

    #[test]
    fn schema_version_is_recorded_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        drop(SqliteStorage::open(&path).unwrap());
        let conn = raw(&path);
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SqliteStorage::SCHEMA_VERSION);
        assert!(version >= 1);
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            tables,
            [
                "studies",
                "trial_attrs",
                "trial_params",
                "trial_values",
                "trials"
            ]
        );
        // Opening again leaves the version alone.
        drop(SqliteStorage::open(&path).unwrap());
        conn.pragma_update(None, "user_version", version + 1)
            .unwrap();
        drop(conn);
        let msg = open_error(&path);
        assert!(msg.contains("newer"), "{msg}");
        assert!(msg.contains(&format!("{}", version + 1)), "{msg}");
    }

    #[test]
    fn garbage_and_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.db");
        std::fs::write(
            &garbage,
            b"this is not a database, just some text\n".repeat(100),
        )
        .unwrap();
        let msg = open_error(&garbage);
        assert!(msg.contains("not a SQLite database"), "{msg}");
        // Short garbage too (smaller than a SQLite header).
        let short = dir.path().join("short.db");
        std::fs::write(&short, b"hello").unwrap();
        open_error(&short);
        // The file is left as it was.
        assert_eq!(std::fs::read(&short).unwrap(), b"hello");

        let foreign = dir.path().join("foreign.db");
        raw(&foreign)
            .execute_batch("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance REAL);")
            .unwrap();
        let msg = open_error(&foreign);
        assert!(msg.contains("another program"), "{msg}");

        let msg = open_error(&dir.path().join("no such dir").join("s.db"));
        assert!(msg.contains("does not exist"), "{msg}");
        let msg = open_error(dir.path());
        assert!(msg.contains("directory"), "{msg}");
    }

    #[test]
    fn wal_mode_is_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let s = SqliteStorage::open(&path).unwrap();
        study(&s, "a");
        let mode: String = raw(&path)
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    /// 8 threads, each with its own connection to one new file, race to open it (and create the
    /// schema), create the same study and claim trials under a limit of 200.
    #[test]
    fn concurrent_connections_number_trials_atomically() {
        const LIMIT: u64 = 200;
        let dir = tempfile::tempdir().unwrap();
        let path = Arc::new(dir.path().join("shared.db"));
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let started = Instant::now();
        let workers: Vec<_> = (0..8u32)
            .map(|w| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let s = SqliteStorage::open(&path).unwrap();
                    let study = s
                        .create_study("race", Direction::Minimize, json!({}))
                        .unwrap()
                        .id;
                    let mut mine = Vec::new();
                    while let Some(t) = s.start_trial(study, Some(LIMIT), &owner(w)).unwrap() {
                        s.set_param(t.id, "lr", &param(1e-4, 1.0, -2.0)).unwrap();
                        s.report(t.id, 0, f64::from(w)).unwrap();
                        s.heartbeat(&[t.id]).unwrap();
                        s.finish_trial(t.id, TrialState::Complete, Some(t.number as f64), None)
                            .unwrap();
                        mine.push(t.number);
                    }
                    mine
                })
            })
            .collect();
        let mut numbers: Vec<u64> = workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker failed"))
            .collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (0..LIMIT).collect::<Vec<_>>());
        eprintln!("8 connections, {LIMIT} trials: {:?}", started.elapsed());

        let s = SqliteStorage::open(&path).unwrap();
        assert_eq!(s.list_studies().unwrap().len(), 1);
        let trials = s.trials(s.get_study("race").unwrap().unwrap().id).unwrap();
        assert_eq!(trials.len(), LIMIT as usize);
        assert!(trials.iter().all(|t| t.state == TrialState::Complete
            && t.value == Some(t.number as f64)
            && t.params.len() == 1
            && t.intermediate.len() == 1));
    }

    // Several real processes on one file: crates/cli/tests/tune.rs runs four `modelsmith tune`
    // processes through 200 trials.

    /// Threads sharing one `SqliteStorage` (one connection behind its mutex) work as well.
    #[test]
    fn one_storage_shared_by_threads() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(SqliteStorage::open(&dir.path().join("s.db")).unwrap());
        let a = study(&*s, "a");
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let mut n = Vec::new();
                    while let Some((id, number)) = start(&*s, a, Some(40)) {
                        s.finish_trial(id, TrialState::Complete, Some(1.0), None)
                            .unwrap();
                        n.push(number);
                    }
                    n
                })
            })
            .collect();
        let mut numbers: Vec<u64> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (0..40).collect::<Vec<_>>());
    }

    /// `trials()` reads each table once: 1,000 trials load in milliseconds.
    #[test]
    fn a_thousand_trials_load_fast() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStorage::open(&dir.path().join("big.db")).unwrap();
        let a = study(&s, "big");
        let params: BTreeMap<String, ParamRecord> = (0..5)
            .map(|i| (format!("p{i}"), param(1e-5, 1.0, -f64::from(i))))
            .collect();
        let attrs = BTreeMap::from([
            ("seed".to_string(), json!(1)),
            ("spec".to_string(), json!({"layers": [32, 64, 10]})),
        ]);
        for _ in 0..1_000 {
            s.enqueue_trial(a, &params, &attrs).unwrap();
        }
        for _ in 0..1_000 {
            let (id, number) = start(&s, a, None).unwrap();
            for step in 0..5 {
                s.report(id, step, f64::from(step)).unwrap();
            }
            s.finish_trial(id, TrialState::Complete, Some(number as f64), None)
                .unwrap();
        }
        // The best of a few runs: the machine may be busy with other work.
        let mut took = Duration::MAX;
        let mut trials = Vec::new();
        for _ in 0..5 {
            let t0 = Instant::now();
            trials = s.trials(a).unwrap();
            took = took.min(t0.elapsed());
        }
        eprintln!("trials() of 1,000 trials: {took:?}");
        assert_eq!(trials.len(), 1_000);
        assert!(trials
            .iter()
            .all(|t| t.params.len() == 5 && t.intermediate.len() == 5 && t.attrs.len() == 2));
        let t0 = Instant::now();
        let list = s.list_studies().unwrap();
        eprintln!("list_studies(): {:?}", t0.elapsed());
        assert_eq!(list[0].complete, 1_000);
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL only (the test server of scripts/test).

mod postgres_server {
    use super::*;
    use modelsmith::store::PostgresStorage;

    fn open_error(url: &str) -> String {
        match PostgresStorage::open(url) {
            Err(e @ StoreError::Open { .. }) => {
                assert!(e.is_bad_input());
                let msg = e.to_string();
                assert!(!msg.contains('\n'), "one line: {msg}");
                msg
            }
            Err(e) => panic!("expected an Open error, got {e:?}"),
            Ok(_) => panic!("expected an Open error, got a storage"),
        }
    }

    /// The server URL with another password, and the real one.
    fn with_password(url: &str, password: &str) -> (String, String) {
        let (head, rest) = url.split_once("://").unwrap();
        let (userinfo, host) = rest.split_once('@').unwrap();
        let (user, real) = userinfo.split_once(':').unwrap();
        (
            format!("{head}://{user}:{password}@{host}"),
            real.to_string(),
        )
    }

    #[test]
    fn the_schema_has_the_same_tables_and_columns_as_sqlite() {
        let Some(url) = pg::fresh_schema("pg_same_schema") else {
            return;
        };
        drop(PostgresStorage::open(&url).unwrap());
        let mut c = pg::client(&url);
        let rows = c
            .query(
                "SELECT table_name::text, column_name::text FROM information_schema.columns \
                 WHERE table_schema = 't_pg_same_schema' AND table_name <> 'modelsmith_schema' \
                 ORDER BY table_name, ordinal_position",
                &[],
            )
            .unwrap();
        let pg_columns: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(SqliteStorage::open(&path).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mut sqlite_columns = Vec::new();
        for table in modelsmith::store::schema::TABLES {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
                ))
                .unwrap();
            let names: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            sqlite_columns.extend(names.into_iter().map(|n| (table.to_string(), n)));
        }
        assert!(pg_columns.len() > 20, "{pg_columns:?}");
        assert_eq!(pg_columns, sqlite_columns);
        let version: i32 = c
            .query_one(
                "SELECT version FROM t_pg_same_schema.modelsmith_schema",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(i64::from(version), PostgresStorage::SCHEMA_VERSION);
        assert_eq!(
            PostgresStorage::SCHEMA_VERSION,
            SqliteStorage::SCHEMA_VERSION
        );
    }

    #[test]
    fn reopen_sees_the_same_data_and_a_newer_schema_is_refused() {
        let Some(url) = pg::fresh_schema("pg_reopen") else {
            return;
        };
        let (record, trials) = {
            let s = PostgresStorage::open(&url).unwrap();
            let record = s
                .create_study("keep", Direction::Maximize, json!({"a": [1, 2.5]}))
                .unwrap();
            let (id, _) = start(&s, record.id, None).unwrap();
            s.report(id, 0, 0.123_456_789_012_345_6).unwrap();
            s.finish_trial(id, TrialState::Complete, Some(1.0 / 3.0), None)
                .unwrap();
            (record.clone(), s.trials(record.id).unwrap())
        };
        // Through the URL as the CLI opens it, for writing and for reading.
        for s in [
            modelsmith::store::open(&url).unwrap(),
            modelsmith::store::open_existing(&url).unwrap(),
        ] {
            assert_eq!(s.get_study("keep").unwrap(), Some(record.clone()));
            assert_eq!(s.trials(record.id).unwrap(), trials);
        }
        pg::client(&url)
            .batch_execute("UPDATE t_pg_reopen.modelsmith_schema SET version = version + 1")
            .unwrap();
        let msg = open_error(&url);
        assert!(msg.contains("newer"), "{msg}");
    }

    #[test]
    fn foreign_and_empty_databases_are_refused_for_reading() {
        let Some(url) = pg::fresh_schema("pg_foreign") else {
            return;
        };
        // Reading a database without studies does not create them.
        match modelsmith::store::open_existing(&url) {
            Err(e @ StoreError::Open { .. }) => {
                assert!(e.to_string().contains("no Modelsmith studies"), "{e}")
            }
            Err(e) => panic!("expected an Open error, got {e:?}"),
            Ok(_) => panic!("an empty database opened for reading"),
        }
        let mut c = pg::client(&url);
        let tables: i64 = c
            .query_one(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 't_pg_foreign'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(tables, 0);
        c.batch_execute("CREATE TABLE t_pg_foreign.studies (id INT, owner TEXT)")
            .unwrap();
        let msg = open_error(&url);
        assert!(msg.contains("not Modelsmith's"), "{msg}");
    }

    #[test]
    fn wrong_password_and_unreachable_server_are_one_line_open_errors_without_secrets() {
        let Some(url) = pg::server_url("pg_auth") else {
            return;
        };
        let (wrong, real) = with_password(&url, "not-the-password-xyz");
        let msg = open_error(&wrong);
        assert!(msg.contains("password authentication failed"), "{msg}");
        assert!(!msg.contains("not-the-password-xyz"), "{msg}");
        assert!(!msg.contains(&real), "{msg}");
        assert!(msg.contains(":***@"), "{msg}");

        // A port where nothing listens: refused (the connection, not a timeout).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let closed = format!("postgres://modelsmith:{real}@127.0.0.1:{port}/modelsmith");
        let msg = open_error(&closed);
        assert!(
            msg.contains("cannot connect") && msg.contains("refused"),
            "{msg}"
        );
        assert!(!msg.contains(&real), "{msg}");

        let msg = open_error(&format!("{url}?nosuchoption=1"));
        assert!(msg.contains("not a valid PostgreSQL URL"), "{msg}");
        assert!(!msg.contains(&real), "{msg}");
    }

    /// 8 threads, each with its own storage (its own pool) on one new schema, race to create
    /// the schema and the study, claim 40 queued trials and then new ones under a limit of 240:
    /// each queued trial is claimed once, every number 0..240 appears exactly once.
    #[test]
    fn concurrent_workers_claim_each_trial_once() {
        const LIMIT: u64 = 240;
        const QUEUED: u64 = 40;
        let Some(url) = pg::fresh_schema("pg_race") else {
            return;
        };
        {
            let s = PostgresStorage::open(&url).unwrap();
            let study = study(&s, "race");
            for i in 0..QUEUED {
                let attrs = BTreeMap::from([("queued".to_string(), json!(i))]);
                s.enqueue_trial(study, &BTreeMap::new(), &attrs).unwrap();
            }
        }
        let url = Arc::new(url);
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let started = Instant::now();
        let workers: Vec<_> = (0..8u32)
            .map(|w| {
                let (url, barrier) = (url.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let s = PostgresStorage::open(&url).unwrap();
                    let study = study(&s, "race");
                    let mut mine = Vec::new();
                    while let Some(t) = s.start_trial(study, Some(LIMIT), &owner(w)).unwrap() {
                        s.set_param(t.id, "lr", &param(1e-4, 1.0, -2.0)).unwrap();
                        s.report(t.id, 0, f64::from(w)).unwrap();
                        s.heartbeat(&[t.id]).unwrap();
                        s.finish_trial(t.id, TrialState::Complete, Some(t.number as f64), None)
                            .unwrap();
                        mine.push((t.number, t.attrs.get("queued").cloned()));
                    }
                    mine
                })
            })
            .collect();
        let claimed: Vec<(u64, Option<serde_json::Value>)> = workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker failed"))
            .collect();
        eprintln!("8 storages, {LIMIT} trials: {:?}", started.elapsed());
        let mut numbers: Vec<u64> = claimed.iter().map(|c| c.0).collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (0..LIMIT).collect::<Vec<_>>());
        // The queued trials (numbers 0..40) were claimed with their own attrs.
        for (number, queued) in &claimed {
            let expected = (*number < QUEUED).then(|| json!(number));
            assert_eq!(queued, &expected, "trial {number}");
        }
        let s = PostgresStorage::open(&url).unwrap();
        let trials = s.trials(s.get_study("race").unwrap().unwrap().id).unwrap();
        assert_eq!(trials.len(), LIMIT as usize);
        assert!(trials.iter().all(|t| t.state == TrialState::Complete
            && t.value == Some(t.number as f64)
            && t.params.len() == 1
            && t.intermediate.len() == 1));
        let owners: std::collections::HashSet<u32> = trials
            .iter()
            .map(|t| t.owner.as_ref().unwrap().pid)
            .collect();
        assert!(owners.len() >= 2, "only {owners:?} took part");
    }

    /// A cleaner does not fail a trial whose worker beat after it was judged dead.
    #[test]
    fn fail_stale_spares_a_trial_that_beat_in_between() {
        let Some(url) = pg::fresh_schema("pg_stale_race") else {
            return;
        };
        let s = PostgresStorage::open(&url).unwrap();
        let a = study(&s, "a");
        let (slow, _) = start(&s, a, None).unwrap();
        let (dead, _) = start(&s, a, None).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let failed = s
            .fail_stale(
                a,
                &|t| {
                    if t.id == slow {
                        // Judged dead, but its worker beats before the cleaner writes.
                        s.heartbeat(&[slow]).unwrap();
                    }
                    true
                },
                "gone",
            )
            .unwrap();
        assert_eq!(failed, [1]);
        assert_eq!(s.trial(slow).unwrap().state, TrialState::Running);
        assert_eq!(s.trial(dead).unwrap().state, TrialState::Failed);
    }
}
