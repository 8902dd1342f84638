//! SHA-256 checksums of a bundle in the `sha256sum` format (`<64 hex digits>  <path>`, one
//! line per file, `/`-separated paths relative to the bundle), so both `sha256sum -c
//! SHA256SUMS` and [`verify`] check it. Every file except SHA256SUMS itself is listed, and
//! [`verify`] also reports files the list does not name, so adding a file is caught as well as
//! changing or removing one.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The checksum file's name, at the bundle's root.
pub const SUMS_FILE: &str = "SHA256SUMS";

/// SHA-256 of a file as 64 lowercase hex digits, read in chunks (the binary is tens of MB).
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(crate::digest::hex(&hasher.finalize()))
}

/// Every regular file under `root` as a sorted `/`-separated relative path, except
/// SHA256SUMS. Symbolic links and other special files are an error: a bundle holds none.
pub fn bundle_files(root: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let dir = root.join(&rel);
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
            let name = entry.file_name().into_string().map_err(|_| {
                Error::Config(format!("{}: file name is not UTF-8", path.display()))
            })?;
            let child = rel.join(&name);
            if kind.is_dir() {
                pending.push(child);
            } else if kind.is_file() {
                let text = child
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                if text != SUMS_FILE {
                    files.push(text);
                }
            } else {
                return Err(Error::Config(format!(
                    "{}: a bundle holds only regular files and folders",
                    path.display()
                )));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Writes SHA256SUMS for every file under `root`; returns the listed paths.
pub fn write_sums(root: &Path) -> Result<Vec<String>> {
    let files = bundle_files(root)?;
    let mut text = String::new();
    for file in &files {
        // sha256sum escapes names with a newline or backslash; ours never have them.
        if file.contains(['\n', '\\']) {
            return Err(Error::Config(format!(
                "{file}: names with newlines or backslashes cannot be listed in {SUMS_FILE}"
            )));
        }
        let sum = sha256_file(&root.join(file))?;
        text.push_str(&format!("{sum}  {file}\n"));
    }
    let path = root.join(SUMS_FILE);
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    Ok(files)
}

/// What is wrong with one file of a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// The file's checksum differs from the listed one.
    Changed { path: String },
    /// A listed file is not there.
    Missing { path: String },
    /// A file SHA256SUMS does not list.
    Unlisted { path: String },
    /// A line of SHA256SUMS is not `<64 hex>  <path>`.
    Malformed { line: usize },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Changed { path } => write!(f, "{path}: checksum does not match"),
            Problem::Missing { path } => write!(f, "{path}: listed in {SUMS_FILE} but missing"),
            Problem::Unlisted { path } => write!(f, "{path}: not listed in {SUMS_FILE}"),
            Problem::Malformed { line } => {
                write!(f, "{SUMS_FILE} line {line}: not '<sha256>  <path>'")
            }
        }
    }
}

/// The outcome of [`verify`].
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub bundle: String,
    /// Files whose checksum matched.
    pub verified: usize,
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One SHA256SUMS line: `<hex>  <path>` (text mode) or `<hex> *<path>` (binary mode).
fn parse_line(line: &str) -> Option<(&str, &str)> {
    let (sum, rest) = line.split_at_checked(64)?;
    let path = rest
        .strip_prefix("  ")
        .or_else(|| rest.strip_prefix(" *"))?;
    let hex = sum.bytes().all(|b| b.is_ascii_hexdigit());
    (hex && !path.is_empty()).then_some((sum, path))
}

/// Checks every file of the bundle at `root` against its SHA256SUMS. A bundle without
/// SHA256SUMS is an error; mismatches are the report's problems.
pub fn verify(root: &Path) -> Result<VerifyReport> {
    let sums_path = root.join(SUMS_FILE);
    if !root.is_dir() {
        return Err(Error::Config(format!(
            "{}: not a folder (give the bundle folder `modelsmith deploy` wrote)",
            root.display()
        )));
    }
    if !sums_path.is_file() {
        return Err(Error::Config(format!(
            "{}: not a bundle: {SUMS_FILE} is missing",
            root.display()
        )));
    }
    let text = std::fs::read_to_string(&sums_path).map_err(|e| Error::io(&sums_path, e))?;
    let mut problems = Vec::new();
    let mut listed = std::collections::BTreeSet::new();
    let mut verified = 0;
    for (i, line) in text.lines().enumerate() {
        let Some((expected, path)) = parse_line(line) else {
            problems.push(Problem::Malformed { line: i + 1 });
            continue;
        };
        listed.insert(path.to_string());
        // A listed path must stay inside the bundle.
        let inside = Path::new(path)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        let file = root.join(path);
        if !inside || !file.is_file() {
            problems.push(Problem::Missing { path: path.into() });
        } else if sha256_file(&file)? != expected.to_ascii_lowercase() {
            problems.push(Problem::Changed { path: path.into() });
        } else {
            verified += 1;
        }
    }
    for path in bundle_files(root)? {
        if !listed.contains(&path) {
            problems.push(Problem::Unlisted { path });
        }
    }
    Ok(VerifyReport {
        bundle: root.display().to_string(),
        verified,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").unwrap();
        // FIPS 180-2's example.
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::write(&path, b"").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn lines_parse_in_both_modes_and_garbage_does_not() {
        let sum = "a".repeat(64);
        assert_eq!(parse_line(&format!("{sum}  a/b")), Some((&sum[..], "a/b")));
        assert_eq!(parse_line(&format!("{sum} *a")), Some((&sum[..], "a")));
        assert_eq!(parse_line(&format!("{sum} a")), None);
        assert_eq!(parse_line(&format!("{}  a", "g".repeat(64))), None);
        assert_eq!(parse_line("short  a"), None);
        assert_eq!(parse_line(&format!("{sum}  ")), None);
    }

    #[test]
    fn paths_outside_the_bundle_count_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"x").unwrap();
        let sums = format!("{}  ../a\n", "0".repeat(64));
        std::fs::write(dir.path().join(SUMS_FILE), sums).unwrap();
        let report = verify(dir.path()).unwrap();
        assert!(report.problems.contains(&Problem::Missing {
            path: "../a".into()
        }));
        assert!(report
            .problems
            .contains(&Problem::Unlisted { path: "a".into() }));
    }
}
