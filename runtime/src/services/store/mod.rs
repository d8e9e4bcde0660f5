//! Corrections and feedback: what users teach the bot, never to be lost.
//!
//! Behind a trait: SQLite is the embedded default (one process, one
//! machine); PostgreSQL is the shared store of a fleet, whose processes
//! hear each other's teaching through [`Store::changes`].

mod postgres;
mod sqlite;
pub mod throwaway;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

pub use postgres::{is_postgres, Imported, PgStore};
pub use sqlite::{Dump, SqliteStore, StoredAnswer, StoredJob};

/// Whose teaching something is. A server's corrections, trained examples
/// and datasets are its own: they answer in that server only. A direct
/// conversation is a scope of its own too. The global set is what the
/// operators chose to share (`model.global_servers`: their own server,
/// the console): every scope sees it, under its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Scope(String);

impl Scope {
    pub fn global() -> Scope {
        Scope("global".into())
    }

    pub fn server(id: &str) -> Scope {
        Scope(format!("guild:{id}"))
    }

    /// A direct conversation with `user`.
    pub fn direct(user: &str) -> Scope {
        Scope(format!("user:{user}"))
    }

    /// As the store keeps it.
    pub fn stored(text: String) -> Scope {
        Scope(text)
    }

    pub fn is_global(&self) -> bool {
        self.0 == "global"
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who, where and when: filled in by the host from the invocation.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Provenance {
    pub author_id: String,
    pub author_name: String,
    pub channel: String,
    pub guild: Option<String>,
    /// The message that carried the command (`!correct …`, `!feedback …`).
    pub message_id: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Correction {
    #[serde(flatten)]
    pub from: Provenance,
    /// Where the correction teaches.
    pub scope: Scope,
    /// The bot's message being corrected.
    pub corrected_message_id: String,
    /// What the bot was answering, when the bot's message was a model
    /// answer: the model learns `question → correction`.
    pub question: Option<String>,
    pub original: String,
    pub correction: String,
}

/// One training example: an input and what the model should give back
/// (an answer, or a label for classification).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Example {
    pub input: String,
    pub output: String,
    pub label: Option<String>,
}

/// A training job, as stored: it survives restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: String,
    pub provider: String,
    /// queued | running | succeeded | failed | cancelled
    pub status: String,
    pub detail: Option<String>,
    pub examples: u32,
}

impl JobRecord {
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "cancelled")
    }
}

/// A sentence vector kept so a restart need not compute it again.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedVector {
    /// The sha256 of the text embedded.
    pub text: [u8; 32],
    pub vector: Vec<f32>,
}

impl CachedVector {
    /// A row as both backends keep it: the text's sha256 and the vector as
    /// little-endian `f32`s. `None` for a row of another shape (it is then
    /// embedded again).
    pub fn from_stored(text: &[u8], vector: &[u8]) -> Option<CachedVector> {
        let text = <[u8; 32]>::try_from(text).ok()?;
        let vector = vector
            .len()
            .is_multiple_of(4)
            .then(|| vector.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())?;
        Some(CachedVector { text, vector })
    }

    /// The vector as stored: little-endian `f32`s.
    pub fn stored_vector(&self) -> Vec<u8> {
        self.vector.iter().flat_map(|f| f.to_le_bytes()).collect()
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Feedback {
    #[serde(flatten)]
    pub from: Provenance,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("database: {0}")]
    Postgres(sqlx::Error),
    /// The database server cannot be reached now. A write that failed so
    /// was most likely not made (a commit cut off may still have landed).
    #[error("the database is unreachable: {0}")]
    Unavailable(String),
    /// The store's url cannot be used.
    #[error("the store url: {0}")]
    BadUrl(String),
    #[error("{0}")]
    NotFound(String),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database task: {0}")]
    Task(String),
    #[error("writing the export: {0}")]
    Export(#[from] std::io::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
                StoreError::Unavailable(e.to_string())
            }
            // The server shutting down or restarting (admin_shutdown,
            // crash_shutdown, cannot_connect_now).
            sqlx::Error::Database(ref db) if db.code().is_some_and(|code| code.starts_with("57P")) => {
                StoreError::Unavailable(e.to_string())
            }
            e => StoreError::Postgres(e),
        }
    }
}

/// Something taught changed in the shared store, perhaps in another
/// process: the retrieval index of that scope must be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A correction, or a training job's examples, of this scope.
    Taught(Scope),
    /// A command was deployed or rolled back (`sandbot deploy`).
    Commands,
    /// The connection that hears changes was lost and is back: any change
    /// may have been missed, so everything is read again.
    Everything,
}

/// A version of a command deployed to the whole fleet through the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    /// Grows with every deployment, of any command.
    pub id: i64,
    pub name: String,
    pub sha256: String,
    /// Its `[commands.<name>]` entry as TOML, without `wasm`.
    pub entry: String,
    pub deployed_by: String,
    /// UTC, to the second.
    pub deployed_at: String,
    pub rolled_back: bool,
}

/// Where the bot keeps its records: `[store] url`, else the SQLite file
/// in the data folder.
pub async fn open(url: Option<&str>, data_dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url {
        Some(url) => Arc::new(PgStore::connect(url).await?),
        None => {
            let path = data_dir.join("sandbot.db");
            Arc::new(
                tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                    .await
                    .map_err(|e| StoreError::Task(e.to_string()))??,
            )
        }
    })
}

