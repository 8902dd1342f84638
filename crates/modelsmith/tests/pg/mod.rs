//! The PostgreSQL test server, for tests that need one: `scripts/test` (and
//! `scripts/pg-test-server`) start a throw-away server and export its URL as
//! `MODELSMITH_TEST_POSTGRES`. Without it a test fails under `CI=true` and otherwise says loudly
//! that it was skipped.
#![allow(dead_code)]

/// The server's URL, or `None` after a loud "skipped" line (outside CI).
pub fn server_url(test: &str) -> Option<String> {
    match std::env::var("MODELSMITH_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "{test}: MODELSMITH_TEST_POSTGRES is not set under CI=true \
                     (scripts/test starts a server and sets it)"
                );
            }
            eprintln!(
                "\n*** SKIPPED {test}: set MODELSMITH_TEST_POSTGRES (scripts/test does) ***\n"
            );
            None
        }
    }
}

/// A plain client on the server (for setting up schemas and looking behind the storage).
pub fn client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("the test server accepts connections")
}

/// An empty schema named after `test` (dropped and made again, so reruns start clean); returns
/// a URL whose connections use it, so tests run in parallel without seeing each other.
pub fn fresh_schema(test: &str) -> Option<String> {
    let url = server_url(test)?;
    let schema: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let schema = format!("t_{schema}");
    client(&url)
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};"
        ))
        .unwrap();
    Some(in_schema(&url, &schema))
}

/// `url` with its connections' `search_path` set to `schema`.
pub fn in_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}
