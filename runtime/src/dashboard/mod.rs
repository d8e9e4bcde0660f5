//! The operator's dashboard (`[dashboard] listen`): which command versions
//! run and how they fare, recent failures, training jobs, what users
//! corrected and said, and deploys and rollbacks from the browser.
//!
//! Server-rendered HTML (pages.rs) with inline SVG charts (chart.rs): no
//! script, no front-end build. Every page needs the operator's token
//! (auth.rs); what it shows comes from the registry, the store and the
//! process's recent activity (`telemetry::recent`).

mod auth;
mod chart;
pub mod pages;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, Multipart, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;

use crate::config::{DashboardSettings, RawEntry};
use crate::dispatch::Dispatcher;
use crate::services::store::Table;
pub use auth::Session;

/// The largest component an upload may carry.
const UPLOAD_LIMIT: usize = 64 << 20;
/// Rows per page of corrections, feedback and failures.
pub const PAGE: u32 = 50;

/// What the dashboard's handlers share.
pub struct Dashboard {
    pub dispatcher: Arc<Dispatcher>,
    token: String,
    sessions: auth::Sessions,
    /// Login attempts, right or wrong, for everyone together: guessing
    /// even a short token takes lifetimes.
    logins: governor::DefaultDirectRateLimiter,
}

/// A started dashboard: where, and the token made up for it when the
/// config gave none (to print).
pub struct Started {
    pub address: SocketAddr,
    pub made_up_token: Option<String>,
}

/// Listens on `settings.listen` and serves until the process ends.
pub async fn serve(settings: &DashboardSettings, dispatcher: Arc<Dispatcher>) -> anyhow::Result<Started> {
    // Config::load refuses this too; checked again where it matters.
    anyhow::ensure!(
        settings.token.is_some() || settings.listen.ip().is_loopback(),
        "the dashboard listens off loopback ({}) only with a token (`[dashboard] token`)",
        settings.listen
    );
    let (token, made_up_token) = match &settings.token {
        Some(token) => (token.0.clone(), None),
        None => {
            let token = auth::random_hex();
            (token.clone(), Some(token))
        }
    };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {} (`dashboard.listen`)", settings.listen))?;
    let address = listener.local_addr()?;
    // Ten at once, then one every six seconds.
    let logins =
        governor::RateLimiter::direct(governor::Quota::per_minute(std::num::NonZeroU32::MIN.saturating_add(9)));
    let dashboard = Arc::new(Dashboard { dispatcher, token, sessions: auth::Sessions::default(), logins });
    let app = router(dashboard);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the dashboard stopped");
        }
    });
    Ok(Started { address, made_up_token })
}

/// Every route; all but the login behind a session.
pub fn router(dashboard: Arc<Dashboard>) -> Router {
    let pages = Router::new()
        .route("/", get(commands))
        .route("/failures", get(failures))
        .route("/jobs", get(jobs))
        .route("/corrections", get(|s, e, q| rows(s, e, q, Table::Corrections)))
        .route("/feedback", get(|s, e, q| rows(s, e, q, Table::Feedback)))
        .route("/download/{file}", get(download))
        .route("/deploy", get(deploy_form).post(deploy).layer(DefaultBodyLimit::max(UPLOAD_LIMIT)))
        .route("/rollback", post(rollback))
        .route("/logout", post(logout))
        .layer(axum::middleware::from_fn_with_state(dashboard.clone(), auth::require_session));
    Router::new()
        .route("/login", get(login_form).post(login))
        .merge(pages)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(dashboard)
}

/// No script runs, nothing is framed or cached, no Referer leaves the
/// site. (`no-referrer` would make browsers send `Origin: null` on the
/// forms, which the origin check refuses.)
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
struct NextQuery {
    #[serde(default)]
    next: String,
}

async fn login_form(Query(query): Query<NextQuery>) -> Response {
    pages::login(&query.next, None).into_response()
}

