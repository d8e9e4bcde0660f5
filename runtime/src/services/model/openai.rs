//! Any OpenAI-compatible server (OpenAI, vLLM, LocalAI, llama.cpp server,
//! Ollama): chat completions for answers, files + fine-tuning jobs for
//! training, and the fine-tuned model for answers once a job succeeded.
//!
//! Plain reqwest and small, lenient serde structs: servers differ in which
//! fields they send. Every request has a timeout; connection errors, 429
//! and 5xx are retried a few times with backoff. Corrections take effect
//! at once: the best-matching taught answer (the embedded retrieval index)
//! is given to the model as context, and every correction joins the next
//! training file.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use super::embedded::EmbeddedModel;
use super::{ChannelHistory, Example, JobRecord, ModelError, ModelProvider};
use crate::services::openai_http::OpenAiClient;
use crate::services::store::Store;

/// The largest JSON answer read.
const MAX_ANSWER_BYTES: u64 = 8 << 20;

/// What the operator configured.
#[derive(Clone, PartialEq)]
pub struct OpenAiSettings {
    /// `https://api.openai.com/v1`, or any compatible server's `/v1`.
    pub base_url: String,
    /// Sent as a bearer token; never shown to guests.
    pub api_key: Option<String>,
    /// Answers and predictions, until a fine-tuned model exists.
    pub model: String,
    /// The base model fine-tuning jobs start from.
    pub fine_tune_model: String,
    /// Answer with the newest fine-tuned model once a job succeeded.
    pub use_fine_tuned: bool,
    pub system_prompt: String,
    /// Earlier (question, answer) turns of the channel sent as context.
    pub context_turns: usize,
    pub timeout: Duration,
}

impl std::fmt::Debug for OpenAiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiSettings")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "…"))
            .field("model", &self.model)
            .field("fine_tune_model", &self.fine_tune_model)
            .field("use_fine_tuned", &self.use_fine_tuned)
            .field("context_turns", &self.context_turns)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

pub struct OpenAiModel {
    client: OpenAiClient,
    settings: OpenAiSettings,
    store: Arc<dyn Store>,
    /// What was taught (examples and corrections), for context.
    taught: EmbeddedModel,
    history: ChannelHistory,
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: Option<ChatMessage>,
    /// Some servers answer completions-style.
    text: Option<String>,
}

#[derive(Deserialize)]
struct ChatMessage {
    content: Option<String>,
}

#[derive(Deserialize)]
struct Created {
    id: String,
    status: Option<String>,
}

#[derive(Deserialize)]
struct RemoteJob {
    id: String,
    status: String,
    fine_tuned_model: Option<String>,
    error: Option<Value>,
}

impl OpenAiModel {
    pub async fn open(
        settings: OpenAiSettings,
        store: Arc<dyn Store>,
        min_similarity: f32,
    ) -> Result<Self, ModelError> {
        let client = OpenAiClient::new(&settings.base_url, settings.api_key.clone(), settings.timeout)
            .map_err(|e| ModelError::Failed(e.to_string()))?;
        let taught = EmbeddedModel::open(store.clone(), min_similarity, None, 0).await?;
        let history = ChannelHistory::new(settings.context_turns);
        Ok(OpenAiModel { client, settings, store, taught, history })
    }

    /// Sends a request (rebuilt for each attempt); the answer as JSON.
    async fn send(&self, build: impl Fn() -> reqwest::RequestBuilder) -> Result<Value, ModelError> {
        let body = self
            .client
            .send(build, MAX_ANSWER_BYTES)
            .await
            .map_err(|last| ModelError::Failed(format!("the model server failed: {last}")))?;
        serde_json::from_slice(&body).map_err(|e| ModelError::Failed(format!("the server's answer is not JSON: {e}")))
    }

    /// The model to answer with: the newest fine-tuned one, if allowed.
    async fn answering_model(&self) -> Result<String, ModelError> {
        if self.settings.use_fine_tuned {
            if let Some(model) = self.store.latest_fine_tuned_model().await? {
                return Ok(model);
            }
        }
        Ok(self.settings.model.clone())
    }

    async fn complete(&self, messages: Vec<Value>) -> Result<String, ModelError> {
        let model = self.answering_model().await?;
        let body = json!({ "model": model, "messages": messages });
        let value = self.send(|| self.client.http().post(self.client.url("chat/completions")).json(&body)).await?;
        let response: ChatResponse =
            serde_json::from_value(value).map_err(|e| ModelError::Failed(format!("unexpected chat answer: {e}")))?;
        let choice = response.choices.into_iter().next();
        let text = choice.and_then(|c| c.message.and_then(|m| m.content).or(c.text)).unwrap_or_default();
        if text.trim().is_empty() {
            return Err(ModelError::Failed("the model server sent an empty answer".into()));
        }
        Ok(text.trim().to_string())
    }

