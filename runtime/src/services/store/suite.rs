//! What every store must do, run on each backend (SQLite in sqlite.rs,
//! PostgreSQL in postgres.rs) on a new, empty store.

use super::*;

fn from(message_id: &str) -> Provenance {
    Provenance {
        author_id: "7".into(),
        author_name: "ann".into(),
        channel: "general".into(),
        guild: Some("g".into()),
        message_id: message_id.into(),
    }
}

fn example(input: &str) -> Example {
    Example { input: input.into(), output: format!("{input}!"), label: None }
}

fn job(id: &str, status: &str) -> JobRecord {
    JobRecord { id: id.into(), provider: "embedded".into(), status: status.into(), detail: None, examples: 1 }
}

pub async fn run(store: &dyn Store) {
    corrections_and_feedback(store).await;
    answers(store).await;
    jobs(store).await;
    vectors(store).await;
    datasets(store).await;
    turns(store).await;
    deployments(store).await;
}

/// A name's newest deployment not rolled back is current; rolling back
/// the last leaves none.
async fn deployments(store: &dyn Store) {
    assert!(store.current_deployments().await.unwrap().is_empty());
    let first = store.deploy("hi", b"one", "grants = []", "ann@host").await.unwrap();
    let second = store.deploy("hi", b"two", "grants = []", "ann@host").await.unwrap();
    let other = store.deploy("other", b"three", "", "bob@host").await.unwrap();
    assert!(second.id > first.id && other.id > second.id);
    assert_eq!(second.sha256, crate::sandbox::cache::sha256_hex(b"two"));
    assert_eq!((second.deployed_by.as_str(), second.rolled_back), ("ann@host", false));
    let current = |list: Vec<Deployment>| list.into_iter().map(|d| (d.name, d.id)).collect::<Vec<_>>();
    assert_eq!(
        current(store.current_deployments().await.unwrap()),
        [("hi".to_string(), second.id), ("other".to_string(), other.id)]
    );
    assert_eq!(store.deployed_wasm(second.id).await.unwrap(), b"two");
    assert!(store.deployed_wasm(other.id + 100).await.is_err());
    assert_eq!(store.rollback("hi").await.unwrap().map(|d| d.id), Some(first.id));
    assert_eq!(store.rollback("hi").await.unwrap(), None);
    assert!(store.rollback("hi").await.is_err(), "nothing left to roll back");
    assert_eq!(current(store.current_deployments().await.unwrap()), [("other".to_string(), other.id)]);
    let all: Vec<bool> = store.deployments().await.unwrap().iter().map(|d| d.rolled_back).collect();
    assert_eq!(all, [true, true, false]);
}

/// Turns are booked one spacing apart, in the order asked; queues are
/// independent.
async fn turns(store: &dyn Store) {
    let spacing = std::time::Duration::from_secs(60);
    let first = store.take_turn("bucket/0", spacing).await.unwrap();
    let second = store.take_turn("bucket/0", spacing).await.unwrap();
    let third = store.take_turn("bucket/0", spacing).await.unwrap();
    let other = store.take_turn("bucket/1", spacing).await.unwrap();
    assert_eq!(first, std::time::Duration::ZERO);
    // Bounds, not timings: each turn is a whole spacing after the one before.
    assert!(second > spacing / 2 && second <= spacing, "{second:?}");
    assert!(third > spacing * 3 / 2 && third <= spacing * 2, "{third:?}");
    assert_eq!(other, std::time::Duration::ZERO);
}

async fn corrections_and_feedback(store: &dyn Store) {
    let first = store
        .log_correction(Correction {
            from: from("100"),
            scope: Scope::server("g"),
            corrected_message_id: "42".into(),
            question: Some("what is 2+2?".into()),
            original: "2+2=5".into(),
            correction: "2+2=4".into(),
        })
        .await
        .unwrap();
    // A correction of a message that was no model answer teaches nothing.
    let second = store
        .log_correction(Correction {
            from: from("101"),
            scope: Scope::global(),
            corrected_message_id: "43".into(),
            question: None,
            original: "hi".into(),
            correction: "hello".into(),
        })
        .await
        .unwrap();
    assert!(second > first, "ids grow: {first} then {second}");
    store.log_feedback(Feedback { from: from("102"), text: "nice".into() }).await.unwrap();
    assert_eq!(
        store.taught_corrections().await.unwrap(),
        vec![(Scope::server("g"), "what is 2+2?".to_string(), "2+2=4".to_string())]
    );

    let rows = store.export(Table::Corrections).await.unwrap();
    assert_eq!(rows.len(), 2);
    let row = &rows[0];
    assert_eq!(row["id"], first);
    assert_eq!(row["correction"], "2+2=4");
    assert_eq!(row["original"], "2+2=5");
    assert_eq!(row["author_name"], "ann");
    assert_eq!(row["guild"], "g");
    assert_eq!(row["corrected_message_id"], "42");
    assert_eq!(row["question"], "what is 2+2?");
    assert_eq!(row["scope"], "guild:g");
    assert_eq!(rows[1]["question"], serde_json::Value::Null);
    // UTC to the millisecond, the same text from every backend.
    let created = row["created_at"].as_str().unwrap();
    assert_eq!(created.len(), "2026-12-01T10:00:00.000Z".len(), "{created}");
    assert!(created.ends_with('Z') && created.as_bytes()[10] == b'T', "{created}");

    let rows = store.export(Table::Feedback).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["text"], "nice");
    assert_eq!(rows[0]["message_id"], "102");
    // Pages: newest first, then below the last id seen.
    let page = store.export_page(Table::Corrections, None, 1).await.unwrap();
    assert_eq!((page.len(), &page[0]["id"]), (1, &serde_json::json!(second)));
    let next = store.export_page(Table::Corrections, Some(second as i64), 10).await.unwrap();
    assert_eq!((next.len(), &next[0]["id"]), (1, &serde_json::json!(first)));
    assert_eq!(next[0], store.export(Table::Corrections).await.unwrap()[0], "the same fields as export");
    assert!(store.export_page(Table::Corrections, Some(first as i64), 10).await.unwrap().is_empty());
    let mut out = Vec::new();
    assert_eq!(write_lines(&rows, &mut out).unwrap(), 1);
    assert!(out.ends_with(b"}\n"));
}

