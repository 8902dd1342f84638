//! `csv:FILE`: a CSV table with a header and a target column (see the module docs of `data`
//! for the decisions: column typing, standardization, one-hot, missing values, class order).
//!
//! One encoding path serves training and scoring: [`load_csv`] fits the column transforms on the
//! train rows, and both it and [`held_out_csv`] (a user's own file, scored with a saved model's
//! preprocessing) turn rows into inputs through [`encode_rows`] and labels through
//! [`decode_labels`]. Columns are found by header name, so a held-out file may order them
//! differently or carry extra ones.

use super::preprocess::{csv_error, csv_reader, is_missing, parse_number, read_header};
use super::{
    split_indices, ColumnKind, ColumnTransform, DataError, Dataset, EncodingReport, LoadOptions,
    MissingPolicy, Preprocessing,
};
use crate::task::{Choice, TargetScale, Task, TaskKind};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// A string column is refused (unless allowed) when it has more distinct values than this
/// share of the rows, and more than [`HIGH_CARDINALITY_MIN`]: such a column is free text or an
/// identifier, and one input per distinct value learns nothing from it.
const HIGH_CARDINALITY_SHARE: f64 = 0.5;
const HIGH_CARDINALITY_MIN: usize = 20;

/// A CSV file read whole: its header and its data rows, each with its line number.
pub(crate) struct Table {
    pub path: String,
    pub header: Vec<String>,
    pub rows: Vec<csv::StringRecord>,
    pub lines: Vec<u64>,
}