async fn login(State(dashboard): State<Arc<Dashboard>>, Form(form): Form<LoginForm>) -> Response {
    if dashboard.logins.check().is_err() {
        tracing::warn!("dashboard: login attempts over their rate; refused");
        return (StatusCode::TOO_MANY_REQUESTS, "too many login attempts; wait a minute\n").into_response();
    }
    if !auth::same(form.token.trim(), &dashboard.token) {
        tracing::warn!("dashboard: a login with a wrong token");
        return (StatusCode::UNAUTHORIZED, pages::login(&form.next, Some("That is not the operator token.")))
            .into_response();
    }
    let id = dashboard.sessions.open();
    tracing::info!("dashboard: an operator logged in");
    ([(header::SET_COOKIE, auth::login_cookie(&id))], Redirect::to(local_path(&form.next))).into_response()
}

/// `next` if it is a path of this site, else `/`: never `//elsewhere`
/// or `/\\elsewhere` (which browsers read as `//`), nor anything with
/// control characters (which a browser drops, or a header cannot carry).
fn local_path(next: &str) -> &str {
    let mut chars = next.chars();
    let local = chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    if local {
        next
    } else {
        "/"
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(dashboard): State<Arc<Dashboard>>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !auth::csrf_ok(&session, &form.csrf) {
        return auth::csrf_refused();
    }
    if let Some(id) = auth::session_id(&headers) {
        dashboard.sessions.close(id);
    }
    ([(header::SET_COOKIE, auth::logout_cookie())], Redirect::to("/login")).into_response()
}

async fn commands(State(dashboard): State<Arc<Dashboard>>, Extension(session): Extension<Session>) -> Response {
    let store = dashboard.dispatcher.store();
    let deployments = store.current_deployments().await;
    pages::commands(&session, &dashboard.dispatcher.registry().snapshot(), deployments).into_response()
}

#[derive(Deserialize)]
struct SkipQuery {
    #[serde(default)]
    skip: usize,
}

async fn failures(Extension(session): Extension<Session>, Query(query): Query<SkipQuery>) -> Response {
    let (failures, total) = crate::telemetry::recent::recent().failures(query.skip, PAGE as usize);
    pages::failures(&session, &failures, query.skip, total).into_response()
}

async fn jobs(State(dashboard): State<Arc<Dashboard>>, Extension(session): Extension<Session>) -> Response {
    pages::jobs(&session, dashboard.dispatcher.store().recent_jobs(100).await).into_response()
}

#[derive(Deserialize)]
struct BeforeQuery {
    before: Option<i64>,
}

async fn rows(
    State(dashboard): State<Arc<Dashboard>>,
    Extension(session): Extension<Session>,
    Query(query): Query<BeforeQuery>,
    table: Table,
) -> Response {
    let rows = dashboard.dispatcher.store().export_page(table, query.before, PAGE).await;
    pages::rows(&session, table, query.before, rows).into_response()
}

/// `corrections.jsonl`, `feedback.csv`, …: the whole table.
async fn download(
    State(dashboard): State<Arc<Dashboard>>,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> Response {
    let (table, format) = match file.split_once('.') {
        Some(("corrections", format)) => (Table::Corrections, format),
        Some(("feedback", format)) => (Table::Feedback, format),
        _ => return (StatusCode::NOT_FOUND, "no such download\n").into_response(),
    };
    let rows = match dashboard.dispatcher.store().export(table).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "dashboard: cannot export");
            return (StatusCode::SERVICE_UNAVAILABLE, format!("cannot read the store: {e}\n")).into_response();
        }
    };
    let (body, content_type) = match format {
        "jsonl" => {
            let mut out = Vec::new();
            if let Err(e) = crate::services::store::write_lines(&rows, &mut out) {
                return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response();
            }
            (out, "application/x-ndjson")
        }
        "csv" => match to_csv(&rows) {
            Ok(out) => (out, "text/csv; charset=utf-8"),
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        },
        _ => return (StatusCode::NOT_FOUND, "downloads are .jsonl or .csv\n").into_response(),
    };
    let disposition = format!("attachment; filename=\"{file}\"");
    ([(header::CONTENT_TYPE, content_type.to_string()), (header::CONTENT_DISPOSITION, disposition)], body)
        .into_response()
}

