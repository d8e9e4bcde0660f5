//! What the bot was taught, kept searchable: every trained example and
//! every correction from the store, their sentence vectors, and the
//! [`Index`] over them. Both model providers answer through it, so a
//! taught answer is the same answer whichever provider is configured.
//!
//! Each [`Scope`] (a server, a direct conversation, the global set) has an
//! index of its own. A question is searched in its scope's index and in
//! the global one, and a scope's answer to a question hides the global
//! answer to the same question: what one server teaches never answers in
//! another, and a change rebuilds only its scope's index.
//!
//! Vectors are cached in the store by the text's sha256 and the embedding
//! model's id: a restart, or a rebuild after one more correction, embeds
//! only texts it has not seen.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::embedder::Embedder;
use super::retrieval::{aliases, home_name, Entry, Hit, Index, Indexed, Scoring};
use super::{Example, ModelError, Scope};
use crate::services::store::{CachedVector, Change, Store};

/// Taught answers given to the language model when none is close enough.
const CONTEXT_FACTS: usize = 3;
/// Texts embedded per trip to the blocking pool, so a large job leaves
/// room for everyone else's queries.
const EMBED_CHUNK: usize = 256;

/// What the bot knows about a question.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A taught answer is the answer.
    Known { question: String, answer: String, score: f32 },
    /// Taught answers near the question, best first: context for the
    /// language model, which must answer from them or not at all.
    Near { facts: Vec<(String, String)>, score: f32 },
    /// Nothing relevant was taught; the nearest taught question, if any
    /// is near enough to be worth naming.
    Unknown { nearest: Option<String>, score: f32 },
}

/// A hit, with the index its entry is in.
#[derive(Clone)]
pub struct Found {
    pub index: Arc<Index>,
    pub hit: Hit,
}

impl Found {
    pub fn entry(&self) -> &Entry {
        &self.index.entries()[self.hit.entry]
    }
}

/// One scope's index, and its questions (normalised), which hide the
/// global set's answers to the same questions.
struct Taught {
    index: Arc<Index>,
    questions: HashSet<String>,
}

/// Greetings, thanks and the like: no facts asked, so the language model
/// may answer them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmallTalk {
    Greeting,
    Thanks,
    Farewell,
    HowAreYou,
    Other,
}

const SMALL_TALK: &[(SmallTalk, &str)] = &[
    (SmallTalk::Greeting, "hi"),
    (SmallTalk::Greeting, "hello"),
    (SmallTalk::Greeting, "hey there"),
    (SmallTalk::Greeting, "hi everyone"),
    (SmallTalk::Greeting, "good morning"),
    (SmallTalk::Greeting, "good evening everyone"),
    (SmallTalk::Greeting, "yo"),
    (SmallTalk::Thanks, "thanks"),
    (SmallTalk::Thanks, "thanks a lot"),
    (SmallTalk::Thanks, "thank you"),
    (SmallTalk::Thanks, "thank you so much"),
    (SmallTalk::Thanks, "thanks for the help"),
    (SmallTalk::Thanks, "thx"),
    (SmallTalk::Thanks, "ty"),
    (SmallTalk::Thanks, "cheers, that helped"),
    (SmallTalk::Thanks, "much appreciated"),
    (SmallTalk::Farewell, "bye"),
    (SmallTalk::Farewell, "goodbye, see you later"),
    (SmallTalk::Farewell, "see ya"),
    (SmallTalk::Farewell, "good night"),
    (SmallTalk::Farewell, "gotta go"),
    (SmallTalk::HowAreYou, "how are you?"),
    (SmallTalk::HowAreYou, "how's it going?"),
    (SmallTalk::HowAreYou, "what's up?"),
    (SmallTalk::HowAreYou, "how are you doing today?"),
    (SmallTalk::Other, "nice to meet you"),
    (SmallTalk::Other, "good bot"),
    (SmallTalk::Other, "you are awesome"),
    (SmallTalk::Other, "sorry about that"),
    (SmallTalk::Other, "lol that's funny"),
    (SmallTalk::Other, "haha"),
    (SmallTalk::Other, "ok cool"),
];
/// How close a message must be to one of the phrases above.
const SMALL_TALK_SIMILARITY: f32 = 0.72;
/// Small talk is short.
const SMALL_TALK_WORDS: usize = 8;

