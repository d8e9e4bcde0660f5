//! A fake OpenAI-compatible server on 127.0.0.1, for the model provider's
//! tests: chat completions, file uploads, and fine-tuning jobs whose status
//! moves one step each time it is read (validating → queued → running →
//! succeeded, or failed when the training file asks for it). Started
//! [`FakeOpenAi::without_fine_tuning`], it has no files or fine-tuning
//! endpoints, like llama.cpp's server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Default)]
pub struct Recorded {
    /// Every chat request body, in order.
    pub chats: Vec<Value>,
    /// Uploaded files by id: (purpose, content).
    pub files: HashMap<String, (String, String)>,
    /// Job id → (training file, reads so far).
    pub jobs: HashMap<String, (String, u32)>,
    /// Chat requests answered with 500 so far (prompts containing "flaky").
    pub flaky_failures: u32,
    /// Each transcription request: its text fields and the file's name and size.
    pub transcriptions: Vec<Value>,
    /// Each speech request body.
    pub speeches: Vec<Value>,
    /// The WAV each speech request was answered with.
    pub spoken: Vec<Vec<u8>>,
}

/// What the fake "hears" in any audio long enough (a test double cannot
/// listen; the embedded engine's tests check real recognition).
pub const HEARD: &str = "What is the capital of France?";

#[derive(Clone, Default)]
pub struct FakeOpenAi {
    pub recorded: Arc<Mutex<Recorded>>,
}

impl FakeOpenAi {
    /// Starts the server on its own thread; returns its `/v1` base URL.
    pub fn start() -> (FakeOpenAi, String) {
        FakeOpenAi::serve(true)
    }

    /// A server that answers chats but offers no fine-tuning (404).
    pub fn without_fine_tuning() -> (FakeOpenAi, String) {
        FakeOpenAi::serve(false)
    }

    fn serve(fine_tuning: bool) -> (FakeOpenAi, String) {
        let fake = FakeOpenAi::default();
        let mut app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/audio/transcriptions", post(transcription))
            .route("/v1/audio/speech", post(speech));
        if fine_tuning {
            app = app
                .route("/v1/files", post(upload))
                .route("/v1/fine_tuning/jobs", post(create_job))
                .route("/v1/fine_tuning/jobs/{id}", get(job));
        }
        let app = app.with_state(fake.clone());
        let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        (fake, format!("http://{addr}/v1"))
    }

    pub fn chats(&self) -> Vec<Value> {
        self.recorded.lock().unwrap().chats.clone()
    }
}

/// Like a model that reads its context: with facts in the system prompt,
/// the first fact's answer (or "I don't know." for a question that says
/// "unanswerable"); else `fake(<model>): <last user message>`.
async fn chat(State(fake): State<FakeOpenAi>, Json(body): Json<Value>) -> Result<Json<Value>, StatusCode> {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last_user =
        messages.iter().rev().find(|m| m["role"] == "user").and_then(|m| m["content"].as_str()).unwrap_or("");
    {
        let mut recorded = fake.recorded.lock().unwrap();
        recorded.chats.push(body.clone());
        if last_user.contains("flaky") && recorded.flaky_failures < 2 {
            recorded.flaky_failures += 1;
            return Err(StatusCode::INTERNAL_SERVER_ERROR);
        }
    }
    let system = messages.iter().find(|m| m["role"] == "system").and_then(|m| m["content"].as_str()).unwrap_or("");
    let first_fact = system.split_once("\nFacts:").and_then(|(_, facts)| facts.split_once(" A: ")).map(|(_, a)| a);
    let answer = match first_fact {
        Some(_) if last_user.contains("unanswerable") => "I don't know.".to_string(),
        Some(fact) => fact.lines().next().unwrap_or_default().to_string(),
        None => format!("fake({}): {last_user}", body["model"].as_str().unwrap_or("?")),
    };
    // Lenient servers leave fields out; so does this one (no `usage`, no
    // `finish_reason`).
    Ok(Json(json!({ "choices": [{ "index": 0, "message": { "role": "assistant", "content": answer } }] })))
}

async fn upload(State(fake): State<FakeOpenAi>, mut form: Multipart) -> Result<Json<Value>, StatusCode> {
    let (mut purpose, mut content) = (String::new(), String::new());
    while let Some(field) = form.next_field().await.map_err(|_| StatusCode::BAD_REQUEST)? {
        match field.name() {
            Some("purpose") => purpose = field.text().await.map_err(|_| StatusCode::BAD_REQUEST)?,
            Some("file") => content = field.text().await.map_err(|_| StatusCode::BAD_REQUEST)?,
            _ => {}
        }
    }
    if purpose != "fine-tune" || content.is_empty() {
        return Err(StatusCode::BAD_REQUEST);
    }
    for line in content.lines() {
        let value: Value = serde_json::from_str(line).map_err(|_| StatusCode::BAD_REQUEST)?;
        if !value["messages"].is_array() {
            return Err(StatusCode::BAD_REQUEST);
        }
    }
    let mut recorded = fake.recorded.lock().unwrap();
    let id = format!("file-{}", recorded.files.len() + 1);
    recorded.files.insert(id.clone(), (purpose, content));
    Ok(Json(json!({ "id": id, "object": "file", "purpose": "fine-tune" })))
}

