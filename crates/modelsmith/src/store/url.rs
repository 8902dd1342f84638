//! [`StorageUrl`]: a storage URL parsed once into what it names, and shown (redacted) by its
//! structure, never by searching the text for the password.
//!
//! Forms: `sqlite:PATH` (also Optuna's spellings: `sqlite:///relative.db`,
//! `sqlite:////absolute.db`), a bare path ending in `.db`, `memory:`, and
//! `postgres://user[:password]@host[:port]/db[?...]` (also `postgresql://`). In a PostgreSQL
//! URL the user information runs to the last `@`, so a password holding an unescaped `/`, `?`
//! or `@` is still recognized as the password (and hidden) rather than read as a path or query.

use std::path::PathBuf;

use super::{StoreError, StoreResult};

/// What a storage URL names.
#[derive(Clone, Debug, PartialEq)]
pub enum StorageUrl {
    Sqlite(PathBuf),
    Memory,
    /// The URL as given (the driver parses it) and its password, if it has one.
    Postgres(PostgresUrl),
}

/// A PostgreSQL URL split at its structure.
#[derive(Clone, PartialEq)]
pub struct PostgresUrl {
    raw: String,
    /// `postgres://` or `postgresql://`.
    scheme: &'static str,
    /// `user[:password]` before the last `@`, if any.
    userinfo: Option<(String, Option<String>)>,
    /// Host, port, database and query: everything after the user information.
    rest: String,
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl StorageUrl {
    pub fn parse(url: &str) -> StoreResult<StorageUrl> {
        if let Some(pg) = PostgresUrl::parse(url) {
            return Ok(StorageUrl::Postgres(pg));
        }
        if let Some(path) = url.strip_prefix("sqlite:") {
            // Optuna/SQLAlchemy: `sqlite:///rel.db` is relative, `sqlite:////abs.db` absolute.
            let path = path
                .strip_prefix("///")
                .or_else(|| path.strip_prefix("//"))
                .unwrap_or(path);
            if path.is_empty() {
                return Err(StoreError::Open {
                    url: url.into(),
                    message: "no file path after 'sqlite:'".into(),
                });
            }
            return Ok(StorageUrl::Sqlite(PathBuf::from(path)));
        }
        if url == "memory:" {
            return Ok(StorageUrl::Memory);
        }
        if url.ends_with(".db") && !url.contains("://") {
            return Ok(StorageUrl::Sqlite(PathBuf::from(url)));
        }
        Err(StoreError::Open {
            url: redact_url(url),
            message: "unknown storage (expected sqlite:PATH, postgres://USER@HOST/DB or memory:)"
                .into(),
        })
    }
}

impl PostgresUrl {
    /// `None` unless the URL starts with `postgres://` or `postgresql://`.
    fn parse(raw: &str) -> Option<PostgresUrl> {
        let (scheme, after) = ["postgres://", "postgresql://"]
            .into_iter()
            .find_map(|scheme| raw.strip_prefix(scheme).map(|after| (scheme, after)))?;
        let (userinfo, rest) = match after.rfind('@') {
            Some(at) => {
                let info = &after[..at];
                let user_password = match info.split_once(':') {
                    Some((user, password)) => (user.to_string(), Some(password.to_string())),
                    None => (info.to_string(), None),
                };
                (Some(user_password), after[at + 1..].to_string())
            }
            None => (None, after.to_string()),
        };
        Some(PostgresUrl {
            raw: raw.to_string(),
            scheme,
            userinfo,
            rest,
        })
    }

    /// The URL as given, for the driver.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The password (percent-decoded), from the user information or a `password=` parameter.
    pub fn password(&self) -> Option<String> {
        let from_userinfo = self
            .userinfo
            .as_ref()
            .and_then(|(_, p)| p.as_deref())
            .map(percent_decode);
        let from_query = self.rest.split_once('?').and_then(|(_, query)| {
            query.split('&').find_map(|kv| {
                kv.split_once('=')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("password"))
                    .map(|(_, v)| percent_decode(v))
            })
        });
        from_userinfo.or(from_query).filter(|p| !p.is_empty())
    }

