//! Any OpenAI-compatible server (OpenAI, vLLM, LocalAI, llama.cpp server,
//! Ollama) as the language model, behind the same retrieval as the
//! embedded model: a taught answer that matches is the answer, taught
//! facts near a question are the server's only context, and nothing is
//! invented when nothing was taught ([`Answerer`]).
//!
//! `!train` always teaches retrieval. With `fine_tune` on, the examples
//! (and every correction) also go to the server's files + fine-tuning
//! endpoints, and the fine-tuned model answers once its job succeeded; a
//! server without those endpoints is told apart and said so plainly.
//!
//! Plain reqwest and small, lenient serde structs: servers differ in which
//! fields they send. Every request has a timeout; connection errors, 429
//! and 5xx are retried a few times with backoff.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use super::answer::{Answerer, Generation, Generator};
use super::embedded::train_retrieval;
use super::knowledge::Knowledge;
use super::{Asked, Example, JobRecord, ModelError, ModelProvider, Progress, Scope};
use crate::config::AnswerSettings;
use crate::services::openai_http::{OpenAiClient, RemoteError};
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
    /// Answers, until a fine-tuned model exists.
    pub model: String,
    /// Start a fine-tuning job on the server for every `!train`.
    pub fine_tune: bool,
    /// The base model fine-tuning jobs start from.
    pub fine_tune_model: String,
    /// Answer with the newest fine-tuned model once a job succeeded.
    pub use_fine_tuned: bool,
    pub timeout: Duration,
}

impl std::fmt::Debug for OpenAiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiSettings")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "…"))
            .field("model", &self.model)
            .field("fine_tune", &self.fine_tune)
            .field("fine_tune_model", &self.fine_tune_model)
            .field("use_fine_tuned", &self.use_fine_tuned)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

pub struct OpenAiModel {
    server: Arc<Server>,
    store: Arc<dyn Store>,
    knowledge: Arc<Knowledge>,
    answerer: Answerer,
    system_prompt: String,
}

/// The server: chat completions, files and fine-tuning jobs.
struct Server {
    client: OpenAiClient,
    settings: OpenAiSettings,
    store: Arc<dyn Store>,
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
        answers: &AnswerSettings,
        store: Arc<dyn Store>,
    ) -> Result<Self, ModelError> {
        let client = OpenAiClient::new(&settings.base_url, settings.api_key.clone(), settings.timeout)
            .map_err(|e| ModelError::Failed(e.to_string()))?;
        let knowledge = Arc::new(Knowledge::open(store.clone(), answers.embeddings.as_deref(), answers.scoring).await?);
        knowledge.follow();
        let server = Arc::new(Server { client, settings, store: store.clone() });
        let answerer = Answerer::new(
            knowledge.clone(),
            Some(server.clone() as Arc<dyn Generator>),
            answers.system_prompt.clone(),
            answers.context_turns,
            answers.unknown,
        );
        Ok(OpenAiModel { server, store, knowledge, answerer, system_prompt: answers.system_prompt.clone() })
    }

    /// Starts a fine-tuning job on `examples` and the corrections `scope`
    /// sees; the job as stored (without examples: retrieval holds those).
    async fn fine_tune(&self, scope: &Scope, examples: &[Example]) -> Result<JobRecord, RemoteError> {
        let server = &self.server;
        let mut lines = String::new();
        let corrections = self.store.taught_corrections().await.map_err(|e| RemoteError::local(e.to_string()))?;
        let seen = corrections.iter().filter(|(of, _, _)| of == scope || of.is_global());
        let pairs = examples.iter().map(|e| (e.input.as_str(), e.output.as_str()));
        let pairs = pairs.chain(seen.map(|(_, q, c)| (q.as_str(), c.as_str())));
        let mut count = 0u32;
        for (input, output) in pairs.filter(|(i, o)| !i.trim().is_empty() && !o.trim().is_empty()) {
            let line = json!({ "messages": [
                { "role": "system", "content": self.system_prompt },
                { "role": "user", "content": input },
                { "role": "assistant", "content": output },
            ]});
            lines.push_str(&line.to_string());
            lines.push('\n');
            count += 1;
        }
        let file = server
            .send(|| {
                let part = reqwest::multipart::Part::bytes(lines.clone().into_bytes())
                    .file_name("sandbot-training.jsonl")
                    .mime_str("application/jsonl")
                    .expect("a valid MIME type");
                let form = reqwest::multipart::Form::new().text("purpose", "fine-tune").part("file", part);
                server.client.http().post(server.client.url("files")).multipart(form)
            })
            .await?;
        let file: Created = parse(file, "file upload")?;
        let body = json!({ "model": server.settings.fine_tune_model, "training_file": file.id });
        let job = server.send(|| server.client.http().post(server.client.url("fine_tuning/jobs")).json(&body)).await?;
        let job: Created = parse(job, "fine-tuning job")?;
        let record = JobRecord {
            id: job.id,
            provider: "openai".into(),
            status: normalise_status(job.status.as_deref().unwrap_or("queued")).into(),
            detail: None,
            examples: count,
        };
        self.store
            .create_job(record.clone(), scope, Vec::new())
            .await
            .map_err(|e| RemoteError::local(e.to_string()))?;
        Ok(record)
    }
}

