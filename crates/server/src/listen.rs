//! The accept loop: serves a [`Router`] on a listener with the limits `axum::serve` lacks, so
//! slow or idle clients cannot hold the server.
//!
//! - **Header timeout**: a connection must send a request's headers within
//!   [`ConnectionLimits::header_timeout`], and an idle keep-alive connection its next request's
//!   (hyper's header timer also runs while a connection waits for a request): slowloris
//!   clients are closed.
//! - **Request timeout**: reading the body and answering take at most
//!   [`ConnectionLimits::request_timeout`] (a 408 with a JSON error after that).
//! - **Connection cap**: at most [`ConnectionLimits::max_connections`] connections at once (by
//!   default fewer than the process may open files). At the cap a new connection evicts the
//!   connection that has been idle longest (no request in progress: an idle keep-alive client
//!   or one still trickling its headers), so a probe or a real client always gets in; only when
//!   every connection is inside a request is the new one answered 503 and closed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tower::ServiceExt;

use crate::error::ApiError;

/// Limits on connections; see the module doc.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: default_max_connections(),
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// Files this process may keep open but for a reserve (models, storage, logs), at most 4096: a
/// connection is a file, and a server out of files cannot accept even its liveness probe.
pub fn default_max_connections() -> usize {
    const RESERVE: usize = 64;
    let open_files = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .and_then(|soft| soft.parse::<usize>().ok())
        .unwrap_or(1024);
    open_files.saturating_sub(RESERVE).clamp(16, 4096)
}

/// One live connection, as the cap sees it.
struct Entry {
    /// Requests in progress on it (HTTP/1.1 answers one at a time, so 0 or 1).
    busy: usize,
    /// When it was accepted or last finished a request.
    idle_since: Instant,
    /// Set once it was chosen for eviction, so it is not chosen twice.
    evicting: bool,
    evict: Arc<Notify>,
}

#[derive(Default)]
struct Registry {
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, Entry>>,
}

impl Registry {
    /// Registers a new connection, evicting the longest-idle one at the cap. `None`: every
    /// connection is inside a request, so the new one must be refused.
    fn admit(&self, max: usize) -> Option<(u64, Arc<Notify>)> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let staying = live.values().filter(|e| !e.evicting).count();
        if staying >= max {
            let victim = live
                .values_mut()
                .filter(|e| e.busy == 0 && !e.evicting)
                .min_by_key(|e| e.idle_since)?;
            victim.evicting = true;
            victim.evict.notify_one();
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let evict = Arc::new(Notify::new());
        live.insert(
            id,
            Entry {
                busy: 0,
                idle_since: Instant::now(),
                evicting: false,
                evict: evict.clone(),
            },
        );
        Some((id, evict))
    }

    fn set_busy(&self, id: u64, busy: bool) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = live.get_mut(&id) {
            if busy {
                e.busy += 1;
            } else {
                e.busy = e.busy.saturating_sub(1);
                e.idle_since = Instant::now();
            }
        }
    }

    fn remove(&self, id: u64) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    fn count(&self) -> usize {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Marks a connection busy for as long as it lives (dropped when the answer is ready, or when
/// the request is abandoned).
struct Busy {
    registry: Arc<Registry>,
    id: u64,
}

impl Busy {
    fn new(registry: Arc<Registry>, id: u64) -> Busy {
        registry.set_busy(id, true);
        Busy { registry, id }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.registry.set_busy(self.id, false);
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting, lets every
/// connection finish the request it is in, and returns when all are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let registry = Arc::new(Registry::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let all_closed = Arc::new(Notify::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of files or a connection reset before accept: wait a little rather
                    // than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Some((id, evict)) = registry.admit(limits.max_connections) else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let connection = Connection {
            registry: registry.clone(),
            id,
            router: router.clone(),
            limits,
        };
        let (stop_rx, all_closed) = (stop_rx.clone(), all_closed.clone());
        tokio::spawn(async move {
            connection.run(stream, evict, stop_rx).await;
            if connection.registry.count() == 0 {
                all_closed.notify_waiters();
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while registry.count() > 0 {
        // A connection may close between the count and the wait: poll now and then too.
        let _ = tokio::time::timeout(Duration::from_millis(100), all_closed.notified()).await;
    }
    Ok(())
}

struct Connection {
    registry: Arc<Registry>,
    id: u64,
    router: Router,
    limits: ConnectionLimits,
}

impl Connection {
    async fn run(
        &self,
        stream: tokio::net::TcpStream,
        evict: Arc<Notify>,
        mut stop: watch::Receiver<bool>,
    ) {
        let (registry, id, router, timeout) = (
            self.registry.clone(),
            self.id,
            self.router.clone(),
            self.limits.request_timeout,
        );
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let busy = Busy::new(registry.clone(), id);
            let router = router.clone();
            async move {
                let answer = tokio::time::timeout(timeout, router.oneshot(request.map(Body::new)));
                let response = match answer.await {
                    Ok(response) => response.unwrap_or_else(|e: Infallible| match e {}),
                    Err(_) => ApiError::new(
                        axum::http::StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "the request took longer than {} s to arrive and be answered",
                            timeout.as_secs()
                        ),
                    )
                    .into_response(),
                };
                drop(busy);
                Ok::<Response, Infallible>(response)
            }
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout)
            .keep_alive(true);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        let mut stopping = false;
        loop {
            tokio::select! {
                _ = conn.as_mut() => break,
                // Evicted: it is in no request, so closing it loses nothing.
                () = evict.notified() => break,
                changed = stop.changed(), if !stopping => {
                    stopping = true;
                    if changed.is_ok() {
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
        self.registry.remove(self.id);
    }
}

/// Answers a connection over the cap with a 503 and closes it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    let body = r#"{"error":"too many connections, every one inside a request; retry shortly"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_longest_idle_connection_is_evicted_and_busy_ones_never() {
        let registry = Registry::default();
        let (a, evict_a) = registry.admit(2).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let (b, _) = registry.admit(2).unwrap();
        // a is older and idle: the third connection evicts it.
        let (c, _) = registry.admit(2).unwrap();
        assert!(registry.live.lock().unwrap()[&a].evicting);
        let notified = evict_a.notified();
        tokio::pin!(notified);
        assert!(notified.as_mut().enable(), "a's eviction was signalled");
        registry.remove(a);
        // b and c both in a request: a fourth is refused.
        registry.set_busy(b, true);
        registry.set_busy(c, true);
        assert!(registry.admit(2).is_none());
        // Once c's answer is sent, c is idle and can make room.
        registry.set_busy(c, false);
        let (_, _) = registry.admit(2).unwrap();
        assert!(registry.live.lock().unwrap()[&c].evicting);
        assert!(!registry.live.lock().unwrap()[&b].evicting);
    }

    #[test]
    fn the_default_cap_stays_below_the_open_file_limit() {
        let cap = default_max_connections();
        assert!((16..=4096).contains(&cap), "{cap}");
    }
}