/// Rows as CSV, one column per field of the first row (every row of a
/// table has the same fields). A cell a spreadsheet would run as a
/// formula starts with `'`.
pub fn to_csv(rows: &[serde_json::Value]) -> Result<Vec<u8>, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let Some(first) = rows.first().and_then(|r| r.as_object()) else { return Ok(Vec::new()) };
    let columns: Vec<&String> = first.keys().collect();
    out.write_record(columns.iter().map(|c| c.as_str()))?;
    for row in rows {
        let cells = columns.iter().map(|column| {
            let cell = match &row[column.as_str()] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                format!("'{cell}")
            } else {
                cell
            }
        });
        out.write_record(cells)?;
    }
    out.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

async fn deploy_form(State(dashboard): State<Arc<Dashboard>>, Extension(session): Extension<Session>) -> Response {
    let names: Vec<String> = dashboard.dispatcher.registry().snapshot().keys().cloned().collect();
    pages::deploy_form(&session, &names, None).into_response()
}

/// What the upload form sent.
#[derive(Default)]
struct Upload {
    csrf: String,
    name: String,
    grants: String,
    wasm: Vec<u8>,
}

async fn read_upload(mut multipart: Multipart) -> Result<Upload, String> {
    let mut upload = Upload::default();
    while let Some(field) = multipart.next_field().await.map_err(|e| format!("the upload was cut short: {e}"))? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "wasm" => upload.wasm = field.bytes().await.map_err(|e| format!("the file: {e}"))?.to_vec(),
            "csrf" | "name" | "grants" => {
                let text = field.text().await.map_err(|e| format!("the field `{name}`: {e}"))?;
                match name.as_str() {
                    "csrf" => upload.csrf = text,
                    "name" => upload.name = text.trim().to_lowercase(),
                    _ => upload.grants = text,
                }
            }
            _ => {}
        }
    }
    Ok(upload)
}

/// An upload: checked as `sandbot check` does, stored as a deployment,
/// and loaded as a file dropped in the guests folder would be.
async fn deploy(
    State(dashboard): State<Arc<Dashboard>>,
    Extension(session): Extension<Session>,
    multipart: Multipart,
) -> Response {
    let upload = match read_upload(multipart).await {
        Ok(upload) => upload,
        Err(why) => return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
    };
    if !auth::csrf_ok(&session, &upload.csrf) {
        return auth::csrf_refused();
    }
    let names: Vec<String> = dashboard.dispatcher.registry().snapshot().keys().cloned().collect();
    match deploy_upload(&dashboard, &upload).await {
        Ok(outcome) => pages::deployed(&session, &outcome).into_response(),
        Err(why) => {
            tracing::info!(command = %upload.name, error = %why, "dashboard: a deploy was refused");
            (StatusCode::UNPROCESSABLE_ENTITY, pages::deploy_form(&session, &names, Some(&format!("{why:#}"))))
                .into_response()
        }
    }
}

/// What a deploy did, for its page.
pub struct Deployed {
    pub name: String,
    pub deployment: crate::services::store::Deployment,
    pub report: crate::check::Report,
    pub grants: Vec<String>,
    pub missing: Vec<String>,
    /// What the reload said, a line per change (`refused hi: …` included).
    pub reload: Result<Vec<String>, String>,
}

