//! The model behind `call-model`, `train`, `job-status` and `predict`: a
//! trait, so the embedded model and an OpenAI-compatible server are
//! interchangeable. Both answer through the same retrieval ([`knowledge`])
//! and the same rules ([`answer`]).

pub mod answer;
pub mod embedded;
pub mod embedder;
pub mod knowledge;
pub mod llm;
pub mod openai;
pub mod retrieval;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::services::store::StoreError;
pub use crate::services::store::{Example, JobRecord, Scope};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Nothing to train on, an empty prompt…: the user's input is at fault.
    #[error("{0}")]
    Invalid(String),
    #[error("no training job `{0}`")]
    NoSuchJob(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Failed(String),
}

/// Where an answer being written shows its text so far.
pub type Progress = tokio::sync::watch::Sender<String>;

/// Where a question is asked: whose teaching answers it ([`Scope`]), and
/// the channel whose earlier turns are its context.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub scope: &'a Scope,
    pub channel: &'a str,
}

#[async_trait]
pub trait ModelProvider: Send + Sync {
    /// An answer to a user's message.
    async fn answer(&self, asked: Asked<'_>, prompt: &str) -> Result<String, ModelError>;
    /// [`answer`](Self::answer), with the text so far in `progress` while
    /// it is written: whole sentences the answer rules allow. A provider
    /// that cannot stream shows nothing before the complete answer.
    async fn answer_streamed(&self, asked: Asked<'_>, prompt: &str, progress: Progress) -> Result<String, ModelError> {
        drop(progress);
        self.answer(asked, prompt).await
    }
    /// The model's output (an answer or a label) for one input, for `!test`.
    async fn predict(&self, scope: &Scope, input: &str) -> Result<String, ModelError>;
    /// Starts a training job on `examples`, teaching `scope`; returns it as
    /// stored.
    async fn train(&self, scope: &Scope, examples: Vec<Example>) -> Result<JobRecord, ModelError>;
    /// A training job, as it stands now.
    async fn job(&self, id: &str) -> Result<JobRecord, ModelError>;
    /// A correction of `scope` was stored: use it from now on.
    async fn learn_correction(&self, scope: &Scope) -> Result<(), ModelError>;
}

/// A short random-looking job id: `job-` and 12 hex digits from the clock
/// and a counter, unique within a database.
pub fn new_job_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mixed = nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("job-{:012x}", mixed & 0xffff_ffff_ffff)
}

/// The last few (question, answer) turns of each channel, as context for
/// a language model.
pub struct ChannelHistory {
    turns: Mutex<HashMap<String, VecDeque<(String, String)>>>,
    keep: usize,
}

impl ChannelHistory {
    pub fn new(keep: usize) -> Self {
        ChannelHistory { turns: Mutex::new(HashMap::new()), keep }
    }

    /// The channel's turns, oldest first.
    pub fn turns(&self, channel: &str) -> Vec<(String, String)> {
        let turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        turns.get(channel).map(|t| t.iter().cloned().collect()).unwrap_or_default()
    }

    pub fn push(&self, channel: &str, question: &str, answer: &str) {
        if self.keep == 0 {
            return;
        }
        let mut all = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        let turns = all.entry(channel.to_string()).or_default();
        turns.push_back((question.to_string(), answer.to_string()));
        while turns.len() > self.keep {
            turns.pop_front();
        }
    }
}
