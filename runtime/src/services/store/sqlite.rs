//! The embedded store: one SQLite file in the data folder.
//!
//! WAL with `synchronous = FULL`: a row is on disk when `log_*` returns, so
//! a `kill -9` (or a power cut) right after the reply loses nothing.
//! rusqlite is blocking, so every call runs on tokio's blocking pool.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;

use super::{
    CachedVector, Correction, Deployment, Example, Feedback, JobRecord, Provenance, Scope, Store, StoreError, Table,
};

/// How long a write waits for another process's (a shard's) to end.
const BUSY_WAIT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS corrections (
    id                   INTEGER PRIMARY KEY,
    created_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    author_id            TEXT NOT NULL,
    author_name          TEXT NOT NULL,
    channel              TEXT NOT NULL,
    guild                TEXT,
    message_id           TEXT NOT NULL,
    corrected_message_id TEXT NOT NULL,
    question             TEXT,
    original             TEXT NOT NULL,
    correction           TEXT NOT NULL,
    scope                TEXT NOT NULL DEFAULT 'global'
);
CREATE TABLE IF NOT EXISTS answers (
    id         INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    channel    TEXT NOT NULL,
    message_id TEXT NOT NULL,
    question   TEXT NOT NULL,
    answer     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_by_message ON answers (channel, message_id);
CREATE TABLE IF NOT EXISTS jobs (
    id         TEXT PRIMARY KEY,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    provider   TEXT NOT NULL,
    status     TEXT NOT NULL,
    detail     TEXT,
    examples   INTEGER NOT NULL,
    model      TEXT,
    scope      TEXT NOT NULL DEFAULT 'global'
);
CREATE TABLE IF NOT EXISTS examples (
    id     INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs (id),
    input  TEXT NOT NULL,
    output TEXT NOT NULL,
    label  TEXT
);
-- Named datasets, each server's own (an older `datasets` table, of one
-- name space for all, becomes the global set's: see `migrate`).
CREATE TABLE IF NOT EXISTS scoped_datasets (
    scope    TEXT NOT NULL,
    name     TEXT NOT NULL,
    position INTEGER NOT NULL,
    input    TEXT NOT NULL,
    output   TEXT NOT NULL,
    label    TEXT,
    PRIMARY KEY (scope, name, position)
);
-- Sentence vectors by model and text (sha256), so a restart does not
-- embed everything again. A cache: losing it costs time, not data.
CREATE TABLE IF NOT EXISTS vectors (
    model  TEXT NOT NULL,
    text   BLOB NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, text)
) WITHOUT ROWID;
-- Which database this is (`store_id`): `migrate-store` marks what it
-- copied with it, so a second run copies nothing twice.
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Turns processes on this machine take one after another
-- (`Store::take_turn`): the earliest next one, in Unix milliseconds.
CREATE TABLE IF NOT EXISTS turns (
    queue   TEXT PRIMARY KEY,
    next_at INTEGER NOT NULL
);
-- Commands deployed through the store (`sandbot deploy`, the dashboard),
-- as in PostgreSQL: a name's current version is its newest row not
-- rolled back, and nothing is deleted.
CREATE TABLE IF NOT EXISTS deployments (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL,
    sha256         TEXT NOT NULL,
    wasm           BLOB NOT NULL,
    entry          TEXT NOT NULL,
    deployed_by    TEXT NOT NULL,
    deployed_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    rolled_back_at TEXT
);
CREATE INDEX IF NOT EXISTS deployments_by_name ON deployments (name, id);
CREATE TABLE IF NOT EXISTS feedback (
    id          INTEGER PRIMARY KEY,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    author_id   TEXT NOT NULL,
    author_name TEXT NOT NULL,
    channel     TEXT NOT NULL,
    guild       TEXT,
    message_id  TEXT NOT NULL,
    text        TEXT NOT NULL
);
";

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens or creates the database, readable by the bot's user only
    /// (SQLite gives its journal files the same mode).
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        // `:memory:` is a database in memory, not a file to make private.
        #[cfg(unix)]
        if path != Path::new(":memory:") {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let file = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path);
            // An older bot's file keeps its contents and loses its readers.
            if let Err(e) = file.and_then(|f| f.set_permissions(std::fs::Permissions::from_mode(0o600))) {
                tracing::warn!(path = %path.display(), error = %e, "could not make the database owner-only");
            }
        }
        let mut conn = Connection::open(path)?;
        // First of all: another process (a shard of the same bot) may be
        // starting on this file at this moment; wait for it, not fail.
        conn.busy_timeout(BUSY_WAIT)?;
        use_wal(&conn)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // The schema and its migrations in one write transaction: whoever
        // comes second waits for it, then finds the work done.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(SCHEMA)?;
        migrate(&tx)?;
        tx.commit()?;
        Ok(SqliteStore { conn: Arc::new(Mutex::new(conn)) })
    }

    async fn write<F>(&self, f: F) -> Result<u64, StoreError>
    where
        F: FnOnce(&Connection) -> rusqlite::Result<usize> + Send + 'static,
    {
        self.with(move |conn| {
            f(conn)?;
            Ok(conn.last_insert_rowid() as u64)
        })
        .await
    }

    /// Runs `f` on the connection, on the blocking pool.
    async fn with<F, R>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            Ok(f(&mut conn)?)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn log_correction(&self, c: Correction) -> Result<u64, StoreError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO corrections (author_id, author_name, channel, guild, message_id,
                                          corrected_message_id, question, original, correction, scope)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    c.from.author_id,
                    c.from.author_name,
                    c.from.channel,
                    c.from.guild,
                    c.from.message_id,
                    c.corrected_message_id,
                    c.question,
                    c.original,
                    c.correction,
                    c.scope.as_str()
                ],
            )
        })
        .await
    }

    async fn log_feedback(&self, f: Feedback) -> Result<u64, StoreError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO feedback (author_id, author_name, channel, guild, message_id, text)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![f.from.author_id, f.from.author_name, f.from.channel, f.from.guild, f.from.message_id, f.text],
            )
        })
        .await
    }

    async fn take_turn(&self, queue: &str, spacing: Duration) -> Result<Duration, StoreError> {
        let queue = queue.to_string();
        self.with(move |conn| {
            // Every process sharing a SQLite file shares this machine's
            // clock. A turn over an hour ahead is a clock that jumped back.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_millis() as i64);
            let spacing = spacing.as_millis() as i64;
            let turn: i64 = conn.query_row(
                "INSERT INTO turns (queue, next_at) VALUES (?1, ?2 + ?3)
                 ON CONFLICT (queue) DO UPDATE
                     SET next_at = CASE WHEN next_at > ?2 + 3600000 THEN ?2 ELSE max(next_at, ?2) END + ?3
                 RETURNING next_at - ?3",
                params![queue, now, spacing],
                |row| row.get(0),
            )?;
            Ok(Duration::from_millis(turn.saturating_sub(now).max(0) as u64))
        })
        .await
    }

    async fn export(&self, table: Table) -> Result<Vec<serde_json::Value>, StoreError> {
        self.with(move |conn| export_rows(conn, table, "WHERE ?1 IS NULL ORDER BY id", None, -1)).await
    }

    async fn export_page(
        &self,
        table: Table,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        self.with(move |conn| {
            export_rows(conn, table, "WHERE ?1 IS NULL OR id < ?1 ORDER BY id DESC", before, i64::from(limit))
        })
        .await
    }

    async fn recent_jobs(&self, limit: u32) -> Result<Vec<JobRecord>, StoreError> {
        self.with(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, provider, status, detail, examples FROM jobs ORDER BY created_at DESC, id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit], job_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn current_deployments(&self) -> Result<Vec<Deployment>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE id IN (
                     SELECT max(id) FROM deployments WHERE rolled_back_at IS NULL GROUP BY name)
                 ORDER BY name"
            ))?;
            let rows = stmt.query_map([], deployment_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn deployed_wasm(&self, id: i64) -> Result<Vec<u8>, StoreError> {
        let found = self
            .with(move |conn| {
                conn.query_row("SELECT wasm FROM deployments WHERE id = ?1", [id], |row| row.get(0)).optional()
            })
            .await?;
        found.ok_or_else(|| StoreError::NotFound(format!("no deployment {id}")))
    }

    async fn deploy(&self, name: &str, wasm: &[u8], entry: &str, by: &str) -> Result<Deployment, StoreError> {
        let sha256 = crate::sandbox::cache::sha256_hex(wasm);
        let row = (name.to_string(), sha256, wasm.to_vec(), entry.to_string(), by.to_string());
        self.with(move |conn| {
            conn.query_row(
                &format!(
                    "INSERT INTO deployments (name, sha256, wasm, entry, deployed_by) VALUES (?1, ?2, ?3, ?4, ?5)
                     RETURNING {DEPLOYMENT_COLUMNS}"
                ),
                params![row.0, row.1, row.2, row.3, row.4],
                deployment_from_row,
            )
        })
        .await
    }

    async fn rollback(&self, name: &str) -> Result<Option<Deployment>, StoreError> {
        let name = name.to_string();
        let rolled = self
            .with(move |conn| {
                let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let rolled = tx.execute(
                    "UPDATE deployments SET rolled_back_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = (
                         SELECT max(id) FROM deployments WHERE name = ?1 AND rolled_back_at IS NULL)",
                    [&name],
                )?;
                let now = tx
                    .query_row(
                        &format!(
                            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE name = ?1 AND rolled_back_at IS NULL
                             ORDER BY id DESC LIMIT 1"
                        ),
                        [&name],
                        deployment_from_row,
                    )
                    .optional()?;
                tx.commit()?;
                Ok((rolled, now, name))
            })
            .await?;
        match rolled {
            (0, _, name) => Err(StoreError::NotFound(format!("`{name}` has no deployment to roll back"))),
            (_, now, _) => Ok(now),
        }
    }

    async fn deployments(&self) -> Result<Vec<Deployment>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments ORDER BY id"))?;
            let rows = stmt.query_map([], deployment_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn record_answer(
        &self,
        channel: &str,
        message_id: &str,
        question: &str,
        answer: &str,
    ) -> Result<(), StoreError> {
        let row = (channel.to_string(), message_id.to_string(), question.to_string(), answer.to_string());
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO answers (channel, message_id, question, answer) VALUES (?1, ?2, ?3, ?4)",
                params![row.0, row.1, row.2, row.3],
            )
        })
        .await
        .map(drop)
    }

    async fn question_for(&self, channel: &str, message_id: &str) -> Result<Option<String>, StoreError> {
        let (channel, message_id) = (channel.to_string(), message_id.to_string());
        self.with(move |conn| {
            conn.query_row(
                "SELECT question FROM answers WHERE channel = ?1 AND message_id = ?2 ORDER BY id DESC LIMIT 1",
                params![channel, message_id],
                |row| row.get(0),
            )
            .optional()
        })
        .await
    }

    async fn taught_corrections(&self) -> Result<Vec<(Scope, String, String)>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT scope, question, correction FROM corrections WHERE question IS NOT NULL ORDER BY id",
            )?;
            let rows = stmt.query_map([], |row| Ok((Scope::stored(row.get(0)?), row.get(1)?, row.get(2)?)))?;
            rows.collect()
        })
        .await
    }

    async fn create_job(&self, job: JobRecord, scope: &Scope, examples: Vec<Example>) -> Result<(), StoreError> {
        let scope = scope.clone();
        self.with(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO jobs (id, provider, status, detail, examples, scope) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![job.id, job.provider, job.status, job.detail, job.examples, scope.as_str()],
            )?;
            {
                let mut insert =
                    tx.prepare("INSERT INTO examples (job_id, input, output, label) VALUES (?1, ?2, ?3, ?4)")?;
                for e in &examples {
                    insert.execute(params![job.id, e.input, e.output, e.label])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn update_job(&self, id: &str, status: &str, detail: Option<String>) -> Result<(), StoreError> {
        let (id, status) = (id.to_string(), status.to_string());
        self.write(move |conn| {
            conn.execute(
                "UPDATE jobs SET status = ?2, detail = ?3,
                        updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
                params![id, status, detail],
            )
        })
        .await
        .map(drop)
    }

    async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let id = id.to_string();
        self.with(move |conn| {
            conn.query_row(
                "SELECT id, provider, status, detail, examples FROM jobs WHERE id = ?1",
                params![id],
                job_from_row,
            )
            .optional()
        })
        .await
    }

    async fn unfinished_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, provider, status, detail, examples FROM jobs
                 WHERE status IN ('queued', 'running') ORDER BY created_at",
            )?;
            let rows = stmt.query_map([], job_from_row)?;
            rows.collect()
        })
        .await
    }

    async fn set_fine_tuned_model(&self, job_id: &str, model: &str) -> Result<(), StoreError> {
        let (id, model) = (job_id.to_string(), model.to_string());
        self.write(move |conn| conn.execute("UPDATE jobs SET model = ?2 WHERE id = ?1", params![id, model]))
            .await
            .map(drop)
    }

    async fn latest_fine_tuned_model(&self, scope: &Scope) -> Result<Option<String>, StoreError> {
        let scope = scope.clone();
        self.with(move |conn| {
            conn.query_row(
                "SELECT model FROM jobs WHERE model IS NOT NULL AND scope IN (?1, 'global')
                 ORDER BY updated_at DESC, rowid DESC LIMIT 1",
                params![scope.as_str()],
                |row| row.get(0),
            )
            .optional()
        })
        .await
    }

    async fn trained_examples(&self) -> Result<Vec<(Scope, Example)>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT e.input, e.output, e.label, j.scope FROM examples e JOIN jobs j ON j.id = e.job_id
                 WHERE j.status IN ('running', 'succeeded') ORDER BY e.id",
            )?;
            let rows = stmt.query_map([], |row| Ok((Scope::stored(row.get(3)?), example_from_row(row)?)))?;
            rows.collect()
        })
        .await
    }

    async fn vectors(&self, model: &str) -> Result<Vec<CachedVector>, StoreError> {
        let model = model.to_string();
        self.with(move |conn| {
            let mut stmt = conn.prepare("SELECT text, vector FROM vectors WHERE model = ?1")?;
            let rows = stmt.query_map(params![model], |row| {
                let text: Vec<u8> = row.get(0)?;
                let vector: Vec<u8> = row.get(1)?;
                Ok((text, vector))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (text, vector) = row?;
                out.extend(CachedVector::from_stored(&text, &vector));
            }
            Ok(out)
        })
        .await
    }

    async fn save_vectors(&self, model: &str, vectors: Vec<CachedVector>) -> Result<(), StoreError> {
        let model = model.to_string();
        self.with(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut insert =
                    tx.prepare("INSERT OR REPLACE INTO vectors (model, text, vector) VALUES (?1, ?2, ?3)")?;
                for v in &vectors {
                    insert.execute(params![model, &v.text[..], v.stored_vector()])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn save_dataset(&self, scope: &Scope, name: &str, examples: Vec<Example>) -> Result<(), StoreError> {
        let (scope, name) = (scope.clone(), name.to_string());
        self.with(move |conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM scoped_datasets WHERE scope = ?1 AND name = ?2", params![scope.as_str(), name])?;
            {
                let mut insert = tx.prepare(
                    "INSERT INTO scoped_datasets (scope, name, position, input, output, label)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for (position, e) in examples.iter().enumerate() {
                    insert.execute(params![scope.as_str(), name, position as i64, e.input, e.output, e.label])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn dataset(&self, scope: &Scope, name: &str) -> Result<Option<Vec<Example>>, StoreError> {
        let (scope, name) = (scope.clone(), name.to_string());
        self.with(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT input, output, label FROM scoped_datasets WHERE scope = ?1 AND name = ?2 ORDER BY position",
            )?;
            for scope in [scope.as_str(), "global"] {
                let rows: Vec<Example> =
                    stmt.query_map(params![scope, name], example_from_row)?.collect::<Result<_, _>>()?;
                if !rows.is_empty() {
                    return Ok(Some(rows));
                }
            }
            Ok(None)
        })
        .await
    }
}

/// Everything a SQLite store holds, for `sandbot migrate-store`.
#[derive(Debug, Default)]
pub struct Dump {
    /// This database's own id (the `meta` table's `store_id`).
    pub store_id: String,
    /// `(id, created_at, correction)`.
    pub corrections: Vec<(i64, String, Correction)>,
    pub feedback: Vec<(i64, String, Feedback)>,
    pub answers: Vec<StoredAnswer>,
    pub jobs: Vec<StoredJob>,
    /// `(scope, name, examples)`.
    pub datasets: Vec<(Scope, String, Vec<Example>)>,
    /// `(embedding model, vector)`.
    pub vectors: Vec<(String, CachedVector)>,
}

#[derive(Debug, Clone)]
pub struct StoredAnswer {
    pub id: i64,
    pub created_at: String,
    pub channel: String,
    pub message_id: String,
    pub question: String,
    pub answer: String,
}

#[derive(Debug, Clone)]
pub struct StoredJob {
    pub record: JobRecord,
    pub created_at: String,
    pub updated_at: String,
    pub model: Option<String>,
    pub scope: Scope,
    pub examples: Vec<Example>,
}

impl SqliteStore {
    /// Reads every record, in one read transaction (a consistent view
    /// even while the bot writes).
    pub async fn dump(&self) -> Result<Dump, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let store_id = tx.query_row("SELECT value FROM meta WHERE key = 'store_id'", [], |row| row.get(0))?;
            let provenance = |row: &rusqlite::Row<'_>| -> rusqlite::Result<Provenance> {
                Ok(Provenance {
                    author_id: row.get(2)?,
                    author_name: row.get(3)?,
                    channel: row.get(4)?,
                    guild: row.get(5)?,
                    message_id: row.get(6)?,
                })
            };
            let corrections = tx
                .prepare(
                    "SELECT id, created_at, author_id, author_name, channel, guild, message_id,
                            corrected_message_id, question, original, correction, scope FROM corrections ORDER BY id",
                )?
                .query_map([], |row| {
                    let correction = Correction {
                        from: provenance(row)?,
                        corrected_message_id: row.get(7)?,
                        question: row.get(8)?,
                        original: row.get(9)?,
                        correction: row.get(10)?,
                        scope: Scope::stored(row.get(11)?),
                    };
                    Ok((row.get(0)?, row.get(1)?, correction))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let feedback = tx
                .prepare(
                    "SELECT id, created_at, author_id, author_name, channel, guild, message_id, text
                     FROM feedback ORDER BY id",
                )?
                .query_map([], |row| {
                    Ok((row.get(0)?, row.get(1)?, Feedback { from: provenance(row)?, text: row.get(7)? }))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let answers = tx
                .prepare("SELECT id, created_at, channel, message_id, question, answer FROM answers ORDER BY id")?
                .query_map([], |row| {
                    Ok(StoredAnswer {
                        id: row.get(0)?,
                        created_at: row.get(1)?,
                        channel: row.get(2)?,
                        message_id: row.get(3)?,
                        question: row.get(4)?,
                        answer: row.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut jobs: Vec<StoredJob> = tx
                .prepare(
                    "SELECT id, provider, status, detail, examples, created_at, updated_at, model, scope
                     FROM jobs ORDER BY created_at, id",
                )?
                .query_map([], |row| {
                    Ok(StoredJob {
                        record: job_from_row(row)?,
                        created_at: row.get(5)?,
                        updated_at: row.get(6)?,
                        model: row.get(7)?,
                        scope: Scope::stored(row.get(8)?),
                        examples: Vec::new(),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            {
                let mut examples =
                    tx.prepare("SELECT input, output, label FROM examples WHERE job_id = ?1 ORDER BY id")?;
                for job in &mut jobs {
                    job.examples = examples
                        .query_map(params![job.record.id], example_from_row)?
                        .collect::<rusqlite::Result<_>>()?;
                }
            }
            let mut datasets: Vec<(Scope, String, Vec<Example>)> = Vec::new();
            {
                let mut rows = tx.prepare(
                    "SELECT input, output, label, scope, name FROM scoped_datasets ORDER BY scope, name, position",
                )?;
                let mut rows = rows.query([])?;
                while let Some(row) = rows.next()? {
                    let (scope, name): (String, String) = (row.get(3)?, row.get(4)?);
                    let example = example_from_row(row)?;
                    match datasets.last_mut() {
                        Some((s, n, list)) if s.as_str() == scope && *n == name => list.push(example),
                        _ => datasets.push((Scope::stored(scope), name, vec![example])),
                    }
                }
            }
            let mut vectors = Vec::new();
            {
                let mut rows = tx.prepare("SELECT model, text, vector FROM vectors")?;
                let mut rows = rows.query([])?;
                while let Some(row) = rows.next()? {
                    let (model, text, vector): (String, Vec<u8>, Vec<u8>) = (row.get(0)?, row.get(1)?, row.get(2)?);
                    if let Some(cached) = CachedVector::from_stored(&text, &vector) {
                        vectors.push((model, cached));
                    }
                }
            }
            Ok(Dump { store_id, corrections, feedback, answers, jobs, datasets, vectors })
        })
        .await
    }
}

/// Turns write-ahead logging on. That needs the file to itself, and SQLite
/// does not wait for it (two openers would deadlock): try again a while.
fn use_wal(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = Instant::now() + BUSY_WAIT;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            done => return done,
        }
    }
}

/// Brings a database made by an earlier version up to this schema.
///
/// Teaching from before scopes existed was everyone's: it stays global.
/// Runs inside [`SqliteStore::open`]'s transaction.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    add_column_if_missing(conn, "corrections", "question", "TEXT")?;
    add_column_if_missing(conn, "jobs", "model", "TEXT")?;
    add_column_if_missing(conn, "corrections", "scope", "TEXT NOT NULL DEFAULT 'global'")?;
    add_column_if_missing(conn, "jobs", "scope", "TEXT NOT NULL DEFAULT 'global'")?;
    let unscoped: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'datasets'",
        [],
        |row| row.get(0),
    )?;
    if unscoped {
        conn.execute_batch(
            "INSERT OR REPLACE INTO scoped_datasets (scope, name, position, input, output, label)
                 SELECT 'global', name, position, input, output, label FROM datasets;
             DROP TABLE datasets;",
        )?;
    }
    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))))", [])?;
    Ok(())
}

fn add_column_if_missing(conn: &Connection, table: &str, column: &str, kind: &str) -> rusqlite::Result<()> {
    let present: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
        params![table, column],
        |row| row.get(0),
    )?;
    if !present {
        conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
    }
    Ok(())
}

const DEPLOYMENT_COLUMNS: &str =
    "id, name, sha256, entry, deployed_by, deployed_at, rolled_back_at IS NOT NULL AS rolled_back";

fn deployment_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Deployment> {
    Ok(Deployment {
        id: row.get("id")?,
        name: row.get("name")?,
        sha256: row.get("sha256")?,
        entry: row.get("entry")?,
        deployed_by: row.get("deployed_by")?,
        deployed_at: row.get("deployed_at")?,
        rolled_back: row.get("rolled_back")?,
    })
}

fn job_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    Ok(JobRecord {
        id: row.get(0)?,
        provider: row.get(1)?,
        status: row.get(2)?,
        detail: row.get(3)?,
        examples: row.get(4)?,
    })
}

fn example_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Example> {
    Ok(Example { input: row.get(0)?, output: row.get(1)?, label: row.get(2)? })
}

/// `table`'s rows as JSON objects; `tail` orders, filters (`?1`: the id
/// below which, NULL for all) and is followed by `LIMIT ?2` (-1: all).
fn export_rows(
    conn: &Connection,
    table: Table,
    tail: &str,
    before: Option<i64>,
    limit: i64,
) -> rusqlite::Result<Vec<serde_json::Value>> {
    let (columns, extra): (&str, &[&str]) = match table {
        Table::Corrections => (
            "SELECT id, created_at, author_id, author_name, channel, guild, message_id,
                    corrected_message_id, original, correction, question, scope FROM corrections",
            &["corrected_message_id", "original", "correction"],
        ),
        Table::Feedback => {
            ("SELECT id, created_at, author_id, author_name, channel, guild, message_id, text FROM feedback", &["text"])
        }
    };
    let mut stmt = conn.prepare(&format!("{columns} {tail} LIMIT ?2"))?;
    let mut rows = stmt.query(params![before, limit])?;

    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut line = json!({
            "id": row.get::<_, i64>(0)?,
            "created_at": row.get::<_, String>(1)?,
            "author_id": row.get::<_, String>(2)?,
            "author_name": row.get::<_, String>(3)?,
            "channel": row.get::<_, String>(4)?,
            "guild": row.get::<_, Option<String>>(5)?,
            "message_id": row.get::<_, String>(6)?,
        });
        for (i, name) in extra.iter().enumerate() {
            line[*name] = json!(row.get::<_, String>(7 + i)?);
        }
        if table == Table::Corrections {
            line["question"] = json!(row.get::<_, Option<String>>(10)?);
            line["scope"] = json!(row.get::<_, String>(11)?);
        }
        out.push(line);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The review's finding: the database was created world-readable.
    #[cfg(unix)]
    #[test]
    fn the_database_is_readable_by_the_bot_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sandbot.db");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _store = SqliteStore::open(&path).unwrap();
        for file in [path.clone(), dir.path().join("sandbot.db-wal")] {
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{} mode {mode:o}", file.display());
        }
    }

    /// Issue 16: two shards started at the same moment on one data folder,
    /// and one died with "database is locked". Many openers at once, on a
    /// new file and on one made by an older version, all start.
    #[test]
    fn processes_starting_together_all_open_the_database() {
        for older in [false, true] {
            for _ in 0..20 {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("sandbot.db");
                if older {
                    // Before scopes: no `scope` columns, the old datasets table.
                    let conn = Connection::open(&path).unwrap();
                    conn.execute_batch(
                        "CREATE TABLE corrections (id INTEGER PRIMARY KEY, author_id TEXT NOT NULL,
                             author_name TEXT NOT NULL, channel TEXT NOT NULL, guild TEXT,
                             message_id TEXT NOT NULL, corrected_message_id TEXT NOT NULL,
                             original TEXT NOT NULL, correction TEXT NOT NULL);
                         CREATE TABLE datasets (name TEXT NOT NULL, position INTEGER NOT NULL,
                             input TEXT NOT NULL, output TEXT NOT NULL, label TEXT);
                         INSERT INTO datasets VALUES ('rules', 0, 'q', 'a', NULL);",
                    )
                    .unwrap();
                }
                let openers = 6;
                let start = std::sync::Barrier::new(openers);
                let opened: Vec<Result<SqliteStore, StoreError>> = std::thread::scope(|scope| {
                    let handles: Vec<_> = (0..openers)
                        .map(|_| {
                            scope.spawn(|| {
                                start.wait();
                                SqliteStore::open(&path)
                            })
                        })
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap()).collect()
                });
                for result in &opened {
                    assert!(result.is_ok(), "{:?}", result.as_ref().err());
                }
                let conn = Connection::open(&path).unwrap();
                let copied: i64 = conn.query_row("SELECT COUNT(*) FROM scoped_datasets", [], |row| row.get(0)).unwrap();
                assert_eq!(copied, i64::from(older), "the old datasets are copied once");
            }
        }
    }

    #[tokio::test]
    async fn the_store_suite_passes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        super::super::suite::run(&SqliteStore::open(&path).unwrap()).await;
        // A second process opening the same file sees everything.
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.export(Table::Corrections).await.unwrap().len(), 2);
        let dump = store.dump().await.unwrap();
        assert_eq!(dump.store_id.len(), 32);
        assert_eq!((dump.corrections.len(), dump.feedback.len(), dump.answers.len()), (2, 1, 3));
        assert_eq!(dump.jobs.iter().map(|j| j.examples.len()).sum::<usize>(), 3);
        assert_eq!((dump.datasets.len(), dump.vectors.len()), (4, 2));
        // The store id is the database's, not the opening's.
        drop(store);
        assert_eq!(SqliteStore::open(&path).unwrap().dump().await.unwrap().store_id, dump.store_id);
    }

    fn example(input: &str) -> Example {
        Example { input: input.into(), output: format!("{input}!"), label: None }
    }

    /// A database from before scopes: its teaching stays everyone's.
    #[tokio::test]
    async fn an_older_database_keeps_its_teaching_global() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE datasets (name TEXT NOT NULL, position INTEGER NOT NULL, input TEXT NOT NULL,
                     output TEXT NOT NULL, label TEXT, PRIMARY KEY (name, position));
                 INSERT INTO datasets VALUES ('faq', 0, 'one', 'one!', NULL);
                 CREATE TABLE corrections (id INTEGER PRIMARY KEY, created_at TEXT NOT NULL DEFAULT '',
                     author_id TEXT NOT NULL, author_name TEXT NOT NULL, channel TEXT NOT NULL, guild TEXT,
                     message_id TEXT NOT NULL, corrected_message_id TEXT NOT NULL, question TEXT,
                     original TEXT NOT NULL, correction TEXT NOT NULL);
                 INSERT INTO corrections (author_id, author_name, channel, guild, message_id,
                     corrected_message_id, question, original, correction)
                     VALUES ('7', 'ann', 'c', 'g', '1', '2', 'q?', 'old', 'new');",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.dataset(&Scope::server("9"), "faq").await.unwrap(), Some(vec![example("one")]));
        assert_eq!(
            store.taught_corrections().await.unwrap(),
            vec![(Scope::global(), "q?".to_string(), "new".to_string())]
        );
        drop(store);
        // Opening it again changes nothing more.
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.dataset(&Scope::global(), "faq").await.unwrap(), Some(vec![example("one")]));
    }
}
