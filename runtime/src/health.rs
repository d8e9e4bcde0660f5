//! `/healthz` and `/readyz`, for orchestrators (systemd watchdogs,
//! Kubernetes probes, load balancers), and `/metrics` for Prometheus: off
//! unless `[health] listen` is set.
//!
//! `/healthz` answers while the process runs. `/readyz` answers 200 only
//! when this process can serve: every shard it runs is connected to the
//! gateway (when it runs any), the store answers, and commands are loaded;
//! otherwise 503 with one line per reason.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::http::StatusCode;
use axum::routing::get;

use crate::dispatch::Dispatcher;

/// How long `/readyz` waits for the store before it counts as unreachable.
const STORE_WAIT: Duration = Duration::from_secs(2);

/// The gateway's part of readiness, kept by the Discord adapter.
#[derive(Default)]
pub struct Health {
    gateway: Mutex<Option<Shards>>,
}

struct Shards {
    expected: BTreeSet<u32>,
    connected: BTreeSet<u32>,
}

impl Health {
    /// This process will run shards, not yet known which: not ready.
    pub fn expect_gateway(&self) {
        *self.lock() = Some(Shards { expected: BTreeSet::from([u32::MAX]), connected: BTreeSet::new() });
    }

    /// This process runs these shards: not ready until each connects.
    pub fn expect_shards(&self, shards: impl IntoIterator<Item = u32>) {
        *self.lock() = Some(Shards { expected: shards.into_iter().collect(), connected: BTreeSet::new() });
    }

    /// A shard's gateway connection came up (`true`) or went down.
    pub fn shard_connected(&self, shard: u32, up: bool) {
        if let Some(shards) = self.lock().as_mut() {
            if up {
                shards.connected.insert(shard);
            } else {
                shards.connected.remove(&shard);
            }
        }
    }

    /// Shards expected and not connected.
    fn shards_down(&self) -> Vec<u32> {
        self.lock().as_ref().map_or_else(Vec::new, |s| s.expected.difference(&s.connected).copied().collect())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Shards>> {
        self.gateway.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why this process is not ready; empty: ready.
pub async fn not_ready(dispatcher: &Dispatcher) -> Vec<String> {
    let mut reasons = Vec::new();
    let down = dispatcher.health().shards_down();
    if down == [u32::MAX] {
        reasons.push("gateway: not connected yet".into());
    } else if !down.is_empty() {
        reasons.push(format!("gateway: shards {down:?} not connected"));
    }
    match tokio::time::timeout(STORE_WAIT, dispatcher.store().ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => reasons.push(format!("store: {e}")),
        Err(_) => reasons.push("store: no answer within 2 s".into()),
    }
    if dispatcher.registry().snapshot().is_empty() {
        reasons.push("commands: none loaded".into());
    }
    reasons
}

/// Serves `/healthz` and `/readyz` on `listen` until the process ends.
pub async fn serve(listen: SocketAddr, dispatcher: Arc<Dispatcher>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (`health.listen`)"))?;
    tracing::info!(address = %listen, "health checks at /healthz and /readyz, metrics at /metrics");
    let scraped = dispatcher.clone();
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(move || async move { metrics(&scraped) }))
        .route(
            "/readyz",
            get(move || async move {
                let reasons = not_ready(&dispatcher).await;
                if reasons.is_empty() {
                    (StatusCode::OK, "ready\n".to_string())
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, reasons.join("\n") + "\n")
                }
            }),
        );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the health endpoint stopped");
        }
    });
    Ok(())
}

/// `/metrics`: Prometheus's text format.
fn metrics(dispatcher: &Dispatcher) -> impl axum::response::IntoResponse {
    crate::telemetry::pool_in_use(dispatcher.slots_in_use());
    let text = crate::telemetry::render().unwrap_or_default();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_every_expected_shard_is_connected() {
        let health = Health::default();
        assert!(health.shards_down().is_empty(), "no gateway expected: nothing down");
        health.expect_shards(2..4);
        assert_eq!(health.shards_down(), [2, 3]);
        health.shard_connected(2, true);
        health.shard_connected(3, true);
        assert!(health.shards_down().is_empty());
        health.shard_connected(3, false);
        assert_eq!(health.shards_down(), [3]);
    }
}
