//! Speech services: audio → text. The embedded engine is Whisper tiny.en
//! on the CPU ([`whisper`]), fed by [`audio`]'s decoder.

pub mod audio;
pub mod whisper;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use whisper::WhisperModel;

#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    /// Not set up (no weights) or not supported: said to users as such.
    #[error("{0}")]
    Unavailable(String),
    /// The bytes are not audio this bot reads.
    #[error("{0}")]
    BadAudio(String),
    #[error("the audio is longer than {seconds} seconds")]
    TooLong { seconds: u32 },
    #[error("{0}")]
    Failed(String),
}

/// Where the embedded engine's files are, and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeechSettings {
    /// The folder with Whisper's `model.bin`, `config.json`, `tokenizer.json`.
    pub whisper: Option<PathBuf>,
    /// Longest audio transcribed.
    pub max_seconds: u32,
}

/// Speech-to-text with the weights loaded on first use and kept.
pub struct SpeechToText {
    settings: SpeechSettings,
    model: OnceLock<Result<Arc<Mutex<WhisperModel>>, String>>,
}

impl SpeechToText {
    pub fn new(settings: SpeechSettings) -> SpeechToText {
        SpeechToText { settings, model: OnceLock::new() }
    }

    /// The words spoken in `bytes` (any format [`audio`] reads). CPU-bound:
    /// runs on the blocking pool, one transcription at a time.
    pub async fn transcribe(self: &Arc<Self>, bytes: Vec<u8>) -> Result<String, SpeechError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.transcribe_blocking(&bytes))
            .await
            .map_err(|e| SpeechError::Failed(format!("the transcription task ended: {e}")))?
    }

    pub fn transcribe_blocking(&self, bytes: &[u8]) -> Result<String, SpeechError> {
        let samples = audio::decode_mono_16k(bytes, self.settings.max_seconds)?;
        let model = self.model()?;
        let mut model = model.lock().unwrap_or_else(|p| p.into_inner());
        model.transcribe(&samples)
    }

    fn model(&self) -> Result<Arc<Mutex<WhisperModel>>, SpeechError> {
        let Some(dir) = &self.settings.whisper else {
            return Err(SpeechError::Unavailable("speech recognition is turned off in the config".into()));
        };
        self.model
            .get_or_init(|| {
                let started = std::time::Instant::now();
                let loaded = WhisperModel::load(dir).map(|m| Arc::new(Mutex::new(m))).map_err(|e| e.to_string());
                match &loaded {
                    Ok(_) => tracing::info!(dir = %dir.display(), ms = started.elapsed().as_millis() as u64, "speech model loaded"),
                    Err(e) => tracing::warn!(error = %e, "speech model unavailable"),
                }
                loaded
            })
            .clone()
            .map_err(SpeechError::Unavailable)
    }
}
