//! `!commands` — for operators: each loaded command, which version (the
//! start of its wasm's sha256), when it was loaded, how its invocations
//! ended (with `commands.outcomes`), and what it needs that it is not
//! granted.
//!
//! ```text
//! !commands
//! ```

use sandbot_sdk::host::commands;
use sandbot_sdk::{command, format_utc, reply, Command, CommandInfo, Error, Invocation};

struct Commands;

impl Command for Commands {
    fn describe() -> CommandInfo {
        CommandInfo::new("commands", "Lists the loaded commands with their versions.", "commands").needs(&[
            "chat.send-message",
            "commands.versions",
            "commands.outcomes",
        ])
    }

    fn handle(invocation: Invocation) -> Result<(), Error> {
        let versions = commands::versions()?;
        // Without the grant (a config older than it), the list stands alone.
        let outcomes = commands::outcomes().unwrap_or_default();
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
            // Only for commands used since the start: the list stays short.
            let used = |o: &&commands::OutcomeCounts| o.answered + o.usage + o.replied + o.failed + o.stopped > 0;
            if let Some(o) = outcomes.iter().filter(used).find(|o| o.name == version.name) {
                text.push_str(&format!(
                    " — answered {}, usage errors {}, error replies {}, failed {}, stopped {}",
                    o.answered, o.usage, o.replied, o.failed, o.stopped
                ));
            }
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
