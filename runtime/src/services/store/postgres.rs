//! The shared store of a fleet: every record on one PostgreSQL server,
//! for any number of bot processes on any machines.
//!
//! A record is committed before `log_*` returns, as with SQLite. What
//! changes the retrieval index (a correction, a training job) is announced
//! with `NOTIFY` in the same transaction, so every other process hears of
//! it once it is committed and rebuilds that scope ([`Store::changes`]).
//!
//! The schema is versioned (`migrations/`) and applied by sqlx's migrator,
//! which holds an advisory lock while it works: processes starting
//! together apply each migration once.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use serde_json::json;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Executor, Row};
use tokio::sync::broadcast;

use super::sqlite::Dump;
use super::{
    CachedVector, Change, Correction, Deployment, Example, Feedback, JobRecord, Scope, Store, StoreError, Table,
};

/// Where changes to what was taught are announced.
const CHANNEL: &str = "sandbot_taught";
/// How long a query waits for a connection before the user is told to
/// try again: short, since a waiting message holds its sandbox place.
const ACQUIRE_WAIT: Duration = Duration::from_secs(3);
/// Connections per process: queries are short; more would only queue on
/// the server.
const CONNECTIONS: u32 = 8;
/// How long the listening connection may stay quiet before it is asked
/// whether it still lives: a connection cut without a word (a NAT's
/// timeout, a host gone) would otherwise wait forever.
const HEARTBEAT: Duration = Duration::from_secs(30);
/// `created_at` as SQLite writes it: UTC, to the millisecond.
const TIMESTAMP: &str = r#"to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#;

/// The migrations, oldest first, compiled in: version, description, SQL.
/// A released migration is never edited; a change is a new file.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "records", include_str!("migrations/1_records.sql")),
    (2, "deployments", include_str!("migrations/2_deployments.sql")),
    (3, "turns", include_str!("migrations/3_turns.sql")),
];
/// The announcement of a deployment or rollback (scopes never start so).
const COMMANDS: &str = "!commands";
const DEPLOYMENT_COLUMNS: &str = r#"id, name, sha256, entry, deployed_by,
    to_char(deployed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS deployed_at,
    rolled_back_at IS NOT NULL AS rolled_back"#;

#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

pub struct PgStore {
    pool: PgPool,
    /// This process, in the notifications it sends, so it can skip its own.
    origin: String,
    changes: broadcast::Sender<Change>,
    listening: tokio::task::AbortHandle,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listening.abort();
    }
}

/// How many records of each kind `migrate-store` copied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Imported {
    pub corrections: u64,
    pub feedback: u64,
    pub answers: u64,
    pub jobs: u64,
    pub examples: u64,
    pub datasets: u64,
    pub vectors: u64,
}

impl std::fmt::Display for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} corrections, {} feedback, {} answers, {} training jobs with {} examples, {} datasets, {} cached vectors",
            self.corrections, self.feedback, self.answers, self.jobs, self.examples, self.datasets, self.vectors
        )
    }
}