impl Server {
    /// Sends a request (rebuilt for each attempt); the answer as JSON.
    async fn send(&self, build: impl Fn() -> reqwest::RequestBuilder) -> Result<Value, RemoteError> {
        let body = self.client.send(build, MAX_ANSWER_BYTES).await?;
        serde_json::from_slice(&body).map_err(|e| RemoteError::local(format!("the server's answer is not JSON: {e}")))
    }

    /// The model to answer with in `scope`: the newest fine-tuned one of
    /// the scope or the global set, if allowed.
    async fn answering_model(&self, scope: &Scope) -> Result<String, ModelError> {
        if self.settings.use_fine_tuned {
            if let Some(model) = self.store.latest_fine_tuned_model(scope).await? {
                return Ok(model);
            }
        }
        Ok(self.settings.model.clone())
    }
}

fn parse<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T, RemoteError> {
    serde_json::from_value(value).map_err(|e| RemoteError::local(format!("unexpected {what} answer: {e}")))
}

fn failed(e: RemoteError) -> ModelError {
    ModelError::Failed(format!("the model server failed: {e}"))
}

#[async_trait]
impl Generator for Server {
    async fn generate(&self, request: Generation) -> Result<String, ModelError> {
        let mut messages = vec![json!({ "role": "system", "content": request.system })];
        for (q, a) in &request.turns {
            messages.push(json!({ "role": "user", "content": q }));
            messages.push(json!({ "role": "assistant", "content": a }));
        }
        messages.push(json!({ "role": "user", "content": request.question }));
        let model = self.answering_model(&request.scope).await?;
        let body = json!({ "model": model, "messages": messages });
        let value = self
            .send(|| self.client.http().post(self.client.url("chat/completions")).json(&body))
            .await
            .map_err(failed)?;
        let response: ChatResponse = parse(value, "chat").map_err(failed)?;
        let choice = response.choices.into_iter().next();
        let text = choice.and_then(|c| c.message.and_then(|m| m.content).or(c.text)).unwrap_or_default();
        if text.trim().is_empty() {
            return Err(ModelError::Failed("the model server sent an empty answer".into()));
        }
        Ok(text.trim().to_string())
    }
}

#[async_trait]
impl ModelProvider for OpenAiModel {
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
        let fine_tuning = self.server.settings.fine_tune;
        let retrieval =
            train_retrieval(&self.store, &self.knowledge, "embedded", scope, examples.clone(), move |count, size| {
                let learned = format!("learned {count} examples for retrieval; the model now knows {size} answers");
                if fine_tuning {
                    learned
                } else {
                    format!("{learned} (fine-tuning is off)")
                }
            })
            .await?;
        if !fine_tuning {
            return Ok(retrieval);
        }
        match self.fine_tune(scope, &examples).await {
            Ok(job) => Ok(job),
            Err(e) => {
                let why = if e.is_missing_endpoint() {
                    "this server does not offer fine-tuning; the examples were learned for retrieval".to_string()
                } else {
                    format!("fine-tuning could not start ({e}); the examples were learned for retrieval")
                };
                tracing::warn!(error = %e, "fine-tuning did not start");
                let detail = Some(why);
                self.store.update_job(&retrieval.id, &retrieval.status, detail.clone()).await?;
                Ok(JobRecord { detail, ..retrieval })
            }
        }
    }

    async fn job(&self, id: &str) -> Result<JobRecord, ModelError> {
        let stored = self.store.job(id).await?.ok_or_else(|| ModelError::NoSuchJob(id.to_string()))?;
        if stored.is_finished() || stored.provider != "openai" {
            return Ok(stored);
        }
        let server = &self.server;
        let value = server
            .send(|| server.client.http().get(server.client.url(&format!("fine_tuning/jobs/{id}"))))
            .await
            .map_err(failed)?;
        let remote: RemoteJob = parse(value, "job status").map_err(failed)?;
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

    async fn learn_correction(&self, scope: &Scope) -> Result<(), ModelError> {
        self.knowledge.rebuild(scope).await.map(drop)
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