pub struct Knowledge {
    store: Arc<dyn Store>,
    /// `None` when the model's files are missing: words alone then.
    embedder: Option<Arc<Embedder>>,
    scoring: Scoring,
    /// Every scope's index; replaced whole, one scope at a time.
    taught: RwLock<Arc<HashMap<Scope, Arc<Taught>>>>,
    dictionary: Arc<HashSet<String>>,
    small_talk: Vec<(SmallTalk, Vec<f32>)>,
    /// Vectors embedded for a training job and not yet in the index.
    fresh: Mutex<HashMap<[u8; 32], Vec<f32>>>,
    /// One rebuild at a time, so a later one never installs an older view.
    rebuilding: tokio::sync::Mutex<()>,
    /// Other processes' changes to the shared store, until [`Knowledge::follow`]
    /// takes them. Subscribed before the first build, so none is missed.
    changes: Mutex<Option<tokio::sync::broadcast::Receiver<Change>>>,
}

impl Knowledge {
    /// Loads the embedding model from `embeddings` (a folder) and builds
    /// the index from the store.
    pub async fn open(
        store: Arc<dyn Store>,
        embeddings: Option<&Path>,
        scoring: Scoring,
    ) -> Result<Knowledge, ModelError> {
        let embedder = match embeddings {
            None => None,
            Some(dir) => {
                let dir = dir.to_path_buf();
                match blocking(move || Embedder::load(&dir)).await {
                    Ok(embedder) => Some(Arc::new(embedder)),
                    Err(e) => {
                        tracing::error!(error = %e, "no sentence embeddings: questions are matched by their words only");
                        None
                    }
                }
            }
        };
        let mut dictionary = embedder.as_ref().map(|e| e.dictionary()).unwrap_or_default();
        dictionary.extend(system_words().await);
        let dictionary = Arc::new(dictionary);
        let small_talk = match &embedder {
            Some(e) => {
                let e = e.clone();
                let texts: Vec<&'static str> = SMALL_TALK.iter().map(|(_, t)| *t).collect();
                let vectors = blocking(move || e.embed(&texts)).await?;
                SMALL_TALK.iter().map(|(kind, _)| *kind).zip(vectors).collect()
            }
            None => Vec::new(),
        };
        let changes = Mutex::new(store.changes());
        let knowledge = Knowledge {
            changes,
            store,
            embedder,
            scoring,
            taught: RwLock::new(Arc::new(HashMap::new())),
            dictionary,
            small_talk,
            fresh: Mutex::new(HashMap::new()),
            rebuilding: tokio::sync::Mutex::new(()),
        };
        knowledge.load().await?;
        Ok(knowledge)
    }

    pub fn scoring(&self) -> &Scoring {
        &self.scoring
    }

