//! What host functions reach beyond the platform: the database, the
//! granted folders, the model and speech. [`Services`] is a cheap-to-clone handle shared by every
//! invocation.

pub mod files;
pub mod model;
pub mod openai_http;
pub mod speech;
pub mod store;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use store::Store;

use files::Root;

/// Set when the caller stops waiting (its deadline passed): blocking work
/// (a transcription, an answer being written) checks it as it goes and
/// gives up.
pub struct CancelOnDrop(Arc<AtomicBool>);

impl CancelOnDrop {
    pub fn new() -> CancelOnDrop {
        CancelOnDrop(Arc::new(AtomicBool::new(false)))
    }

    /// The flag the work checks.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

impl Default for CancelOnDrop {
    fn default() -> Self {
        CancelOnDrop::new()
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The shared services, cloned into every invocation.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    /// The granted roots by name, opened once from the config.
    pub roots: Arc<BTreeMap<String, Arc<Root>>>,
    /// `None` when the config turns the model off.
    pub model: Option<Arc<dyn model::ModelProvider>>,
    /// Speech to text; `None` when the config turns it off.
    pub speech: Option<Arc<dyn speech::Transcriber>>,
    /// Text to speech; `None` when the config turns it off.
    pub tts: Option<Arc<dyn speech::Synthesizer>>,
    /// `model.global_servers`: whose teaching every server sees.
    pub global_servers: Arc<[String]>,
}
