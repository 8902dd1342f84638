//! The rule that picks a task from a target column when the user did not say (`--task`).
//!
//! In order, over the column's values (none missing, none a non-finite number):
//! 1. a single distinct value: refused, there is nothing to learn;
//! 2. any value that is not a number: classification;
//! 3. exactly two distinct values: classification (binary), even when they are fractional;
//! 4. any fractional number: regression;
//! 5. integers only: regression when there are more than [`MAX_CLASSES_BY_DEFAULT`] distinct
//!    values *and* they are more than [`DISTINCT_SHARE`] of the rows (scores and counts);
//!    otherwise classification (codes that repeat, like digit labels).
//!
//! The choice comes with one line saying why and how to override it, which the CLI prints.

use super::TaskKind;

/// Integer targets with at most this many distinct values are classes.
pub const MAX_CLASSES_BY_DEFAULT: usize = 20;
/// Integer targets whose distinct values are at most this share of the rows are classes.
pub const DISTINCT_SHARE: f64 = 0.05;

/// The task a target column is learned as, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    pub kind: TaskKind,
    /// `regression: 'target' has 214 distinct integer values in 353 rows; --task classification to override`
    pub reason: String,
}

/// Picks the task for target `column` from its `values` (one per row). `requested` (the
/// user's `--task`) wins over the rule, except that a constant target is always refused and
/// text cannot be regressed. Errors are one line without the file's name (the caller adds it).
pub fn choose(
    column: &str,
    values: &[&str],
    requested: Option<TaskKind>,
) -> Result<Choice, String> {
    let rows = values.len();
    let mut distinct: Vec<&str> = values.iter().map(|v| v.trim()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let numbers: Option<Vec<f64>> = distinct.iter().map(|v| v.parse::<f64>().ok()).collect();
    // Numbers compare by value: "1" and "1.0" are one value.
    let d = match &numbers {
        Some(n) => {
            let mut n = n.clone();
            n.sort_by(f64::total_cmp);
            n.dedup();
            n.len()
        }
        None => distinct.len(),
    };
    if d < 2 {
        return Err(format!(
            "target column `{column}` has the single value `{}` in all {rows} rows: there is nothing to learn",
            distinct.first().copied().unwrap_or("")
        ));
    }
    let said = |kind: TaskKind, why: String| {
        let other = match kind {
            TaskKind::Classification => TaskKind::Regression,
            TaskKind::Regression => TaskKind::Classification,
        };
        Choice {
            kind,
            reason: format!(
                "{}: `{column}` {why}; --task {} to override",
                kind.name(),
                other.name()
            ),
        }
    };
    let Some(numbers) = numbers else {
        if requested == Some(TaskKind::Regression) {
            let text = distinct
                .iter()
                .find(|v| v.parse::<f64>().is_err())
                .copied()
                .unwrap_or("");
            return Err(format!(
                "target column `{column}` holds the text `{text}`; regression needs numbers (drop --task regression to classify it)"
            ));
        }
        return Ok(Choice {
            kind: TaskKind::Classification,
            reason: format!("classification: `{column}` holds text ({d} distinct values)"),
        });
    };
    if let Some(kind) = requested {
        return Ok(Choice {
            kind,
            reason: format!("{}: as asked (--task)", kind.name()),
        });
    }
    if d == 2 {
        return Ok(said(
            TaskKind::Classification,
            "has 2 distinct values".to_string(),
        ));
    }
    if let Some(f) = numbers.iter().find(|v| v.fract() != 0.0) {
        return Ok(said(
            TaskKind::Regression,
            format!("holds fractional numbers (such as {f})"),
        ));
    }
    let many = d > MAX_CLASSES_BY_DEFAULT && d as f64 > DISTINCT_SHARE * rows as f64;
    let kind = if many {
        TaskKind::Regression
    } else {
        TaskKind::Classification
    };
    Ok(said(
        kind,
        format!("has {d} distinct integer values in {rows} rows"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(values: &[&str]) -> TaskKind {
        choose("y", values, None).unwrap().kind
    }

    #[test]
    fn digit_labels_are_classes() {
        let v: Vec<String> = (0..1000).map(|i| (i % 10).to_string()).collect();
        let v: Vec<&str> = v.iter().map(String::as_str).collect();
        let c = choose("label", &v, None).unwrap();
        assert_eq!(c.kind, TaskKind::Classification);
        assert_eq!(
            c.reason,
            "classification: `label` has 10 distinct integer values in 1000 rows; --task regression to override"
        );
    }

    #[test]
    fn many_distinct_integers_are_a_regression() {
        // The disease-score table: 214 distinct integers in 353 rows.
        let v: Vec<String> = (0..353).map(|i| (25 + (i * 7) % 214).to_string()).collect();
        let v: Vec<&str> = v.iter().map(String::as_str).collect();
        let c = choose("target", &v, None).unwrap();
        assert_eq!(c.kind, TaskKind::Regression);
        assert_eq!(
            c.reason,
            "regression: `target` has 214 distinct integer values in 353 rows; --task classification to override"
        );
    }

    #[test]
    fn many_classes_that_repeat_stay_classes() {
        // 100 classes, 50 rows each: 2% of the rows are distinct.
        let v: Vec<String> = (0..5000).map(|i| (i % 100).to_string()).collect();
        let v: Vec<&str> = v.iter().map(String::as_str).collect();
        assert_eq!(kind(&v), TaskKind::Classification);
    }

    #[test]
    fn fractions_are_a_regression_unless_there_are_two_values() {
        assert_eq!(kind(&["1.5", "2.25", "3"]), TaskKind::Regression);
        assert_eq!(kind(&["0.5", "1.5", "0.5"]), TaskKind::Classification);
        // One value written two ways is one value.
        assert!(choose("y", &["1", "1.0"], None).is_err());
    }

    #[test]
    fn text_is_classes_and_cannot_be_regressed() {
        assert_eq!(kind(&["cat", "dog", "3"]), TaskKind::Classification);
        let e = choose("y", &["cat", "dog"], Some(TaskKind::Regression)).unwrap_err();
        assert!(
            e.contains("`cat`") && e.contains("regression needs numbers"),
            "{e}"
        );
    }

    #[test]
    fn constant_target_is_refused_whatever_is_asked() {
        for asked in [
            None,
            Some(TaskKind::Regression),
            Some(TaskKind::Classification),
        ] {
            let e = choose("y", &["4", "4", "4"], asked).unwrap_err();
            assert!(e.contains("single value `4` in all 3 rows"), "{e}");
        }
    }

    #[test]
    fn asking_wins_over_the_rule() {
        let c = choose("y", &["1", "2", "3"], Some(TaskKind::Regression)).unwrap();
        assert_eq!(c.kind, TaskKind::Regression);
        let c = choose("y", &["0.5", "1.5", "2.5"], Some(TaskKind::Classification)).unwrap();
        assert_eq!(c.kind, TaskKind::Classification);
    }
}