    /// How many answers the indexes hold, in every scope.
    pub fn len(&self) -> usize {
        self.taught().values().map(|t| t.index.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many answers a question in `scope` can get: its own and the
    /// global set's.
    pub fn len_in(&self, scope: &Scope) -> usize {
        let taught = self.taught();
        let own = taught.get(scope).map_or(0, |t| t.index.len());
        let global = taught.get(&Scope::global()).filter(|_| !scope.is_global()).map_or(0, |t| t.index.len());
        own + global
    }

    fn taught(&self) -> Arc<HashMap<Scope, Arc<Taught>>> {
        self.taught.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The first build: vectors from the store's cache, the rest embedded,
    /// and every scope's index.
    async fn load(&self) -> Result<(), ModelError> {
        if let Some(embedder) = &self.embedder {
            let cached = self.store.vectors(embedder.id()).await?;
            let mut fresh = self.fresh.lock().unwrap_or_else(|p| p.into_inner());
            fresh.extend(cached.into_iter().filter(|c| c.vector.len() == embedder.dim()).map(|c| (c.text, c.vector)));
        }
        let mut scopes: HashSet<Scope> = self.store.trained_examples().await?.into_iter().map(|(s, _)| s).collect();
        scopes.extend(self.store.taught_corrections().await?.into_iter().map(|(s, _, _)| s));
        for scope in scopes {
            self.rebuild(&scope).await?;
        }
        Ok(())
    }

    /// Rebuilds what another process sharing the store changed (a fleet on
    /// PostgreSQL), in the background, until the last `Arc` is dropped.
    /// Changes that arrive together are rebuilt once per scope.
    pub fn follow(self: &Arc<Self>) {
        use tokio::sync::broadcast::error::{RecvError, TryRecvError};
        let Some(mut changes) = self.changes.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
        let knowledge = Arc::downgrade(self);
        tokio::spawn(async move {
            // After a failed rebuild, everything is read again, ever later.
            let mut retry = None;
            loop {
                let mut pending = match retry {
                    Some(wait) => {
                        tokio::time::sleep(wait).await;
                        vec![Change::Everything]
                    }
                    None => vec![match changes.recv().await {
                        Ok(change) => change,
                        Err(RecvError::Lagged(_)) => Change::Everything,
                        Err(RecvError::Closed) => return,
                    }],
                };
                loop {
                    match changes.try_recv() {
                        Ok(change) => pending.push(change),
                        Err(TryRecvError::Lagged(_)) => pending.push(Change::Everything),
                        Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                    }
                }
                let Some(knowledge) = knowledge.upgrade() else { return };
                let result = if pending.contains(&Change::Everything) {
                    knowledge.reload().await
                } else {
                    let scopes: HashSet<Scope> = pending
                        .into_iter()
                        .filter_map(|c| if let Change::Taught(s) = c { Some(s) } else { None })
                        .collect();
                    let mut result = Ok(());
                    for scope in scopes {
                        tracing::debug!(%scope, "another process changed what was taught; rebuilding");
                        result = result.and(knowledge.rebuild(&scope).await.map(drop));
                    }
                    result
                };
                retry = match (result, retry) {
                    (Ok(()), _) => None,
                    (Err(e), wait) => {
                        let wait =
                            wait.map_or(Duration::from_secs(1), |w: Duration| (w * 2).min(Duration::from_secs(30)));
                        tracing::warn!(
                            error = %e,
                            retry_in_secs = wait.as_secs(),
                            "could not rebuild the retrieval index after another process's change"
                        );
                        Some(wait)
                    }
                };
            }
        });
    }

    /// Rebuilds every scope from the store: those with teaching there,
    /// and those this process had (which may have none now).
    async fn reload(&self) -> Result<(), ModelError> {
        let mut scopes: HashSet<Scope> = self.taught().keys().cloned().collect();
        scopes.extend(self.store.trained_examples().await?.into_iter().map(|(s, _)| s));
        scopes.extend(self.store.taught_corrections().await?.into_iter().map(|(s, _, _)| s));
        for scope in scopes {
            self.rebuild(&scope).await?;
        }
        tracing::info!(answers = self.len(), "retrieval index read again from the store");
        Ok(())
    }

    /// Embeds (and caches) the texts of `examples` that have no vector
    /// yet, a chunk at a time, without holding up queries or corrections.
    pub async fn prepare(&self, examples: &[Example]) -> Result<(), ModelError> {
        let Some(embedder) = &self.embedder else { return Ok(()) };
        let taught = self.taught();
        let known: HashSet<&str> = taught.values().flat_map(|t| t.index.texts().map(|(text, _)| text)).collect();
        let mut wanted: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        {
            let fresh = self.fresh.lock().unwrap_or_else(|p| p.into_inner());
            for text in examples.iter().flat_map(|e| [&e.input, &e.output]) {
                if !known.contains(text.as_str()) && !fresh.contains_key(&key(text)) && seen.insert(text.as_str()) {
                    wanted.push(text.clone());
                }
            }
        }
        for (text, vector) in self.embed_and_cache(embedder, wanted).await? {
            self.fresh.lock().unwrap_or_else(|p| p.into_inner()).insert(key(&text), vector);
        }
        Ok(())
    }

    /// Embeds `texts` a chunk at a time on the blocking pool, and caches
    /// the vectors in the store.
    async fn embed_and_cache(
        &self,
        embedder: &Arc<Embedder>,
        texts: Vec<String>,
    ) -> Result<Vec<(String, Vec<f32>)>, ModelError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(EMBED_CHUNK) {
            let owned = chunk.to_vec();
            let e = embedder.clone();
            let vectors = blocking(move || e.embed(&owned.iter().map(String::as_str).collect::<Vec<_>>())).await?;
            let cached: Vec<CachedVector> =
                chunk.iter().zip(&vectors).map(|(t, v)| CachedVector { text: key(t), vector: v.clone() }).collect();
            self.store.save_vectors(embedder.id(), cached).await?;
            out.extend(chunk.iter().cloned().zip(vectors));
        }
        Ok(out)
    }

    /// Reads `scope`'s examples and corrections from the store and
    /// installs a new index over them; returns how many answers a question
    /// in the scope can now get.
    pub async fn rebuild(&self, scope: &Scope) -> Result<usize, ModelError> {
        let _one_at_a_time = self.rebuilding.lock().await;
        let examples: Vec<Example> =
            self.store.trained_examples().await?.into_iter().filter(|(s, _)| s == scope).map(|(_, e)| e).collect();
        let corrections: Vec<(String, String)> = self
            .store
            .taught_corrections()
            .await?
            .into_iter()
            .filter(|(s, _, _)| s == scope)
            .map(|(_, q, c)| (q, c))
            .collect();
        let entries = entries(&examples, &corrections);
        let home = home_name(&entries, &self.dictionary);
        let keys: Vec<Vec<String>> = entries
            .iter()
            .map(|e| {
                let mut keys = vec![e.question.clone()];
                if let Some(home) = &home {
                    keys.extend(aliases(&e.question, home));
                }
                keys
            })
            .collect();
        let vectors = self.vectors_for(scope, keys.iter().flatten().chain(entries.iter().map(|e| &e.answer))).await?;
        // Cloned, not taken: entries share texts (a label is many answers).
        let take = |text: &str| vectors.get(text).cloned().unwrap_or_default();
        let indexed: Vec<Indexed> = entries
            .into_iter()
            .zip(keys)
            .map(|(entry, keys)| {
                let keys = keys.into_iter().map(|k| (k.clone(), take(&k))).collect();
                let answer = take(&entry.answer);
                Indexed { entry, keys, answer }
            })
            .collect();
        let dictionary = self.dictionary.clone();
        let semantic = self.embedder.is_some();
        let dim = self.embedder.as_ref().map_or(0, |e| e.dim());
        let index = blocking(move || Ok(Index::build(indexed, dictionary, dim).semantic(semantic).home(home))).await?;
        let used: HashSet<[u8; 32]> = index.texts().map(|(text, _)| key(text)).collect();
        let questions = index.entries().iter().map(|e| normalise(&e.question)).collect();
        {
            let mut taught = self.taught.write().unwrap_or_else(|p| p.into_inner());
            let mut scopes = HashMap::clone(&taught);
            if index.is_empty() && !scope.is_global() {
                scopes.remove(scope);
            } else {
                scopes.insert(scope.clone(), Arc::new(Taught { index: Arc::new(index), questions }));
            }
            *taught = Arc::new(scopes);
        }
        self.fresh.lock().unwrap_or_else(|p| p.into_inner()).retain(|k, _| !used.contains(k));
        Ok(self.len_in(scope))
    }

    /// A vector for each text (each once): from `scope`'s index in use,
    /// the fresh ones, the other scopes' indexes, else embedded now and
    /// cached. Empty without embeddings.
    async fn vectors_for<'a>(
        &self,
        scope: &Scope,
        texts: impl Iterator<Item = &'a String>,
    ) -> Result<HashMap<String, Vec<f32>>, ModelError> {
        let mut out: HashMap<String, Vec<f32>> = HashMap::new();
        let Some(embedder) = &self.embedder else { return Ok(out) };
        let wanted: HashSet<&str> = texts.map(String::as_str).collect();
        let taught = self.taught();
        let from = |index: &Index, out: &mut HashMap<String, Vec<f32>>| {
            for (text, slot) in index.texts() {
                if wanted.contains(text) && !out.contains_key(text) {
                    out.insert(text.to_string(), index.vector(slot));
                }
            }
        };
        if let Some(old) = taught.get(scope) {
            from(&old.index, &mut out);
        }
        let mut missing: Vec<&str> = Vec::new();
        {
            let fresh = self.fresh.lock().unwrap_or_else(|p| p.into_inner());
            for &text in &wanted {
                if out.contains_key(text) {
                    continue;
                }
                match fresh.get(&key(text)) {
                    Some(v) => {
                        out.insert(text.to_string(), v.clone());
                    }
                    None => missing.push(text),
                }
            }
        }
        if !missing.is_empty() {
            // Another scope may have been taught the same text.
            for (_, other) in taught.iter().filter(|(s, _)| *s != scope) {
                from(&other.index, &mut out);
            }
        }
        let missing: Vec<String> = missing.into_iter().filter(|t| !out.contains_key(*t)).map(str::to_string).collect();
        out.extend(self.embed_and_cache(embedder, missing).await?);
        Ok(out)
    }

    /// The query's vector (none without embeddings). Blocking work, done
    /// on the blocking pool.
    async fn vector(&self, text: &str) -> Result<Vec<f32>, ModelError> {
        match &self.embedder {
            Some(e) => {
                let e = e.clone();
                let text = text.to_string();
                blocking(move || e.embed_one(&text)).await
            }
            None => Ok(Vec::new()),
        }
    }

    /// The entries nearest to `question` asked in `scope`, best first: the
    /// scope's own and the global set's, but for global answers to a
    /// question the scope answers itself. With the query's vector.
    pub async fn search(&self, scope: &Scope, question: &str) -> Result<(Vec<Found>, Vec<f32>), ModelError> {
        let taught = self.taught();
        let global = taught.get(&Scope::global());
        let own = taught.get(scope).filter(|_| !scope.is_global());
        let mut mended = question.to_string();
        for t in own.iter().chain(global.iter()) {
            mended = t.index.mend(&mended);
        }
        let vector = self.vector(&mended).await?;
        let mut found = Vec::new();
        for (t, hides) in [(own, None), (global, own)] {
            let Some(t) = t else { continue };
            for hit in t.index.search(question, &vector, &self.scoring) {
                let found_here = Found { index: t.index.clone(), hit };
                if hides.is_some_and(|h| h.questions.contains(&normalise(&found_here.entry().question))) {
                    continue;
                }
                found.push(found_here);
            }
        }
        if own.is_some() && global.is_some() {
            found.sort_by(|a, b| b.hit.score.total_cmp(&a.hit.score));
            // As within one index: among near-ties, a correction wins.
            if let Some(best) = found.first().map(|f| f.hit.score) {
                if let Some(at) = found.iter().position(|f| f.entry().correction && f.hit.score >= best - 0.03) {
                    let correction = found.remove(at);
                    found.insert(0, correction);
                }
            }
        }
        Ok((found, vector))
    }

    /// What the bot knows about `question` asked in `scope`.
    pub async fn judge(&self, scope: &Scope, question: &str) -> Result<(Verdict, Option<SmallTalk>), ModelError> {
        let (found, vector) = self.search(scope, question).await?;
        let verdict = verdict(&found, &self.scoring);
        let small_talk = match verdict {
            Verdict::Known { .. } => None,
            _ => self.small_talk(question, &vector),
        };
        Ok((verdict, small_talk))
    }

    fn small_talk(&self, text: &str, vector: &[f32]) -> Option<SmallTalk> {
        if text.split_whitespace().count() > SMALL_TALK_WORDS {
            return None;
        }
        self.small_talk
            .iter()
            .map(|(kind, v)| (*kind, super::retrieval::dot(v, vector)))
            .filter(|(_, s)| *s >= SMALL_TALK_SIMILARITY)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(kind, _)| kind)
    }

