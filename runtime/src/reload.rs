//! Hot swap: the commands follow the guests folder and the config file
//! while the bot runs. An operator deploys by renaming a `.wasm` into
//! place, which is complete and reloads at once, or by copying it over the
//! old one (or editing `[commands.*]`), whose bursts of writes (`cp` and
//! editors write in pieces) are debounced into one reload; `!reload` asks
//! for one at once. What a reload does is [`crate::registry::Registry::reload`]: a
//! version that fails to compile or fit the world is refused with a log
//! line, and the old one keeps serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, EventKind, MetadataKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;

use crate::dispatch::Dispatcher;
use crate::services::store::Change as StoreChange;

/// A folder that never goes quiet still gets a reload this often.
const LONGEST_WAIT: Duration = Duration::from_secs(5);

/// Keeps the reloading alive; dropping it stops watching.
pub struct Reloader {
    _watcher: Option<Arc<Mutex<RecommendedWatcher>>>,
}

/// What the watcher saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// A `.wasm` or the config file was written, moved or removed.
    Files,
    /// A `.wasm` was renamed into place: it is complete.
    Renamed,
    /// The guests folder itself was (re)created: watch it again.
    GuestsFolder,
}

/// Starts the reload task (for `!reload`) and, when the config says
/// `sandbox.watch`, the watcher.
pub fn start(dispatcher: Arc<Dispatcher>) -> anyhow::Result<Reloader> {
    let (requests, mut incoming) = mpsc::unbounded_channel();
    dispatcher.registry().set_reloader(requests);
    let (changes, mut changed) = mpsc::unbounded_channel::<Change>();
    let watcher = if dispatcher.config().watch { Some(watch(&dispatcher, changes)?) } else { None };
    let rewatch = watcher.clone();
    let guests_dir = dispatcher.config().guests_dir.clone();
    // Deployments through a shared store (`sandbot deploy`) reload at once.
    let mut deployments = dispatcher.take_store_changes();
    // A deployment whose reload failed (the store away) is tried again.
    let mut retry_at: Option<Instant> = None;
    // Long enough for `cp` of a few MB, short enough to feel immediate.
    let quiet = dispatcher.config().quiet;
    tokio::spawn(async move {
        // The burst being waited out: when it began and when it last moved.
        let mut burst: Option<(Instant, Instant)> = None;
        let mut folder_back = false;
        // A rename into place was seen: reload without waiting.
        let mut complete = false;
        loop {
            let quiet_at = match burst {
                _ if complete => Instant::now(),
                Some((first, last)) => (last + quiet).min(first + LONGEST_WAIT),
                None => Instant::now(),
            };
            tokio::select! {
                request = incoming.recv() => {
                    let Some(reply) = request else { return };
                    // This reload covers whatever the watcher saw so far.
                    burst = None;
                    complete = false;
                    if std::mem::take(&mut folder_back) {
                        rewatch_guests(rewatch.as_deref(), &guests_dir);
                    }
                    let _ = reply.send(dispatcher.reload().await.map_err(|e| e.to_string()));
                }
                // Without a watcher the channel is closed at once: the
                // pattern then turns this branch off, and `!reload` still works.
                Some(change) = changed.recv() => {
                    folder_back |= change == Change::GuestsFolder;
                    complete |= change == Change::Renamed;
                    let now = Instant::now();
                    burst = Some((burst.map_or(now, |(first, _)| first), now));
                }
                deployed = deployment(&mut deployments) => {
                    if !deployed {
                        deployments = None;
                        continue;
                    }
                    retry_at = reload_deployment(&dispatcher).await;
                }
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now).into()), if retry_at.is_some() => {
                    retry_at = reload_deployment(&dispatcher).await;
                }
                _ = tokio::time::sleep_until(quiet_at.into()), if burst.is_some() => {
                    burst = None;
                    complete = false;
                    if std::mem::take(&mut folder_back) {
                        rewatch_guests(rewatch.as_deref(), &guests_dir);
                    }
                    if let Err(e) = dispatcher.reload().await {
                        tracing::error!(error = %e, "the config has an error; nothing was reloaded");
                    }
                }
            }
        }
    });
    Ok(Reloader { _watcher: watcher })
}

