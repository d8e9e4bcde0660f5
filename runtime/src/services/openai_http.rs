//! What every call to an OpenAI-compatible server shares (the model and
//! the speech endpoints): the bearer key, a deadline per request, a cap on
//! the answer's size, and retries with backoff for what may pass
//! (connection errors, 429, 5xx).

use std::time::Duration;

/// Attempts per request (the first and the retries).
const ATTEMPTS: u32 = 3;
/// The most of an error answer read: enough for its message.
const MAX_ERROR_BYTES: u64 = 64 << 10;

/// A request that did not succeed: the server's status, if it answered,
/// and what it (or the connection) said.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    pub status: Option<u16>,
    pub message: String,
}

impl RemoteError {
    /// A failure on this side (an answer that did not parse, the store).
    pub fn local(message: impl Into<String>) -> RemoteError {
        RemoteError { status: None, message: message.into() }
    }

    /// The server has no such endpoint: 404, 405 or 501.
    pub fn is_missing_endpoint(&self) -> bool {
        matches!(self.status, Some(404 | 405 | 501))
    }
}

pub struct OpenAiClient {
    http: reqwest::Client,
    base_url: String,
    /// Sent as a bearer token; never shown to guests.
    api_key: Option<String>,
}

impl OpenAiClient {
    pub fn new(base_url: &str, api_key: Option<String>, timeout: Duration) -> Result<OpenAiClient, RemoteError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| RemoteError { status: None, message: format!("HTTP client: {e}") })?;
        Ok(OpenAiClient { http, base_url: base_url.trim_end_matches('/').to_string(), api_key })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `path` under the base URL (`chat/completions`, `audio/speech`, …).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url, path)
    }

    /// The body of the first successful answer, at most `max_bytes`. The
    /// request is rebuilt for each attempt (a multipart form is consumed
    /// by sending it).
    pub async fn send(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
        max_bytes: u64,
    ) -> Result<Vec<u8>, RemoteError> {
        let mut last = RemoteError { status: None, message: String::new() };
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 << (attempt - 1))).await;
            }
            let mut request = build();
            if let Some(key) = &self.api_key {
                request = request.bearer_auth(key);
            }
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        return read_capped(response, max_bytes)
                            .await
                            .map_err(|message| RemoteError { status: Some(status.as_u16()), message });
                    }
                    let body = read_capped(response, MAX_ERROR_BYTES).await.unwrap_or_default();
                    let message = format!("HTTP {status}: {}", error_message(&body));
                    last = RemoteError { status: Some(status.as_u16()), message };
                    if !(status.as_u16() == 429 || status.is_server_error()) {
                        break;
                    }
                }
                Err(e) => last = RemoteError { status: None, message: e.to_string() },
            }
            tracing::warn!(attempt = attempt + 1, url = %self.base_url, error = %last, "OpenAI-compatible request failed");
        }
        Err(last)
    }
}

/// What an error answer says: OpenAI's `{"error": {"message": …}}`, else
/// the start of the text (a proxy's page, say).
fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Answer {
        error: Detail,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        message: String,
    }
    let text = match serde_json::from_slice::<Answer>(body) {
        Ok(answer) => answer.error.message,
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect()
}

/// The body, refused as soon as it passes `max_bytes`.
async fn read_capped(mut response: reqwest::Response, max_bytes: u64) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if (body.len() + chunk.len()) as u64 > max_bytes {
            return Err(format!("the answer is over {max_bytes} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
