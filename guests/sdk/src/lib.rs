//! The sandbot guest SDK: everything a command author needs.
//!
//! A command is a type implementing [`Command`], exported with
//! [`command!`]. It is compiled to `wasm32-wasip2` as a `cdylib`; the result
//! is a WebAssembly component the bot loads from its guests folder.
//!
//! ```ignore
//! use sandbot_sdk::{command, reply, Command, CommandInfo, Error, Invocation};
//!
//! struct Hi;
//!
//! impl Command for Hi {
//!     fn describe() -> CommandInfo {
//!         CommandInfo::new("hi", "Greets you.", "hi").needs(&["chat.send-message"])
//!     }
//!     fn handle(inv: Invocation) -> Result<(), Error> {
//!         reply(format!("HI, {}!", inv.message.author.name))?;
//!         Ok(())
//!     }
//! }
//!
//! command!(Hi);
//! ```
//!
//! The host runs a fresh instance for every message: statics do not survive
//! from one message to the next. Everything that must last goes through a
//! host interface (`store`, `model`, …), and every host interface is
//! deny-by-default: the operator grants it in `config/sandbot.toml`.

mod args;
mod error;
mod time;

pub use args::{split_args, ArgsError};
pub use error::Error;
pub use time::format_utc;

/// The generated bindings of the `sandbot:bot/command` world.
///
/// Most commands only need the re-exports at the crate root; the raw
/// modules are here for everything else.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "command",
        pub_export_macro: true,
        export_macro_name: "__export_command_world",
        default_bindings_module: "sandbot_sdk::bindings",
        additional_derives: [PartialEq, Eq],
    });
}

pub use bindings::sandbot::bot::types::{
    Attachment, Author, CommandInfo, Error as HostError, File, Invocation, Message,
};
/// Host interfaces, one module each, exactly as the WIT names them.
pub mod host {
    pub use crate::bindings::sandbot::bot::{chat, commands, files, log, model, store, voice};
}

/// A command: what it says about itself, and what it does with a message.
pub trait Command {
    /// Name, summary, usage and the host interfaces it needs.
    fn describe() -> CommandInfo;
    /// Handles one message. An `Err` is shown to the user as the reply.
    fn handle(invocation: Invocation) -> Result<(), Error>;
}

impl CommandInfo {
    /// A command's description; `usage` is written without the prefix
    /// (`"getfile <path>"`).
    pub fn new(name: &str, summary: &str, usage: &str) -> Self {
        CommandInfo {
            name: name.to_string(),
            summary: summary.to_string(),
            usage: usage.to_string(),
            needs: Vec::new(),
        }
    }

    /// The host interfaces (`"chat"`) or functions (`"files.read-file"`) the
    /// command calls; the operator's grants must cover them.
    pub fn needs(mut self, needs: &[&str]) -> Self {
        self.needs = needs.iter().map(|n| n.to_string()).collect();
        self
    }
}

/// Sends `text` to the channel the command was invoked from; returns the
/// id of the (first) message sent. Long texts are split by the host.
pub fn reply(text: impl AsRef<str>) -> Result<String, Error> {
    Ok(host::chat::send_message(text.as_ref(), &[])?)
}

/// Sends `text` with files attached.
pub fn reply_with_files(text: impl AsRef<str>, files: &[File]) -> Result<String, Error> {
    Ok(host::chat::send_message(text.as_ref(), files)?)
}

/// Writes a line to the operator's log, tagged with the command and message.
pub fn log_info(text: impl AsRef<str>) {
    host::log::log(host::log::Level::Info, text.as_ref());
}

/// Writes a warning to the operator's log.
pub fn log_warn(text: impl AsRef<str>) {
    host::log::log(host::log::Level::Warn, text.as_ref());
}

/// Exports a [`Command`] type as the component's `describe` and `handle`.
#[macro_export]
macro_rules! command {
    ($command:ty) => {
        #[doc(hidden)]
        struct __SandbotExport;

        impl $crate::bindings::Guest for __SandbotExport {
            fn describe() -> $crate::CommandInfo {
                <$command as $crate::Command>::describe()
            }

            fn handle(invocation: $crate::Invocation) -> ::core::result::Result<(), String> {
                <$command as $crate::Command>::handle(invocation).map_err(|e| e.to_string())
            }
        }

        $crate::bindings::__export_command_world!(__SandbotExport with_types_in $crate::bindings);
    };
}