impl PgStore {
    /// `table`'s rows as JSON objects; `tail` filters (`$1`: the id below
    /// which, NULL for all) and orders, followed by `LIMIT $2` (NULL: all).
    async fn export_rows(
        &self,
        table: Table,
        tail: &str,
        before: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        let columns = match table {
            Table::Corrections => format!(
                "SELECT id, {TIMESTAMP} AS created_at, author_id, author_name, channel, guild, message_id,
                        corrected_message_id, original, correction, question, scope FROM corrections"
            ),
            Table::Feedback => format!(
                "SELECT id, {TIMESTAMP} AS created_at, author_id, author_name, channel, guild, message_id, text
                 FROM feedback"
            ),
        };
        let rows = sqlx::query(&format!("{columns} {tail} LIMIT $2"))
            .bind(before)
            .bind(limit.map(i64::from))
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut line = json!({
                "id": row.try_get::<i64, _>("id")?,
                "created_at": row.try_get::<String, _>("created_at")?,
                "author_id": row.try_get::<String, _>("author_id")?,
                "author_name": row.try_get::<String, _>("author_name")?,
                "channel": row.try_get::<String, _>("channel")?,
                "guild": row.try_get::<Option<String>, _>("guild")?,
                "message_id": row.try_get::<String, _>("message_id")?,
            });
            let texts: &[&str] = match table {
                Table::Corrections => &["corrected_message_id", "original", "correction", "scope"],
                Table::Feedback => &["text"],
            };
            for name in texts {
                line[*name] = json!(row.try_get::<String, _>(*name)?);
            }
            if table == Table::Corrections {
                line["question"] = json!(row.try_get::<Option<String>, _>("question")?);
            }
            out.push(line);
        }
        Ok(out)
    }

    /// Connects, brings the schema up to date, and starts hearing the
    /// other processes' changes.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let options =
            PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl(e.to_string()))?.application_name("sandbot");
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(ACQUIRE_WAIT)
            .connect_with(options)
            .await?;
        let mut migrator = Migrator::new(Embedded).await?;
        // A newer process may have migrated further: an older one still
        // runs (migrations only ever add), so a rolling upgrade works.
        migrator.set_ignore_missing(true);
        migrator.run(&pool).await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| StoreError::Task(e.to_string()))?;
        let origin = hex::encode(bytes);
        let (changes, _) = broadcast::channel(1024);
        let listening = tokio::spawn(hear(listener, pool.clone(), origin.clone(), changes.clone())).abort_handle();
        tracing::info!("store: PostgreSQL");
        Ok(PgStore { pool, origin, changes, listening })
    }

    /// [`PgStore::connect`], for `tokio::spawn`.
    pub async fn connect_owned(url: String) -> Result<PgStore, StoreError> {
        PgStore::connect(&url).await
    }

    /// Announces a change of `scope` (`None`: of everything) to the other
    /// processes, when `tx` commits.
    async fn announce(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        scope: Option<&str>,
    ) -> Result<(), StoreError> {
        let payload = format!("{} {}", self.origin, scope.unwrap_or("*"));
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(&mut **tx).await?;
        Ok(())
    }

    /// Copies what a SQLite store holds, in one transaction; a row copied
    /// before (by its store id and row id, a job by its id, a dataset by
    /// its scope and name) is not copied again.
    pub async fn import(&self, dump: &Dump) -> Result<Imported, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut done = Imported::default();
        let from = |id: i64| format!("{}:{id}", dump.store_id);
        for (id, created_at, c) in &dump.corrections {
            done.corrections += sqlx::query(
                "INSERT INTO corrections (created_at, author_id, author_name, channel, guild, message_id,
                     corrected_message_id, question, original, correction, scope, imported_from)
                 VALUES (COALESCE(NULLIF($1, '')::timestamptz, now()), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (imported_from) DO NOTHING",
            )
            .bind(created_at)
            .bind(&c.from.author_id)
            .bind(&c.from.author_name)
            .bind(&c.from.channel)
            .bind(&c.from.guild)
            .bind(&c.from.message_id)
            .bind(&c.corrected_message_id)
            .bind(&c.question)
            .bind(&c.original)
            .bind(&c.correction)
            .bind(c.scope.as_str())
            .bind(from(*id))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        for (id, created_at, f) in &dump.feedback {
            done.feedback += sqlx::query(
                "INSERT INTO feedback (created_at, author_id, author_name, channel, guild, message_id, text, imported_from)
                 VALUES (COALESCE(NULLIF($1, '')::timestamptz, now()), $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (imported_from) DO NOTHING",
            )
            .bind(created_at)
            .bind(&f.from.author_id)
            .bind(&f.from.author_name)
            .bind(&f.from.channel)
            .bind(&f.from.guild)
            .bind(&f.from.message_id)
            .bind(&f.text)
            .bind(from(*id))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        for a in &dump.answers {
            done.answers += sqlx::query(
                "INSERT INTO answers (created_at, channel, message_id, question, answer, imported_from)
                 VALUES (COALESCE(NULLIF($1, '')::timestamptz, now()), $2, $3, $4, $5, $6)
                 ON CONFLICT (imported_from) DO NOTHING",
            )
            .bind(&a.created_at)
            .bind(&a.channel)
            .bind(&a.message_id)
            .bind(&a.question)
            .bind(&a.answer)
            .bind(from(a.id))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        for job in &dump.jobs {
            let r = &job.record;
            let new = sqlx::query(
                "INSERT INTO jobs (id, created_at, updated_at, provider, status, detail, examples, model, scope)
                 VALUES ($1, COALESCE(NULLIF($2, '')::timestamptz, now()), COALESCE(NULLIF($3, '')::timestamptz, now()),
                         $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&r.id)
            .bind(&job.created_at)
            .bind(&job.updated_at)
            .bind(&r.provider)
            .bind(&r.status)
            .bind(&r.detail)
            .bind(i64::from(r.examples))
            .bind(&job.model)
            .bind(job.scope.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if new == 0 {
                continue;
            }
            done.jobs += 1;
            for e in &job.examples {
                insert_example(&mut tx, &r.id, e).await?;
                done.examples += 1;
            }
        }
        for (scope, name, examples) in &dump.datasets {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM datasets WHERE scope = $1 AND name = $2)")
                    .bind(scope.as_str())
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?;
            if exists {
                continue;
            }
            insert_dataset(&mut tx, scope, name, examples).await?;
            done.datasets += 1;
        }
        for (model, v) in &dump.vectors {
            done.vectors += sqlx::query(
                "INSERT INTO vectors (model, text, vector) VALUES ($1, $2, $3) ON CONFLICT (model, text) DO NOTHING",
            )
            .bind(model)
            .bind(&v.text[..])
            .bind(v.stored_vector())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        // Processes already running on this database read everything again.
        self.announce(&mut tx, None).await?;
        tx.commit().await?;
        Ok(done)
    }
}

/// Hears the other processes' changes until the store is dropped. A lost
/// connection is made again (every second until it works), and then
/// everything is read again: what was announced meanwhile is gone.
async fn hear(mut listener: PgListener, pool: PgPool, origin: String, changes: broadcast::Sender<Change>) {
    loop {
        let heard = match tokio::time::timeout(HEARTBEAT, listener.try_recv()).await {
            Ok(heard) => heard,
            // Quiet a while: does the connection still answer? What
            // arrives meanwhile is kept by the listener.
            Err(_) => match tokio::time::timeout(ACQUIRE_WAIT, sqlx::query("SELECT 1").execute(&mut listener)).await {
                Ok(Ok(_)) => continue,
                _ => Ok(None),
            },
        };
        match heard {
            Ok(Some(notification)) => {
                let (from, scope) = notification.payload().split_once(' ').unwrap_or(("", "*"));
                if from == origin {
                    continue;
                }
                let change = match scope {
                    "*" => Change::Everything,
                    COMMANDS => Change::Commands,
                    scope => Change::Taught(Scope::stored(scope.into())),
                };
                // Nobody following (no retrieval index) is fine.
                let _ = changes.send(change);
            }
            Ok(None) | Err(_) => {
                tracing::warn!("store: lost the connection that hears other processes' changes; reconnecting");
                listener = loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let again = async {
                        let mut listener = PgListener::connect_with(&pool).await?;
                        listener.listen(CHANNEL).await?;
                        Ok::<_, sqlx::Error>(listener)
                    };
                    match again.await {
                        Ok(listener) => break listener,
                        Err(e) => tracing::debug!(error = %e, "store: still unreachable"),
                    }
                };
                tracing::info!("store: hearing changes again; reading everything taught again");
                let _ = changes.send(Change::Everything);
            }
        }
    }
}

async fn insert_example(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    job_id: &str,
    e: &Example,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO examples (job_id, input, output, label) VALUES ($1, $2, $3, $4)")
        .bind(job_id)
        .bind(&e.input)
        .bind(&e.output)
        .bind(&e.label)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_dataset(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    scope: &Scope,
    name: &str,
    examples: &[Example],
) -> Result<(), StoreError> {
    for (position, e) in examples.iter().enumerate() {
        sqlx::query(
            "INSERT INTO datasets (scope, name, position, input, output, label) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(scope.as_str())
        .bind(name)
        .bind(i32::try_from(position).unwrap_or(i32::MAX))
        .bind(&e.input)
        .bind(&e.output)
        .bind(&e.label)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn job_from_row(row: &PgRow) -> Result<JobRecord, sqlx::Error> {
    Ok(JobRecord {
        id: row.try_get("id")?,
        provider: row.try_get("provider")?,
        status: row.try_get("status")?,
        detail: row.try_get("detail")?,
        examples: u32::try_from(row.try_get::<i64, _>("examples")?).unwrap_or(u32::MAX),
    })
}

fn deployment_from_row(row: &PgRow) -> Result<Deployment, sqlx::Error> {
    Ok(Deployment {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        sha256: row.try_get("sha256")?,
        entry: row.try_get("entry")?,
        deployed_by: row.try_get("deployed_by")?,
        deployed_at: row.try_get("deployed_at")?,
        rolled_back: row.try_get("rolled_back")?,
    })
}

fn example_from_row(row: &PgRow) -> Result<Example, sqlx::Error> {
    Ok(Example { input: row.try_get("input")?, output: row.try_get("output")?, label: row.try_get("label")? })
}

const JOB_COLUMNS: &str = "id, provider, status, detail, examples";

#[async_trait]
impl Store for PgStore {
    async fn log_correction(&self, c: Correction) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO corrections (author_id, author_name, channel, guild, message_id,
                                      corrected_message_id, question, original, correction, scope)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(&c.from.author_id)
        .bind(&c.from.author_name)
        .bind(&c.from.channel)
        .bind(&c.from.guild)
        .bind(&c.from.message_id)
        .bind(&c.corrected_message_id)
        .bind(&c.question)
        .bind(&c.original)
        .bind(&c.correction)
        .bind(c.scope.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if c.question.is_some() {
            self.announce(&mut tx, Some(c.scope.as_str())).await?;
        }
        tx.commit().await?;
        Ok(id as u64)
    }

    async fn log_feedback(&self, f: Feedback) -> Result<u64, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO feedback (author_id, author_name, channel, guild, message_id, text)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(&f.from.author_id)
        .bind(&f.from.author_name)
        .bind(&f.from.channel)
        .bind(&f.from.guild)
        .bind(&f.from.message_id)
        .bind(&f.text)
        .fetch_one(&self.pool)
        .await?;
        Ok(id as u64)
    }

    async fn export(&self, table: Table) -> Result<Vec<serde_json::Value>, StoreError> {
        self.export_rows(table, "WHERE $1::bigint IS NULL ORDER BY id", None, None).await
    }

    async fn export_page(
        &self,
        table: Table,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        self.export_rows(table, "WHERE $1::bigint IS NULL OR id < $1 ORDER BY id DESC", before, Some(limit)).await
    }

    async fn recent_jobs(&self, limit: u32) -> Result<Vec<JobRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_at DESC, id DESC LIMIT $1"))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(job_from_row).collect::<Result<_, _>>()?)
    }

    async fn record_answer(
        &self,
        channel: &str,
        message_id: &str,
        question: &str,
        answer: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO answers (channel, message_id, question, answer) VALUES ($1, $2, $3, $4)")
            .bind(channel)
            .bind(message_id)
            .bind(question)
            .bind(answer)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn question_for(&self, channel: &str, message_id: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT question FROM answers WHERE channel = $1 AND message_id = $2 ORDER BY id DESC LIMIT 1",
        )
        .bind(channel)
        .bind(message_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn taught_corrections(&self) -> Result<Vec<(Scope, String, String)>, StoreError> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT scope, question, correction FROM corrections WHERE question IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(scope, q, c)| (Scope::stored(scope), q, c)).collect())
    }

    async fn create_job(&self, job: JobRecord, scope: &Scope, examples: Vec<Example>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO jobs (id, provider, status, detail, examples, scope) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&job.id)
            .bind(&job.provider)
            .bind(&job.status)
            .bind(&job.detail)
            .bind(i64::from(job.examples))
            .bind(scope.as_str())
            .execute(&mut *tx)
            .await?;
        for e in &examples {
            insert_example(&mut tx, &job.id, e).await?;
        }
        self.announce(&mut tx, Some(scope.as_str())).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_job(&self, id: &str, status: &str, detail: Option<String>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let scope: Option<String> = sqlx::query_scalar(
            "UPDATE jobs SET status = $2, detail = $3, updated_at = now() WHERE id = $1 RETURNING scope",
        )
        .bind(id)
        .bind(status)
        .bind(detail)
        .fetch_optional(&mut *tx)
        .await?;
        // Whether its examples answer depends on the job's status.
        if let Some(scope) = scope {
            self.announce(&mut tx, Some(&scope)).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(job_from_row).transpose()?)
    }

    async fn unfinished_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(job_from_row).collect::<Result<_, _>>()?)
    }

    async fn set_fine_tuned_model(&self, job_id: &str, model: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE jobs SET model = $2 WHERE id = $1").bind(job_id).bind(model).execute(&self.pool).await?;
        Ok(())
    }

    async fn latest_fine_tuned_model(&self, scope: &Scope) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT model FROM jobs WHERE model IS NOT NULL AND scope IN ($1, 'global')
             ORDER BY updated_at DESC, created_at DESC LIMIT 1",
        )
        .bind(scope.as_str())
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn trained_examples(&self) -> Result<Vec<(Scope, Example)>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.input, e.output, e.label, j.scope FROM examples e JOIN jobs j ON j.id = e.job_id
             WHERE j.status IN ('running', 'succeeded') ORDER BY e.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((Scope::stored(row.try_get("scope")?), example_from_row(row)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn vectors(&self, model: &str) -> Result<Vec<CachedVector>, StoreError> {
        let rows: Vec<(Vec<u8>, Vec<u8>)> = sqlx::query_as("SELECT text, vector FROM vectors WHERE model = $1")
            .bind(model)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().filter_map(|(text, vector)| CachedVector::from_stored(&text, &vector)).collect())
    }

    async fn save_vectors(&self, model: &str, vectors: Vec<CachedVector>) -> Result<(), StoreError> {
        if vectors.is_empty() {
            return Ok(());
        }
        // One statement for the whole chunk: a round trip per vector
        // would dominate a large training job's time.
        // In key order: two processes saving overlapping chunks then lock
        // rows in the same order, and cannot deadlock.
        let mut vectors = vectors;
        vectors.sort_by_key(|v| v.text);
        vectors.dedup_by_key(|v| v.text);
        let texts: Vec<Vec<u8>> = vectors.iter().map(|v| v.text.to_vec()).collect();
        let values: Vec<Vec<u8>> = vectors.iter().map(CachedVector::stored_vector).collect();
        sqlx::query(
            "INSERT INTO vectors (model, text, vector) SELECT $1, t, v FROM UNNEST($2::bytea[], $3::bytea[]) AS u(t, v)
             ON CONFLICT (model, text) DO UPDATE SET vector = EXCLUDED.vector",
        )
        .bind(model)
        .bind(texts)
        .bind(values)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn save_dataset(&self, scope: &Scope, name: &str, examples: Vec<Example>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM datasets WHERE scope = $1 AND name = $2")
            .bind(scope.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        insert_dataset(&mut tx, scope, name, &examples).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn dataset(&self, scope: &Scope, name: &str) -> Result<Option<Vec<Example>>, StoreError> {
        for scope in [scope.as_str(), "global"] {
            let rows = sqlx::query(
                "SELECT input, output, label FROM datasets WHERE scope = $1 AND name = $2 ORDER BY position",
            )
            .bind(scope)
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
            if !rows.is_empty() {
                return Ok(Some(rows.iter().map(example_from_row).collect::<Result<_, _>>()?));
            }
        }
        Ok(None)
    }

    async fn current_deployments(&self) -> Result<Vec<Deployment>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT DISTINCT ON (name) {DEPLOYMENT_COLUMNS} FROM deployments
             WHERE rolled_back_at IS NULL ORDER BY name, id DESC"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(deployment_from_row).collect::<Result<_, _>>()?)
    }

    async fn deployed_wasm(&self, id: i64) -> Result<Vec<u8>, StoreError> {
        sqlx::query_scalar("SELECT wasm FROM deployments WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no deployment {id}")))
    }

    async fn deploy(&self, name: &str, wasm: &[u8], entry: &str, by: &str) -> Result<Deployment, StoreError> {
        let sha256 = crate::sandbox::cache::sha256_hex(wasm);
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO deployments (name, sha256, wasm, entry, deployed_by) VALUES ($1, $2, $3, $4, $5)
             RETURNING {DEPLOYMENT_COLUMNS}"
        ))
        .bind(name)
        .bind(&sha256)
        .bind(wasm)
        .bind(entry)
        .bind(by)
        .fetch_one(&mut *tx)
        .await?;
        self.announce(&mut tx, Some(COMMANDS)).await?;
        tx.commit().await?;
        Ok(deployment_from_row(&row)?)
    }

    async fn rollback(&self, name: &str) -> Result<Option<Deployment>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rolled: Option<i64> = sqlx::query_scalar(
            "UPDATE deployments SET rolled_back_at = now() WHERE id = (
                 SELECT id FROM deployments WHERE name = $1 AND rolled_back_at IS NULL ORDER BY id DESC LIMIT 1
                 FOR UPDATE)
             RETURNING id",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        if rolled.is_none() {
            return Err(StoreError::NotFound(format!("`{name}` has no deployment to roll back")));
        }
        let now = sqlx::query(&format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE name = $1 AND rolled_back_at IS NULL
             ORDER BY id DESC LIMIT 1"
        ))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        self.announce(&mut tx, Some(COMMANDS)).await?;
        tx.commit().await?;
        Ok(now.as_ref().map(deployment_from_row).transpose()?)
    }

    async fn deployments(&self) -> Result<Vec<Deployment>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(deployment_from_row).collect::<Result<_, _>>()?)
    }

    async fn take_turn(&self, queue: &str, spacing: Duration) -> Result<Duration, StoreError> {
        // The database's clock, so machines whose clocks differ agree; one
        // statement, so no lock is held while the caller waits. A turn over
        // an hour ahead is a clock that jumped back: it starts again now.
        let wait: f64 = sqlx::query_scalar(
            "INSERT INTO turns (queue, next_at) VALUES ($1, clock_timestamp() + make_interval(secs => $2))
             ON CONFLICT (queue) DO UPDATE
                 SET next_at = CASE WHEN turns.next_at > clock_timestamp() + interval '1 hour'
                                    THEN clock_timestamp()
                                    ELSE greatest(turns.next_at, clock_timestamp()) END
                               + make_interval(secs => $2)
             RETURNING extract(epoch FROM next_at - make_interval(secs => $2) - clock_timestamp())::float8",
        )
        .bind(queue)
        .bind(spacing.as_secs_f64())
        .fetch_one(&self.pool)
        .await?;
        Ok(Duration::try_from_secs_f64(wait).unwrap_or(Duration::ZERO))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn changes(&self) -> Option<broadcast::Receiver<Change>> {
        Some(self.changes.subscribe())
    }
}

