//! The embedded model: works offline, with no key.
//!
//! It answers by retrieval: every trained example and every taught
//! correction is a document in a BM25 index (English stemming and stop
//! words). A question is answered with the output of the best match when
//! the match is close enough: the Dice coefficient of the two questions'
//! word sets (stemmed, stop words left out) must reach `min_similarity`. Corrections
//! outrank examples, and a later correction of the same question replaces
//! an earlier one. Below the threshold a small local language model
//! ([`super::llm`]) answers, with the channel's last turns as context; when
//! none is configured (or its weights are missing) the model says it does
//! not know yet.
//!
//! Training a job adds its examples and rebuilds the index: it finishes in
//! the time the call takes, so jobs go `queued → running → succeeded` at
//! once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bm25::{DefaultTokenizer, Document, Language, SearchEngine, SearchEngineBuilder, Tokenizer};

use tokio::sync::OnceCell;

use super::llm::{LlmSettings, LocalLlm};
use super::{new_job_id, ChannelHistory, Example, JobRecord, ModelError, ModelProvider};
use crate::services::store::Store;

/// What the model says when nothing it learned matches.
pub const DONT_KNOW: &str =
    "I don't know that yet. An operator can teach me with `!train`, and you can correct my answers with `!correct`.";

/// One thing the model can say, and the question that leads to it.
#[derive(Debug, Clone)]
struct Entry {
    question: String,
    output: String,
    /// Corrections outrank trained examples.
    correction: bool,
}

/// The search index over every entry; rebuilt whole when something is
/// learned (corpora here are thousands of lines, not millions).
struct Index {
    engine: SearchEngine<u32>,
    entries: Vec<Entry>,
    /// Each entry's question as a set of terms, for the similarity.
    terms: Vec<HashSet<String>>,
    tokenizer: DefaultTokenizer,
}

impl Index {
    fn build(examples: &[Example], corrections: &[(String, String)]) -> Index {
        // Later entries for the same question replace earlier ones; a
        // correction replaces an example.
        let mut by_question: HashMap<String, usize> = HashMap::new();
        let mut entries: Vec<Entry> = Vec::new();
        let taught = examples
            .iter()
            .map(|e| Entry { question: e.input.clone(), output: e.output.clone(), correction: false })
            .chain(corrections.iter().map(|(q, c)| Entry { question: q.clone(), output: c.clone(), correction: true }));
        for entry in taught {
            let key = normalise(&entry.question);
            if key.is_empty() || entry.output.trim().is_empty() {
                continue;
            }
            match by_question.get(&key) {
                Some(&at) if entries[at].correction && !entry.correction => {}
                Some(&at) => entries[at] = entry,
                None => {
                    by_question.insert(key, entries.len());
                    entries.push(entry);
                }
            }
        }
        let documents = entries.iter().enumerate().map(|(i, e)| Document::new(i as u32, e.question.clone()));
        let engine = SearchEngineBuilder::<u32>::with_documents(Language::English, documents).build();
        let tokenizer = DefaultTokenizer::new(Language::English);
        let terms = entries.iter().map(|e| tokenizer.tokenize(&e.question).into_iter().collect()).collect();
        Index { engine, entries, terms, tokenizer }
    }

    /// The best entry for `query` and how close it is (0..=1, roughly).
    fn best(&self, query: &str) -> Option<(&Entry, f32)> {
        let hits = self.engine.search(query, 5);
        let top = hits.first()?;
        let mut best = (top.document.id, top.score);
        // Among near-ties, prefer a correction.
        for hit in &hits[1..] {
            let entry = &self.entries[hit.document.id as usize];
            if entry.correction && hit.score >= top.score * 0.95 && !self.entries[best.0 as usize].correction {
                best = (hit.document.id, hit.score);
            }
        }
        let at = best.0 as usize;
        let query: HashSet<String> = self.tokenizer.tokenize(query).into_iter().collect();
        let question = &self.terms[at];
        let shared = query.intersection(question).count();
        let dice = 2.0 * shared as f32 / (query.len() + question.len()).max(1) as f32;
        Some((&self.entries[at], dice))
    }
}

fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

pub struct EmbeddedModel {
    store: Arc<dyn Store>,
    index: RwLock<Arc<Index>>,
    min_similarity: f32,
    llm: Option<LazyLlm>,
    /// Earlier turns of each channel, for the language model.
    history: ChannelHistory,
}

/// The language model, loaded on first use (half a second, ~100 MB).
struct LazyLlm {
    settings: LlmSettings,
    loaded: OnceCell<Result<Arc<LocalLlm>, String>>,
}

impl LazyLlm {
    async fn get(&self) -> Result<Arc<LocalLlm>, String> {
        self.loaded
            .get_or_init(|| async {
                let settings = self.settings.clone();
                let loaded = tokio::task::spawn_blocking(move || LocalLlm::load(settings))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
                match &loaded {
                    Ok(llm) => tracing::info!(path = %llm.path().display(), "local language model loaded"),
                    Err(e) => tracing::warn!(error = %e, "no local language model: unknown questions get a polite no"),
                }
                loaded.map(Arc::new)
            })
            .await
            .clone()
    }
}

