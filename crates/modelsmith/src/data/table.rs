//! `csv:FILE`: a CSV table with a header and a target column (see the module docs of `data`
//! for the decisions: column typing, standardization, one-hot, missing values, class order).

use super::preprocess::{csv_error, csv_reader, is_missing, parse_number, read_header};
use super::{
    split_indices, ColumnKind, ColumnTransform, DataError, Dataset, LoadOptions, MissingPolicy,
    Preprocessing,
};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

type Loaded = (Dataset, Dataset, Vec<String>, Preprocessing);

pub(crate) fn load_csv(path: &Path, opts: &LoadOptions) -> Result<Loaded, DataError> {
    let shown = path.display().to_string();
    let mut reader = csv_reader(path)?;
    let header = read_header(&mut reader, &shown)?;
    let listed = || header.join(", ");
    let target = opts
        .target
        .as_deref()
        .ok_or_else(|| DataError::CsvNoTarget {
            path: shown.clone(),
            columns: listed(),
        })?;
    let target_col =
        header
            .iter()
            .position(|h| h == target)
            .ok_or_else(|| DataError::CsvUnknownTarget {
                path: shown.clone(),
                target: target.to_string(),
                columns: listed(),
            })?;

    // Read every row; reject ragged ones.
    let mut lines: Vec<u64> = Vec::new();
    let mut rows: Vec<csv::StringRecord> = Vec::new();
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
    let features: Vec<usize> = (0..header.len()).filter(|&c| c != target_col).collect();
    if features.is_empty() {
        return Err(DataError::Empty {
            path: shown,
            message: format!("the only column is the target `{target}`; add feature columns"),
        });
    }

    // Labels: class names sorted numerically if all are numbers, else as strings.
    for (row, &line) in rows.iter().zip(&lines) {
        if is_missing(&row[target_col]) {
            return Err(DataError::CsvMissingTarget {
                path: shown,
                line,
                column: target.to_string(),
            });
        }
    }
    let mut class_names: Vec<String> = rows.iter().map(|r| r[target_col].to_string()).collect();
    class_names.sort();
    class_names.dedup();
    let numbers: Option<Vec<f64>> = class_names.iter().map(|s| parse_number(s)).collect();
    if let Some(numbers) = &numbers {
        // A numeric target with fractions is a regression target, not classes.
        if let Some((value, _)) = class_names
            .iter()
            .zip(numbers)
            .find(|(_, v)| v.fract() != 0.0)
        {
            let line = rows
                .iter()
                .zip(&lines)
                .find(|(r, _)| &r[target_col] == value.as_str())
                .map_or(0, |(_, &l)| l);
            return Err(DataError::CsvContinuousTarget {
                path: shown,
                line,
                column: target.to_string(),
                value: value.clone(),
            });
        }
    }
    if let Some(numbers) = numbers {
        let mut paired: Vec<(f64, String)> = numbers.into_iter().zip(class_names).collect();
        paired.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        class_names = paired.into_iter().map(|p| p.1).collect();
    }
    let class_index: HashMap<&str, u32> = class_names
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i as u32))
        .collect();
    let labels: Vec<u32> = rows.iter().map(|r| class_index[&r[target_col]]).collect();
    if class_names.len() < 2 {
        tracing::warn!(file = %shown, "target column `{target}` has a single class");
    }

    // Missing values under the reject policy: the first one, in file order.
    if opts.missing == MissingPolicy::Reject {
        for (row, &line) in rows.iter().zip(&lines) {
            if let Some(&c) = features.iter().find(|&&c| is_missing(&row[c])) {
                return Err(DataError::CsvMissingValue {
                    path: shown,
                    line,
                    column: header[c].clone(),
                });
            }
        }
    }

    let (train_idx, test_idx) = split_indices(&labels, opts.test_fraction, opts.seed);

    // Fit each column on the train rows only.
    let columns: Vec<ColumnTransform> = features
        .iter()
        .map(|&c| {
            let field = |i: usize| {
                let f = &rows[i][c];
                (!is_missing(f)).then_some(f)
            };
            let categorical = rows
                .iter()
                .any(|r| !is_missing(&r[c]) && parse_number(&r[c]).is_none());
            let kind = if categorical {
                let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                for f in train_idx.iter().filter_map(|&i| field(i)) {
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
                    .filter_map(|&i| field(i).and_then(parse_number))
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
            ColumnTransform {
                name: header[c].clone(),
                kind,
            }
        })
        .collect();

    let width: usize = columns.iter().map(|c| c.kind.width()).sum();
    let encode = |indices: &[usize]| {
        let mut x = Vec::with_capacity(indices.len() * width);
        for &i in indices {
            for (col, &c) in columns.iter().zip(&features) {
                let f = &rows[i][c];
                col.kind
                    .encode((!is_missing(f)).then_some(f.as_ref()), &mut x);
            }
        }
        Dataset {
            x,
            y: indices.iter().map(|&i| labels[i]).collect(),
            shape: vec![width],
            num_classes: class_names.len(),
        }
    };
    let train = encode(&train_idx);
    let test = encode(&test_idx);
    let preprocessing = Preprocessing::Table {
        target: target.to_string(),
        columns,
    };
    Ok((train, test, class_names, preprocessing))
}
