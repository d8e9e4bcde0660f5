//! The embedded model: what a question costs (embedding it, then retrieval
//! at 1k, 10k and 100k taught answers), what training costs (examples
//! embedded and indexed per second), the index's memory, and the local
//! language model's generation, beside llama.cpp's on the same GGUF.
//!
//! `scripts/peers/install.sh && cargo bench -p sandbot --bench model -- llm`.
//! Figures go in BENCHMARKS.md.
//!
//! Retrieval is timed on an index of real texts (for BM25) with random
//! unit vectors: its cost does not depend on what the vectors say, and
//! embedding 200,000 texts first would take most of an hour.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sandbot::services::model::embedded::EmbeddedModel;
use sandbot::services::model::embedder::Embedder;
use sandbot::services::model::llm::{LlmSettings, LocalLlm};
use sandbot::services::model::retrieval::{Entry, Index, Indexed, Scoring};
use sandbot::services::model::{Asked, Example, ModelProvider, Scope};
use sandbot::services::store::{SqliteStore, Store};

const TOPICS: [&str; 10] =
    ["river", "mountain", "planet", "battery", "password", "refund", "spider", "volcano", "library", "garden"];

/// `n` distinct questions built from a small vocabulary, like a FAQ.
fn corpus(n: usize) -> Vec<Example> {
    (0..n)
        .map(|i| Example {
            input: format!(
                "How does the {} {} work in case {i} of the {}?",
                TOPICS[i % 10],
                TOPICS[(i / 10) % 10],
                TOPICS[(i / 100) % 10]
            ),
            output: format!("Answer number {i}."),
            label: None,
        })
        .collect()
}

fn workspace() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn models_dir() -> std::path::PathBuf {
    workspace().join("models")
}

/// A repeatable random unit vector of `dim` values.
fn unit_vector(seed: u64, dim: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v: Vec<f32> = (0..dim)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 2001) as f32 / 1000.0 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn index_of(n: usize, dim: usize) -> Index {
    let indexed = corpus(n)
        .into_iter()
        .enumerate()
        .map(|(i, e)| Indexed {
            keys: vec![(e.input.clone(), unit_vector(2 * i as u64, dim))],
            answer: unit_vector(2 * i as u64 + 1, dim),
            entry: Entry { question: e.input, answer: e.output, correction: false, labelled: false },
        })
        .collect();
    Index::build(indexed, Arc::new(HashSet::new()), dim)
}

/// Resident memory of this process, in MiB (Linux).
fn resident_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0.0);
    pages * 4096.0 / (1 << 20) as f64
}

fn retrieval(c: &mut Criterion) {
    // Both models a question can be embedded with, one loaded at a time.
    let query = "how does the river mountain work in case 42 of the river";
    let mut vectors = Vec::new();
    let mut group = c.benchmark_group("embedding");
    for name in ["all-MiniLM-L6-v2", "all-mpnet-base-v2"] {
        let before = resident_mib();
        let started = std::time::Instant::now();
        let embedder = Embedder::load(&models_dir().join(name)).expect("run `make build` first");
        println!("{name}: loaded in {:?}, {:.0} MiB resident", started.elapsed(), resident_mib() - before);
        group.bench_function(BenchmarkId::new("query", name), |b| {
            b.iter(|| embedder.embed_one("who started the music bot club?").expect("embed"))
        });
        vectors.push(embedder.embed_one(query).expect("embed"));
    }
    group.finish();

    // The shipped model's vectors at every size (`search`), MPNet's twice
    // as long ones at the largest (`search_768`).
    let scoring = Scoring::default();
    let mut group = c.benchmark_group("retrieval");
    for (vector, name, sizes) in
        [(&vectors[0], "search", &[1_000usize, 10_000, 100_000][..]), (&vectors[1], "search_768", &[100_000][..])]
    {
        for &size in sizes {
            let before = resident_mib();
            let index = index_of(size, vector.len());
            println!("index of {size} ({} dimensions): {:.0} MiB resident", vector.len(), resident_mib() - before);
            group.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                b.iter(|| index.search(query, vector, &scoring))
            });
        }
    }
    group.finish();
}