impl EmbeddedModel {
    /// Loads every trained example and taught correction from the store,
    /// and finishes jobs a restart interrupted.
    pub async fn open(
        store: Arc<dyn Store>,
        min_similarity: f32,
        llm: Option<LlmSettings>,
        context_turns: usize,
    ) -> Result<EmbeddedModel, ModelError> {
        if let Some(settings) = &llm {
            if !settings.path.is_file() {
                tracing::warn!(
                    path = %settings.path.display(),
                    "the local language model's weights are missing; `make build` (scripts/setup.sh) fetches them"
                );
            }
        }
        for job in store.unfinished_jobs().await?.into_iter().filter(|j| j.provider == "embedded") {
            store.update_job(&job.id, "succeeded", Some(format!("learned {} examples", job.examples))).await?;
        }
        let model = EmbeddedModel {
            store,
            index: RwLock::new(Arc::new(Index::build(&[], &[]))),
            min_similarity,
            llm: llm.map(|settings| LazyLlm { settings, loaded: OnceCell::new() }),
            history: ChannelHistory::new(context_turns),
        };
        model.rebuild().await?;
        Ok(model)
    }

    async fn rebuild(&self) -> Result<usize, ModelError> {
        let examples = self.store.trained_examples().await?;
        let corrections = self.store.taught_corrections().await?;
        let index = tokio::task::spawn_blocking(move || Index::build(&examples, &corrections))
            .await
            .map_err(|e| ModelError::Failed(e.to_string()))?;
        let size = index.entries.len();
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(index);
        Ok(size)
    }

    fn index(&self) -> Arc<Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn lookup(&self, input: &str) -> Option<String> {
        let index = self.index();
        let (entry, similarity) = index.best(input)?;
        (similarity >= self.min_similarity).then(|| entry.output.clone())
    }
}

#[async_trait]
impl ModelProvider for EmbeddedModel {
    async fn answer(&self, channel: &str, prompt: &str) -> Result<String, ModelError> {
        if prompt.trim().is_empty() {
            return Err(ModelError::Invalid("the message is empty".into()));
        }
        if let Some(known) = self.lookup(prompt) {
            return Ok(known);
        }
        let Some(lazy) = &self.llm else { return Ok(DONT_KNOW.to_string()) };
        let Ok(llm) = lazy.get().await else { return Ok(DONT_KNOW.to_string()) };
        let turns = self.history.turns(channel);
        let question = prompt.to_string();
        let answer = tokio::task::spawn_blocking(move || llm.generate(&turns, &question))
            .await
            .map_err(|e| ModelError::Failed(e.to_string()))??;
        if answer.is_empty() {
            return Ok(DONT_KNOW.to_string());
        }
        self.history.push(channel, prompt, &answer);
        Ok(answer)
    }

    async fn predict(&self, input: &str) -> Result<String, ModelError> {
        // For a test, the nearest thing learned is the prediction, however
        // far: a classifier always picks a label.
        let index = self.index();
        Ok(index.best(input).map(|(entry, _)| entry.output.clone()).unwrap_or_default())
    }

    async fn train(&self, examples: Vec<Example>) -> Result<JobRecord, ModelError> {
        let examples: Vec<Example> =
            examples.into_iter().filter(|e| !e.input.trim().is_empty() && !e.output.trim().is_empty()).collect();
        if examples.is_empty() {
            return Err(ModelError::Invalid("there are no examples to train on".into()));
        }
        let id = new_job_id();
        let count = examples.len() as u32;
        let job = JobRecord {
            id: id.clone(),
            provider: "embedded".into(),
            status: "running".into(),
            detail: None,
            examples: count,
        };
        self.store.create_job(job, examples).await?;
        let outcome = self.rebuild().await;
        let (status, detail) = match &outcome {
            Ok(size) => ("succeeded", format!("learned {count} examples; the model now knows {size} answers")),
            Err(e) => ("failed", e.to_string()),
        };
        self.store.update_job(&id, status, Some(detail)).await?;
        outcome?;
        self.job(&id).await
    }

    async fn job(&self, id: &str) -> Result<JobRecord, ModelError> {
        self.store.job(id).await?.ok_or_else(|| ModelError::NoSuchJob(id.to_string()))
    }

    async fn learn_correction(&self, _question: &str, _correction: &str) -> Result<(), ModelError> {
        // The correction is already in the store; the index reads it there.
        self.rebuild().await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(input: &str, output: &str) -> Example {
        Example { input: input.into(), output: output.into(), label: None }
    }

    #[test]
    fn answers_close_questions_and_not_far_ones() {
        let index = Index::build(
            &[
                example("What is the capital of France?", "Paris"),
                example("How many legs does a spider have?", "Eight"),
            ],
            &[],
        );
        let (entry, similarity) = index.best("what's the capital of france").unwrap();
        assert_eq!(entry.output, "Paris");
        assert!(similarity > 0.5, "{similarity}");
        let far = index.best("capital gains tax rules").map_or(0.0, |(_, s)| s);
        assert!(far < 0.6, "{far}");
        // One word of two in common is not a match at the default 0.6.
        let other_country = index.best("What is the capital of Spain?").map_or(0.0, |(_, s)| s);
        assert!(other_country < 0.6, "{other_country}");
        assert!(index.best("zebra").is_none());
    }

    #[test]
    fn corrections_replace_examples() {
        let index = Index::build(
            &[example("What is the capital of Australia?", "Sydney")],
            &[("what is the capital of australia?".into(), "Canberra".into())],
        );
        assert_eq!(index.entries.len(), 1);
        assert_eq!(index.best("capital of Australia").unwrap().0.output, "Canberra");
    }
}
