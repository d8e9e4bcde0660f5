//! The HTTP interactions endpoint: with an "Interactions Endpoint URL" set
//! in the developer portal, Discord POSTs every slash command here instead
//! of sending it through the gateway, and takes the HTTP response as the
//! command's first answer.
//!
//! Every request is signed with the application's Ed25519 key over
//! timestamp + body; anything unsigned, wrongly signed, stale or replayed
//! is refused with 401 before it is read. A verified command runs through
//! [`answer_slash`], exactly like one from the gateway.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use ed25519_dalek::{Signature, VerifyingKey};
use serenity::all::{CreateInteractionResponse, Interaction};
use tokio::sync::oneshot;

use super::conversation::Shared;
use super::events::answer_slash;
use super::interaction::Acknowledgement;
use super::shards::ShardClients;
use crate::dispatch::Dispatcher;

/// How far a request's timestamp may be from this machine's clock, either
/// way. Older requests are refused, so a captured one cannot be replayed
/// later; within the window, [`Guard::first_time`] refuses repeats.
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);
/// Interaction ids remembered before the old ones are swept.
const SEEN_SWEEP_AT: usize = 4096;

/// What the endpoint answers with.
pub struct Endpoint {
    pub dispatcher: Arc<Dispatcher>,
    pub shared: Arc<Shared>,
    /// Each shard's REST client and cache (role names, voice states) when
    /// this process also runs the gateway; else one client, no cache.
    pub clients: ShardClients,
    pub guard: Guard,
}

/// Who may reach the dispatcher: requests Discord signed, once each.
pub struct Guard {
    public_key: VerifyingKey,
    /// Interaction ids answered within the last [`MAX_SKEW`] × 2.
    seen: Mutex<HashMap<u64, Instant>>,
}

impl Guard {
    pub fn new(public_key: VerifyingKey) -> Guard {
        Guard { public_key, seen: Mutex::new(HashMap::new()) }
    }

    /// Checks the signature over timestamp + body, then the timestamp.
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let signature = header("x-signature-ed25519").ok_or("no X-Signature-Ed25519")?;
        let timestamp = header("x-signature-timestamp").ok_or("no X-Signature-Timestamp")?;
        let signature: [u8; 64] =
            hex::decode(signature).ok().and_then(|b| b.try_into().ok()).ok_or("a malformed signature")?;
        let signed = [timestamp.as_bytes(), body].concat();
        self.public_key.verify_strict(&signed, &Signature::from_bytes(&signature)).map_err(|_| "a wrong signature")?;
        let at: u64 = timestamp.parse().map_err(|_| "a malformed timestamp")?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if now.abs_diff(at) > MAX_SKEW.as_secs() {
            return Err("a timestamp more than 5 minutes off");
        }
        Ok(())
    }

    /// False for an interaction this endpoint already took: a signed
    /// request sent again would run the command again.
    fn first_time(&self, id: u64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if seen.len() >= SEEN_SWEEP_AT {
            seen.retain(|_, at| now.duration_since(*at) < MAX_SKEW * 2);
        }
        seen.insert(id, now).is_none()
    }
}

/// The endpoint's routes: `POST /` and `POST /interactions` for Discord,
/// `GET /health` for a load balancer.
pub fn router(endpoint: Arc<Endpoint>) -> Router {
    Router::new()
        .route("/", post(receive))
        .route("/interactions", post(receive))
        .route("/health", get(|| async { "ok" }))
        .with_state(endpoint)
}

/// Serves until the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, endpoint: Arc<Endpoint>) -> std::io::Result<()> {
    axum::serve(listener, router(endpoint)).await
}