    /// System prompt, plus what was taught for this question, if anything.
    async fn system(&self, question: &str) -> Value {
        let mut system = self.settings.system_prompt.clone();
        if let Ok(known) = self.taught.answer("", question).await {
            if known != super::embedded::DONT_KNOW {
                system.push_str(&format!("\nKnown answer: {known}"));
            }
        }
        json!({ "role": "system", "content": system })
    }
}

#[async_trait]
impl ModelProvider for OpenAiModel {
    async fn answer(&self, channel: &str, prompt: &str) -> Result<String, ModelError> {
        let mut messages = vec![self.system(prompt).await];
        for (q, a) in self.history.turns(channel) {
            messages.push(json!({ "role": "user", "content": q }));
            messages.push(json!({ "role": "assistant", "content": a }));
        }
        messages.push(json!({ "role": "user", "content": prompt }));
        let answer = self.complete(messages).await?;
        self.history.push(channel, prompt, &answer);
        Ok(answer)
    }

    async fn predict(&self, input: &str) -> Result<String, ModelError> {
        let messages = vec![self.system(input).await, json!({ "role": "user", "content": input })];
        self.complete(messages).await
    }

    async fn train(&self, examples: Vec<Example>) -> Result<JobRecord, ModelError> {
        let mut lines = String::new();
        let corrections = self.store.taught_corrections().await?;
        let pairs = examples.iter().map(|e| (e.input.as_str(), e.output.as_str()));
        let pairs = pairs.chain(corrections.iter().map(|(q, c)| (q.as_str(), c.as_str())));
        let mut count = 0u32;
        for (input, output) in pairs.filter(|(i, o)| !i.trim().is_empty() && !o.trim().is_empty()) {
            let line = json!({ "messages": [
                { "role": "system", "content": self.settings.system_prompt },
                { "role": "user", "content": input },
                { "role": "assistant", "content": output },
            ]});
            lines.push_str(&line.to_string());
            lines.push('\n');
            count += 1;
        }
        if count == 0 {
            return Err(ModelError::Invalid("there are no examples to train on".into()));
        }
        let file = self
            .send(|| {
                let part = reqwest::multipart::Part::bytes(lines.clone().into_bytes())
                    .file_name("sandbot-training.jsonl")
                    .mime_str("application/jsonl")
                    .expect("a valid MIME type");
                let form = reqwest::multipart::Form::new().text("purpose", "fine-tune").part("file", part);
                self.client.http().post(self.client.url("files")).multipart(form)
            })
            .await?;
        let file: Created =
            serde_json::from_value(file).map_err(|e| ModelError::Failed(format!("file upload: {e}")))?;
        let body = json!({ "model": self.settings.fine_tune_model, "training_file": file.id });
        let job = self.send(|| self.client.http().post(self.client.url("fine_tuning/jobs")).json(&body)).await?;
        let job: Created = serde_json::from_value(job).map_err(|e| ModelError::Failed(format!("job: {e}")))?;
        let record = JobRecord {
            id: job.id,
            provider: "openai".into(),
            status: normalise_status(job.status.as_deref().unwrap_or("queued")).into(),
            detail: None,
            examples: count,
        };
        self.store.create_job(record.clone(), examples).await?;
        Ok(record)
    }

    async fn job(&self, id: &str) -> Result<JobRecord, ModelError> {
        let stored = self.store.job(id).await?.ok_or_else(|| ModelError::NoSuchJob(id.to_string()))?;
        if stored.is_finished() || stored.provider != "openai" {
            return Ok(stored);
        }
        let value = self.send(|| self.client.http().get(self.client.url(&format!("fine_tuning/jobs/{id}")))).await?;
        let remote: RemoteJob =
            serde_json::from_value(value).map_err(|e| ModelError::Failed(format!("job status: {e}")))?;
        let status = normalise_status(&remote.status);
        let detail = match (&remote.fine_tuned_model, &remote.error) {
            (Some(model), _) if status == "succeeded" => Some(format!("answers now come from {model}")),
            (_, Some(error)) if status == "failed" => {
                Some(error.get("message").and_then(Value::as_str).map_or_else(|| error.to_string(), str::to_string))
            }
            _ => None,
        };
        if status != stored.status || detail != stored.detail {
            self.store.update_job(&remote.id, status, detail.clone()).await?;
            if let Some(model) = remote.fine_tuned_model.filter(|_| status == "succeeded") {
                self.store.set_fine_tuned_model(&remote.id, &model).await?;
            }
        }
        Ok(JobRecord { status: status.to_string(), detail, ..stored })
    }

    async fn learn_correction(&self, question: &str, correction: &str) -> Result<(), ModelError> {
        self.taught.learn_correction(question, correction).await
    }
}

/// OpenAI's statuses, folded onto the five the bot reports.
fn normalise_status(status: &str) -> &'static str {
    match status {
        "validating_files" | "queued" | "pending" => "queued",
        "running" => "running",
        "succeeded" => "succeeded",
        "cancelled" => "cancelled",
        _ => "failed",
    }
}