async fn deploy_upload(dashboard: &Dashboard, upload: &Upload) -> anyhow::Result<Deployed> {
    anyhow::ensure!(!upload.name.is_empty(), "name the command the component is for");
    anyhow::ensure!(!upload.wasm.is_empty(), "choose a .wasm file");
    let config = dashboard.dispatcher.config();
    let grants: Vec<String> =
        upload.grants.split([',', ' ', '\n']).map(str::trim).filter(|g| !g.is_empty()).map(String::from).collect();
    // The config's entry (limits, `read`, `operators_only`), with the
    // form's grants over its own when it gives some.
    let entry = match crate::deploy::entry_from_config(config, &upload.name) {
        Ok(entry) if grants.is_empty() => entry,
        Ok(entry) => RawEntry { grants, ..entry },
        Err(_) if grants.is_empty() => {
            anyhow::bail!("the config has no [commands.{}] to take its grants from: give them in the form", upload.name)
        }
        Err(_) => RawEntry { grants, ..RawEntry::default() },
    };
    // `check` reads a file: the upload goes to a private temporary one.
    let dir = config.data_dir.join("uploads");
    crate::sandbox::cache::create_private_dir(&dir)?;
    let file = tempfile::Builder::new().suffix(".wasm").tempfile_in(&dir)?;
    let path: PathBuf = file.path().to_path_buf();
    tokio::fs::write(&path, &upload.wasm).await?;
    let store = dashboard.dispatcher.store();
    let (deployment, report) =
        crate::deploy::deploy(config, &**store, &upload.name, &path, &entry, "dashboard").await?;
    drop(file);
    let command = config.deployed_command(&upload.name, &deployment.entry, path)?;
    let missing = command.grants.missing(&report.needs).into_iter().map(String::from).collect();
    tracing::info!(command = %upload.name, deployment = deployment.id, sha256 = %deployment.sha256, "dashboard: deployed");
    // A PostgreSQL store tells every process, this one included; a SQLite
    // one tells nobody. Reloading here covers both (a second reload finds
    // nothing new).
    let reload = dashboard.dispatcher.registry().request_reload().await.map(|report| report.lines());
    Ok(Deployed { name: upload.name.clone(), deployment, report, grants: command.grants.names(), missing, reload })
}

#[derive(Deserialize)]
struct RollbackForm {
    #[serde(default)]
    csrf: String,
    name: String,
}

async fn rollback(
    State(dashboard): State<Arc<Dashboard>>,
    Extension(session): Extension<Session>,
    Form(form): Form<RollbackForm>,
) -> Response {
    if !auth::csrf_ok(&session, &form.csrf) {
        return auth::csrf_refused();
    }
    let store = dashboard.dispatcher.store();
    let outcome = match store.rollback(&form.name).await {
        Ok(now) => {
            tracing::info!(command = %form.name, now = ?now.as_ref().map(|d| d.id), "dashboard: rolled back");
            let reload = dashboard.dispatcher.registry().request_reload().await.map(|report| report.lines());
            Ok((now, reload))
        }
        Err(e) => Err(e.to_string()),
    };
    let status = if outcome.is_ok() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    (status, pages::rolled_back(&session, &form.name, outcome)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_login_only_a_path_of_this_site() {
        for fine in ["/", "/failures?skip=50", "/corrections?before=9"] {
            assert_eq!(local_path(fine), fine);
        }
        for elsewhere in [
            "//evil.example",
            "/\\evil.example",
            "\\evil.example",
            "/\t/evil.example",
            "https://evil.example",
            "",
            "/a\nb",
        ] {
            assert_eq!(local_path(elsewhere), "/", "{elsewhere:?}");
        }
    }

    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_are_quoted_as_text() {
        let rows = [serde_json::json!({"id": 1, "text": "=HYPERLINK(\"x\")", "guild": null})];
        let csv = String::from_utf8(to_csv(&rows).unwrap()).unwrap();
        assert_eq!(csv, "guild,id,text\n,1,\"'=HYPERLINK(\"\"x\"\")\"\n");
    }
}