async fn receive(State(endpoint): State<Arc<Endpoint>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(why) = endpoint.guard.verify(&headers, &body) {
        tracing::warn!(reason = why, "refused an interaction request");
        return (StatusCode::UNAUTHORIZED, "invalid request signature").into_response();
    }
    let interaction: Interaction = match serde_json::from_slice(&body) {
        Ok(interaction) => interaction,
        Err(e) => {
            tracing::warn!(error = %e, "a signed interaction this bot cannot read");
            return (StatusCode::BAD_REQUEST, "unreadable interaction").into_response();
        }
    };
    let command = match interaction {
        Interaction::Ping(_) => return respond(&CreateInteractionResponse::Pong, None),
        Interaction::Command(command) => command,
        other => {
            tracing::debug!(kind = ?other.kind(), "ignored: an interaction that is not a slash command");
            return (StatusCode::BAD_REQUEST, "this bot answers slash commands only").into_response();
        }
    };
    if !endpoint.guard.first_time(command.id.get()) {
        tracing::warn!(interaction = %command.id, "refused an interaction sent twice");
        return (StatusCode::UNAUTHORIZED, "interaction already answered").into_response();
    }
    let Some((_, http)) = endpoint.clients.of(command.guild_id) else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    // Follow-ups and edits go to the application's webhooks.
    http.set_application_id(command.application_id);
    let (acknowledgement, first_response) = Acknowledgement::body();
    let answering = endpoint.clone();
    tokio::spawn(async move {
        let Endpoint { dispatcher, shared, clients, .. } = answering.as_ref();
        if let Some((cache, http)) = clients.of(command.guild_id) {
            answer_slash(dispatcher, shared, http.clone(), cache, command, acknowledgement).await;
        }
    });
    match first_response.await {
        Ok((response, written)) => respond(&response, Some(written)),
        Err(_) => {
            tracing::warn!("a slash command ended without an answer");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `response` as JSON; `written` is told once the body is out (hyper polls
/// the body to its end after the last byte), so an edit of `@original`
/// cannot reach Discord before the answer it edits.
fn respond(response: &CreateInteractionResponse, written: Option<oneshot::Sender<()>>) -> Response {
    let json = match serde_json::to_vec(response) {
        Ok(json) => Bytes::from(json),
        Err(e) => {
            tracing::error!(error = %e, "could not write an interaction response");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let chunks = futures_util::stream::unfold((Some(json), written), |(json, written)| async move {
        match json {
            Some(json) => Some((Ok::<_, Infallible>(json), (None, written))),
            None => {
                if let Some(written) = written {
                    let _ = written.send(());
                }
                None
            }
        }
    });
    ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(chunks)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn endpoint_key() -> (SigningKey, VerifyingKey) {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = key.verifying_key();
        (key, public)
    }

    fn signed(key: &SigningKey, timestamp: &str, body: &[u8]) -> HeaderMap {
        let signature = key.sign(&[timestamp.as_bytes(), body].concat());
        let mut headers = HeaderMap::new();
        headers.insert("x-signature-ed25519", hex::encode(signature.to_bytes()).parse().unwrap());
        headers.insert("x-signature-timestamp", timestamp.parse().unwrap());
        headers
    }

    fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn only_fresh_requests_signed_by_the_application_pass() {
        let (key, public) = endpoint_key();
        let checks = Guard::new(public);
        let body = br#"{"type":1}"#;
        let fresh = now().to_string();
        assert_eq!(checks.verify(&signed(&key, &fresh, body), body), Ok(()));
        // Another body under the same signature.
        assert_eq!(checks.verify(&signed(&key, &fresh, body), br#"{"type":2}"#), Err("a wrong signature"));
        // Another key.
        let stranger = SigningKey::from_bytes(&[8; 32]);
        assert_eq!(checks.verify(&signed(&stranger, &fresh, body), body), Err("a wrong signature"));
        // Signed, but old, or from the future.
        for off in [(now() - 301).to_string(), (now() + 301).to_string()] {
            assert_eq!(checks.verify(&signed(&key, &off, body), body), Err("a timestamp more than 5 minutes off"));
        }
        assert_eq!(checks.verify(&HeaderMap::new(), body), Err("no X-Signature-Ed25519"));
        let mut malformed = signed(&key, &fresh, body);
        malformed.insert("x-signature-ed25519", "zz".parse().unwrap());
        assert_eq!(checks.verify(&malformed, body), Err("a malformed signature"));
    }

    #[test]
    fn an_interaction_is_taken_once() {
        let guard = Guard::new(endpoint_key().1);
        assert!(guard.first_time(1));
        assert!(guard.first_time(2));
        assert!(!guard.first_time(1));
    }
}