    /// The output for `input` as `!test` scores it: the taught answer when
    /// one is close enough, the nearest label for a classifier (which
    /// always picks one), else nothing: "I don't know".
    pub async fn predict(&self, scope: &Scope, input: &str) -> Result<Option<String>, ModelError> {
        let (found, _) = self.search(scope, input).await?;
        if let Verdict::Known { answer, .. } = verdict(&found, &self.scoring) {
            return Ok(Some(answer));
        }
        Ok(found.iter().find(|f| f.entry().labelled).map(|f| f.entry().answer.clone()))
    }

    /// Words the embedding model knows: a query word outside it is likely
    /// a name.
    pub fn dictionary(&self) -> &HashSet<String> {
        &self.dictionary
    }
}

/// The system's word list, lower case: the everyday words a dictionary
/// knows, so that a word outside it reads as a name. Debian's
/// `wamerican-huge` first (which `make build` installs): the plain list
/// lacks chat's everyday words ("headcount", "leaderboard", "cooldown",
/// "unban"), which then cost a right answer as names. Empty when there
/// is none.
async fn system_words() -> HashSet<String> {
    const LISTS: [&str; 3] =
        ["/usr/share/dict/american-english-huge", "/usr/share/dict/words", "/usr/share/dict/american-english"];
    for path in LISTS {
        if let Ok(text) = tokio::fs::read_to_string(path).await {
            return text
                .lines()
                .map(|w| w.trim().to_lowercase())
                .filter(|w| !w.is_empty() && w.chars().all(char::is_alphabetic))
                .collect();
        }
    }
    tracing::warn!("no word list in /usr/share/dict (Debian: wamerican-huge): more everyday words will read as names");
    HashSet::new()
}

