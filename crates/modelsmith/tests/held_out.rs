//! A user's own files: held-out data scored whole with a model's saved preprocessing (a subset
//! of the categories, unseen ones, reordered and missing columns, unseen classes), `--test-data`
//! instead of a carved-out test part, and the CSV defects that once mis-read tables (duplicate
//! headers, non-finite numbers, free-text columns).

use modelsmith::data::{
    load, load_held_out, ColumnKind, DataError, DataInfo, LoadOptions, MissingPolicy, Preprocessing,
};
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn opts(target: &str) -> LoadOptions {
    LoadOptions {
        target: Some(target.to_string()),
        ..LoadOptions::default()
    }
}

fn spec(p: &Path) -> String {
    format!("csv:{}", p.display())
}

/// 60 rows: a numeric `a`, a `colour` with six values, a label decided by both.
fn training_table(dir: &Path) -> PathBuf {
    let colours = ["black", "blue", "green", "red", "white", "yellow"];
    let mut text = String::from("a,colour,label\n");
    for i in 0..60 {
        let a = (i % 7) as f32 - 3.0;
        let colour = colours[i % 6];
        let label = if a + if i % 6 < 3 { 1.0 } else { -1.0 } > 0.0 {
            "yes"
        } else {
            "no"
        };
        text.push_str(&format!("{a},{colour},{label}\n"));
    }
    write(dir, "train.csv", &text)
}

fn trained_info(dir: &Path) -> DataInfo {
    load(&spec(&training_table(dir)), &opts("label"))
        .unwrap()
        .info
}

fn columns(info: &DataInfo) -> &[modelsmith::data::ColumnTransform] {
    let Preprocessing::Table { columns, .. } = &info.preprocessing else {
        panic!("not a table")
    };
    columns
}

#[test]
fn a_file_with_a_subset_of_the_categories_is_scored_whole_with_the_training_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let info = trained_info(dir.path());
    let width = info.preprocessing.input_shape()[0];
    assert_eq!(width, 1 + 6);
    // Three of the six colours, 30 rows: once encoded with a vocabulary of 3 (width 4).
    let mut text = String::from("a,colour,label\n");
    for i in 0..30 {
        text.push_str(&format!(
            "{},{},{}\n",
            i % 5,
            ["red", "blue", "green"][i % 3],
            ["no", "yes"][i % 2]
        ));
    }
    let test = write(dir.path(), "test.csv", &text);
    let held = load_held_out(&spec(&test), &info, &LoadOptions::default()).unwrap();
    assert_eq!(held.data.len(), 30, "every row is scored");
    assert_eq!(held.report.examples, 30);
    assert_eq!(held.data.shape, vec![width]);
    assert!(held.report.unseen_categories.is_empty());
    // Row 0 is a = 0, red: the standardized value and red's slot of the training vocabulary.
    let ColumnKind::Numeric { mean, std, .. } = &columns(&info)[0].kind else {
        panic!()
    };
    let ColumnKind::Categorical { vocabulary, .. } = &columns(&info)[1].kind else {
        panic!()
    };
    let red = vocabulary.iter().position(|v| v == "red").unwrap();
    let row = held.data.example(0);
    assert_eq!(row[0], ((0.0 - mean) / std) as f32);
    let mut one_hot = vec![0.0; 6];
    one_hot[red] = 1.0;
    assert_eq!(&row[1..], one_hot.as_slice());
    // Labels by the training classes (sorted: no, yes).
    assert_eq!(info.class_names(), ["no", "yes"]);
    assert_eq!(&held.data.y[..4], &[0, 1, 0, 1]);
}

#[test]
fn unseen_categories_are_zeros_and_counted_per_column() {
    let dir = tempfile::tempdir().unwrap();
    let info = trained_info(dir.path());
    let test = write(
        dir.path(),
        "test.csv",
        "a,colour,label\n1,purple,yes\n2,red,no\n3,purple,no\n",
    );
    let held = load_held_out(&spec(&test), &info, &LoadOptions::default()).unwrap();
    assert_eq!(held.data.len(), 3);
    assert!(held.data.example(0)[1..].iter().all(|&v| v == 0.0));
    assert_eq!(held.report.unseen_categories.get("colour"), Some(&2));
}

#[test]
fn columns_in_another_order_with_extras_encode_like_the_training_order() {
    let dir = tempfile::tempdir().unwrap();
    let info = trained_info(dir.path());
    let ordered = write(
        dir.path(),
        "ordered.csv",
        "a,colour,label\n1.5,green,yes\n-2,white,no\n",
    );
    let shuffled = write(
        dir.path(),
        "shuffled.csv",
        "label,note,colour,a\nyes,x,green,1.5\nno,y,white,-2\n",
    );
    let a = load_held_out(&spec(&ordered), &info, &LoadOptions::default()).unwrap();
    let b = load_held_out(&spec(&shuffled), &info, &LoadOptions::default()).unwrap();
    assert_eq!(a.data, b.data);
}

