//! Corrections and feedback: what users teach the bot, never to be lost.
//!
//! Behind a trait so a server database can later serve several bot
//! processes (Discord shards) at once; SQLite is the embedded default.

mod sqlite;

use std::io::Write;

use async_trait::async_trait;
use serde::Serialize;

pub use sqlite::SqliteStore;

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
    /// The bot's message being corrected.
    pub corrected_message_id: String,
    pub original: String,
    pub correction: String,
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
}
