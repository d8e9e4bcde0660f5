//! Command name → loaded command: the compiled component, what it says
//! about itself, and its configured grants and limits.
//!
//! The map sits behind an `ArcSwap`: readers take a snapshot without a
//! lock, and a reload replaces the whole map at once, so an invocation
//! that already started finishes on the version it started with.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::bindings::{types, CommandPre};
use crate::config::{CommandConfig, Config, ConfigError, Grants};
use crate::host::GuestCtx;
use crate::platform;
use crate::sandbox::{HostState, Sandbox};
use crate::services::Services;

/// One command, ready to instantiate.
pub struct LoadedCommand {
    pub config: Arc<CommandConfig>,
    /// What `describe()` returned when it loaded.
    pub info: types::CommandInfo,
    pub pre: CommandPre<HostState>,
}

pub type CommandMap = BTreeMap<String, Arc<LoadedCommand>>;

/// The loaded commands; cheap to clone, shared by every invocation.
#[derive(Clone, Default)]
pub struct Registry {
    commands: Arc<ArcSwap<CommandMap>>,
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<Arc<LoadedCommand>> {
        self.commands.load().get(name).cloned()
    }

    /// Every loaded command, as of now.
    pub fn snapshot(&self) -> Arc<CommandMap> {
        self.commands.load_full()
    }

    pub fn replace(&self, commands: CommandMap) {
        self.commands.store(Arc::new(commands));
    }

    /// Compiles, checks and describes every command of the config, then
    /// makes them live together. The first command that fails stops the
    /// load with the config key and the reason.
    pub async fn load_all(&self, config: &Config, sandbox: &Sandbox, services: &Services) -> Result<(), ConfigError> {
        let mut commands = CommandMap::new();
        for command in config.commands.values() {
            let loaded = load(config, command, sandbox, services, self).await?;
            commands.insert(command.name.clone(), Arc::new(loaded));
        }
        self.replace(commands);
        Ok(())
    }
}

async fn load(
    config: &Config,
    command: &CommandConfig,
    sandbox: &Sandbox,
    services: &Services,
    registry: &Registry,
) -> Result<LoadedCommand, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        path: config.path.clone(),
        key: format!("commands.{}.wasm", command.name),
        reason,
    };
    if !command.wasm.is_file() {
        return Err(invalid(format!("{} does not exist (build the guests with `make build`)", command.wasm.display())));
    }
    let pre = sandbox
        .prepare(&command.wasm)
        .await
        .map_err(|e| invalid(format!("{} is not a sandbot command: {e:#}", command.wasm.display())))?;
    // `describe()` answers no message, so it runs with nothing granted: a
    // guest cannot store or send anything in the name of nobody.
    let describing = Arc::new(CommandConfig { grants: Grants::default(), read: Vec::new(), ..command.clone() });
    let guest = GuestCtx::new(
        describing,
        Arc::new(platform::Message::default()),
        Arc::new(platform::Nowhere),
        services.clone(),
        registry.clone(),
    );
    let info = sandbox
        .describe(&pre, guest, &command.limits)
        .await
        .map_err(|e| invalid(format!("describe() failed: {}", e.cause())))?;
    check_info(&info).map_err(|why| invalid(format!("describe() returned {why}")))?;
    if info.name != command.name {
        tracing::info!(command = %command.name, described_as = %info.name, "command is configured under another name");
    }
    let missing = command.grants.missing(&info.needs);
    if !missing.is_empty() {
        tracing::warn!(
            command = %command.name,
            missing = %missing.join(", "),
            "the command needs interfaces it is not granted; those calls will be denied"
        );
    }
    tracing::info!(command = %command.name, wasm = %command.wasm.display(), "loaded");
    Ok(LoadedCommand { config: Arc::new(command.clone()), info, pre })
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