/// The verdict on a ranked list of hits.
pub fn verdict(found: &[Found], scoring: &Scoring) -> Verdict {
    let Some(best) = found.first() else { return Verdict::Unknown { nearest: None, score: 0.0 } };
    let (entry, score) = (best.entry(), best.hit.score);
    if score >= scoring.accept {
        return Verdict::Known { question: entry.question.clone(), answer: entry.answer.clone(), score };
    }
    let near: Vec<(String, String)> = found
        .iter()
        .filter(|f| {
            f.hit.score >= scoring.near && f.hit.missing_names.is_empty() && !f.hit.wrong_kind && !f.entry().labelled
        })
        .take(CONTEXT_FACTS)
        .map(|f| (f.entry().question.clone(), f.entry().answer.clone()))
        .collect();
    if !near.is_empty() {
        return Verdict::Near { facts: near, score };
    }
    // Named by meaning alone: "Who founded Lanternmoor?" is worth naming
    // to someone asking who founded Stonebrook, though it is no answer.
    let nearest = found
        .iter()
        .filter(|f| !f.entry().labelled)
        .max_by(|a, b| a.hit.meaning.total_cmp(&b.hit.meaning))
        .filter(|f| f.hit.meaning >= scoring.hint)
        .map(|f| f.entry().question.clone());
    Verdict::Unknown { nearest, score }
}