fn training(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let answers = sandbot::config::AnswerSettings {
        embeddings: Some(models_dir().join("all-MiniLM-L6-v2")),
        scoring: Scoring::default(),
        system_prompt: String::new(),
        context_turns: 0,
        unknown: Default::default(),
    };
    let mut group = c.benchmark_group("model");
    group.sample_size(10);
    let size = 500usize;
    group.throughput(Throughput::Elements(size as u64));
    group.bench_with_input(BenchmarkId::new("train", size), &size, |b, &size| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).expect("db"));
                let model = rt.block_on(EmbeddedModel::open(store, &answers, None)).expect("model");
                (dir, model, corpus(size))
            },
            |(_dir, model, examples)| {
                rt.block_on(async {
                    let job = model.train(&Scope::global(), examples).await.expect("train");
                    // Wait for the background embedding to end.
                    while !model.job(&job.id).await.expect("job").is_finished() {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                })
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();

    // Answers end to end: a taught answer, and one it does not know.
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).expect("db"));
    let model = rt.block_on(EmbeddedModel::open(store, &answers, None)).expect("model");
    rt.block_on(async {
        let job = model.train(&Scope::global(), corpus(1_000)).await.expect("train");
        while !model.job(&job.id).await.expect("job").is_finished() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    let global = Scope::global();
    let asked = Asked { scope: &global, channel: "c" };
    let mut group = c.benchmark_group("answer");
    group.bench_function("taught_1000", |b| {
        b.to_async(&rt)
            .iter(|| async { model.answer(asked, "how does the river mountain work in case 42 of the river").await })
    });
    group.bench_function("unknown_1000", |b| {
        b.to_async(&rt).iter(|| async { model.answer(asked, "what colour are bananas").await })
    });
    // A name that neither the dictionary nor the taught texts know.
    group.bench_function("unknown_name_1000", |b| {
        b.to_async(&rt).iter(|| async { model.answer(asked, "who founded the Zarquonian river guild").await })
    });
    group.finish();
}

/// The local language model: one answer of `TOKENS` tokens (greedy, so
/// every run generates the same tokens). Then side by side with llama.cpp
/// on the same GGUF, prompts and settings ([`beside_llama_cpp`]).
fn llm(c: &mut Criterion) {
    const TOKENS: usize = 32;
    let path = models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let settings = LlmSettings { path: path.clone(), max_tokens: TOKENS };
    let started = std::time::Instant::now();
    let llm = LocalLlm::load(settings).expect("weights: run `make build` first");
    println!("llm load: {:?}", started.elapsed());
    let system = "You are a helpful assistant.";
    let question = "Write a long story about a dragon who learns to bake bread.";
    let generated = llm.encode(&llm.generate(system, &[], question).expect("generate")).expect("encode").len();
    println!("llm tokens per answer: {generated}");
    let mut group = c.benchmark_group("llm");
    group.sample_size(10);
    group.throughput(Throughput::Elements(generated as u64));
    group.bench_function("answer_32_tokens", |b| b.iter(|| llm.generate(system, &[], question).expect("generate")));
    group.finish();
    drop(llm);
    beside_llama_cpp(&path, system);
}

/// Up to 96 tokens for five questions, ours and llama.cpp's
/// (`scripts/peers/llm_peer.py`, llama-cpp-python built on this machine),
/// in one run: tokens, the time to the first token (the prompt read and
/// one token out) and to the whole answer, median of three. Tokens/s
/// counts the whole answer's time, prompt included.
fn beside_llama_cpp(path: &Path, system: &str) {
    const TOKENS: usize = 96;
    const QUESTIONS: &[&str] = &[
        "Write a long story about a dragon who learns to bake bread.",
        "Explain how a rainbow forms.",
        "Good morning, how is your day going?",
        "Give me three tips for learning to play the guitar.",
        "What should I pack for a weekend camping trip?",
    ];
    let whole = LocalLlm::load(LlmSettings { path: path.to_path_buf(), max_tokens: TOKENS }).expect("load");
    let first = LocalLlm::load(LlmSettings { path: path.to_path_buf(), max_tokens: 1 }).expect("load");
    let median = |f: &dyn Fn() -> String| {
        let mut runs: Vec<(f64, String)> = (0..3)
            .map(|_| {
                let started = std::time::Instant::now();
                let out = f();
                (started.elapsed().as_secs_f64(), out)
            })
            .collect();
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        runs.swap_remove(1)
    };
    whole.generate(system, &[], QUESTIONS[0]).expect("warm up");
    let ours: Vec<(usize, f64, f64)> = QUESTIONS
        .iter()
        .map(|q| {
            let (seconds, answer) = median(&|| whole.generate(system, &[], q).expect("generate"));
            let (first_token, _) = median(&|| first.generate(system, &[], q).expect("generate"));
            (whole.encode(&answer).expect("encode").len(), first_token, seconds)
        })
        .collect();
    let python = workspace().join("target/peers/bin/python");
    let theirs: Option<Vec<(usize, f64, f64)>> = python.exists().then(|| {
        let out = std::process::Command::new(&python)
            .arg(workspace().join("scripts/peers/llm_peer.py"))
            .arg(path)
            .arg(TOKENS.to_string())
            .arg(system)
            .args(QUESTIONS)
            .output()
            .expect("run the llama.cpp peer");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
                let number = |key: &str| v[key].as_f64().unwrap_or(f64::NAN);
                (number("tokens") as usize, number("first_token"), number("seconds"))
            })
            .collect()
    });
    println!("llm/question | ours: tokens, first token, tokens/s | llama.cpp: tokens, first token, tokens/s");
    let rate = |(tokens, _, seconds): (usize, f64, f64)| tokens as f64 / seconds;
    for (i, q) in QUESTIONS.iter().enumerate() {
        let peer = theirs.as_ref().map(|t| {
            let (n, first, _) = t[i];
            format!("{n}, {:.0} ms, {:.1}", first * 1000.0, rate(t[i]))
        });
        let (n, first, _) = ours[i];
        println!(
            "llm/{q} | {n}, {:.0} ms, {:.1} | {}",
            first * 1000.0,
            rate(ours[i]),
            peer.unwrap_or_else(|| "not installed: scripts/peers/install.sh".into())
        );
    }
    let total = |rows: &[(usize, f64, f64)]| {
        let (tokens, seconds) = rows.iter().fold((0, 0.0), |(n, s), r| (n + r.0, s + r.2));
        tokens as f64 / seconds
    };
    let ours_rate = total(&ours);
    match &theirs {
        Some(theirs) => println!(
            "llm/all: ours {ours_rate:.1} tokens/s, llama.cpp {:.1} tokens/s; ours/theirs {:.2}",
            total(theirs),
            ours_rate / total(theirs)
        ),
        None => println!("llm/all: ours {ours_rate:.1} tokens/s"),
    }
}

criterion_group!(benches, retrieval, training, llm);
criterion_main!(benches);