    /// The URL with the password's place (in the user information and in a `password=`
    /// parameter) shown as `***`, whatever the password's text.
    pub fn redacted(&self) -> String {
        let mut out = String::from(self.scheme);
        if let Some((user, password)) = &self.userinfo {
            out.push_str(user);
            if password.is_some() {
                out.push_str(":***");
            }
            out.push('@');
        }
        match self.rest.split_once('?') {
            Some((head, query)) => {
                out.push_str(head);
                out.push('?');
                let query: Vec<String> = query
                    .split('&')
                    .map(|kv| match kv.split_once('=') {
                        Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                        _ => kv.to_string(),
                    })
                    .collect();
                out.push_str(&query.join("&"));
            }
            None => out.push_str(&self.rest),
        }
        out
    }
}

/// The URL as it may be shown: a PostgreSQL URL's password replaced by `***` by structure;
/// other URLs unchanged. Everything that prints a storage URL uses this.
pub fn redact_url(url: &str) -> String {
    PostgresUrl::parse(url).map_or_else(|| url.to_string(), |pg| pg.redacted())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' {
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_by_structure() {
        let cases = [
            (
                "postgres://alice:s3cret@db.example:5432/studies",
                "postgres://alice:***@db.example:5432/studies",
            ),
            (
                "postgresql://alice:p%40ss%3Aw0rd@db/x?sslmode=require",
                "postgresql://alice:***@db/x?sslmode=require",
            ),
            (
                "postgres://alice@db/x?password=hunter2&sslmode=require",
                "postgres://alice@db/x?password=***&sslmode=require",
            ),
            ("postgres://db/x", "postgres://db/x"),
            ("sqlite:studies.db", "sqlite:studies.db"),
            // Unescaped '@', '/' and '?' in the password: the user information runs to the
            // last '@'.
            ("postgres://bob:a@b@host/db", "postgres://bob:***@host/db"),
            ("postgres://bob:pa/ss@host/db", "postgres://bob:***@host/db"),
            ("postgres://bob:pa?ss@host/db", "postgres://bob:***@host/db"),
            // A one-letter password hides its place, not every 'p' in the URL.
            (
                "postgres://postgres:p@localhost/postgres",
                "postgres://postgres:***@localhost/postgres",
            ),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        let password = |u: &str| match StorageUrl::parse(u).unwrap() {
            StorageUrl::Postgres(p) => p.password(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            password("postgresql://alice:p%40ss%3Aw0rd@db/x").as_deref(),
            Some("p@ss:w0rd")
        );
        assert_eq!(
            password("postgres://bob:pa/ss@host/db").as_deref(),
            Some("pa/ss")
        );
        assert_eq!(password("postgres://alice@db/x"), None);
        // Debug output is redacted too.
        let parsed = StorageUrl::parse("postgres://u:hunter2@h/d").unwrap();
        assert!(!format!("{parsed:?}").contains("hunter2"));
    }

    #[test]
    fn sqlite_urls_read_as_optuna_reads_them() {
        let path = |u: &str| match StorageUrl::parse(u).unwrap() {
            StorageUrl::Sqlite(p) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            path("sqlite:///modelsmith.db"),
            PathBuf::from("modelsmith.db")
        );
        assert_eq!(path("sqlite:////tmp/x.db"), PathBuf::from("/tmp/x.db"));
        assert_eq!(path("sqlite:studies.db"), PathBuf::from("studies.db"));
        assert_eq!(path("sqlite:/abs/s.db"), PathBuf::from("/abs/s.db"));
        assert_eq!(path("sqlite://rel.db"), PathBuf::from("rel.db"));
        assert_eq!(path("runs/s.db"), PathBuf::from("runs/s.db"));
        assert_eq!(StorageUrl::parse("memory:").unwrap(), StorageUrl::Memory);
        for bad in ["sqlite:", "sqlite:///", "mysql://x/y", "studies"] {
            assert!(StorageUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