#[test]
fn a_missing_column_or_target_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let info = trained_info(dir.path());
    let no_colour = write(dir.path(), "nc.csv", "a,label\n1,yes\n");
    let e = load_held_out(&spec(&no_colour), &info, &LoadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::CsvMissingColumn { .. }), "{e:?}");
    assert!(e.to_string().contains("`colour`"), "{e}");
    let no_label = write(dir.path(), "nl.csv", "a,colour\n1,red\n");
    let e = load_held_out(&spec(&no_label), &info, &LoadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::CsvUnknownTarget { .. }), "{e:?}");
    assert!(e.to_string().contains("`label`"), "{e}");
}

#[test]
fn a_class_the_model_never_saw_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let info = trained_info(dir.path());
    let test = write(
        dir.path(),
        "test.csv",
        "a,colour,label\n1,red,yes\n2,red,maybe\n",
    );
    let e = load_held_out(&spec(&test), &info, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(e, DataError::CsvUnseenClass { line: 3, .. }),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("test.csv:3") && msg.contains("`maybe`") && msg.contains("no, yes"),
        "{msg}"
    );
}

#[test]
fn test_data_replaces_the_carved_out_test_part() {
    let dir = tempfile::tempdir().unwrap();
    let train = training_table(dir.path());
    let test = write(
        dir.path(),
        "test.csv",
        "colour,a,label\nred,1,yes\nblue,2,yes\npurple,0,no\n",
    );
    let d = load(
        &spec(&train),
        &LoadOptions {
            test_data: Some(spec(&test)),
            ..opts("label")
        },
    )
    .unwrap();
    assert_eq!(d.train.len(), 60, "the training file keeps every row");
    assert_eq!(d.test.len(), 3, "the test file is scored whole");
    assert_eq!(d.test.shape, d.train.shape);
    // The test rows are encoded with statistics fitted on all 60 training rows.
    let again = load_held_out(&spec(&test), &d.info, &LoadOptions::default()).unwrap();
    assert_eq!(again.data, d.test);
}

#[test]
fn a_duplicate_header_is_refused_naming_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "dup.csv", "a,a,label\n1,2,x\n3,4,y\n");
    let e = load(&spec(&p), &opts("label")).unwrap_err();
    assert!(matches!(e, DataError::CsvDuplicateColumn { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("dup.csv") && msg.contains("`a` twice"),
        "{msg}"
    );
}

#[test]
fn non_finite_numbers_are_missing_values_not_categories() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("x,label\n");
    for i in 0..40 {
        let x = match i {
            5 => "inf".to_string(),
            9 => "1e400".to_string(),
            13 => "-inf".to_string(),
            _ => format!("{}", i as f32 / 4.0),
        };
        text.push_str(&format!("{x},{}\n", i % 2));
    }
    let p = write(dir.path(), "t.csv", &text);
    let d = load(&spec(&p), &opts("label")).unwrap();
    // Still one standardized column (it was once 97 one-hot inputs wide).
    assert_eq!(d.train.shape, vec![1]);
    let Preprocessing::Table { columns, .. } = &d.info.preprocessing else {
        panic!()
    };
    let ColumnKind::Numeric { mean, .. } = columns[0].kind else {
        panic!("{:?}", columns[0].kind)
    };
    assert!(mean.is_finite());
    assert!(d.train.x.iter().chain(&d.test.x).all(|v| v.is_finite()));
    // Under the reject policy they are refused like any missing value, naming line and column.
    let e = load(
        &spec(&p),
        &LoadOptions {
            missing: MissingPolicy::Reject,
            ..opts("label")
        },
    )
    .unwrap_err();
    assert!(
        matches!(e, DataError::CsvNonFinite { line: 7, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("`inf`"), "{e}");
    // A held-out file counts them.
    let q = write(dir.path(), "q.csv", "x,label\ninf,0\n1,1\n");
    let held = load_held_out(&spec(&q), &d.info, &LoadOptions::default()).unwrap();
    assert_eq!(held.report.non_finite.get("x"), Some(&1));
}

#[test]
fn a_free_text_column_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("note,n,label\n");
    for i in 0..100 {
        text.push_str(&format!("comment number {i},{},{}\n", i % 3, i % 2));
    }
    let p = write(dir.path(), "t.csv", &text);
    let e = load(&spec(&p), &opts("label")).unwrap_err();
    assert!(matches!(e, DataError::CsvHighCardinality { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("`note`") && msg.contains("100 distinct values in 100 rows"),
        "{msg}"
    );
    assert!(msg.contains("--allow-high-cardinality"), "{msg}");
    let d = load(
        &spec(&p),
        &LoadOptions {
            allow_high_cardinality: true,
            ..opts("label")
        },
    )
    .unwrap();
    assert!(d.train.shape[0] > 50);
    // A categorical column with few values is fine.
    let q = write(
        dir.path(),
        "q.csv",
        "kind,label\na,0\nb,1\na,0\nb,1\nc,0\nc,1\n",
    );
    assert!(load(&spec(&q), &opts("label")).is_ok());
}

#[test]
fn a_held_out_idx_source_is_its_test_part() {
    let digits = load("digits", &LoadOptions::default()).unwrap();
    let held = load_held_out("digits", &digits.info, &LoadOptions::default()).unwrap();
    assert_eq!(held.data.len(), 2000);
    assert_eq!(held.data, digits.test);
}