/// Whether `url` names a PostgreSQL database (and not a SQLite file).
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Executes `sql` on a fresh connection to `url`, for set-up and tests
/// (e.g. `CREATE DATABASE`, which cannot run in a transaction).
pub async fn execute(url: &str, sql: &str) -> Result<(), StoreError> {
    let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options).await?;
    conn.execute(sql).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::throwaway::Throwaway;
    use super::super::{suite, Provenance, SqliteStore};
    use super::*;

    /// Issue 16: in CI no PostgreSQL test may be skipped, so a missing
    /// server fails here, with what to install.
    fn cluster() -> Throwaway {
        Throwaway::start().expect("a throwaway PostgreSQL server (scripts/setup-tests.sh installs one)")
    }

    async fn heard(changes: &mut broadcast::Receiver<Change>) -> Change {
        tokio::time::timeout(Duration::from_secs(20), changes.recv())
            .await
            .expect("a change heard within 20 s")
            .expect("the channel open")
    }

    fn feedback(text: &str) -> Feedback {
        Feedback {
            from: Provenance {
                author_id: "7".into(),
                author_name: "ann".into(),
                channel: "c".into(),
                guild: None,
                message_id: "1".into(),
            },
            text: text.into(),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_store_suite_passes() {
        let pg = cluster();
        let url = pg.create_database("suite").await.unwrap();
        suite::run(&PgStore::connect(&url).await.unwrap()).await;
        // Another process connecting later sees everything.
        let again = PgStore::connect(&url).await.unwrap();
        assert_eq!(again.export(Table::Corrections).await.unwrap().len(), 2);
    }

    /// Processes starting together on an empty database: each migration
    /// runs once, and every one of them starts.
    #[tokio::test(flavor = "multi_thread")]
    async fn processes_starting_together_migrate_once() {
        let pg = cluster();
        let url = pg.create_database("race").await.unwrap();
        let starts: Vec<_> = (0..6).map(|_| tokio::spawn(PgStore::connect_owned(url.clone()))).collect();
        let mut stores = Vec::new();
        for start in starts {
            stores.push(start.await.unwrap().unwrap());
        }
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(&stores[0].pool).await.unwrap();
        assert_eq!(applied, MIGRATIONS.len() as i64);
        // They all write to the same tables.
        for (i, store) in stores.iter().enumerate() {
            store.log_feedback(feedback(&format!("from {i}"))).await.unwrap();
        }
        assert_eq!(stores[5].export(Table::Feedback).await.unwrap().len(), 6);
    }

    /// What one process teaches, the others hear of; its own changes it
    /// does not hear back.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_change_is_heard_by_the_other_processes_only() {
        let pg = cluster();
        let url = pg.create_database("fleet").await.unwrap();
        let (one, two) = (PgStore::connect(&url).await.unwrap(), PgStore::connect(&url).await.unwrap());
        let (mut hears_one, mut hears_two) = (one.changes().unwrap(), two.changes().unwrap());
        let correction = |scope: Scope| Correction {
            from: feedback("").from,
            scope,
            corrected_message_id: "2".into(),
            question: Some("q?".into()),
            original: "old".into(),
            correction: "new".into(),
        };
        one.log_correction(correction(Scope::server("1"))).await.unwrap();
        assert_eq!(heard(&mut hears_two).await, Change::Taught(Scope::server("1")));
        two.create_job(
            JobRecord {
                id: "j".into(),
                provider: "embedded".into(),
                status: "running".into(),
                detail: None,
                examples: 0,
            },
            &Scope::server("2"),
            vec![],
        )
        .await
        .unwrap();
        // Notifications come in commit order: had `one` heard its own
        // correction, that would come first.
        assert_eq!(heard(&mut hears_one).await, Change::Taught(Scope::server("2")));
        two.update_job("j", "succeeded", None).await.unwrap();
        assert_eq!(heard(&mut hears_one).await, Change::Taught(Scope::server("2")));
    }

    /// The database stopped and started while the bot runs: writes fail
    /// as "unreachable" meanwhile, work again after, nothing committed is
    /// lost, and the other processes' changes are read again in full.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_database_going_away_and_coming_back() {
        let pg = cluster();
        let url = pg.create_database("outage").await.unwrap();
        let store = PgStore::connect(&url).await.unwrap();
        let mut changes = store.changes().unwrap();
        store.log_feedback(feedback("before")).await.unwrap();
        pg.stop().unwrap();
        match store.log_feedback(feedback("during")).await {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("expected the database unreachable, got {other:?}"),
        }
        pg.resume().unwrap();
        assert_eq!(heard(&mut changes).await, Change::Everything);
        store.log_feedback(feedback("after")).await.unwrap();
        let texts: Vec<String> = store
            .export(Table::Feedback)
            .await
            .unwrap()
            .iter()
            .map(|row| row["text"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(texts, ["before", "after"]);
    }

    /// `sandbot migrate-store`: every kind of record copied, exactly once.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_sqlite_store_is_copied_once() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(&dir.path().join("sandbot.db")).unwrap();
        suite::run(&sqlite).await;
        let dump = sqlite.dump().await.unwrap();
        let pg = cluster();
        let url = pg.create_database("copy").await.unwrap();
        let store = PgStore::connect(&url).await.unwrap();
        // A record the fleet made before the copy stays, beside the copies.
        store.log_feedback(feedback("already here")).await.unwrap();
        let copied = store.import(&dump).await.unwrap();
        assert_eq!(
            copied,
            Imported { corrections: 2, feedback: 1, answers: 3, jobs: 3, examples: 3, datasets: 4, vectors: 2 }
        );
        assert_eq!(store.import(&dump).await.unwrap(), Imported::default(), "a second run copies nothing");

        // What the bot reads is the same from both.
        assert_eq!(store.taught_corrections().await.unwrap(), sqlite.taught_corrections().await.unwrap());
        assert_eq!(store.trained_examples().await.unwrap(), sqlite.trained_examples().await.unwrap());
        assert_eq!(store.unfinished_jobs().await.unwrap(), sqlite.unfinished_jobs().await.unwrap());
        let one = Scope::server("1");
        assert_eq!(store.latest_fine_tuned_model(&one).await.unwrap().as_deref(), Some("ft:one"));
        assert_eq!(store.dataset(&one, "faq").await.unwrap(), sqlite.dataset(&one, "faq").await.unwrap());
        assert_eq!(store.question_for("c", "1").await.unwrap().as_deref(), Some("again?"));
        let mut vectors = store.vectors("m1").await.unwrap();
        vectors.sort_by_key(|v| v.text);
        let mut expected = sqlite.vectors("m1").await.unwrap();
        expected.sort_by_key(|v| v.text);
        assert_eq!(vectors, expected);
        // Exports match but for the ids, the time to the millisecond too.
        let strip = |rows: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
            rows.into_iter()
                .map(|mut row| {
                    row.as_object_mut().unwrap().remove("id");
                    row
                })
                .collect()
        };
        assert_eq!(
            strip(store.export(Table::Corrections).await.unwrap()),
            strip(sqlite.export(Table::Corrections).await.unwrap())
        );
        let feedback = strip(store.export(Table::Feedback).await.unwrap());
        assert_eq!(feedback[1..], strip(sqlite.export(Table::Feedback).await.unwrap())[..]);
    }
}
