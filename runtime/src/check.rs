//! `sandbot check <file.wasm>`: what an operator wants to know before
//! deploying a component. Does it fit the world, what does it say about
//! itself, what does it ask for, and (with a config) will the entry give
//! it that? It is compiled and described exactly as the bot would load it
//! (with nothing granted), but nothing is deployed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::bindings::types::{CommandOption, OptionKind};
use crate::config::{CommandConfig, Config, Grants, HostFn, Limits};
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
    /// The host functions its code calls (`chat.send-message`).
    pub calls: Vec<String>,
    /// Calls its `needs` do not declare: an operator granting the needs
    /// would see these denied.
    pub undeclared: Vec<String>,
    /// The WASI interfaces it imports that give it nothing here, and why.
    pub wasi_given_nothing: Vec<String>,
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
        let calls = if self.calls.is_empty() { "nothing of sandbot:bot".into() } else { self.calls.join(", ") };
        writeln!(f, "calls:    {calls}")?;
        if !self.undeclared.is_empty() {
            writeln!(f, "undeclared: {} (called, but not in its needs)", self.undeclared.join(", "))?;
        }
        for why in &self.wasi_given_nothing {
            writeln!(f, "wasi:     {why}")?;
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
    let imported = sandbox.imported_functions(&prepared.pre);
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
    if let (Err(why), GuestPre::Current(_) | GuestPre::V0_2_1(_)) =
        (options::check_slash(&info.name, &info), &prepared.pre)
    {
        anyhow::bail!("as a slash command, {why}");
    }
    let options = info.options.iter().map(describe_option).collect();
    let unknown_needs = info.needs.iter().filter(|n| Grants::parse(&[n.as_str()]).is_err()).cloned().collect();
    let calls = host_calls(&imported);
    let declared = Grants::parse(&info.needs).unwrap_or_else(|_| {
        // Keep what parses: the unknown ones are reported on their own.
        let known: Vec<&String> = info.needs.iter().filter(|n| Grants::parse(&[n.as_str()]).is_ok()).collect();
        Grants::parse(&known).unwrap_or_default()
    });
    let undeclared = calls.iter().filter(|f| !declared.allows(**f)).map(HostFn::to_string).collect();
    let wasi_given_nothing = wasi_given_nothing(&imports);
    Ok(Report {
        name: info.name,
        summary: info.summary,
        usage: info.usage,
        contract: prepared.pre.version(),
        options,
        needs: info.needs,
        unknown_needs,
        imports,
        calls: calls.iter().map(HostFn::to_string).collect(),
        undeclared,
        wasi_given_nothing,
        sha256: prepared.sha256,
    })
}

/// The sandbot:bot functions among a component's imports, in the
/// contract's order.
fn host_calls(imported: &[(String, Vec<String>)]) -> Vec<HostFn> {
    let mut calls: Vec<HostFn> = imported
        .iter()
        .filter_map(|(name, functions)| Some((name.strip_prefix("sandbot:bot/")?.split('@').next()?, functions)))
        .flat_map(|(interface, functions)| functions.iter().filter_map(move |f| HostFn::from_wit(interface, f)))
        .collect();
    calls.sort_by_key(|f| HostFn::ALL.iter().position(|g| g == f));
    calls.dedup();
    calls
}

/// What the host links but leaves empty: a component importing these
/// links and runs, and finds nothing there. (The environment is empty too,
/// but Rust's std imports it whatever the code does: not worth a line.)
fn wasi_given_nothing(imports: &[String]) -> Vec<String> {
    const EMPTY: [(&str, &str); 2] = [
        ("wasi:filesystem/", "wasi:filesystem: no folder is open to a command; ask for a root and use files.*"),
        ("wasi:sockets/", "wasi:sockets: there is no network; the host's interfaces are the only way out"),
    ];
    EMPTY
        .iter()
        .filter(|(prefix, _)| imports.iter().any(|i| i.starts_with(prefix)))
        .map(|(_, why)| why.to_string())
        .collect()
}

