//! Speech services: audio → text with Whisper tiny.en on the CPU
//! ([`whisper`], fed by [`audio`]'s decoder), and text → audio with
//! espeak-ng ([`tts`]).

pub mod audio;
pub mod tts;
pub mod whisper;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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
    /// The caller stopped waiting.
    #[error("the transcription was cancelled")]
    Cancelled,
}

/// Where the embedded engine's files are, and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeechSettings {
    /// The folder with Whisper's `model.bin`, `config.json`, `tokenizer.json`.
    pub whisper: Option<PathBuf>,
    /// Longest audio transcribed.
    pub max_seconds: u32,
    /// Text-to-speech; `None` turns it off.
    pub tts: Option<tts::TtsSettings>,
}

/// Speech-to-text with the weights loaded on first use and kept. A load
/// that fails (no weights yet) is tried again on the next call, so
/// `make build` while the bot runs is enough.
pub struct SpeechToText {
    settings: SpeechSettings,
    model: Mutex<Option<Arc<Mutex<WhisperModel>>>>,
}

/// Set when the caller stops waiting (its deadline passed): the blocking
/// work checks it between windows and tokens and gives up.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl SpeechToText {
    pub fn new(settings: SpeechSettings) -> SpeechToText {
        SpeechToText { settings, model: Mutex::new(None) }
    }

    /// The words spoken in `bytes` (any format [`audio`] reads). CPU-bound:
    /// runs on the blocking pool, one transcription at a time; dropping
    /// the future stops the work at the next token.
    pub async fn transcribe(self: &Arc<Self>, bytes: Vec<u8>) -> Result<String, SpeechError> {
        let this = self.clone();
        let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)));
        let flag = cancel.0.clone();
        let result = tokio::task::spawn_blocking(move || this.transcribe_until(bytes, &flag))
            .await
            .map_err(|e| SpeechError::Failed(format!("the transcription task ended: {e}")))?;
        drop(cancel);
        result
    }

    pub fn transcribe_blocking(&self, bytes: Vec<u8>) -> Result<String, SpeechError> {
        self.transcribe_until(bytes, &AtomicBool::new(false))
    }

    fn transcribe_until(&self, bytes: Vec<u8>, cancel: &AtomicBool) -> Result<String, SpeechError> {
        let samples = audio::decode_mono_16k(bytes, self.settings.max_seconds)?;
        let model = self.model()?;
        let mut model = model.lock().unwrap_or_else(|p| p.into_inner());
        model.transcribe(&samples, cancel)
    }

    fn model(&self) -> Result<Arc<Mutex<WhisperModel>>, SpeechError> {
        let Some(dir) = &self.settings.whisper else {
            return Err(SpeechError::Unavailable("speech recognition is turned off in the config".into()));
        };
        let mut slot = self.model.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(model) = &*slot {
            return Ok(model.clone());
        }
        let started = std::time::Instant::now();
        match WhisperModel::load(dir) {
            Ok(model) => {
                let ms = started.elapsed().as_millis() as u64;
                tracing::info!(dir = %dir.display(), ms, "speech model loaded");
                let model = Arc::new(Mutex::new(model));
                *slot = Some(model.clone());
                Ok(model)
            }
            Err(e) => {
                tracing::warn!(error = %e, "speech model unavailable");
                Err(e)
            }
        }
    }
}