impl Table {
    /// Reads every row; refuses an empty file, a header naming a column twice and ragged rows.
    /// Blank lines are skipped.
    pub fn read(path: &Path) -> Result<Table, DataError> {
        let shown = path.display().to_string();
        let mut reader = csv_reader(path)?;
        let header = read_header(&mut reader, &shown)?;
        let mut seen = HashMap::new();
        for (i, name) in header.iter().enumerate() {
            if let Some(first) = seen.insert(name.as_str(), i) {
                return Err(DataError::CsvDuplicateColumn {
                    path: shown,
                    column: name.clone(),
                    first: first + 1,
                    second: i + 1,
                });
            }
        }
        let mut lines = Vec::new();
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| csv_error(&shown, e))?;
            let line = record.position().map_or(0, |p| p.line());
            if record.len() == 1 && record[0].is_empty() && header.len() > 1 {
                continue; // a blank line
            }
            if record.len() != header.len() {
                return Err(DataError::CsvRagged {
                    path: shown,
                    line,
                    expected: header.len(),
                    found: record.len(),
                });
            }
            lines.push(line);
            rows.push(record);
        }
        if rows.is_empty() {
            return Err(DataError::Empty {
                path: shown,
                message: "the CSV has a header but no rows; add data rows".to_string(),
            });
        }
        Ok(Table {
            path: shown,
            header,
            rows,
            lines,
        })
    }

    fn listed(&self) -> String {
        self.header.join(", ")
    }

    /// The index of the target column `target`.
    fn target_column(&self, target: &str) -> Result<usize, DataError> {
        self.header
            .iter()
            .position(|h| h == target)
            .ok_or_else(|| DataError::CsvUnknownTarget {
                path: self.path.clone(),
                target: target.to_string(),
                columns: self.listed(),
            })
    }

    /// Each transform's column index, matched by header name.
    fn positions(&self, columns: &[ColumnTransform]) -> Result<Vec<usize>, DataError> {
        columns
            .iter()
            .map(|c| {
                self.header
                    .iter()
                    .position(|h| *h == c.name)
                    .ok_or_else(|| DataError::CsvMissingColumn {
                        path: self.path.clone(),
                        column: c.name.clone(),
                        columns: columns
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            })
            .collect()
    }

    /// Refuses a target that is a number but not a finite one (`inf`, `1e999`).
    fn check_targets_finite(&self, target_col: usize) -> Result<(), DataError> {
        for (row, &line) in self.rows.iter().zip(&self.lines) {
            if is_non_finite_number(&row[target_col]) {
                return Err(DataError::CsvTargetNotNumber {
                    path: self.path.clone(),
                    line,
                    column: self.header[target_col].clone(),
                    value: row[target_col].to_string(),
                });
            }
        }
        Ok(())
    }

    /// Refuses a row without a target value (targets are never imputed).
    fn check_targets_present(&self, target_col: usize) -> Result<(), DataError> {
        for (row, &line) in self.rows.iter().zip(&self.lines) {
            if is_missing(&row[target_col]) {
                return Err(DataError::CsvMissingTarget {
                    path: self.path.clone(),
                    line,
                    column: self.header[target_col].clone(),
                    value: row[target_col].to_string(),
                });
            }
        }
        Ok(())
    }

    /// Counts, per feature column, fields that are numbers but not finite (`inf`, `1e400`):
    /// they are missing values, imputed, or refused under [`MissingPolicy::Reject`] like any
    /// other missing value.
    fn non_finite(
        &self,
        features: &[usize],
        policy: MissingPolicy,
    ) -> Result<BTreeMap<String, usize>, DataError> {
        let mut counts = BTreeMap::new();
        for (row, &line) in self.rows.iter().zip(&self.lines) {
            for &c in features {
                let field = &row[c];
                if is_missing(field) || !is_non_finite_number(field) {
                    continue;
                }
                if policy == MissingPolicy::Reject {
                    return Err(DataError::CsvNonFinite {
                        path: self.path.clone(),
                        line,
                        column: self.header[c].clone(),
                        value: field.to_string(),
                    });
                }
                *counts.entry(self.header[c].clone()).or_default() += 1;
            }
        }
        Ok(counts)
    }
}

/// A field that parses as a number that is not finite: missing, not a category.
fn is_non_finite_number(field: &str) -> bool {
    field.trim().parse::<f64>().is_ok_and(|v| !v.is_finite())
}

/// Class names of a training table: the distinct target values, sorted numerically if all are
/// numbers, else as strings.
fn class_names_of(table: &Table, target_col: usize) -> Vec<String> {
    let mut names: Vec<String> = table
        .rows
        .iter()
        .map(|r| r[target_col].to_string())
        .collect();
    names.sort();
    names.dedup();
    let numbers: Option<Vec<f64>> = names.iter().map(|s| parse_number(s)).collect();
    let Some(numbers) = numbers else {
        return names;
    };
    let mut paired: Vec<(f64, String)> = numbers.into_iter().zip(names).collect();
    paired.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    paired.into_iter().map(|p| p.1).collect()
}

/// The columns `--target` names (`a` or `a,b`), each once.
fn target_columns(table: &Table, spec: &str) -> Result<Vec<usize>, DataError> {
    let mut cols: Vec<usize> = Vec::new();
    for name in spec.split(',').map(str::trim) {
        let c = table.target_column(name)?;
        if cols.contains(&c) {
            return Err(DataError::CsvTarget {
                path: table.path.clone(),
                message: format!("--target names column `{name}` twice"),
            });
        }
        cols.push(c);
    }
    Ok(cols)
}

/// Each row's value of a regression target column; a value that is not a finite number is an
/// error naming its line.
fn target_numbers(table: &Table, col: usize) -> Result<Vec<f64>, DataError> {
    table
        .rows
        .iter()
        .zip(&table.lines)
        .map(|(row, &line)| {
            parse_number(&row[col]).ok_or_else(|| DataError::CsvTargetNotNumber {
                path: table.path.clone(),
                line,
                column: table.header[col].clone(),
                value: row[col].to_string(),
            })
        })
        .collect()
}

/// Strata for splitting a regression table: which tenth of the values (by rank) each row's
/// value falls in, so the test part spans the target's range like the whole.
fn strata(values: &[f64]) -> (Vec<u32>, usize) {
    let n = values.len();
    let bins = n.clamp(1, 10);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut y = vec![0u32; n];
    for (rank, &i) in order.iter().enumerate() {
        y[i] = (rank * bins / n.max(1)) as u32;
    }
    (y, bins)
}

/// The task's target encoding of rows `indices`: class labels, or standardized values.
struct Targets {
    labels: Vec<u32>,
    num_classes: usize,
    /// Regression: per row, one raw value per target.
    raw: Vec<Vec<f64>>,
}

impl Targets {
    fn part(&self, indices: &[usize], task: &Task) -> (Vec<u32>, Vec<f32>) {
        let y = indices.iter().map(|&i| self.labels[i]).collect();
        let mut values = Vec::with_capacity(indices.len() * task.targets().len());
        for &i in indices {
            for (scale, raw) in task.targets().iter().zip(&self.raw) {
                values.push(scale.standardize(raw[i]));
            }
        }
        (y, values)
    }
}

/// Each row's class index by `class_names`; a value that is not a class is an error naming it
/// and its line.
pub(crate) fn decode_labels(
    table: &Table,
    target_col: usize,
    class_names: &[String],
) -> Result<Vec<u32>, DataError> {
    let index: HashMap<&str, u32> = class_names
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i as u32))
        .collect();
    table
        .rows
        .iter()
        .zip(&table.lines)
        .map(|(row, &line)| {
            let value = &row[target_col];
            index
                .get(value)
                .copied()
                .ok_or_else(|| DataError::CsvUnseenClass {
                    path: table.path.clone(),
                    line,
                    column: table.header[target_col].clone(),
                    value: value.to_string(),
                    classes: class_names.join(", "),
                })
        })
        .collect()
}

