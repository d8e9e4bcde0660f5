//! A command whose start-up calls the host: its `_initialize` (run while
//! the component is instantiated, before any export) says "starting up"
//! in the channel. A spare is made with no message to answer, so this
//! start-up must never run there; made for a message, it speaks in that
//! message's channel. (Rust's static constructors would not do: they run
//! when an export is called.)

use sandbot_sdk::host::chat;
use sandbot_sdk::{command, reply, Command, CommandInfo, Error, Invocation};

/// wit-component calls a module's `_initialize` while the component is
/// instantiated, before any export.
#[unsafe(export_name = "_initialize")]
extern "C" fn start_up() {
    // Refused in a spare's start-up; the trap ends the instantiation.
    let _ = chat::send_message("starting up", &[]);
}

struct Eager;

impl Command for Eager {
    fn describe() -> CommandInfo {
        CommandInfo::new("eager", "Calls the host while it starts.", "").needs(&["chat.send-message"])
    }

    fn handle(_invocation: Invocation) -> Result<(), Error> {
        reply("answered")?;
        Ok(())
    }
}

command!(Eager);
