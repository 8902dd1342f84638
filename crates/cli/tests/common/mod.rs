//! Helpers shared by the CLI integration tests (each `tests/*.rs` file includes this module).

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
