//! The embedded model: works offline, with no key.
//!
//! Answers come from what it was taught ([`Knowledge`]: sentence
//! embeddings and BM25 over every trained example and correction) and,
//! for small talk and for taught facts near a question, from a small
//! local language model ([`super::llm`]) run as [`Answerer`] directs.
//!
//! Training a job stores its examples, embeds them in the background and
//! then rebuilds the index: `queued → running → succeeded`. Small jobs end
//! within the call; the host reports larger ones when they end.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{OnceCell, Semaphore};

use super::answer::{Answerer, Generation, Generator};
use super::knowledge::Knowledge;
use super::llm::{LlmSettings, LocalLlm};
use super::{new_job_id, Asked, Example, JobRecord, ModelError, ModelProvider, Progress, Scope};
use crate::config::AnswerSettings;
use crate::services::store::Store;
use crate::services::CancelOnDrop;

/// How long `train` waits for its job before answering "running".
const TRAIN_WAIT: Duration = Duration::from_secs(2);

pub struct EmbeddedModel {
    store: Arc<dyn Store>,
    knowledge: Arc<Knowledge>,
    answerer: Answerer,
}

/// Answers that may wait behind the one being written before more are
/// refused as busy. They wait on the async side, so the blocking pool
/// (shared with the database, file reads and Whisper) holds at most one
/// answer being written.
pub const MAX_WAITING_ANSWERS: usize = 4;

/// The language model, loaded on first use (half a second, ~100 MB).
pub struct LazyLlm {
    settings: LlmSettings,
    loaded: OnceCell<Result<Arc<LocalLlm>, String>>,
    /// The answer being written and those waiting.
    places: Arc<Semaphore>,
    /// The one being written.
    writing: Arc<Semaphore>,
}

impl LazyLlm {
    pub fn new(settings: LlmSettings) -> LazyLlm {
        if !settings.path.is_file() {
            tracing::warn!(
                path = %settings.path.display(),
                "the local language model's weights are missing; `make build` (scripts/setup.sh) fetches them"
            );
        }
        LazyLlm {
            settings,
            loaded: OnceCell::new(),
            places: Arc::new(Semaphore::new(MAX_WAITING_ANSWERS + 1)),
            writing: Arc::new(Semaphore::new(1)),
        }
    }

    /// Runs `write` on the blocking pool once it is this answer's turn, or
    /// says the model is busy. A caller that stops waiting leaves the
    /// queue, or stops the writing at the next token.
    async fn in_turn<T: Send + 'static>(
        &self,
        write: impl FnOnce(Arc<LocalLlm>, &AtomicBool) -> Result<T, ModelError> + Send + 'static,
    ) -> Result<T, ModelError> {
        let place = self.places.clone().try_acquire_owned().map_err(|_| {
            ModelError::Unavailable(format!(
                "{MAX_WAITING_ANSWERS} answers are already waiting to be written; try again soon"
            ))
        })?;
        let llm = self.get().await?;
        let turn = self.writing.clone().acquire_owned().await.map_err(|e| ModelError::Failed(e.to_string()))?;
        let cancel = CancelOnDrop::new();
        let flag = cancel.flag();
        let result = tokio::task::spawn_blocking(move || {
            // Held by the work itself: a caller that gives up does not let
            // the next answer start before this one has stopped.
            let _place = place;
            let _turn = turn;
            write(llm, &flag)
        })
        .await
        .map_err(|e| ModelError::Failed(e.to_string()))?;
        drop(cancel);
        result
    }

    async fn get(&self) -> Result<Arc<LocalLlm>, ModelError> {
        self.loaded
            .get_or_init(|| async {
                let settings = self.settings.clone();
                let loaded = tokio::task::spawn_blocking(move || LocalLlm::load(settings))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
                match &loaded {
                    Ok(llm) => tracing::info!(path = %llm.path().display(), "local language model loaded"),
                    Err(e) => tracing::warn!(error = %e, "no local language model: the bot answers from what it was taught only"),
                }
                loaded.map(Arc::new)
            })
            .await
            .clone()
            .map_err(ModelError::Unavailable)
    }
}

#[async_trait]
impl Generator for LazyLlm {
    async fn generate(&self, request: Generation) -> Result<String, ModelError> {
        self.in_turn(move |llm, cancel| llm.generate_until(&request.system, &request.turns, &request.question, cancel))
            .await
    }

    async fn generate_streamed(&self, request: Generation, partial: Progress) -> Result<String, ModelError> {
        self.in_turn(move |llm, cancel| {
            llm.generate_with(&request.system, &request.turns, &request.question, cancel, &mut |text| {
                partial.send_replace(text.to_string());
            })
        })
        .await
    }
}

impl EmbeddedModel {
    /// Loads what was taught from the store, and finishes jobs a restart
    /// interrupted.
    pub async fn open(
        store: Arc<dyn Store>,
        answers: &AnswerSettings,
        llm: Option<LlmSettings>,
    ) -> Result<EmbeddedModel, ModelError> {
        let knowledge = Arc::new(Knowledge::open(store.clone(), answers.embeddings.as_deref(), answers.scoring).await?);
        knowledge.follow();
        // A job of this process that a restart cut short. On a shared store
        // (`changes`) another process may be running it: left alone.
        let alone = store.changes().is_none();
        for job in store.unfinished_jobs().await?.into_iter().filter(|j| alone && j.provider == "embedded") {
            let detail = format!("learned {} examples; the model now knows {} answers", job.examples, knowledge.len());
            store.update_job(&job.id, "succeeded", Some(detail)).await?;
        }
        let generator = llm.map(|settings| Arc::new(LazyLlm::new(settings)) as Arc<dyn Generator>);
        let answerer = Answerer::new(
            knowledge.clone(),
            generator,
            answers.system_prompt.clone(),
            answers.context_turns,
            answers.unknown,
        );
        Ok(EmbeddedModel { store, knowledge, answerer })
    }

