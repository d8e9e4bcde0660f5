//! Command name → loaded command: the compiled component, what it says
//! about itself, and its configured grants and limits.
//!
//! The map sits behind an `ArcSwap`: readers take a snapshot without a
//! lock, and a reload replaces the whole map at once, so an invocation
//! that already started finishes on the version it started with, and the
//! next message gets the new one.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot, watch};

use crate::bindings::types;
use crate::config::{CommandConfig, Config, ConfigError, Grants, HostFn};
use crate::host::GuestCtx;
use crate::platform;
use crate::sandbox::{GuestPre, Sandbox, SpareSlot};
use crate::services::Services;
use crate::telemetry::CommandMetrics;

/// One command, ready to instantiate.
pub struct LoadedCommand {
    pub config: Arc<CommandConfig>,
    /// What `describe()` returned when it loaded.
    pub info: types::CommandInfo,
    pub pre: GuestPre,
    /// The wasm's sha256 (hex): which version this is.
    pub sha256: String,
    pub loaded_at: SystemTime,
    /// Loaded from the compile cache rather than compiled.
    pub cached: bool,
    /// Its `describe()` read `commands.list` (`/help` offers the commands
    /// as choices): described again whenever the commands change.
    pub reads_command_list: bool,
    /// The instance its next message will get (see [`SpareSlot`]).
    pub spare: SpareSlot,
    pub metrics: Arc<CommandMetrics>,
}

impl LoadedCommand {
    /// The same code under other settings.
    fn with_config(&self, command: &CommandConfig) -> LoadedCommand {
        LoadedCommand { config: Arc::new(command.clone()), ..self.with_info(self.info.clone()) }
    }

    /// The same code, describing itself anew.
    fn with_info(&self, info: types::CommandInfo) -> LoadedCommand {
        LoadedCommand {
            config: self.config.clone(),
            info,
            pre: self.pre.clone(),
            sha256: self.sha256.clone(),
            loaded_at: self.loaded_at,
            cached: self.cached,
            reads_command_list: self.reads_command_list,
            spare: SpareSlot::default(),
            metrics: self.metrics.clone(),
        }
    }
}

/// What a reload did, command by command.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// New commands, and new versions of existing ones.
    pub loaded: Vec<String>,
    /// Same wasm, new settings from the config (grants, limits, …).
    pub reconfigured: Vec<String>,
    /// `(command, why)`: not loaded; the old version, if any, still serves.
    pub refused: Vec<(String, String)>,
    /// Gone from the config.
    pub removed: Vec<String>,
}

impl ReloadReport {
    pub fn is_empty(&self) -> bool {
        self.loaded.is_empty() && self.reconfigured.is_empty() && self.refused.is_empty() && self.removed.is_empty()
    }

    /// One line per change, for `!reload` and the log.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        lines.extend(self.loaded.iter().map(|c| format!("loaded {c}")));
        lines.extend(self.reconfigured.iter().map(|c| format!("reconfigured {c}")));
        lines.extend(self.refused.iter().map(|(c, why)| format!("refused {c}: {why}")));
        lines.extend(self.removed.iter().map(|c| format!("removed {c}")));
        lines
    }
}

pub type CommandMap = BTreeMap<String, Arc<LoadedCommand>>;

/// Asks the reloader (see [`crate::reload`]) for a reload; it answers
/// with what changed, or why the config could not be read.
pub type ReloadRequest = oneshot::Sender<Result<ReloadReport, String>>;

/// The loaded commands; cheap to clone, shared by every invocation.
#[derive(Clone)]
pub struct Registry {
    commands: Arc<ArcSwap<CommandMap>>,
    reloader: Arc<OnceLock<mpsc::UnboundedSender<ReloadRequest>>>,
    /// Counts replacements, so adapters can follow (slash commands).
    generation: Arc<watch::Sender<u64>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry { commands: Arc::default(), reloader: Arc::default(), generation: Arc::new(watch::Sender::new(0)) }
    }
}

impl Registry {
    /// Where [`Registry::request_reload`] sends; set once, by the reloader.
    pub fn set_reloader(&self, requests: mpsc::UnboundedSender<ReloadRequest>) {
        let _ = self.reloader.set(requests);
    }

    /// Reloads now (for `!reload`) and says what changed.
    pub async fn request_reload(&self) -> Result<ReloadReport, String> {
        let requests = self.reloader.get().ok_or("reloading is not running in this process")?;
        let (reply, answer) = oneshot::channel();
        requests.send(reply).map_err(|_| "reloading has stopped".to_string())?;
        answer.await.map_err(|_| "the reload was interrupted".to_string())?
    }

    pub fn get(&self, name: &str) -> Option<Arc<LoadedCommand>> {
        self.commands.load().get(name).cloned()
    }

