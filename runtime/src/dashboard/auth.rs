//! Who may see the dashboard: whoever gives the operator token once gets
//! a session cookie (HttpOnly, SameSite=Strict), and every change they
//! make is a POST carrying their session's CSRF token.
//!
//! Sessions live in memory: a restart logs everyone out, which for an
//! operator's page is a feature.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::{pages, Dashboard};

/// The session cookie's name.
pub const COOKIE: &str = "sandbot_session";
/// How long a session lasts without logging in again.
const SESSION_LIFE: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; the oldest go first (a login loop cannot grow
/// memory without bound).
const SESSIONS_KEPT: usize = 256;

/// A logged-in operator's session, handed to every page.
#[derive(Clone)]
pub struct Session {
    /// Goes into every form; a POST without it is refused.
    pub csrf: String,
}

struct Entry {
    session: Session,
    expires: Instant,
}

#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Entry>>,
}

impl Sessions {
    /// A new session; returns its id (the cookie's value).
    pub fn open(&self) -> String {
        let id = random_hex();
        let mut sessions = self.lock();
        let now = Instant::now();
        sessions.retain(|_, entry| entry.expires > now);
        if sessions.len() >= SESSIONS_KEPT {
            if let Some(oldest) = sessions.iter().min_by_key(|(_, e)| e.expires).map(|(id, _)| id.clone()) {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(id.clone(), Entry { session: Session { csrf: random_hex() }, expires: now + SESSION_LIFE });
        id
    }

    fn find(&self, id: &str) -> Option<Session> {
        let sessions = self.lock();
        sessions.get(id).filter(|entry| entry.expires > Instant::now()).map(|entry| entry.session.clone())
    }

    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.by_id.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// 32 random bytes, as hex.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    // The OS's generator failing is not something a page can work around.
    getrandom::fill(&mut bytes).expect("the operating system's random generator");
    hex::encode(bytes)
}

/// Compares in constant time, so the answer's timing tells nothing of how
/// much of a guess was right, nor (both hashed first) of the length.
pub fn same(given: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    Sha256::digest(given.as_bytes()).ct_eq(&Sha256::digest(expected.as_bytes())).into()
}

/// The session cookie's value, if the request carries one.
pub fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .find_map(|cookie| cookie.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// The `Set-Cookie` that logs in with session `id`.
pub fn login_cookie(id: &str) -> String {
    format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}", SESSION_LIFE.as_secs())
}

/// The `Set-Cookie` that logs out.
pub fn logout_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// In front of every page but the login: no session, no page. A GET gets
/// the login form (401); anything else 403. A POST from another origin is
/// refused whatever it carries.
pub async fn require_session(State(dashboard): State<Arc<Dashboard>>, mut request: Request, next: Next) -> Response {
    let session = session_id(request.headers()).and_then(|id| dashboard.sessions.find(id));
    let Some(session) = session else {
        if request.method() == Method::GET {
            let next = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
            return (StatusCode::UNAUTHORIZED, pages::login(&next, None)).into_response();
        }
        tracing::info!(path = %request.uri().path(), "dashboard: refused a change without a session");
        return (StatusCode::FORBIDDEN, "log in first\n").into_response();
    };
    if request.method() != Method::GET && !same_origin(request.headers()) {
        tracing::warn!(path = %request.uri().path(), "dashboard: refused a change from another origin");
        return (StatusCode::FORBIDDEN, "refused: the request came from another site\n").into_response();
    }
    request.extensions_mut().insert(session);
    next.run(request).await
}

/// A browser's `Origin`, when it sends one, names this host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else { return true };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host)
}

/// Whether a change's form carries its session's CSRF token.
pub fn csrf_ok(session: &Session, given: &str) -> bool {
    let ok = same(given, &session.csrf);
    if !ok {
        tracing::warn!("dashboard: refused a change without its CSRF token");
    }
    ok
}

/// The answer to a change without its CSRF token.
pub fn csrf_refused() -> Response {
    (StatusCode::FORBIDDEN, "refused: the form's CSRF token is missing or wrong; reload the page\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; sandbot_session=abc; b=2".parse().unwrap());
        assert_eq!(session_id(&headers), Some("abc"));
        headers.insert(header::COOKIE, "sandbot_sessionx=abc".parse().unwrap());
        assert_eq!(session_id(&headers), None);
    }

    #[test]
    fn sessions_open_find_and_close() {
        let sessions = Sessions::default();
        let id = sessions.open();
        let session = sessions.find(&id).expect("found");
        assert_eq!(session.csrf.len(), 64);
        assert!(sessions.find("nope").is_none());
        sessions.close(&id);
        assert!(sessions.find(&id).is_none());
        for _ in 0..SESSIONS_KEPT + 10 {
            sessions.open();
        }
        assert_eq!(sessions.lock().len(), SESSIONS_KEPT);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("0123456789abcdef", "0123456789abcdef"));
        assert!(!same("0123456789abcde", "0123456789abcdef"));
        assert!(!same("", "0123456789abcdef"));
    }

    #[test]
    fn origin_must_be_this_host() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:8091".parse().unwrap());
        assert!(same_origin(&headers), "no Origin: not a cross-site browser request");
        headers.insert(header::ORIGIN, "http://127.0.0.1:8091".parse().unwrap());
        assert!(same_origin(&headers));
        headers.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!same_origin(&headers));
    }
}