async fn answers(store: &dyn Store) {
    assert_eq!(store.question_for("c", "1").await.unwrap(), None);
    store.record_answer("c", "1", "first?", "one").await.unwrap();
    store.record_answer("c", "1", "again?", "two").await.unwrap();
    store.record_answer("d", "1", "other channel?", "three").await.unwrap();
    // The newest answer of that message, in that channel.
    assert_eq!(store.question_for("c", "1").await.unwrap().as_deref(), Some("again?"));
    assert_eq!(store.question_for("d", "1").await.unwrap().as_deref(), Some("other channel?"));
}

async fn jobs(store: &dyn Store) {
    let one = Scope::server("1");
    store.create_job(job("j1", "queued"), &one, vec![example("a"), example("b")]).await.unwrap();
    store.create_job(job("j2", "queued"), &Scope::global(), vec![example("c")]).await.unwrap();
    assert_eq!(store.job("j1").await.unwrap(), Some(job("j1", "queued")));
    assert_eq!(store.job("nope").await.unwrap(), None);
    let unfinished: Vec<String> = store.unfinished_jobs().await.unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(unfinished, ["j1", "j2"]);
    // Queued examples do not answer yet.
    assert!(store.trained_examples().await.unwrap().is_empty());

    store.update_job("j1", "succeeded", Some("learned".into())).await.unwrap();
    store.update_job("j2", "failed", Some("no".into())).await.unwrap();
    let j1 = store.job("j1").await.unwrap().unwrap();
    assert!(j1.is_finished());
    assert_eq!(j1.detail.as_deref(), Some("learned"));
    assert!(store.unfinished_jobs().await.unwrap().is_empty());
    assert_eq!(store.trained_examples().await.unwrap(), vec![(one.clone(), example("a")), (one.clone(), example("b"))]);

    assert_eq!(store.latest_fine_tuned_model(&one).await.unwrap(), None);
    store.set_fine_tuned_model("j2", "ft:global").await.unwrap();
    assert_eq!(store.latest_fine_tuned_model(&one).await.unwrap().as_deref(), Some("ft:global"));
    // A newer job of the scope itself wins; another scope's never counts.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store.create_job(job("j3", "running"), &one, vec![]).await.unwrap();
    store.update_job("j3", "succeeded", None).await.unwrap();
    store.set_fine_tuned_model("j3", "ft:one").await.unwrap();
    assert_eq!(store.latest_fine_tuned_model(&one).await.unwrap().as_deref(), Some("ft:one"));
    assert_eq!(store.latest_fine_tuned_model(&Scope::server("2")).await.unwrap().as_deref(), Some("ft:global"));
    let recent: Vec<String> = store.recent_jobs(2).await.unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(recent, ["j3", "j2"]);
}

async fn vectors(store: &dyn Store) {
    let one = CachedVector { text: [1; 32], vector: vec![0.5, -1.25, 3.0] };
    let two = CachedVector { text: [2; 32], vector: vec![1.0] };
    store.save_vectors("m1", vec![one.clone(), two.clone()]).await.unwrap();
    // Saving again replaces, never duplicates.
    let changed = CachedVector { text: [1; 32], vector: vec![9.0, 8.0, 7.0] };
    store.save_vectors("m1", vec![changed.clone()]).await.unwrap();
    store.save_vectors("m1", vec![]).await.unwrap();
    let mut got = store.vectors("m1").await.unwrap();
    got.sort_by_key(|v| v.text);
    assert_eq!(got, vec![changed, two]);
    assert!(store.vectors("m2").await.unwrap().is_empty());
}

async fn datasets(store: &dyn Store) {
    let (one, two) = (Scope::server("1"), Scope::server("2"));
    store.save_dataset(&one, "faq", vec![example("one"), example("uno")]).await.unwrap();
    store.save_dataset(&two, "faq", vec![example("two")]).await.unwrap();
    store.save_dataset(&Scope::global(), "rules", vec![example("global")]).await.unwrap();
    assert_eq!(store.dataset(&one, "faq").await.unwrap(), Some(vec![example("one"), example("uno")]));
    assert_eq!(store.dataset(&two, "faq").await.unwrap(), Some(vec![example("two")]));
    assert_eq!(store.dataset(&Scope::server("3"), "faq").await.unwrap(), None);
    assert_eq!(store.dataset(&two, "rules").await.unwrap(), Some(vec![example("global")]));
    // A server's own name hides the global one; saving again replaces.
    store.save_dataset(&two, "rules", vec![example("mine")]).await.unwrap();
    assert_eq!(store.dataset(&two, "rules").await.unwrap(), Some(vec![example("mine")]));
    assert_eq!(store.dataset(&one, "rules").await.unwrap(), Some(vec![example("global")]));
    store.save_dataset(&one, "faq", vec![example("replaced")]).await.unwrap();
    assert_eq!(store.dataset(&one, "faq").await.unwrap(), Some(vec![example("replaced")]));
}
