//! The embedded model: answer latency for a retrieval hit and a miss, and
//! training throughput (examples stored and the index rebuilt).
//!
//! `cargo bench -p sandbot --bench model`. Figures go in BENCHMARKS.md.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sandbot::services::model::embedded::EmbeddedModel;
use sandbot::services::model::llm::{LlmSettings, LocalLlm};
use sandbot::services::model::{Example, ModelProvider};
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

fn model(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut group = c.benchmark_group("model");
    for size in [1_000usize, 10_000] {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).expect("db"));
        let model = rt.block_on(EmbeddedModel::open(store, 0.6, None, 0)).expect("model");
        rt.block_on(model.train(corpus(size))).expect("train");
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("answer_hit", size), &size, |b, _| {
            b.to_async(&rt).iter(|| async {
                model.answer("c", "how does the river mountain work in case 42 of the river").await.expect("answer")
            })
        });
        group.bench_with_input(BenchmarkId::new("answer_miss", size), &size, |b, _| {
            b.to_async(&rt).iter(|| async { model.answer("c", "what colour are bananas").await.expect("answer") })
        });
    }
    group.sample_size(10);
    for size in [1_000usize, 10_000] {
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::new("train", size), &size, |b, &size| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).expect("db"));
                    let model = rt.block_on(EmbeddedModel::open(store, 0.6, None, 0)).expect("model");
                    (dir, model, corpus(size))
                },
                |(_dir, model, examples)| rt.block_on(model.train(examples)).expect("train"),
                criterion::BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

/// The local language model: one answer of `TOKENS` tokens (greedy, so
/// every run generates the same tokens).
fn llm(c: &mut Criterion) {
    const TOKENS: usize = 32;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let settings = LlmSettings { path, max_tokens: TOKENS, system_prompt: "You are a helpful assistant.".into() };
    let started = std::time::Instant::now();
    let llm = LocalLlm::load(settings).expect("weights: run `make build` first");
    println!("llm load: {:?}", started.elapsed());
    let question = "Write a long story about a dragon who learns to bake bread.";
    let generated = llm.encode(&llm.generate(&[], question).expect("generate")).expect("encode").len();
    println!("llm tokens per answer: {generated}");
    let mut group = c.benchmark_group("llm");
    group.sample_size(10);
    group.throughput(Throughput::Elements(generated as u64));
    group.bench_function("answer_32_tokens", |b| b.iter(|| llm.generate(&[], question).expect("generate")));
    group.finish();
}

criterion_group!(benches, model, llm);
criterion_main!(benches);