    /// Every loaded command, as of now.
    pub fn snapshot(&self) -> Arc<CommandMap> {
        self.commands.load_full()
    }

    pub fn replace(&self, commands: CommandMap) {
        self.commands.store(Arc::new(commands));
        self.generation.send_modify(|n| *n += 1);
    }

    /// Changes whenever the commands are replaced (loaded or reloaded).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Compiles, checks and describes every command of the config, then
    /// makes them live together. The first command that fails stops the
    /// load with the config key and the reason (at startup, an operator
    /// wants to know at once).
    pub async fn load_all(&self, config: &Config, sandbox: &Sandbox, services: &Services) -> Result<(), ConfigError> {
        let mut commands = CommandMap::new();
        for command in config.commands.values() {
            let wasm = read_wasm(config, command).await?;
            let loaded = load(config, command, wasm, sandbox, services, self).await?;
            commands.insert(command.name.clone(), Arc::new(loaded));
        }
        describe_against(&mut commands, sandbox, services).await;
        self.replace(commands);
        Ok(())
    }

    /// Brings the commands in line with `config` and the files on disk,
    /// keeping what still works: a changed wasm is compiled and checked
    /// before it replaces the old version; one that fails is refused and
    /// the old code keeps serving, under the new settings (a grant taken
    /// away is taken away even then); an unchanged wasm is not recompiled.
    /// `pinned` commands (name → why) keep their old version and settings
    /// whatever the config says. The new map goes live in one step.
    pub async fn reload(
        &self,
        config: &Config,
        sandbox: &Sandbox,
        services: &Services,
        pinned: &BTreeMap<String, String>,
    ) -> ReloadReport {
        let old = self.snapshot();
        let mut next = CommandMap::new();
        let mut report = ReloadReport::default();
        for command in config.commands.values() {
            let name = command.name.clone();
            let previous = old.get(&name);
            if let Some(why) = pinned.get(&name) {
                tracing::warn!(command = %name, error = %why, kept_old = previous.is_some(), "refused a command");
                report.refused.push((name.clone(), why.clone()));
                if let Some(previous) = previous {
                    next.insert(name, previous.clone());
                }
                continue;
            }
            let outcome = match read_wasm(config, command).await {
                Err(e) => Err(e),
                Ok(wasm) => match previous {
                    Some(p) if p.sha256 == crate::sandbox::cache::sha256_hex(&wasm) => {
                        if *p.config != *command {
                            warn_of_missing_grants(command, &p.info);
                            report.reconfigured.push(name.clone());
                        }
                        next.insert(name, Arc::new(p.with_config(command)));
                        continue;
                    }
                    _ => load(config, command, wasm, sandbox, services, self).await,
                },
            };
            match outcome {
                Ok(loaded) => {
                    crate::telemetry::component_swap("loaded");
                    report.loaded.push(name.clone());
                    next.insert(name, Arc::new(loaded));
                }
                Err(e) => {
                    let why = match e {
                        ConfigError::Invalid { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    tracing::warn!(command = %name, error = %why, kept_old = previous.is_some(), "refused a command");
                    crate::telemetry::component_swap("refused");
                    report.refused.push((name.clone(), why));
                    if let Some(previous) = previous {
                        warn_of_missing_grants(command, &previous.info);
                        next.insert(name, Arc::new(previous.with_config(command)));
                    }
                }
            }
        }
        report.removed = old.keys().filter(|name| !next.contains_key(*name)).cloned().collect();
        describe_against(&mut next, sandbox, services).await;
        self.replace(next);
        report
    }
}

/// Describes the commands that read the command list again, against the
/// commands about to go live (while loading, they saw the old ones, or a
/// part of the new). One pass is enough: what they read (names, summaries)
/// does not depend on what the others read. Whoever fails keeps what it
/// said before.
async fn describe_against(next: &mut CommandMap, sandbox: &Sandbox, services: &Services) {
    let readers: Vec<String> = next.iter().filter(|(_, c)| c.reads_command_list).map(|(n, _)| n.clone()).collect();
    if readers.is_empty() {
        return;
    }
    let upcoming = Registry::default();
    upcoming.replace(next.clone());
    for name in readers {
        let Some(loaded) = next.get(&name).cloned() else { continue };
        let described = describe(&loaded.pre, &loaded.config, sandbox, services, &upcoming).await;
        let checked = described.and_then(|(info, _)| match &loaded.pre {
            GuestPre::Current(_) | GuestPre::V0_2_1(_) => crate::options::check_slash(&name, &info).map(|()| info),
            GuestPre::V0_1(_) => Ok(info),
        });
        match checked {
            Ok(info) if info != loaded.info => {
                tracing::debug!(command = %name, "described again for the new commands");
                next.insert(name, Arc::new(loaded.with_info(info)));
            }
            Ok(_) => {}
            Err(why) => {
                tracing::warn!(command = %name, error = %why, "could not describe it again; it keeps its description")
            }
        }
    }
}

/// Said at every load and reconfiguration: the mismatch between what a
/// guest declares and what the operator granted.
fn warn_of_missing_grants(command: &CommandConfig, info: &types::CommandInfo) {
    let missing = command.grants.missing(&info.needs);
    if !missing.is_empty() {
        tracing::warn!(
            command = %command.name,
            missing = %missing.join(", "),
            "the command needs interfaces it is not granted; those calls will be denied"
        );
    }
}

async fn read_wasm(config: &Config, command: &CommandConfig) -> Result<Vec<u8>, ConfigError> {
    tokio::fs::read(&command.wasm).await.map_err(|e| ConfigError::Invalid {
        path: config.path.clone(),
        key: format!("commands.{}.wasm", command.name),
        reason: if e.kind() == std::io::ErrorKind::NotFound {
            format!("{} does not exist (build the guests with `make build`)", command.wasm.display())
        } else {
            format!("cannot read {}: {e}", command.wasm.display())
        },
    })
}

async fn load(
    config: &Config,
    command: &CommandConfig,
    wasm: Vec<u8>,
    sandbox: &Sandbox,
    services: &Services,
    registry: &Registry,
) -> Result<LoadedCommand, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        path: config.path.clone(),
        key: format!("commands.{}.wasm", command.name),
        reason,
    };
    let prepared = sandbox
        .prepare(wasm)
        .await
        .map_err(|e| invalid(format!("{} is not a sandbot command: {e:#}", command.wasm.display())))?;
    let (info, reads_command_list) = describe(&prepared.pre, command, sandbox, services, registry)
        .await
        .map_err(|why| invalid(format!("describe() {why}")))?;
    if info.name != command.name {
        tracing::info!(command = %command.name, described_as = %info.name, "command is configured under another name");
    }
    if let Err(why) = crate::options::check_slash(&command.name, &info) {
        match prepared.pre {
            GuestPre::Current(_) | GuestPre::V0_2_1(_) => return Err(invalid(format!("as a slash command, {why}"))),
            // Built before slash commands: it keeps answering `!name`.
            GuestPre::V0_1(_) => {
                tracing::warn!(command = %command.name, reason = %why, "cannot be a slash command; prefix only")
            }
        }
    }
    warn_of_missing_grants(command, &info);
    tracing::info!(
        command = %command.name,
        wasm = %command.wasm.display(),
        sha256 = %&prepared.sha256[..12],
        source = if prepared.cached { "cache" } else { "compiled" },
        contract = prepared.pre.version(),
        "loaded"
    );
    Ok(LoadedCommand {
        config: Arc::new(command.clone()),
        info,
        pre: prepared.pre,
        sha256: prepared.sha256,
        loaded_at: SystemTime::now(),
        cached: prepared.cached,
        reads_command_list,
        spare: SpareSlot::default(),
        metrics: Arc::new(CommandMetrics::new(&command.name)),
    })
}

