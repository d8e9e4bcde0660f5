//! Commands deployed through the store: `sandbot deploy`, `rollback` and
//! `versions`, and the dashboard's upload.
//!
//! A deployment is a component and its `[commands.<name>]` entry, kept in
//! the store: PostgreSQL tells a whole fleet at once, SQLite only the
//! process that reloads (the dashboard's, or at the next `!reload` or
//! start). Every process copies the component to
//! `data_dir/deployed/<sha256>.wasm` and loads it as it loads a file from
//! the guests folder: through its own compile cache, checked, and swapped
//! in only if it fits (else the version running keeps serving). A
//! deployment wins over the config's entry of the same name; rolling the
//! last one back gives the name to the config again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::{Config, RawEntry};
use crate::sandbox::cache::{create_private_dir, sha256_hex, write_private};
use crate::services::store::{Deployment, Store, StoreError};

/// Puts the current deployments into `config.commands`. Returns those
/// that cannot be used (command → why), so the registry keeps the version
/// it runs.
pub async fn apply(config: &mut Config, store: &dyn Store) -> Result<BTreeMap<String, String>, StoreError> {
    let mut refused = BTreeMap::new();
    let deployments = store.current_deployments().await?;
    if deployments.is_empty() {
        return Ok(refused);
    }
    let dir = config.data_dir.join("deployed");
    create_private_dir(&dir)?;
    for deployment in deployments {
        let command = match local_copy(store, &dir, &deployment).await {
            Ok(wasm) => config.deployed_command(&deployment.name, &deployment.entry, wasm).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match command {
            Ok(command) => {
                config.commands.insert(deployment.name, command);
            }
            Err(why) => {
                tracing::warn!(command = %deployment.name, deployment = deployment.id, error = %why, "cannot use a deployment");
                refused.insert(deployment.name, format!("deployment {}: {why}", deployment.id));
            }
        }
    }
    Ok(refused)
}

/// The deployment's component on this machine's disk, fetched once.
async fn local_copy(store: &dyn Store, dir: &Path, deployment: &Deployment) -> Result<PathBuf, StoreError> {
    let path = dir.join(format!("{}.wasm", deployment.sha256));
    if let Ok(bytes) = tokio::fs::read(&path).await {
        if sha256_hex(&bytes) == deployment.sha256 {
            return Ok(path);
        }
    }
    let bytes = store.deployed_wasm(deployment.id).await?;
    if sha256_hex(&bytes) != deployment.sha256 {
        return Err(StoreError::NotFound(format!("deployment {}'s bytes do not match its sha256", deployment.id)));
    }
    // Owner-only, written aside and renamed: no reader sees half of it.
    let target = path.clone();
    tokio::task::spawn_blocking(move || write_private(&target, &bytes))
        .await
        .map_err(|e| StoreError::Task(e.to_string()))??;
    Ok(path)
}

/// The entry a deployment of `name` carries when none is given: the
/// config file's own `[commands.<name>]`, without `wasm`.
pub fn entry_from_config(config: &Config, name: &str) -> anyhow::Result<RawEntry> {
    let text =
        std::fs::read_to_string(&config.path).with_context(|| format!("cannot read {}", config.path.display()))?;
    let table: toml::Table = toml::from_str(&text).with_context(|| format!("{}", config.path.display()))?;
    let mut entry = table
        .get("commands")
        .and_then(|commands| commands.get(name))
        .and_then(toml::Value::as_table)
        .cloned()
        .with_context(|| {
            format!(
                "{} has no [commands.{name}] to take its grants from: give them (--grant, --read, --entry)",
                config.path.display()
            )
        })?;
    entry.remove("wasm");
    Ok(entry.try_into()?)
}

/// Checks `wasm` as `sandbot check` does and `entry` against the config,
/// then stores them as the current version of `name` for every process.
pub async fn deploy(
    config: &Config,
    store: &dyn Store,
    name: &str,
    wasm: &Path,
    entry: &RawEntry,
    by: &str,
) -> anyhow::Result<(Deployment, crate::check::Report)> {
    let report = crate::check::check(wasm).await.with_context(|| format!("{}", wasm.display()))?;
    let entry = toml::to_string(entry)?;
    let command = config.deployed_command(name, &entry, wasm.to_path_buf())?;
    let missing = command.grants.missing(&report.needs);
    if !missing.is_empty() {
        tracing::warn!(command = name, missing = %missing.join(", "), "it needs interfaces the entry does not grant; those calls will be denied");
    }
    let bytes = tokio::fs::read(wasm).await.with_context(|| format!("cannot read {}", wasm.display()))?;
    Ok((store.deploy(name, &bytes, &entry, by).await?, report))
}

/// Who deploys: `$USER@host`.
pub fn operator() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    let mut host = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that.
    let named = unsafe { libc::gethostname(host.as_mut_ptr().cast(), host.len()) } == 0;
    let host = if named {
        let end = host.iter().position(|&b| b == 0).unwrap_or(host.len());
        String::from_utf8_lossy(&host[..end]).into_owned()
    } else {
        "unknown".into()
    };
    format!("{user}@{host}")
}

/// `sandbot versions`: every deployment, the current ones marked.
pub fn versions(all: &[Deployment], current: &[Deployment]) -> String {
    if all.is_empty() {
        return "nothing deployed through the store; commands come from the config and the guests folder\n".into();
    }
    let mut out = String::new();
    for d in all {
        let state = if current.iter().any(|c| c.id == d.id) {
            "current"
        } else if d.rolled_back {
            "rolled back"
        } else {
            "earlier"
        };
        out.push_str(&format!(
            "{:<16} #{:<5} sha256 {}  {}  by {}  {}\n",
            d.name,
            d.id,
            &d.sha256[..12.min(d.sha256.len())],
            d.deployed_at,
            d.deployed_by,
            state
        ));
    }
    out
}