/// The index's entries: later entries for the same question replace
/// earlier ones, and a correction replaces an example.
fn entries(examples: &[Example], corrections: &[(String, String)]) -> Vec<Entry> {
    let mut by_question: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Entry> = Vec::new();
    let taught = examples
        .iter()
        .map(|e| Entry {
            question: e.input.clone(),
            answer: e.output.clone(),
            correction: false,
            labelled: e.label.is_some(),
        })
        .chain(corrections.iter().map(|(q, c)| Entry {
            question: q.clone(),
            answer: c.clone(),
            correction: true,
            labelled: false,
        }));
    for entry in taught {
        let question = normalise(&entry.question);
        if question.is_empty() || entry.answer.trim().is_empty() {
            continue;
        }
        match by_question.get(&question) {
            Some(&at) if out[at].correction && !entry.correction => {}
            Some(&at) => out[at] = entry,
            None => {
                by_question.insert(question, out.len());
                out.push(entry);
            }
        }
    }
    out
}

fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// The cache's key for a text.
fn key(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ModelError> + Send + 'static,
) -> Result<T, ModelError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ModelError::Failed(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(input: &str, output: &str) -> Example {
        Example { input: input.into(), output: output.into(), label: None }
    }

    /// A model taught `examples`, on the embeddings `make test` fetches.
    async fn taught(examples: Vec<Example>) -> (Knowledge, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(crate::services::store::SqliteStore::open(&dir.path().join("db")).unwrap());
        let job = crate::services::model::JobRecord {
            id: "job-1".into(),
            provider: "embedded".into(),
            status: "succeeded".into(),
            detail: None,
            examples: examples.len() as u32,
        };
        store.create_job(job, &Scope::global(), examples).await.unwrap();
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/all-MiniLM-L6-v2");
        (Knowledge::open(store, Some(&models), Scoring::default()).await.unwrap(), dir)
    }

    /// Teaches `scope` one example, as `!train` does.
    async fn teach(knowledge: &Knowledge, scope: &Scope, input: &str, output: &str) {
        let job = crate::services::model::JobRecord {
            id: crate::services::model::new_job_id(),
            provider: "embedded".into(),
            status: "succeeded".into(),
            detail: None,
            examples: 1,
        };
        knowledge.store.create_job(job, scope, vec![example(input, output)]).await.unwrap();
        knowledge.rebuild(scope).await.unwrap();
    }

    fn answer(verdict: &Verdict) -> Option<&str> {
        match verdict {
            Verdict::Known { answer, .. } => Some(answer),
            _ => None,
        }
    }

    #[tokio::test]
    async fn what_a_server_teaches_answers_there_only_and_over_the_global_set() {
        let (knowledge, _dir) =
            taught(vec![example("What is the capital of Australia?", "Canberra is the capital of Australia.")]).await;
        let (one, two) = (Scope::server("1"), Scope::server("2"));
        teach(&knowledge, &one, "Who runs the book club?", "Mira runs the book club.").await;
        teach(&knowledge, &one, "What is the capital of Australia?", "Sydney, say we in server one.").await;
        // Server one's own answers, and its own over the global one.
        let (verdict, _) = knowledge.judge(&one, "who is in charge of the book club").await.unwrap();
        assert_eq!(answer(&verdict), Some("Mira runs the book club."), "{verdict:?}");
        let (verdict, _) = knowledge.judge(&one, "what's the capital of australia").await.unwrap();
        assert_eq!(answer(&verdict), Some("Sydney, say we in server one."), "{verdict:?}");
        // Server two knows nothing of server one, and has the global answer.
        let (verdict, _) = knowledge.judge(&two, "who is in charge of the book club").await.unwrap();
        assert_eq!(answer(&verdict), None, "{verdict:?}");
        let (verdict, _) = knowledge.judge(&two, "what's the capital of australia").await.unwrap();
        assert_eq!(answer(&verdict), Some("Canberra is the capital of Australia."), "{verdict:?}");
        // Nor do direct messages, nor the global set.
        for scope in [Scope::direct("7"), Scope::global()] {
            let (verdict, _) = knowledge.judge(&scope, "who runs the book club?").await.unwrap();
            assert_eq!(answer(&verdict), None, "{scope}: {verdict:?}");
        }
        assert_eq!(knowledge.len_in(&one), 3);
        assert_eq!(knowledge.len_in(&two), 1);
        // A restart builds every scope again.
        let reopened = Knowledge::open(knowledge.store.clone(), None, Scoring::default()).await.unwrap();
        assert_eq!((reopened.len_in(&one), reopened.len_in(&two), reopened.len()), (3, 1, 3));
    }

    #[tokio::test]
    async fn every_text_has_its_vector_even_when_entries_share_it() {
        let labelled =
            |text: &str, label: &str| Example { input: text.into(), output: label.into(), label: Some(label.into()) };
        let (knowledge, _dir) =
            taught(vec![labelled("great phone", "positive"), labelled("love it", "positive"), example("a?", "b")])
                .await;
        let taught = knowledge.taught();
        let index = &taught[&Scope::global()].index;
        let texts: Vec<_> = index.texts().collect();
        assert_eq!(texts.len(), 6, "three questions and three answers");
        for (text, slot) in texts {
            assert!(index.vector(slot).iter().any(|x| *x != 0.0), "`{text}` has no vector");
        }
    }

    #[tokio::test]
    async fn a_paraphrase_is_known_and_another_community_is_not() {
        let (knowledge, _dir) = taught(vec![
            example("Who founded Lanternmoor?", "Lanternmoor was founded by Ysolde Varga."),
            example("When was Lanternmoor founded?", "In March 2019."),
            example("How many members does Lanternmoor have?", "About 4,200."),
        ])
        .await;
        let global = Scope::global();
        let (verdict, _) = knowledge.judge(&global, "who started this community").await.unwrap();
        assert!(matches!(&verdict, Verdict::Known { answer, .. } if answer.contains("Ysolde")), "{verdict:?}");
        let (verdict, _) = knowledge.judge(&global, "Who founded Stonebrook?").await.unwrap();
        assert!(
            matches!(&verdict, Verdict::Unknown { nearest: Some(q), .. } if q == "Who founded Lanternmoor?"),
            "{verdict:?}"
        );
        let (_, small_talk) = knowledge.judge(&Scope::server("1"), "thanks a lot!").await.unwrap();
        assert_eq!(small_talk, Some(SmallTalk::Thanks));
    }

    #[test]
    fn corrections_replace_examples_and_later_examples_earlier_ones() {
        let list = entries(
            &[
                example("What is the capital of Australia?", "Sydney"),
                example("Who wrote Hamlet?", "Marlowe"),
                example("who wrote  hamlet?", "Shakespeare"),
            ],
            &[("what is the capital of australia?".into(), "Canberra".into())],
        );
        let answers: Vec<&str> = list.iter().map(|e| e.answer.as_str()).collect();
        assert_eq!(answers, ["Canberra", "Shakespeare"]);
        assert!(list[0].correction);
    }
}