/// Runs `describe()` with nothing granted but `commands.list`, if the
/// command has it (it answers no message, so a guest cannot store or send
/// anything in the name of nobody), and checks what it says. Also says
/// whether it read the command list.
pub async fn describe(
    pre: &GuestPre,
    command: &CommandConfig,
    sandbox: &Sandbox,
    services: &Services,
    registry: &Registry,
) -> Result<(types::CommandInfo, bool), String> {
    let grants = match command.grants.allows(HostFn::CommandsList) {
        true => Grants::only(HostFn::CommandsList),
        false => Grants::default(),
    };
    let describing = Arc::new(CommandConfig { grants, read: Vec::new(), ..command.clone() });
    let guest = GuestCtx::new(
        describing,
        Arc::new(platform::Message::default()),
        Arc::new(platform::Nowhere),
        services.clone(),
        registry.clone(),
    );
    let (guest, described) = sandbox.describe(pre, guest, &command.limits).await;
    let info = described.map_err(|e| format!("failed: {}", e.cause()))?;
    check_info(&info).map_err(|why| format!("returned {why}"))?;
    Ok((info, guest.read_command_list))
}

/// What `describe()` returns ends up in `!help`: keep it to a size that
/// fits a message.
fn check_info(info: &types::CommandInfo) -> Result<(), String> {
    let fields = [("name", &info.name, 64), ("summary", &info.summary, 200), ("usage", &info.usage, 200)];
    for (field, text, max) in fields {
        let chars = text.chars().count();
        if chars > max {
            return Err(format!("a {field} of {chars} characters; at most {max}"));
        }
    }
    if info.needs.len() > 32 || info.needs.iter().any(|n| n.len() > 64) {
        return Err("too many or too long `needs`".to_string());
    }
    Ok(())
}