/// The model inputs of rows `indices`, column by column through `columns` (found at
/// `positions`). Counts, per column, categories outside the training vocabulary (encoded as
/// all zeros).
pub(crate) fn encode_rows(
    table: &Table,
    columns: &[ColumnTransform],
    positions: &[usize],
    indices: &[usize],
    unseen: &mut BTreeMap<String, usize>,
) -> Vec<f32> {
    let width: usize = columns.iter().map(|c| c.kind.width()).sum();
    let mut x = Vec::with_capacity(indices.len() * width);
    let mut unseen_by_column = vec![0usize; columns.len()];
    for &i in indices {
        for (k, (col, &c)) in columns.iter().zip(positions).enumerate() {
            let field = &table.rows[i][c];
            if !col
                .kind
                .encode((!is_missing(field)).then_some(field), &mut x)
            {
                unseen_by_column[k] += 1;
            }
        }
    }
    for (col, n) in columns.iter().zip(unseen_by_column) {
        if n > 0 {
            *unseen.entry(col.name.clone()).or_default() += n;
        }
    }
    x
}

/// Fits one feature column on the train rows: categorical if any value is text, else numeric
/// (standardized with the train mean and std).
fn fit_column(
    table: &Table,
    c: usize,
    train_idx: &[usize],
    opts: &LoadOptions,
) -> Result<ColumnTransform, DataError> {
    let present = |i: usize| {
        let f = &table.rows[i][c];
        (!is_missing(f) && !is_non_finite_number(f)).then_some(f)
    };
    let all: Vec<usize> = (0..table.rows.len()).collect();
    let categorical = all
        .iter()
        .filter_map(|&i| present(i))
        .any(|f| f.trim().parse::<f64>().is_err());
    let name = table.header[c].clone();
    let kind = if categorical {
        let distinct = {
            let mut values: Vec<&str> = all.iter().filter_map(|&i| present(i)).collect();
            values.sort_unstable();
            values.dedup();
            values.len()
        };
        let rows = table.rows.len();
        if !opts.allow_high_cardinality
            && distinct > HIGH_CARDINALITY_MIN
            && distinct as f64 > HIGH_CARDINALITY_SHARE * rows as f64
        {
            return Err(DataError::CsvHighCardinality {
                path: table.path.clone(),
                column: name,
                distinct,
                rows,
            });
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for f in train_idx.iter().filter_map(|&i| present(i)) {
            *counts.entry(f).or_default() += 1;
        }
        // Most frequent; ties go to the first in sorted order.
        let mut impute = "";
        let mut best = 0;
        for (&v, &n) in &counts {
            if n > best {
                best = n;
                impute = v;
            }
        }
        ColumnKind::Categorical {
            vocabulary: counts.keys().map(|s| s.to_string()).collect(),
            impute: impute.to_string(),
        }
    } else {
        let values: Vec<f64> = train_idx
            .iter()
            .filter_map(|&i| present(i).and_then(parse_number))
            .collect();
        let (mean, std) = if values.is_empty() {
            (0.0, 1.0)
        } else {
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            let std = var.sqrt();
            (mean, if std > 1e-12 { std } else { 1.0 })
        };
        ColumnKind::Numeric {
            mean,
            std,
            impute: mean,
        }
    };
    Ok(ColumnTransform { name, kind })
}

/// Tells once per column how many non-finite numbers were read as missing values.
fn warn_non_finite(path: &str, counts: &BTreeMap<String, usize>) {
    for (column, n) in counts {
        tracing::warn!(
            "{path}: column `{column}` has {n} non-finite number(s) (inf or out of range); treated as missing values and imputed"
        );
    }
}

/// A training table, split and encoded.
pub(crate) struct LoadedTable {
    pub train: Dataset,
    pub test: Dataset,
    pub task: Task,
    pub preprocessing: Preprocessing,
    pub choice: Choice,
}

/// Chooses the task for the target columns (several: a regression on each).
fn choose_task(
    table: &Table,
    target_cols: &[usize],
    requested: Option<TaskKind>,
) -> Result<Choice, DataError> {
    let bad = |message: String| DataError::CsvTarget {
        path: table.path.clone(),
        message,
    };
    let column_choice = |c: usize, requested| {
        let values: Vec<&str> = table.rows.iter().map(|r| &r[c]).collect();
        crate::task::choose(&table.header[c], &values, requested).map_err(bad)
    };
    if let [c] = target_cols {
        return column_choice(*c, requested);
    }
    let names: Vec<&str> = target_cols
        .iter()
        .map(|&c| table.header[c].as_str())
        .collect();
    if requested == Some(TaskKind::Classification) {
        return Err(bad(format!(
            "--target names {} columns ({}); classification learns one, a regression may learn several",
            names.len(),
            names.join(", ")
        )));
    }
    for &c in target_cols {
        column_choice(c, Some(TaskKind::Regression))?;
    }
    Ok(Choice {
        kind: TaskKind::Regression,
        reason: format!(
            "regression: {} target columns ({})",
            names.len(),
            names.join(", ")
        ),
    })
}

/// A training table: chooses the task, splits (stratified by class, or by the first target's
/// tenths), fits the preprocessing and the target scales on the train rows, encodes both parts.
pub(crate) fn load_csv(path: &Path, opts: &LoadOptions) -> Result<LoadedTable, DataError> {
    let table = Table::read(path)?;
    let target = opts
        .target
        .as_deref()
        .ok_or_else(|| DataError::CsvNoTarget {
            path: table.path.clone(),
            columns: table.listed(),
        })?;
    let target_cols = target_columns(&table, target)?;
    let features: Vec<usize> = (0..table.header.len())
        .filter(|c| !target_cols.contains(c))
        .collect();
    if features.is_empty() {
        return Err(DataError::Empty {
            path: table.path,
            message: format!("the only column is the target `{target}`; add feature columns"),
        });
    }
    for &c in &target_cols {
        table.check_targets_present(c)?;
        table.check_targets_finite(c)?;
    }
    let choice = choose_task(&table, &target_cols, opts.task)?;
    let (targets, class_names) = match choice.kind {
        TaskKind::Classification => {
            let class_names = class_names_of(&table, target_cols[0]);
            let labels = decode_labels(&table, target_cols[0], &class_names)?;
            let targets = Targets {
                labels,
                num_classes: class_names.len(),
                raw: Vec::new(),
            };
            (targets, class_names)
        }
        TaskKind::Regression => {
            let raw = target_cols
                .iter()
                .map(|&c| target_numbers(&table, c))
                .collect::<Result<Vec<_>, _>>()?;
            let (labels, num_classes) = strata(&raw[0]);
            let targets = Targets {
                labels,
                num_classes,
                raw,
            };
            (targets, Vec::new())
        }
    };

    // Missing values under the reject policy: the first one, in file order.
    if opts.missing == MissingPolicy::Reject {
        for (row, &line) in table.rows.iter().zip(&table.lines) {
            if let Some(&c) = features.iter().find(|&&c| is_missing(&row[c])) {
                return Err(DataError::CsvMissingValue {
                    path: table.path.clone(),
                    line,
                    column: table.header[c].clone(),
                });
            }
        }
    }
    warn_non_finite(&table.path, &table.non_finite(&features, opts.missing)?);

    let (train_idx, test_idx) = split_indices(&targets.labels, opts.test_fraction, opts.seed);
    let task = match choice.kind {
        TaskKind::Classification => Task::Classification {
            classes: class_names,
        },
        TaskKind::Regression => Task::Regression {
            targets: target_cols
                .iter()
                .zip(&targets.raw)
                .map(|(&c, raw)| {
                    TargetScale::fit(&table.header[c], train_idx.iter().map(|&i| raw[i]))
                })
                .collect(),
        },
    };
    let columns = features
        .iter()
        .map(|&c| fit_column(&table, c, &train_idx, opts))
        .collect::<Result<Vec<_>, _>>()?;
    let width: usize = columns.iter().map(|c| c.kind.width()).sum();
    let mut unseen = BTreeMap::new();
    let part = |indices: &[usize], unseen: &mut BTreeMap<String, usize>| {
        let (y, values) = targets.part(indices, &task);
        Dataset {
            x: encode_rows(&table, &columns, &features, indices, unseen),
            y,
            values,
            shape: vec![width],
            num_classes: targets.num_classes,
        }
    };
    let train = part(&train_idx, &mut unseen);
    let test = part(&test_idx, &mut unseen);
    let preprocessing = Preprocessing::Table {
        target: target.to_string(),
        columns,
    };
    Ok(LoadedTable {
        train,
        test,
        task,
        preprocessing,
        choice,
    })
}

/// A user's own table scored whole with a trained model's preprocessing: features by header
/// name, targets encoded as the task says (classes by the training classes, values by the
/// training scales). `target` overrides the trained target column(s) name(s).
pub(crate) fn held_out_csv(
    path: &Path,
    preprocessing: &Preprocessing,
    task: &Task,
    target: Option<&str>,
) -> Result<(Dataset, EncodingReport), DataError> {
    let Preprocessing::Table {
        target: trained_target,
        columns,
    } = preprocessing
    else {
        return Err(DataError::Incompatible {
            message: format!(
                "{}: the model was trained on images, not a table; give it images",
                path.display()
            ),
        });
    };
    let table = Table::read(path)?;
    let target = target.unwrap_or(trained_target);
    let target_cols = target_columns(&table, target)?;
    let expected = if task.is_regression() {
        task.outputs()
    } else {
        1
    };
    if target_cols.len() != expected {
        return Err(DataError::CsvTarget {
            path: table.path.clone(),
            message: format!(
                "--target names {} column(s) but the model predicts {}",
                target_cols.len(),
                task.describe()
            ),
        });
    }
    let positions = table.positions(columns)?;
    for &c in &target_cols {
        table.check_targets_present(c)?;
    }
    let all: Vec<usize> = (0..table.rows.len()).collect();
    let (y, values, num_classes) = match task {
        Task::Classification { classes } => {
            let labels = decode_labels(&table, target_cols[0], classes)?;
            (labels, Vec::new(), classes.len())
        }
        Task::Regression { .. } => {
            let raw = target_cols
                .iter()
                .map(|&c| target_numbers(&table, c))
                .collect::<Result<Vec<_>, _>>()?;
            let targets = Targets {
                labels: vec![0; all.len()],
                num_classes: 1,
                raw,
            };
            let (y, values) = targets.part(&all, task);
            (y, values, 1)
        }
    };
    let non_finite = table.non_finite(&positions, MissingPolicy::Impute)?;
    warn_non_finite(&table.path, &non_finite);
    let mut unseen_categories = BTreeMap::new();
    let x = encode_rows(&table, columns, &positions, &all, &mut unseen_categories);
    let data = Dataset {
        x,
        y,
        values,
        shape: preprocessing.input_shape(),
        num_classes,
    };
    let report = EncodingReport {
        examples: data.len(),
        unseen_categories,
        non_finite,
    };
    Ok((data, report))
}

/// Rows of a table for prediction: features by header name, extra columns (the target among
/// them) ignored, missing values imputed.
pub(crate) fn prediction_rows(
    path: &Path,
    columns: &[ColumnTransform],
) -> Result<Vec<Vec<f32>>, DataError> {
    let table = Table::read(path)?;
    let positions = table.positions(columns)?;
    let mut unseen = BTreeMap::new();
    let width: usize = columns.iter().map(|c| c.kind.width()).sum();
    let all: Vec<usize> = (0..table.rows.len()).collect();
    let x = encode_rows(&table, columns, &positions, &all, &mut unseen);
    Ok(x.chunks(width.max(1)).map(<[f32]>::to_vec).collect())
}