/// How a config's entry for a checked component compares with what the
/// component asks for: `problems` make the entry unfit (calls that would
/// be denied), `notes` are worth a look (grants nothing uses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fit {
    /// `[commands.<name>]`, when the config has one for the component.
    pub entry: Option<String>,
    pub granted: Vec<String>,
    /// The roots (from `[roots]`) the entry may read.
    pub roots: Vec<String>,
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

impl Fit {
    pub fn is_fit(&self) -> bool {
        self.problems.is_empty()
    }
}

impl std::fmt::Display for Fit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(entry) = &self.entry {
            writeln!(f, "entry:    [commands.{entry}]")?;
            let granted = if self.granted.is_empty() { "nothing".into() } else { self.granted.join(", ") };
            writeln!(f, "granted:  {granted}")?;
            let roots = if self.roots.is_empty() { "none".into() } else { self.roots.join(", ") };
            writeln!(f, "roots:    {roots}")?;
        }
        for problem in &self.problems {
            writeln!(f, "problem:  {problem}")?;
        }
        for note in &self.notes {
            writeln!(f, "note:     {note}")?;
        }
        Ok(())
    }
}

/// Compares `report` with the config's entry for the component: the one
/// named `name`, else the one whose `wasm` is this file, else the one
/// named as the component describes itself.
pub fn against(config: &Config, report: &Report, wasm: &Path, name: Option<&str>) -> Fit {
    let same_file = |entry: &CommandConfig| match (entry.wasm.canonicalize(), wasm.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let entry = match name {
        Some(name) => config.commands.get(name),
        None => config.commands.values().find(|entry| same_file(entry)).or_else(|| config.commands.get(&report.name)),
    };
    let Some(entry) = entry else {
        let name = name.unwrap_or(&report.name);
        return Fit {
            problems: vec![format!(
                "the config has no [commands.{name}] entry for it: the bot does not serve it, and grants nothing"
            )],
            ..Fit::default()
        };
    };
    let mut fit = Fit { entry: Some(entry.name.clone()), granted: entry.grants.names(), ..Fit::default() };
    fit.roots = entry.read.clone();
    let missing = entry.grants.missing(&report.needs);
    if !missing.is_empty() {
        fit.problems.push(format!("needs not granted: {} (those calls are denied)", missing.join(", ")));
    }
    let calls: Vec<HostFn> = report.calls.iter().filter_map(|c| wit_call(c)).collect();
    let denied: Vec<String> = calls
        .iter()
        .filter(|f| !entry.grants.allows(**f))
        .map(HostFn::to_string)
        .filter(|call| !missing.iter().any(|need| need == call))
        .collect();
    if !denied.is_empty() {
        fit.problems.push(format!("it calls {} and the entry does not grant that: denied", denied.join(", ")));
    }
    let reads_files = calls.iter().any(|f| f.wit_name().0 == "files");
    let may_read = entry.grants.names().iter().any(|g| g.starts_with("files."));
    if reads_files && may_read && entry.read.is_empty() {
        fit.problems
            .push("it calls files.* but the entry names no root (`read = [\"…\"]`): every path is denied".into());
    }
    if !entry.read.is_empty() && !reads_files {
        fit.notes.push(format!("the entry lets it read {} but it never calls files.*", entry.read.join(", ")));
    }
    let needed = Grants::parse(&report.needs).unwrap_or_default();
    let unused: Vec<String> = HostFn::ALL
        .iter()
        .filter(|f| entry.grants.allows(**f) && !needed.allows(**f) && !calls.contains(f))
        .map(HostFn::to_string)
        .collect();
    if !unused.is_empty() {
        fit.notes.push(format!("granted but neither needed nor called: {}", unused.join(", ")));
    }
    fit
}

/// `chat.send-message` back to its function.
fn wit_call(call: &str) -> Option<HostFn> {
    let (interface, function) = call.split_once('.')?;
    HostFn::from_wit(interface, function)
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
