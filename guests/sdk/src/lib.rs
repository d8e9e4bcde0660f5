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
mod parse;
pub mod random;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
mod time;

pub use args::{split_args, ArgsError};
pub use error::Error;
pub use parse::number_in;
pub use time::format_utc;

/// The generated bindings of the `sandbot:bot/command` world.
///
/// Most commands only need the re-exports at the crate root; the raw
/// modules are here for everything else.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/0.2.2",
        world: "command",
        pub_export_macro: true,
        export_macro_name: "__export_command_world",
        default_bindings_module: "sandbot_sdk::bindings",
        // Not `Eq`: a number option holds an `f64`.
        additional_derives: [PartialEq],
    });
}

pub use bindings::sandbot::bot::types::{
    Attachment, Author, CommandInfo, CommandOption, Error as HostError, Failure, File, GivenOption, Invocation,
    Message, OptionChoice, OptionKind, OptionValue, Source,
};
/// Host interfaces, one module each, exactly as the WIT names them.
///
/// Off WebAssembly (in `cargo test`) these are [`testing::host`]'s fakes,
/// with the same functions, answering from the running
/// [`testing::FakeHost`].
#[cfg(target_arch = "wasm32")]
pub mod host {
    pub use crate::bindings::sandbot::bot::{chat, commands, files, log, model, store, voice};
}
#[cfg(not(target_arch = "wasm32"))]
pub use testing::host;

/// A command: what it says about itself, and what it does with a message.
pub trait Command {
    /// Name, summary, usage and the host interfaces it needs.
    fn describe() -> CommandInfo;
    /// Handles one message. An `Err` is shown to the user as the reply.
    fn handle(invocation: Invocation) -> Result<(), Error>;

    /// A usage error: `reason`, then the usage from [`Command::describe`]
    /// with the invocation's prefix.
    fn usage_error(invocation: &Invocation, reason: impl std::fmt::Display) -> Error
    where
        Self: Sized,
    {
        Error::usage_because(reason, &invocation.prefix, &Self::describe().usage)
    }
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
            options: Vec::new(),
        }
    }

    /// Adds a typed option: the slash command shows it, and a prefix
    /// command's words fill it in the same order.
    pub fn option(mut self, option: CommandOption) -> Self {
        self.options.push(option);
        self
    }

    /// The host interfaces (`"chat"`) or functions (`"files.read-file"`) the
    /// command calls; the operator's grants must cover them.
    pub fn needs(mut self, needs: &[&str]) -> Self {
        self.needs = needs.iter().map(|n| n.to_string()).collect();
        self
    }
}

impl CommandOption {
    fn of(kind: OptionKind, name: &str, description: &str) -> Self {
        CommandOption {
            name: name.to_string(),
            description: description.to_string(),
            kind,
            required: false,
            choices: Vec::new(),
        }
    }
    /// A text option. `name`: lower case, at most 32 letters, digits, `-`,
    /// `_`; `description`: at most 100 characters.
    pub fn string(name: &str, description: &str) -> Self {
        Self::of(OptionKind::String, name, description)
    }
    /// A whole-number option.
    pub fn integer(name: &str, description: &str) -> Self {
        Self::of(OptionKind::Integer, name, description)
    }
    /// A number option.
    pub fn number(name: &str, description: &str) -> Self {
        Self::of(OptionKind::Number, name, description)
    }
    /// A true-or-false option.
    pub fn boolean(name: &str, description: &str) -> Self {
        Self::of(OptionKind::Boolean, name, description)
    }
    /// A user option (the value is the user's id).
    pub fn user(name: &str, description: &str) -> Self {
        Self::of(OptionKind::User, name, description)
    }
    /// A channel option (the value is the channel's id).
    pub fn channel(name: &str, description: &str) -> Self {
        Self::of(OptionKind::Channel, name, description)
    }
    /// A role option (the value is the role's id).
    pub fn role(name: &str, description: &str) -> Self {
        Self::of(OptionKind::Role, name, description)
    }
    /// A file the user attaches.
    pub fn attachment(name: &str, description: &str) -> Self {
        Self::of(OptionKind::Attachment, name, description)
    }
    /// The user must give it (required options come first).
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    /// Fixed text choices, each its own name and value.
    pub fn choices(mut self, choices: &[&str]) -> Self {
        self.choices = choices
            .iter()
            .map(|c| OptionChoice { name: c.to_string(), value: OptionValue::String(c.to_string()) })
            .collect();
        self
    }
}

impl Invocation {
    /// The value given for the option `name`, if any.
    pub fn option(&self, name: &str) -> Option<&OptionValue> {
        self.options.iter().find(|o| o.name == name).map(|o| &o.value)
    }
    /// A string option's value.
    pub fn string(&self, name: &str) -> Option<&str> {
        match self.option(name)? {
            OptionValue::String(s) => Some(s),
            _ => None,
        }
    }
    /// An integer option's value.
    pub fn integer(&self, name: &str) -> Option<i64> {
        match self.option(name)? {
            OptionValue::Integer(i) => Some(*i),
            _ => None,
        }
    }
    /// A number option's value (an integer given for it counts too).
    pub fn number(&self, name: &str) -> Option<f64> {
        match self.option(name)? {
            OptionValue::Number(n) => Some(*n),
            OptionValue::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }
    /// A boolean option's value.
    pub fn boolean(&self, name: &str) -> Option<bool> {
        match self.option(name)? {
            OptionValue::Boolean(b) => Some(*b),
            _ => None,
        }
    }
    /// A user, channel or role option's id.
    pub fn id(&self, name: &str) -> Option<&str> {
        match self.option(name)? {
            OptionValue::User(id) | OptionValue::Channel(id) | OptionValue::Role(id) => Some(id),
            _ => None,
        }
    }
    /// An attachment option's file.
    pub fn attachment(&self, name: &str) -> Option<&Attachment> {
        match self.option(name)? {
            OptionValue::Attachment(a) => Some(a),
            _ => None,
        }
    }
    /// Invoked as a slash command (rather than `!name`).
    pub fn is_slash(&self) -> bool {
        self.source == Source::Slash
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

/// Sends `text` so that only the invoking user sees it (an ephemeral reply
/// to a slash command; a direct message for a prefix command).
pub fn reply_private(text: impl AsRef<str>) -> Result<String, Error> {
    Ok(host::chat::send_private(text.as_ref(), &[])?)
}

/// Replaces the text of a message this invocation sent (by the id a reply
/// returned): "working…", then the result.
pub fn edit(id: &str, text: impl AsRef<str>) -> Result<(), Error> {
    Ok(host::chat::edit_message(id, text.as_ref())?)
}

/// Writes a line to the operator's log, tagged with the command and message.
pub fn log_info(text: impl AsRef<str>) {
    host::log::log(host::log::Level::Info, text.as_ref());
}

/// Writes a debug line to the operator's log (shown with
/// `RUST_LOG=debug`).
pub fn log_debug(text: impl AsRef<str>) {
    host::log::log(host::log::Level::Debug, text.as_ref());
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

            fn handle(invocation: $crate::Invocation) -> ::core::result::Result<(), $crate::Failure> {
                <$command as $crate::Command>::handle(invocation).map_err($crate::Error::into_failure)
            }
        }

        $crate::bindings::__export_command_world!(__SandbotExport with_types_in $crate::bindings);
    };
}
