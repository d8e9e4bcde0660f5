//! Hot swap: the commands follow the guests folder and the config file
//! while the bot runs. An operator deploys by copying a `.wasm` into place
//! (or editing `[commands.*]`); bursts of writes (`cp` and editors write in
//! pieces) are debounced into one reload, and `!reload` asks for one at
//! once. What a reload does is [`crate::registry::Registry::reload`]: a
//! version that fails to compile or fit the world is refused with a log
//! line, and the old one keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};
use tokio::sync::mpsc;

use crate::dispatch::Dispatcher;

/// How long the folder must be quiet before a reload: long enough for
/// `cp` of a few MB, short enough to feel immediate.
const QUIET: Duration = Duration::from_millis(300);

/// Keeps the reloading alive; dropping it stops watching.
pub struct Reloader {
    _watcher: Option<Debouncer<RecommendedWatcher>>,
}

/// Starts the reload task (for `!reload`) and, when the config says
/// `sandbox.watch`, the watcher.
pub fn start(dispatcher: Arc<Dispatcher>) -> anyhow::Result<Reloader> {
    let (requests, mut incoming) = mpsc::unbounded_channel();
    dispatcher.registry().set_reloader(requests);
    let (changes, mut changed) = mpsc::unbounded_channel::<()>();
    let watcher = if dispatcher.config().watch { Some(watch(&dispatcher, changes)?) } else { None };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                request = incoming.recv() => {
                    let Some(reply) = request else { return };
                    let _ = reply.send(dispatcher.reload().await.map_err(|e| e.to_string()));
                }
                // Without a watcher the channel is closed at once: the
                // pattern then turns this branch off, and `!reload` still works.
                Some(()) = changed.recv() => {
                    // One reload for everything that piled up meanwhile.
                    while changed.try_recv().is_ok() {}
                    if let Err(e) = dispatcher.reload().await {
                        tracing::error!(error = %e, "the config has an error; nothing was reloaded");
                    }
                }
            }
        }
    });
    Ok(Reloader { _watcher: watcher })
}

fn watch(dispatcher: &Dispatcher, changes: mpsc::UnboundedSender<()>) -> anyhow::Result<Debouncer<RecommendedWatcher>> {
    let config = dispatcher.config();
    let config_file = std::path::absolute(&config.path)?;
    let config_dir = config_file.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let guests_dir = config.guests_dir.clone();
    let relevant = {
        let config_file = config_file.clone();
        move |path: &Path| path == config_file || path.extension().is_some_and(|ext| ext == "wasm")
    };
    let mut debouncer = new_debouncer(QUIET, move |result: DebounceEventResult| match result {
        Ok(events) => {
            if events.iter().any(|event| relevant(&event.path)) {
                let _ = changes.send(());
            }
        }
        Err(e) => tracing::warn!(error = %e, "watching for new guests failed"),
    })?;
    debouncer.watcher().watch(&guests_dir, RecursiveMode::NonRecursive)?;
    if config_dir != guests_dir {
        debouncer.watcher().watch(&config_dir, RecursiveMode::NonRecursive)?;
    }
    tracing::info!(guests = %guests_dir.display(), config = %config_file.display(), "watching for changes");
    Ok(debouncer)
}
