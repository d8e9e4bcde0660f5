//! The dashboard's pages, as HTML. maud escapes every interpolation, so
//! what users typed (names, corrections, feedback) and what guests said
//! about themselves show as text, never as markup.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::{chart, Deployed, Session, PAGE};
use crate::registry::CommandMap;
use crate::services::store::{Deployment, JobRecord, StoreError, Table};
use crate::telemetry::recent::Failure;

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { background: #2e3436; color: #eee; padding: .5em 1.2em; display: flex; gap: 1.2em; align-items: center; flex-wrap: wrap; }
header a { color: #eee; text-decoration: none; } header a:hover { text-decoration: underline; }
header strong { margin-right: 1em; } header form { margin-left: auto; }
main { padding: 1em 1.2em; }
table { border-collapse: collapse; background: #fff; width: 100%; }
th, td { border-bottom: 1px solid #e4e4e4; padding: .35em .6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; font-weight: 600; white-space: nowrap; }
code, .mono { font-family: ui-monospace, monospace; font-size: 12.5px; }
td.mono, td.nowrap { white-space: nowrap; }
#commands td:first-child { max-width: 18em; }
.missing { color: #a40000; } .muted { color: #777; } .ok { color: #4e9a06; }
.cause { display: inline-block; background: #fce9e9; color: #a40000; border-radius: 3px; padding: 0 .35em; margin: 1px; }
.notice { background: #fff3cd; border: 1px solid #e0c36b; padding: .5em .8em; margin: .5em 0 1em; }
.error { background: #fce9e9; border: 1px solid #e4a0a0; padding: .5em .8em; margin: .5em 0 1em; }
form.inline { display: inline; }
button { cursor: pointer; }
.legend span { margin-right: 1em; }
pre { background: #fff; border: 1px solid #e4e4e4; padding: .6em; white-space: pre-wrap; }
"#;

fn layout(session: Option<&Session>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · sandbot" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "sandbot" }
                    @if let Some(session) = session {
                        a href="/" { "Commands" }
                        a href="/failures" { "Failures" }
                        a href="/jobs" { "Training" }
                        a href="/corrections" { "Corrections" }
                        a href="/feedback" { "Feedback" }
                        a href="/deploy" { "Deploy" }
                        form.inline method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The login form; `next` is where to go after it.
pub fn login(next: &str, error: Option<&str>) -> Markup {
    layout(
        None,
        "Log in",
        html! {
            @if let Some(error) = error { p.error { (error) } }
            p { "The operator token is " code { "[dashboard] token" } " in the config, or "
                code { "SANDBOT_DASHBOARD_TOKEN" } "; without either, the bot printed one when it started." }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label { "Token " input type="password" name="token" id="token" autofocus required; }
                " "
                button type="submit" id="login" { "Log in" }
            }
        },
    )
}

/// Every loaded command: its version, grants, needs and how it fares.
pub fn commands(session: &Session, commands: &CommandMap, deployments: Result<Vec<Deployment>, StoreError>) -> Markup {
    let (deployed, store_error) = match deployments {
        Ok(list) => (list.into_iter().map(|d| (d.name.clone(), d)).collect::<BTreeMap<_, _>>(), None),
        Err(e) => (BTreeMap::new(), Some(e.to_string())),
    };
    layout(
        Some(session),
        "Commands",
        html! {
            @if let Some(error) = store_error { p.error { "The store did not answer (deployments unknown): " (error) } }
            p.legend.muted {
                span { "Chart: the last hour, a point per minute: " }
                span style="color:#3465a4" { "■ p50" }
                span style="color:#ce5c00" { "■ p99" }
                span style="color:#c66" { "■ a minute with failures" }
            }
            table #commands {
                thead { tr {
                    th { "Command" } th { "Version" } th { "Loaded" } th { "Grants" } th { "Needs not granted" }
                    th { "Invocations" } th { "Failures" } th { "Last hour" } th { "p50 / p99 (hour)" }
                } }
                tbody {
                    @for (name, command) in commands.iter() {
                        @let summary = command.metrics.window.summary();
                        @let missing = command.config.grants.missing(&command.info.needs);
                        @let grants = command.config.grants.names();
                        tr id=(format!("command-{name}")) {
                            td {
                                strong { (name) }
                                @if command.config.operators_only { br; span.muted { "operators only" } }
                                br; span.muted { (command.info.summary) }
                            }
                            td {
                                code.version title=(command.sha256) { (short(&command.sha256)) }
                                br;
                                @if let Some(d) = deployed.get(name.as_str()) {
                                    span.muted { "deployment #" (d.id) " by " (d.deployed_by) }
                                    br;
                                    form.inline method="post" action="/rollback" {
                                        input type="hidden" name="csrf" value=(session.csrf);
                                        input type="hidden" name="name" value=(name);
                                        button type="submit" id=(format!("rollback-{name}")) { "Roll back" }
                                    }
                                } @else {
                                    span.muted.mono title=(command.config.wasm.display().to_string()) {
                                        (command.config.wasm.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default())
                                    }
                                }
                            }
                            td.nowrap {
                                (utc(command.loaded_at)) br;
                                span.muted { (if command.cached { "from the compile cache" } else { "compiled" }) }
                            }
                            td.mono { @for g in &grants { (g) br; } @if grants.is_empty() { span.muted { "nothing" } } }
                            td.mono.missing { @for m in &missing { (m) br; } }
                            td.invocations { (summary.invocations) }
                            td.failures {
                                @for (cause, n) in &summary.causes { span.cause { (cause) " " (n) } " " }
                            }
                            td { (summary.hour_count) }
                            td {
                                (duration(summary.hour_p50)) " / " (duration(summary.hour_p99)) br;
                                (PreEscaped(chart::latency(&summary.minutes)))
                            }
                        }
                    }
                }
            }
            @if commands.is_empty() { p.notice { "No command is loaded." } }
        },
    )
}

/// The newest failures this process saw.
pub fn failures(session: &Session, failures: &[Failure], skip: usize, total: usize) -> Markup {
    layout(
        Some(session),
        "Recent failures",
        html! {
            p.muted { "This process's last " (total) " failures (at most " (crate::telemetry::recent::FAILURES_KEPT)
                " are kept), newest first; since it started." }
            table #failures {
                thead { tr { th { "Time (UTC)" } th { "Command" } th { "User" } th { "Cause" } th { "Detail" } } }
                tbody {
                    @for f in failures {
                        tr {
                            td.mono { (utc(f.at)) }
                            td { (f.command) }
                            td.mono { (f.user) }
                            td { span.cause { (f.cause) } }
                            td { (f.detail) }
                        }
                    }
                }
            }
            @if failures.is_empty() { p.muted { "None." } }
            p {
                @if skip > 0 { a href=(format!("/failures?skip={}", skip.saturating_sub(PAGE as usize))) { "← newer" } " " }
                @if skip + failures.len() < total { a href=(format!("/failures?skip={}", skip + failures.len())) { "older →" } }
            }
        },
    )
}

/// The newest training jobs.
pub fn jobs(session: &Session, jobs: Result<Vec<JobRecord>, StoreError>) -> Markup {
    layout(
        Some(session),
        "Training jobs",
        html! {
            @match jobs {
                Err(e) => p.error { "The store did not answer: " (e.to_string()) },
                Ok(jobs) => {
                    table #jobs {
                        thead { tr { th { "Job" } th { "Provider" } th { "State" } th { "Examples" } th { "Progress" } } }
                        tbody {
                            @for job in &jobs {
                                tr {
                                    td.mono { (job.id) }
                                    td { (job.provider) }
                                    td class=(if job.status == "failed" { "missing" } else if job.is_finished() { "ok" } else { "" }) { (job.status) }
                                    td { (job.examples) }
                                    td { (job.detail.clone().unwrap_or_default()) }
                                }
                            }
                        }
                    }
                    @if jobs.is_empty() { p.muted { "No training job yet: " code { "!train" } " starts one." } }
                }
            }
        },
    )
}

/// A page of corrections or feedback, newest first.
pub fn rows(
    session: &Session,
    table: Table,
    before: Option<i64>,
    rows: Result<Vec<serde_json::Value>, StoreError>,
) -> Markup {
    let (title, file, columns): (&str, &str, &[&str]) = match table {
        Table::Corrections => ("Corrections", "corrections", &["question", "original", "correction", "scope"]),
        Table::Feedback => ("Feedback", "feedback", &["text"]),
    };
    let text = |value: &serde_json::Value| match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    layout(
        Some(session),
        title,
        html! {
            p {
                "Download all: "
                a href=(format!("/download/{file}.jsonl")) { "JSON lines" } " · "
                a href=(format!("/download/{file}.csv")) { "CSV" }
            }
            @match rows {
                Err(e) => p.error { "The store did not answer: " (e.to_string()) },
                Ok(rows) => {
                    table id=(file) {
                        thead { tr {
                            th { "#" } th { "Time (UTC)" } th { "Author" } th { "Where" }
                            @for c in columns { th { (c) } }
                        } }
                        tbody {
                            @for row in &rows {
                                tr {
                                    td { (text(&row["id"])) }
                                    td.mono { (text(&row["created_at"])) }
                                    td { (text(&row["author_name"])) br; span.muted.mono { (text(&row["author_id"])) } }
                                    td.mono { (text(&row["guild"])) " #" (text(&row["channel"])) }
                                    @for c in columns { td { (text(&row[*c])) } }
                                }
                            }
                        }
                    }
                    @if rows.is_empty() { p.muted { "Nothing here." } }
                    p {
                        @if before.is_some() { a href=(format!("/{file}")) { "← newest" } " " }
                        @if rows.len() == PAGE as usize {
                            @if let Some(last) = rows.last().and_then(|r| r["id"].as_i64()) {
                                a href=(format!("/{file}?before={last}")) { "older →" }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The upload form.
pub fn deploy_form(session: &Session, names: &[String], error: Option<&str>) -> Markup {
    layout(
        Some(session),
        "Deploy a command",
        html! {
            @if let Some(error) = error { pre.error #deploy-error { (error) } }
            p { "The component is checked as " code { "sandbot check" } " does, stored as a deployment, and loaded \
                 like a file dropped in the guests folder: if it does not load, the running version keeps serving. \
                 Its grants are the config's " code { "[commands.<name>]" } " unless you give them here." }
            form method="post" action="/deploy" enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(session.csrf);
                p { label { "Command " input type="text" name="name" id="name" list="names" required pattern="[a-z0-9_-]+"; } }
                datalist #names { @for n in names { option value=(n) {} } }
                p { label { "Component " input type="file" name="wasm" id="wasm" accept=".wasm" required; } }
                p { label { "Grants (optional, comma-separated) " input type="text" name="grants" id="grants" size="60"; } }
                button type="submit" id="deploy" { "Check and deploy" }
            }
        },
    )
}

/// What a deploy did.
pub fn deployed(session: &Session, d: &Deployed) -> Markup {
    layout(
        Some(session),
        "Deployed",
        html! {
            p #deployed { "Deployed " strong { (d.name) } " as #" (d.deployment.id) ", sha256 "
                code { (short(&d.deployment.sha256)) } "." }
            @match &d.reload {
                Ok(lines) => {
                    @if lines.iter().any(|l| l.starts_with("refused")) {
                        p.error { "The bot refused it; the version before keeps serving." }
                    }
                    ul #reload { @for line in lines { li { (line) } } }
                }
                Err(why) => p.error { "Reloading failed: " (why) " — it loads at the next reload." },
            }
            table {
                tr { th { "Needs" } td.mono { (d.report.needs.join(", ")) } }
                tr { th { "Grants" } td.mono { (d.grants.join(", ")) } }
                tr { th { "Needs not granted" } td.mono.missing #missing {
                    @if d.missing.is_empty() { span.ok { "none" } } @else { (d.missing.join(", ")) " (those calls will be denied)" }
                } }
            }
            h2 { "What " code { "sandbot check" } " says" }
            pre { (d.report.to_string()) }
            p { a href="/" { "Back to the commands" } }
        },
    )
}

/// What a rollback did.
#[allow(clippy::type_complexity)]
pub fn rolled_back(
    session: &Session,
    name: &str,
    outcome: Result<(Option<Deployment>, Result<Vec<String>, String>), String>,
) -> Markup {
    layout(
        Some(session),
        "Rolled back",
        html! {
            @match outcome {
                Err(why) => p.error #rolled-back { "Cannot roll " (name) " back: " (why) },
                Ok((now, reload)) => {
                    p #rolled-back {
                        "Rolled " strong { (name) } " back; "
                        @match now {
                            Some(d) => { "deployment #" (d.id) " (sha256 " code { (short(&d.sha256)) } ") serves it now." }
                            None => { "the config's entry serves it now, if it has one." }
                        }
                    }
                    @match reload {
                        Ok(lines) => ul { @for line in lines { li { (line) } } },
                        Err(why) => p.error { "Reloading failed: " (why) },
                    }
                }
            }
            p { a href="/" { "Back to the commands" } }
        },
    )
}

fn short(sha256: &str) -> &str {
    &sha256[..12.min(sha256.len())]
}

/// `2026-12-01 21:54:23`, in UTC.
fn utc(at: SystemTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from(at).format(&format).unwrap_or_default()
}

fn duration(d: Option<Duration>) -> String {
    match d {
        None => "—".into(),
        Some(d) if d < Duration::from_millis(1) => format!("{} µs", d.as_micros()),
        Some(d) if d < Duration::from_secs(1) => format!("{:.1} ms", d.as_secs_f64() * 1000.0),
        Some(d) => format!("{:.2} s", d.as_secs_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_users_typed_is_text_not_markup() {
        let session = Session { csrf: "c".into() };
        let rows = vec![serde_json::json!({
            "id": 1, "created_at": "2026-12-01T00:00:00.000Z", "author_id": "7",
            "author_name": "<script>alert(1)</script>", "channel": "general", "guild": null,
            "text": "<img src=x onerror=alert(1)>",
        })];
        let page = rows_page(&session, rows);
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("<img src=x"), "{page}");
        assert!(page.contains("&lt;script&gt;"));
    }

    fn rows_page(session: &Session, rows: Vec<serde_json::Value>) -> String {
        super::rows(session, Table::Feedback, None, Ok(rows)).into_string()
    }

    #[test]
    fn durations_read_in_their_unit() {
        assert_eq!(duration(None), "—");
        assert_eq!(duration(Some(Duration::from_micros(250))), "250 µs");
        assert_eq!(duration(Some(Duration::from_micros(2500))), "2.5 ms");
        assert_eq!(duration(Some(Duration::from_millis(2500))), "2.50 s");
        assert_eq!(utc(SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 + 61)), "1970-01-02 00:01:01");
    }
}
