//! `model`: answers, training jobs, predictions and datasets, through the
//! configured [`ModelProvider`](crate::services::model::ModelProvider).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use wasmtime::component::Resource;

use crate::bindings::model;
use crate::config::HostFn;
use crate::host::{GuestCtx, HostError};
use crate::services::model::{Asked, Example, JobRecord, ModelError, ModelProvider};

/// A streamed answer's pieces come at most this often: Discord allows
/// about five edits in five seconds per channel, shared with everyone.
pub const PIECE_EVERY: Duration = Duration::from_secs(1);

/// Most examples one call may pass (train or save-dataset).
const MAX_EXAMPLES: usize = 100_000;
/// Longest prompt or input, in characters.
const MAX_PROMPT_CHARS: usize = 8000;

impl From<ModelError> for HostError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::Invalid(why) => HostError::Invalid(why),
            ModelError::NoSuchJob(_) => HostError::NotFound(e.to_string()),
            ModelError::Unavailable(why) => HostError::Unavailable(why),
            ModelError::Store(e) => e.into(),
            ModelError::Failed(why) => {
                tracing::warn!(error = %why, "model failed");
                HostError::Failed("the model failed".into())
            }
        }
    }
}

fn wit_job(job: JobRecord) -> model::Job {
    model::Job { id: job.id, status: job.status, detail: job.detail, examples: job.examples }
}

fn examples(list: Vec<model::Example>) -> Result<Vec<Example>, HostError> {
    if list.len() > MAX_EXAMPLES {
        return Err(HostError::TooLarge(format!("at most {MAX_EXAMPLES} examples at a time")));
    }
    Ok(list.into_iter().map(|e| Example { input: e.input, output: e.output, label: e.label }).collect())
}

fn prompt_fits(prompt: &str) -> Result<(), HostError> {
    if prompt.chars().count() > MAX_PROMPT_CHARS {
        return Err(HostError::TooLarge(format!("the message is over {MAX_PROMPT_CHARS} characters")));
    }
    Ok(())
}

fn dataset_name(name: &str) -> Result<&str, HostError> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.');
    ok.then_some(name).ok_or_else(|| HostError::Invalid(format!("`{name}` is not a dataset name")))
}

impl GuestCtx {
    fn model(&self) -> Result<Arc<dyn ModelProvider>, HostError> {
        self.services.model.clone().ok_or_else(|| HostError::Unavailable("no model is configured".into()))
    }
}

/// An answer being written (`stream-model`): the provider writes into
/// `progress` on a task of its own; `next` hands the guest paced pieces.
pub struct AnswerStream {
    progress: watch::Receiver<String>,
    /// `None` once the complete answer was read.
    task: Option<JoinHandle<Result<String, ModelError>>>,
    /// The last piece handed out, and when.
    given: Option<(String, Instant)>,
}

impl Drop for AnswerStream {
    /// A guest that stops reading stops the writing (at its next await).
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl AnswerStream {
    /// The next piece: the text so far when it grew and `PIECE_EVERY`
    /// passed since the last piece (the first at once), or the complete
    /// answer when it is done and differs from the last piece.
    async fn next_piece(&mut self) -> Result<Option<String>, HostError> {
        let Some(task) = self.task.as_mut() else { return Ok(None) };
        let mut writing = true;
        loop {
            let so_far = self.progress.borrow_and_update().clone();
            let grew = !so_far.is_empty() && self.given.as_ref().is_none_or(|(given, _)| *given != so_far);
            let due = self.given.as_ref().map(|(_, at)| *at + PIECE_EVERY);
            if grew && due.is_none_or(|due| Instant::now() >= due) {
                self.given = Some((so_far.clone(), Instant::now()));
                return Ok(Some(so_far));
            }
            tokio::select! {
                done = &mut *task => {
                    self.task = None;
                    let answer = done.map_err(|e| HostError::Failed(format!("the answer stopped: {e}")))??;
                    let repeated = self.given.as_ref().is_some_and(|(given, _)| *given == answer);
                    return Ok((!repeated).then_some(answer));
                }
                changed = self.progress.changed(), if writing && !grew => writing = changed.is_ok(),
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if grew => {}
            }
        }
    }
}

impl model::HostAnswer for GuestCtx {
    async fn next(&mut self, answer: Resource<AnswerStream>) -> Result<Option<String>, HostError> {
        let stream = self
            .answers
            .get_mut(&answer)
            .map_err(|e| HostError::Trap(wasmtime::Error::msg(format!("no such answer: {e}"))))?;
        stream.next_piece().await
    }

    async fn drop(&mut self, answer: Resource<AnswerStream>) -> wasmtime::Result<()> {
        self.answers.delete(answer)?;
        self.answers_open -= 1;
        Ok(())
    }
}

/// Answers written at once by one invocation: each runs the model.
const MAX_OPEN_ANSWERS: usize = 1;

impl model::Host for GuestCtx {
    async fn stream_model(&mut self, prompt: String) -> Result<Resource<AnswerStream>, HostError> {
        self.check(HostFn::ModelCallModel)?;
        prompt_fits(&prompt)?;
        if self.answers_open >= MAX_OPEN_ANSWERS {
            return Err(HostError::Unavailable("an answer is already being written; drop it first".into()));
        }
        let model = self.model()?;
        let (progress, written) = watch::channel(String::new());
        let (scope, channel, question) = (self.scope(), self.message.channel.clone(), prompt.clone());
        let task = tokio::spawn(async move {
            let asked = Asked { scope: &scope, channel: &channel };
            crate::telemetry::model_call("answer", model.answer_streamed(asked, &question, progress)).await
        });
        self.pending_answer = Some(prompt);
        let stream = AnswerStream { progress: written, task: Some(task), given: None };
        let handle = self.answers.push(stream).map_err(|e| HostError::Trap(wasmtime::Error::msg(e.to_string())))?;
        self.answers_open += 1;
        Ok(handle)
    }

