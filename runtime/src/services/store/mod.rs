//! Corrections and feedback: what users teach the bot, never to be lost.
//!
//! Behind a trait so a server database can later serve several bot
//! processes (Discord shards) at once; SQLite is the embedded default.

mod sqlite;

use std::io::Write;

use async_trait::async_trait;
use serde::Serialize;

pub use sqlite::SqliteStore;

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
    #[error("database task: {0}")]
    Task(String),
    #[error("writing the export: {0}")]
    Export(#[from] std::io::Error),
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
    /// Writes every row of `table` as a JSON line, oldest first. Blocking.
    fn export(&self, table: Table, out: &mut dyn Write) -> Result<u64, StoreError>;

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
}