    pub fn knowledge(&self) -> &Arc<Knowledge> {
        &self.knowledge
    }
}

/// Stores a retrieval training job, learns its examples in the background,
/// and waits a moment for it: the job as it stands then.
pub async fn train_retrieval(
    store: &Arc<dyn Store>,
    knowledge: &Arc<Knowledge>,
    provider: &str,
    scope: &Scope,
    examples: Vec<Example>,
    done: impl FnOnce(u32, usize) -> String + Send + 'static,
) -> Result<JobRecord, ModelError> {
    let examples: Vec<Example> =
        examples.into_iter().filter(|e| !e.input.trim().is_empty() && !e.output.trim().is_empty()).collect();
    if examples.is_empty() {
        return Err(ModelError::Invalid("there are no examples to train on".into()));
    }
    let id = new_job_id();
    let count = examples.len() as u32;
    let job = JobRecord {
        id: id.clone(),
        provider: provider.into(),
        status: "running".into(),
        detail: None,
        examples: count,
    };
    store.create_job(job, scope, examples.clone()).await?;
    let task = {
        let (store, knowledge, id, scope) = (store.clone(), knowledge.clone(), id.clone(), scope.clone());
        tokio::spawn(async move {
            let outcome = match knowledge.prepare(&examples).await {
                Ok(()) => knowledge.rebuild(&scope).await,
                Err(e) => Err(e),
            };
            let (status, detail) = match outcome {
                Ok(size) => ("succeeded", done(count, size)),
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "training failed");
                    ("failed", e.to_string())
                }
            };
            if let Err(e) = store.update_job(&id, status, Some(detail)).await {
                tracing::warn!(job = %id, error = %e, "could not record the job's end");
            }
        })
    };
    // A small job ends here; a large one is reported when it ends.
    let _ = tokio::time::timeout(TRAIN_WAIT, task).await;
    store.job(&id).await?.ok_or_else(|| ModelError::NoSuchJob(id))
}

#[async_trait]
impl ModelProvider for EmbeddedModel {
    async fn answer(&self, asked: Asked<'_>, prompt: &str) -> Result<String, ModelError> {
        let (answer, source) = self.answerer.answer(asked, prompt, None).await?;
        tracing::info!(?source, "answered");
        Ok(answer)
    }

    async fn answer_streamed(&self, asked: Asked<'_>, prompt: &str, progress: Progress) -> Result<String, ModelError> {
        let (answer, source) = self.answerer.answer(asked, prompt, Some(progress)).await?;
        tracing::info!(?source, "answered");
        Ok(answer)
    }

    async fn predict(&self, scope: &Scope, input: &str) -> Result<String, ModelError> {
        self.answerer.predict(scope, input).await
    }

    async fn train(&self, scope: &Scope, examples: Vec<Example>) -> Result<JobRecord, ModelError> {
        train_retrieval(&self.store, &self.knowledge, "embedded", scope, examples, |count, size| {
            format!("learned {count} examples; the model now knows {size} answers")
        })
        .await
    }

    async fn job(&self, id: &str) -> Result<JobRecord, ModelError> {
        self.store.job(id).await?.ok_or_else(|| ModelError::NoSuchJob(id.to_string()))
    }

    async fn learn_correction(&self, scope: &Scope) -> Result<(), ModelError> {
        // The correction is already in the store; the index reads it there.
        self.knowledge.rebuild(scope).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn question() -> Generation {
        Generation {
            scope: Scope::global(),
            system: "You are a helpful assistant.".into(),
            turns: Vec::new(),
            question: "Hi!".into(),
        }
    }

    /// The review's finding: answers queued without a bound on the
    /// blocking pool, shared with the database and Whisper.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_past_the_queue_are_told_busy_and_those_who_leave_free_their_place() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
        assert!(path.is_file(), "{} is missing: run `make test`, which fetches it", path.display());
        let llm = Arc::new(LazyLlm::new(LlmSettings { path, max_tokens: 4 }));
        // Hold the turn, so that every answer waits.
        let turn = llm.writing.clone().acquire_owned().await.unwrap();
        let mut waiting: Vec<_> = (0..=MAX_WAITING_ANSWERS)
            .map(|_| {
                let llm = llm.clone();
                tokio::spawn(async move { llm.generate(question()).await })
            })
            .collect();
        while llm.places.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let refused = llm.generate(question()).await;
        assert!(matches!(&refused, Err(ModelError::Unavailable(why)) if why.contains("waiting")), "{refused:?}");

        for gave_up in &waiting[1..] {
            gave_up.abort();
        }
        while llm.places.available_permits() < MAX_WAITING_ANSWERS {
            tokio::task::yield_now().await;
        }
        drop(turn);
        let first = waiting.remove(0).await.unwrap();
        assert!(first.is_ok_and(|answer| !answer.is_empty()));
        assert_eq!(llm.places.available_permits(), MAX_WAITING_ANSWERS + 1);
    }
}
