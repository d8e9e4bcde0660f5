//! `!reload` — for operators: reads the config and the guests folder again
//! now, rather than waiting for the watcher, and says what changed.
//!
//! ```text
//! !reload
//! ```

use sandbot_sdk::host::commands;
use sandbot_sdk::{command, reply, Command, CommandInfo, Error, HostError, Invocation};

struct Reload;

impl Command for Reload {
    fn describe() -> CommandInfo {
        CommandInfo::new("reload", "Reloads the commands from the config and the guests folder.", "reload")
            .needs(&["chat.send-message", "commands.reload"])
    }

    fn handle(_invocation: Invocation) -> Result<(), Error> {
        let changes = match commands::reload() {
            Ok(changes) => changes,
            Err(HostError::Unavailable(why) | HostError::Invalid(why)) => {
                return Err(Error::reply(format!("I could not reload: {why}")))
            }
            Err(other) => return Err(Error::Host(other)),
        };
        if changes.is_empty() {
            reply("Reloaded: nothing changed.")?;
        } else {
            reply(format!("Reloaded:\n{}", changes.join("\n")))?;
        }
        Ok(())
    }
}

command!(Reload);