    async fn call_model(&mut self, prompt: String) -> Result<String, HostError> {
        self.check(HostFn::ModelCallModel)?;
        prompt_fits(&prompt)?;
        let scope = self.scope();
        let asked = Asked { scope: &scope, channel: &self.message.channel };
        let answer = crate::telemetry::model_call("answer", self.model()?.answer(asked, &prompt)).await?;
        // Remembered so that the message carrying the answer can later be
        // corrected against this question.
        self.pending_answer = Some(prompt);
        Ok(answer)
    }

    async fn train(&mut self, list: Vec<model::Example>) -> Result<model::Job, HostError> {
        self.check(HostFn::ModelTrain)?;
        let scope = self.scope();
        let job = self.model()?.train(&scope, examples(list)?).await?;
        tracing::info!(command = %self.command.name, job = %job.id, examples = job.examples, %scope, "training job started");
        self.started_jobs.push(job.id.clone());
        Ok(wit_job(job))
    }

    async fn job_status(&mut self, id: String) -> Result<model::Job, HostError> {
        self.check(HostFn::ModelJobStatus)?;
        Ok(wit_job(self.model()?.job(id.trim()).await?))
    }

    async fn predict(&mut self, input: String) -> Result<String, HostError> {
        self.check(HostFn::ModelPredict)?;
        if input.chars().count() > MAX_PROMPT_CHARS {
            return Err(HostError::TooLarge(format!("an input is over {MAX_PROMPT_CHARS} characters")));
        }
        let scope = self.scope();
        Ok(crate::telemetry::model_call("predict", self.model()?.predict(&scope, &input)).await?)
    }

    async fn save_dataset(&mut self, name: String, list: Vec<model::Example>) -> Result<u32, HostError> {
        self.check(HostFn::ModelSaveDataset)?;
        let name = dataset_name(&name)?;
        let list = examples(list)?;
        let count = list.len() as u32;
        let scope = self.scope();
        self.services.store.save_dataset(&scope, name, list).await?;
        tracing::info!(command = %self.command.name, dataset = name, examples = count, %scope, "dataset saved");
        Ok(count)
    }

    async fn load_dataset(&mut self, name: String) -> Result<Vec<model::Example>, HostError> {
        self.check(HostFn::ModelLoadDataset)?;
        let name = dataset_name(&name)?;
        let list = self
            .services
            .store
            .dataset(&self.scope(), name)
            .await?
            .ok_or_else(|| HostError::NotFound(format!("no dataset `{name}`")))?;
        Ok(list.into_iter().map(|e| model::Example { input: e.input, output: e.output, label: e.label }).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream over a task that writes `steps` sentences 100 ms apart
    /// after a first one, then ends with `end`.
    fn writing(steps: usize, end: &'static str) -> AnswerStream {
        let (progress, written) = watch::channel(String::new());
        let task = tokio::spawn(async move {
            let mut text = "First sentence.".to_string();
            progress.send_replace(text.clone());
            for i in 0..steps {
                tokio::time::sleep(Duration::from_millis(100)).await;
                text.push_str(&format!(" More {i}."));
                progress.send_replace(text.clone());
            }
            Ok(format!("{text}{end}"))
        });
        AnswerStream { progress: written, task: Some(task), given: None }
    }

    #[tokio::test]
    async fn pieces_come_at_once_then_paced_then_the_complete_answer() {
        let mut stream = writing(25, " The end.");
        let mut pieces = Vec::new();
        while let Some(piece) = stream.next_piece().await.unwrap() {
            pieces.push((Instant::now(), piece));
        }
        assert!(stream.next_piece().await.unwrap().is_none());
        assert!(pieces.len() >= 3, "{pieces:?}");
        assert!(pieces[0].1.starts_with("First sentence."), "{pieces:?}");
        let (_, last) = pieces.last().unwrap();
        assert!(last.starts_with("First sentence. More 0.") && last.ends_with("More 24. The end."), "{last}");
        for pair in pieces.windows(2) {
            assert!(pair[1].1.starts_with(&pair[0].1), "{pieces:?}");
        }
        // Every piece but the complete answer waits its turn.
        for pair in pieces[..pieces.len() - 1].windows(2) {
            assert!(pair[1].0 - pair[0].0 >= PIECE_EVERY, "{pieces:?}");
        }
    }

    #[tokio::test]
    async fn the_complete_answer_is_not_given_twice() {
        let mut stream = writing(0, "");
        let first = stream.next_piece().await.unwrap();
        assert_eq!(first.as_deref(), Some("First sentence."));
        assert_eq!(stream.next_piece().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_failed_answer_is_an_error() {
        let (_progress, written) = watch::channel(String::new());
        let task = tokio::spawn(async { Err(ModelError::Unavailable("no model".into())) });
        let mut stream = AnswerStream { progress: written, task: Some(task), given: None };
        assert!(matches!(stream.next_piece().await, Err(HostError::Unavailable(_))));
        assert_eq!(stream.next_piece().await.unwrap(), None);
    }
}
