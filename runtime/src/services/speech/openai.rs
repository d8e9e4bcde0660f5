//! OpenAI-compatible speech: `POST audio/transcriptions` (multipart: the
//! file, model, language) and `POST audio/speech` (JSON: model, input,
//! voice; WAV back). OpenAI itself, or any server that speaks the same
//! (LocalAI, speaches, openedai-speech, …).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;
use serde_json::json;

use super::{audio, speakable, SpeechError, Synthesizer, Transcriber};
use crate::services::openai_http::{OpenAiClient, RemoteError};

/// The largest transcription answer read (JSON).
const MAX_TRANSCRIPT_BYTES: u64 = 1 << 20;
/// The largest spoken answer read: 2000 characters of WAV are ≈ 10 MB.
const MAX_AUDIO_BYTES: u64 = 32 << 20;

#[derive(Clone, PartialEq, Eq)]
pub struct OpenAiSpeechSettings {
    /// `https://api.openai.com/v1`, or any compatible server's `/v1`.
    pub base_url: String,
    /// Sent as a bearer token; never shown to guests or logs.
    pub api_key: Option<String>,
    /// The transcription model (`whisper-1`).
    pub transcription_model: String,
    /// The speech model (`tts-1`).
    pub speech_model: String,
    /// The speech voice (`alloy`).
    pub voice: String,
    /// The language spoken to the bot (ISO-639-1), a hint for transcription.
    pub language: String,
    pub timeout: Duration,
}

impl fmt::Debug for OpenAiSpeechSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiSpeechSettings")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "…"))
            .field("transcription_model", &self.transcription_model)
            .field("speech_model", &self.speech_model)
            .field("voice", &self.voice)
            .field("language", &self.language)
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub struct OpenAiSpeech {
    client: OpenAiClient,
    settings: OpenAiSpeechSettings,
}

#[derive(Deserialize)]
struct Transcription {
    text: String,
}

impl OpenAiSpeech {
    pub fn new(settings: OpenAiSpeechSettings) -> Result<OpenAiSpeech, SpeechError> {
        let client = OpenAiClient::new(&settings.base_url, settings.api_key.clone(), settings.timeout)
            .map_err(|e| SpeechError::Failed(e.to_string()))?;
        Ok(OpenAiSpeech { client, settings })
    }
}

/// The server's refusal of the request (4xx) means the audio or text; its
/// failure (or none at all) means the server.
fn failure(e: RemoteError) -> SpeechError {
    match e.status {
        Some(400 | 413 | 415 | 422) => SpeechError::BadAudio(format!("the speech server refused it ({e})")),
        _ => SpeechError::Failed(format!("the speech server failed: {e}")),
    }
}

#[async_trait]
impl Transcriber for OpenAiSpeech {
    async fn transcribe(&self, audio: Vec<u8>) -> Result<String, SpeechError> {
        // Servers tell formats by the file name.
        let ext = audio::extension(&audio)
            .ok_or_else(|| SpeechError::BadAudio("not an audio file this bot can read (WAV, MP3, Ogg, FLAC)".into()))?;
        let s = &self.settings;
        let body = self
            .client
            .send(
                || {
                    let file = Part::bytes(audio.clone()).file_name(format!("audio.{ext}"));
                    let form = Form::new()
                        .part("file", file)
                        .text("model", s.transcription_model.clone())
                        .text("language", s.language.clone())
                        .text("response_format", "json");
                    self.client.http().post(self.client.url("audio/transcriptions")).multipart(form)
                },
                MAX_TRANSCRIPT_BYTES,
            )
            .await
            .map_err(failure)?;
        let answer: Transcription = serde_json::from_slice(&body)
            .map_err(|e| SpeechError::Failed(format!("the speech server's answer has no text: {e}")))?;
        Ok(answer.text.trim().to_string())
    }
}

#[async_trait]
impl Synthesizer for OpenAiSpeech {
    async fn synthesize(&self, text: &str) -> Result<Vec<u8>, SpeechError> {
        let text = speakable(text)?;
        let s = &self.settings;
        let body = json!({ "model": s.speech_model, "input": text, "voice": s.voice, "response_format": "wav" });
        let audio = self
            .client
            .send(|| self.client.http().post(self.client.url("audio/speech")).json(&body), MAX_AUDIO_BYTES)
            .await
            .map_err(failure)?;
        if audio::extension(&audio).is_none() {
            return Err(SpeechError::Failed("the speech server's answer is not audio".into()));
        }
        Ok(audio)
    }
}