async fn create_job(State(fake): State<FakeOpenAi>, Json(body): Json<Value>) -> Result<Json<Value>, StatusCode> {
    let file = body["training_file"].as_str().unwrap_or_default().to_string();
    let mut recorded = fake.recorded.lock().unwrap();
    if !recorded.files.contains_key(&file) || body["model"].as_str().is_none() {
        return Err(StatusCode::BAD_REQUEST);
    }
    let id = format!("ftjob-{}", recorded.jobs.len() + 1);
    recorded.jobs.insert(id.clone(), (file, 0));
    Ok(Json(json!({ "id": id, "object": "fine_tuning.job", "status": "validating_files" })))
}

async fn job(State(fake): State<FakeOpenAi>, Path(id): Path<String>) -> Result<Json<Value>, StatusCode> {
    let mut recorded = fake.recorded.lock().unwrap();
    let Some((file, reads)) = recorded.jobs.get(&id).cloned() else {
        return Err(StatusCode::NOT_FOUND);
    };
    recorded.jobs.insert(id.clone(), (file.clone(), reads + 1));
    let fails = recorded.files[&file].1.contains("FAIL");
    let body = match (reads, fails) {
        (0, _) => json!({ "id": id, "status": "queued" }),
        (1, _) => json!({ "id": id, "status": "running" }),
        (_, false) => json!({ "id": id, "status": "succeeded", "fine_tuned_model": format!("ft:base:sandbot:{id}") }),
        (_, true) => json!({ "id": id, "status": "failed", "error": { "message": "the training file asked to fail" } }),
    };
    Ok(Json(body))
}

fn openai_error(status: StatusCode, message: &str) -> (StatusCode, Json<Value>) {
    (status, Json(json!({ "error": { "message": message, "type": "invalid_request_error" } })))
}

/// Like OpenAI: the format is told by the file name, which must match the
/// bytes; audio under 0.1 s is refused.
async fn transcription(
    State(fake): State<FakeOpenAi>,
    mut form: Multipart,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let bad = |m: &str| openai_error(StatusCode::BAD_REQUEST, m);
    let mut request = serde_json::Map::new();
    let mut file = None;
    while let Some(field) = form.next_field().await.map_err(|_| bad("malformed multipart"))? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            let filename = field.file_name().unwrap_or_default().to_string();
            let bytes = field.bytes().await.map_err(|_| bad("unreadable file"))?;
            file = Some((filename, bytes));
        } else {
            let text = field.text().await.map_err(|_| bad("unreadable field"))?;
            request.insert(name, json!(text));
        }
    }
    let (filename, bytes) = file.ok_or_else(|| bad("file is required"))?;
    request.insert("filename".into(), json!(filename));
    request.insert("bytes".into(), json!(bytes.len()));
    fake.recorded.lock().unwrap().transcriptions.push(Value::Object(request.clone()));
    if request.get("model").and_then(Value::as_str).unwrap_or_default().is_empty() {
        return Err(bad("model is required"));
    }
    let magic_matches = match filename.rsplit_once('.').map(|(_, ext)| ext) {
        Some("wav") => bytes.starts_with(b"RIFF"),
        Some("ogg") => bytes.starts_with(b"OggS"),
        Some("mp3") => bytes.starts_with(b"ID3") || bytes.first() == Some(&0xFF),
        Some("flac") => bytes.starts_with(b"fLaC"),
        _ => false,
    };
    if !magic_matches {
        return Err(bad("Invalid file format."));
    }
    if bytes.len() < 1_000 {
        return Err(bad("Audio file is too short. Minimum audio length is 0.1 seconds."));
    }
    Ok(Json(json!({ "text": format!(" {HEARD} ") })))
}

/// Answers with half a second of a 440 Hz tone as a 24 kHz WAV (OpenAI's
/// WAV rate), and keeps it for the test to compare.
async fn speech(State(fake): State<FakeOpenAi>, Json(body): Json<Value>) -> Result<Vec<u8>, (StatusCode, Json<Value>)> {
    let bad = |m: &str| openai_error(StatusCode::BAD_REQUEST, m);
    fake.recorded.lock().unwrap().speeches.push(body.clone());
    for field in ["model", "input", "voice"] {
        if body[field].as_str().unwrap_or_default().is_empty() {
            return Err(bad(&format!("{field} is required")));
        }
    }
    let rate = 24_000u32;
    let data: Vec<u8> = (0..rate / 2)
        .flat_map(|i| {
            let s = (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin() * 0.3;
            ((s * i16::MAX as f32) as i16).to_le_bytes()
        })
        .collect();
    let mut wav = b"RIFF".to_vec();
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    for field in [
        16u32.to_le_bytes().as_slice(),
        &1u16.to_le_bytes(),
        &1u16.to_le_bytes(),
        &rate.to_le_bytes(),
        &(rate * 2).to_le_bytes(),
        &2u16.to_le_bytes(),
        &16u16.to_le_bytes(),
    ] {
        wav.extend_from_slice(field);
    }
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    fake.recorded.lock().unwrap().spoken.push(wav.clone());
    Ok(wav)
}