/// Reloads for a deployment; when it fails, when to try again.
async fn reload_deployment(dispatcher: &Dispatcher) -> Option<Instant> {
    match dispatcher.reload().await {
        Ok(_) => None,
        Err(e) => {
            tracing::error!(error = %e, "a deployment could not be reloaded; trying again in 2 s");
            Some(Instant::now() + Duration::from_secs(2))
        }
    }
}

/// Waits for a deployment or rollback through the shared store (or for a
/// lost connection's "everything may have changed"): `true`. `false`: the
/// store stopped telling. Without a store that tells, never.
async fn deployment(changes: &mut Option<broadcast::Receiver<StoreChange>>) -> bool {
    let Some(changes) = changes else { return std::future::pending().await };
    loop {
        match changes.recv().await {
            Ok(StoreChange::Commands | StoreChange::Everything) | Err(RecvError::Lagged(_)) => return true,
            Ok(StoreChange::Taught(_)) => continue,
            Err(RecvError::Closed) => return false,
        }
    }
}

fn watch(
    dispatcher: &Dispatcher,
    changes: mpsc::UnboundedSender<Change>,
) -> anyhow::Result<Arc<Mutex<RecommendedWatcher>>> {
    let config = dispatcher.config();
    let config_file = std::path::absolute(&config.path)?;
    let config_dir = config_file.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let guests_dir = std::path::absolute(&config.guests_dir)?;
    let guests_parent = guests_dir.parent().map(Path::to_path_buf);
    let watched_guests_dir = guests_dir.clone();
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| match result {
        Ok(event) => {
            if !is_a_write(&event.kind) {
                return;
            }
            // The new name of a rename is its last path (`Both` has two).
            let renamed_to = match event.kind {
                EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => event.paths.last(),
                _ => None,
            };
            for path in &event.paths {
                let is_wasm = path.extension().is_some_and(|ext| ext == "wasm");
                let change = if *path == watched_guests_dir && matches!(event.kind, EventKind::Create(_)) {
                    Change::GuestsFolder
                } else if is_wasm && renamed_to == Some(path) {
                    Change::Renamed
                } else if *path == config_file || is_wasm {
                    Change::Files
                } else {
                    continue;
                };
                let _ = changes.send(change);
            }
        }
        Err(e) => tracing::warn!(error = %e, "watching for new guests failed"),
    })?;
    watcher.watch(&guests_dir, RecursiveMode::NonRecursive)?;
    if config_dir != guests_dir {
        watcher.watch(&config_dir, RecursiveMode::NonRecursive)?;
    }
    // So a guests folder deleted and made again (`cargo clean`, a deploy
    // that swaps the folder) is noticed.
    if let Some(parent) = guests_parent.filter(|p| *p != config_dir) {
        if let Err(e) = watcher.watch(&parent, RecursiveMode::NonRecursive) {
            tracing::debug!(folder = %parent.display(), error = %e, "not watching the guests folder's parent");
        }
    }
    tracing::info!(guests = %guests_dir.display(), config = %config.path.display(), "watching for changes");
    Ok(Arc::new(Mutex::new(watcher)))
}

/// Reads do not count: the reload opens every file it watches, and would
/// otherwise set off the next reload, for ever.
fn is_a_write(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(notify::event::AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        _ => true,
    }
}

fn rewatch_guests(watcher: Option<&Mutex<RecommendedWatcher>>, guests_dir: &Path) {
    let Some(Ok(mut watcher)) = watcher.map(Mutex::lock) else { return };
    match watcher.watch(guests_dir, RecursiveMode::NonRecursive) {
        Ok(()) => tracing::info!(guests = %guests_dir.display(), "watching the guests folder again"),
        Err(e) => tracing::warn!(guests = %guests_dir.display(), error = %e, "cannot watch the guests folder"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessMode, CreateKind, DataChange};

    #[test]
    fn reads_are_not_changes() {
        assert!(!is_a_write(&EventKind::Access(AccessKind::Open(AccessMode::Any))));
        assert!(!is_a_write(&EventKind::Access(AccessKind::Close(AccessMode::Read))));
        assert!(!is_a_write(&EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime))));
        assert!(is_a_write(&EventKind::Access(AccessKind::Close(AccessMode::Write))));
        assert!(is_a_write(&EventKind::Modify(ModifyKind::Data(DataChange::Any))));
        assert!(is_a_write(&EventKind::Create(CreateKind::File)));
        assert!(is_a_write(&EventKind::Remove(notify::event::RemoveKind::File)));
    }
}