/// Writes `rows` as JSON lines; returns how many.
pub fn write_lines(rows: &[serde_json::Value], out: &mut dyn Write) -> Result<u64, StoreError> {
    for row in rows {
        serde_json::to_writer(&mut *out, row).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
    }
    Ok(rows.len() as u64)
}

/// Which table `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Table {
    Corrections,
    Feedback,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Stores a correction, durably, before returning its id.
    async fn log_correction(&self, correction: Correction) -> Result<u64, StoreError>;
    /// Stores feedback, durably, before returning its id.
    async fn log_feedback(&self, feedback: Feedback) -> Result<u64, StoreError>;
    /// Every row of `table` as a JSON object, oldest first (the same
    /// fields from every backend; `created_at` in UTC, to the millisecond).
    async fn export(&self, table: Table) -> Result<Vec<serde_json::Value>, StoreError>;

    /// A page of `table`, newest first: up to `limit` rows whose ids are
    /// below `before` (from the newest when `None`); fields as `export`.
    async fn export_page(
        &self,
        table: Table,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<serde_json::Value>, StoreError>;

    /// The newest `limit` training jobs, newest first.
    async fn recent_jobs(&self, limit: u32) -> Result<Vec<JobRecord>, StoreError>;

    /// Remembers which question a model answer (a bot message) answered.
    async fn record_answer(
        &self,
        channel: &str,
        message_id: &str,
        question: &str,
        answer: &str,
    ) -> Result<(), StoreError>;
    /// The question the bot's message `message_id` answered, if it was a
    /// model answer.
    async fn question_for(&self, channel: &str, message_id: &str) -> Result<Option<String>, StoreError>;
    /// Every `(scope, question, correction)`, oldest first.
    async fn taught_corrections(&self) -> Result<Vec<(Scope, String, String)>, StoreError>;

    /// Stores a new job of `scope` with its examples, atomically.
    async fn create_job(&self, job: JobRecord, scope: &Scope, examples: Vec<Example>) -> Result<(), StoreError>;
    async fn update_job(&self, id: &str, status: &str, detail: Option<String>) -> Result<(), StoreError>;
    async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError>;
    /// Jobs not yet finished (to resume after a restart).
    async fn unfinished_jobs(&self) -> Result<Vec<JobRecord>, StoreError>;
    /// Remembers the model a fine-tuning job produced.
    async fn set_fine_tuned_model(&self, job_id: &str, model: &str) -> Result<(), StoreError>;
    /// The model of the newest job of `scope` or the global set that
    /// produced one.
    async fn latest_fine_tuned_model(&self, scope: &Scope) -> Result<Option<String>, StoreError>;
    /// The examples of every job that succeeded or is running, with their
    /// scope, oldest first.
    async fn trained_examples(&self) -> Result<Vec<(Scope, Example)>, StoreError>;

    /// Every vector cached for the embedding model `model`.
    async fn vectors(&self, model: &str) -> Result<Vec<CachedVector>, StoreError>;
    /// Caches vectors of `model` (replacing any for the same texts).
    async fn save_vectors(&self, model: &str, vectors: Vec<CachedVector>) -> Result<(), StoreError>;

    /// Replaces `scope`'s dataset `name`.
    async fn save_dataset(&self, scope: &Scope, name: &str, examples: Vec<Example>) -> Result<(), StoreError>;
    /// `scope`'s dataset `name`, else the global set's, if either exists.
    async fn dataset(&self, scope: &Scope, name: &str) -> Result<Option<Vec<Example>>, StoreError>;

    /// The deployment each deployed command runs now (its newest not
    /// rolled back), by name.
    async fn current_deployments(&self) -> Result<Vec<Deployment>, StoreError>;

    /// The component of deployment `id`.
    async fn deployed_wasm(&self, id: i64) -> Result<Vec<u8>, StoreError>;

    /// Stores a new version of `name`, current from now on, and tells
    /// every process that hears the store's changes (PostgreSQL's do; a
    /// SQLite store's process reloads itself).
    async fn deploy(&self, name: &str, wasm: &[u8], entry: &str, by: &str) -> Result<Deployment, StoreError>;

    /// Rolls `name`'s current deployment back, and tells every process;
    /// returns the one now current (`None`: the config's entry, if any,
    /// serves again). Err when `name` has no deployment to roll back.
    async fn rollback(&self, name: &str) -> Result<Option<Deployment>, StoreError>;

    /// Every deployment, oldest first.
    async fn deployments(&self) -> Result<Vec<Deployment>, StoreError>;

    /// Books the next turn of `queue`, whose turns are at least `spacing`
    /// apart for every process sharing this store; returns how long to wait
    /// for it. Turns are booked in the order asked and nothing is held
    /// while waiting, so a process that dies before its turn only leaves a
    /// gap. (Discord's identify budget: one IDENTIFY per bucket per 5 s.)
    async fn take_turn(&self, queue: &str, spacing: std::time::Duration) -> Result<std::time::Duration, StoreError>;

    /// Answers when the database is reachable (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Changes made by other processes sharing this store, for a store
    /// that can be shared and tell (`None`: this process is the only
    /// writer).
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }
}

#[cfg(test)]
pub(crate) mod suite;
