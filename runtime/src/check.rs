//! `sandbot check <file.wasm>`: what an operator wants to know before
//! deploying a component. Does it fit the world, what does it say about
//! itself, what does it ask for? It is compiled and described exactly as
//! the bot would load it (with nothing granted), but nothing is deployed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::bindings::types::{CommandOption, OptionKind};
use crate::config::{CommandConfig, Grants, Limits};
use crate::options;
use crate::registry::{self, Registry};
use crate::sandbox::{EngineSettings, GuestPre, Sandbox};
use crate::services::store::SqliteStore;
use crate::services::Services;
use crate::text::printable;

/// What `check` found in a component that fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub name: String,
    pub summary: String,
    pub usage: String,
    /// The version of `sandbot:bot` it was built for.
    pub contract: String,
    /// Its typed options, one line each: `path (string, required): The file`.
    pub options: Vec<String>,
    /// The host functions it declares it needs (`describe().needs`).
    pub needs: Vec<String>,
    /// Needs that name no host function: a grant cannot give them.
    pub unknown_needs: Vec<String>,
    /// The interfaces the component imports (what it links against).
    pub imports: Vec<String>,
    pub sha256: String,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Everything but the sha256 and the contract comes from the guest.
        writeln!(f, "name:     {}", printable(&self.name))?;
        writeln!(f, "summary:  {}", printable(&self.summary))?;
        writeln!(f, "usage:    {}", printable(&self.usage))?;
        writeln!(f, "contract: sandbot:bot@{}", self.contract)?;
        if self.options.is_empty() {
            writeln!(f, "options:  none")?;
        }
        for (i, option) in self.options.iter().enumerate() {
            writeln!(f, "{}{}", if i == 0 { "options:  " } else { "          " }, printable(option))?;
        }
        let needs = if self.needs.is_empty() { "nothing".into() } else { self.needs.join(", ") };
        writeln!(f, "needs:    {}", printable(&needs))?;
        if !self.unknown_needs.is_empty() {
            writeln!(f, "unknown:  {} (no host function has these names)", printable(&self.unknown_needs.join(", ")))?;
        }
        writeln!(f, "imports:  {}", printable(&self.imports.join(", ")))?;
        write!(f, "sha256:   {}", self.sha256)
    }
}

/// Compiles `wasm` against the world and runs its `describe()`.
/// `Err` says why it does not fit.
pub async fn check(wasm: &Path) -> anyhow::Result<Report> {
    let bytes = tokio::fs::read(wasm).await.map_err(|e| anyhow::anyhow!("cannot read {}: {e}", wasm.display()))?;
    let limits = Limits::default();
    let sandbox = Sandbox::new(EngineSettings { max_concurrency: 2, max_memory_bytes: limits.memory_bytes })?;
    let prepared = sandbox.prepare(bytes).await.map_err(|e| anyhow::anyhow!("it does not fit the world: {e:#}"))?;
    let imports = sandbox.imports(&prepared.pre);
    // `describe()` runs with nothing granted and nowhere to send: the
    // store is a throwaway in memory.
    let services = Services {
        store: Arc::new(SqliteStore::open(Path::new(":memory:"))?),
        roots: Arc::new(BTreeMap::new()),
        model: None,
        speech: None,
        tts: None,
        global_servers: Arc::from([]),
    };
    let command = CommandConfig {
        name: "check".into(),
        wasm: wasm.to_path_buf(),
        grants: Grants::default(),
        read: Vec::new(),
        operators_only: false,
        limits,
    };
    let (info, _) = registry::describe(&prepared.pre, &command, &sandbox, &services, &Registry::default())
        .await
        .map_err(|why| anyhow::anyhow!("describe() {why}"))?;
    if let (Err(why), GuestPre::Current(_)) = (options::check_slash(&info.name, &info), &prepared.pre) {
        anyhow::bail!("as a slash command, {why}");
    }
    let options = info.options.iter().map(describe_option).collect();
    let unknown_needs = info.needs.iter().filter(|n| Grants::parse(&[n.as_str()]).is_err()).cloned().collect();
    Ok(Report {
        name: info.name,
        summary: info.summary,
        usage: info.usage,
        contract: prepared.pre.version(),
        options,
        needs: info.needs,
        unknown_needs,
        imports,
        sha256: prepared.sha256,
    })
}

/// `path (string, required): The file to send; choices: a, b`.
fn describe_option(option: &CommandOption) -> String {
    let kind = match option.kind {
        OptionKind::String => "string",
        OptionKind::Integer => "integer",
        OptionKind::Number => "number",
        OptionKind::Boolean => "boolean",
        OptionKind::User => "user",
        OptionKind::Channel => "channel",
        OptionKind::Role => "role",
        OptionKind::Attachment => "attachment",
    };
    let required = if option.required { ", required" } else { "" };
    let mut line = format!("{} ({kind}{required}): {}", option.name, option.description);
    if !option.choices.is_empty() {
        let choices: Vec<&str> = option.choices.iter().map(|c| c.name.as_str()).collect();
        line.push_str(&format!("; choices: {}", choices.join(", ")));
    }
    line
}
