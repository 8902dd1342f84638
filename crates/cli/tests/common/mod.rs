//! Helpers shared by the CLI integration tests (each `tests/*.rs` file includes this module).

use std::path::{Path, PathBuf};
use std::process::Output;

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Bad input: exit code 2, exactly one `error:` line that mentions `needle`, no panic.
pub fn assert_bad_input(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "expected exit 2, stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    assert!(
        lines[0].to_lowercase().contains(&needle.to_lowercase()),
        "error line should mention '{needle}': {}",
        lines[0]
    );
}

/// A small two-class table (two informative columns, one noise column) written to
/// `dir/table.csv`: trials on it take milliseconds, so tests can run hundreds.
#[allow(dead_code)] // not every test file trains on a table
pub fn write_table(dir: &Path, rows: usize) -> PathBuf {
    let mut text = String::from("a,b,noise,label\n");
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    for _ in 0..rows {
        let (a, b, n) = (next() * 2.0 - 1.0, next() * 2.0 - 1.0, next());
        let label = u8::from(a + 0.5 * b > 0.0);
        text.push_str(&format!("{a:.4},{b:.4},{n:.4},{label}\n"));
    }
    let path = dir.join("table.csv");
    std::fs::write(&path, text).unwrap();
    path
}
