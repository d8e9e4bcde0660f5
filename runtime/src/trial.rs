//! `sandbot try <file.wasm> '<message>'`: one message through one
//! component, with no config of the author's and nothing left behind. The
//! bot it starts is the real one (the same sandbox, grants, limits and
//! console), on a throwaway data folder, with the model and speech off.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use crate::platform::console::{Console, Mode, DEFAULT_AUTHOR_ID};
use crate::{Config, Dispatcher};

/// What to try, from the command line.
#[derive(Debug, Clone, Default)]
pub struct Trial {
    pub wasm: PathBuf,
    /// `!name args`, `/name option:value`, or any text.
    pub message: String,
    /// `None`: what the component's `describe()` says it needs.
    pub grants: Option<Vec<String>>,
    /// `(root, folder)` pairs it may read.
    pub read: Vec<(String, PathBuf)>,
    /// Pins `wasi:random`: the same seed, the same output.
    pub seed: Option<u64>,
    /// The author is an operator.
    pub operator: bool,
    /// Files attached to the message.
    pub attachments: Vec<PathBuf>,
    /// Where files the command sends are kept; `None`: not kept.
    pub out: Option<PathBuf>,
    /// One JSON object per effect instead of text.
    pub jsonl: bool,
}

/// Runs the trial and writes its effects to `out`. Says first what the
/// component was given, so the output explains itself.
pub async fn run(trial: Trial, mut out: Box<dyn Write + Send>) -> anyhow::Result<()> {
    let wasm = std::path::absolute(&trial.wasm).with_context(|| format!("{}", trial.wasm.display()))?;
    let report = crate::check::check(&wasm).await.with_context(|| format!("{}", wasm.display()))?;
    let grants = trial.grants.clone().unwrap_or_else(|| report.needs.clone());
    let scratch = tempfile::tempdir().context("cannot make a scratch folder")?;
    let config_path = scratch.path().join("sandbot.toml");
    let text = config_text(&trial, &report.name, &wasm, &grants, scratch.path())?;
    let mut config = Config::from_toml(&config_path, &text)?;
    config.random_seed = trial.seed;
    if !trial.jsonl {
        let granted = if grants.is_empty() { "nothing".to_string() } else { grants.join(", ") };
        writeln!(out, "# {} as {}{}, granted: {granted}", wasm.display(), config.prefix, report.name)?;
    }
    let dispatcher = Dispatcher::start(config).await?;
    let out_dir = trial.out.clone().unwrap_or_else(|| scratch.path().join("sent"));
    let mode = if trial.jsonl { Mode::JsonLines } else { Mode::Interactive };
    let console = Console::new(out, mode, &out_dir)
        .with_context(|| format!("cannot create the output folder {}", out_dir.display()))?;
    let line = input_line(&trial)?;
    Arc::clone(&console).run(&dispatcher, std::io::Cursor::new(line.into_bytes())).await?;
    Ok(())
}

/// The console's input: a slash command as typed, anything else as JSON
/// so that newlines, attachments and the operator flag come along.
fn input_line(trial: &Trial) -> anyhow::Result<String> {
    if trial.message.starts_with('/') && trial.attachments.is_empty() && !trial.message.contains('\n') {
        return Ok(format!("{}\n", trial.message));
    }
    let mut attachments = Vec::new();
    for file in &trial.attachments {
        anyhow::ensure!(file.is_file(), "there is no file {}", file.display());
        attachments.push(std::path::absolute(file)?);
    }
    let line = serde_json::json!({
        "content": trial.message,
        "author": "you",
        "author_id": DEFAULT_AUTHOR_ID,
        "attachments": attachments,
    });
    Ok(format!("{line}\n"))
}

/// A config of one command, everything else off.
fn config_text(trial: &Trial, name: &str, wasm: &Path, grants: &[String], scratch: &Path) -> anyhow::Result<String> {
    use toml::Value;
    let mut root = toml::Table::new();
    root.insert("prefix".into(), Value::from("!"));
    root.insert("data_dir".into(), Value::from(scratch.join("data").display().to_string()));
    let folder = wasm.parent().context("the component's folder")?;
    root.insert("guests_dir".into(), Value::from(folder.display().to_string()));
    let table = |pairs: &[(&str, Value)]| Value::Table(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect());
    root.insert("sandbox".into(), table(&[("watch", Value::from(false))]));
    root.insert("model".into(), table(&[("provider", Value::from("none"))]));
    root.insert("speech".into(), table(&[("transcriber", Value::from("none")), ("synthesizer", Value::from("none"))]));
    if trial.operator {
        root.insert("operators".into(), table(&[("users", Value::from(vec![DEFAULT_AUTHOR_ID]))]));
    }
    let mut roots = toml::Table::new();
    for (root_name, folder) in &trial.read {
        let folder = std::path::absolute(folder)?;
        roots.insert(root_name.clone(), Value::from(folder.display().to_string()));
    }
    root.insert("roots".into(), Value::Table(roots));
    let file = wasm.file_name().context("the component's file name")?.to_string_lossy().into_owned();
    let read: Vec<&str> = trial.read.iter().map(|(name, _)| name.as_str()).collect();
    let entry =
        table(&[("wasm", Value::from(file)), ("grants", Value::from(grants.to_vec())), ("read", Value::from(read))]);
    root.insert("commands".into(), table(&[(name, entry)]));
    Ok(toml::to_string(&root)?)
}

/// `root=folder`, as `--read` takes it.
pub fn parse_read(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, folder)) if !name.is_empty() && !folder.is_empty() => Ok((name.to_string(), folder.into())),
        _ => Err(format!("`{text}` is not root=folder")),
    }
}
