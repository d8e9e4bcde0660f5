//! `model`: answers, training jobs, predictions and datasets, through the
//! configured [`ModelProvider`](crate::services::model::ModelProvider).

use std::sync::Arc;

use crate::bindings::model;
use crate::config::HostFn;
use crate::host::{GuestCtx, HostError};
use crate::services::model::{Example, JobRecord, ModelError, ModelProvider};

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

impl model::Host for GuestCtx {
    async fn call_model(&mut self, prompt: String) -> Result<String, HostError> {
        self.check(HostFn::ModelCallModel)?;
        if prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(HostError::TooLarge(format!("the message is over {MAX_PROMPT_CHARS} characters")));
        }
        let answer = self.model()?.answer(&self.message.channel, &prompt).await?;
        // Remembered so that the message carrying the answer can later be
        // corrected against this question.
        self.pending_answer = Some(prompt);
        Ok(answer)
    }

    async fn train(&mut self, list: Vec<model::Example>) -> Result<model::Job, HostError> {
        self.check(HostFn::ModelTrain)?;
        let job = self.model()?.train(examples(list)?).await?;
        tracing::info!(command = %self.command.name, job = %job.id, examples = job.examples, "training job started");
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
        Ok(self.model()?.predict(&input).await?)
    }

    async fn save_dataset(&mut self, name: String, list: Vec<model::Example>) -> Result<u32, HostError> {
        self.check(HostFn::ModelSaveDataset)?;
        let name = dataset_name(&name)?;
        let list = examples(list)?;
        let count = list.len() as u32;
        self.services.store.save_dataset(name, list).await?;
        tracing::info!(command = %self.command.name, dataset = name, examples = count, "dataset saved");
        Ok(count)
    }

    async fn load_dataset(&mut self, name: String) -> Result<Vec<model::Example>, HostError> {
        self.check(HostFn::ModelLoadDataset)?;
        let name = dataset_name(&name)?;
        let list = self
            .services
            .store
            .dataset(name)
            .await?
            .ok_or_else(|| HostError::NotFound(format!("no dataset `{name}`")))?;
        Ok(list.into_iter().map(|e| model::Example { input: e.input, output: e.output, label: e.label }).collect())
    }
}
