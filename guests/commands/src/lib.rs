//! `!commands` — for operators: each loaded command, which version (the
//! start of its wasm's sha256), when it was loaded, and what it needs
//! that it is not granted.
//!
//! ```text
//! !commands
//! ```

use sandbot_sdk::host::commands;
use sandbot_sdk::{command, format_utc, reply, Command, CommandInfo, Error, Invocation};

struct Commands;

impl Command for Commands {
    fn describe() -> CommandInfo {
        CommandInfo::new("commands", "Lists the loaded commands with their versions.", "commands")
            .needs(&["chat.send-message", "commands.versions"])
    }

    fn handle(invocation: Invocation) -> Result<(), Error> {
        let versions = commands::versions()?;
        let mut text = format!("{} commands loaded:\n", versions.len());
        for version in &versions {
            let source = if version.cached { "from the cache" } else { "compiled" };
            text.push_str(&format!(
                "`{}{}` {} — loaded {} ({source})",
                invocation.prefix,
                version.name,
                version.sha256.get(..12).unwrap_or(&version.sha256),
                format_utc(version.loaded_at),
            ));
            if !version.missing_grants.is_empty() {
                text.push_str(&format!(" — needs {}, not granted", version.missing_grants.join(", ")));
            }
            text.push('\n');
        }
        reply(text.trim_end())?;
        Ok(())
    }
}

command!(Commands);
