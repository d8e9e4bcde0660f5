//! The host side of the WIT contract: one file per interface, each holding
//! only its `Host` impl. Every function first checks the command's grants.
//!
//! Host functions see a [`GuestCtx`] — the invocation, its grants and
//! limits, the platform and the services — never the WASI context or the
//! store itself.

mod chat;
mod commands;
mod files;
mod log;
mod model;
mod store;
pub use model::AnswerStream;
pub mod v0_1;
mod voice;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::{self, types};
use crate::config::CommandConfig;
use crate::config::HostFn;
use crate::platform::{Conversation, Message, PlatformError};
use crate::registry::Registry;
use crate::sandbox::HostState;
use crate::services::files::FileError;
use crate::services::speech::SpeechError;
use crate::services::store::StoreError;
use crate::services::Services;

/// A host function's answer when it does not succeed: one of the WIT
/// `error` cases, or a trap for a guest that broke a rule.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("denied: {0}")]
    Denied(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("failed: {0}")]
    Failed(String),
    /// Ends the invocation.
    #[error("{0}")]
    Trap(#[from] wasmtime::Error),
}

impl From<FileError> for HostError {
    fn from(e: FileError) -> Self {
        match e {
            FileError::NotFound => HostError::NotFound(e.to_string()),
            FileError::TooLarge { .. } | FileError::ArchiveTooLarge { .. } | FileError::TooMany { .. } => {
                HostError::TooLarge(e.to_string())
            }
            FileError::Cancelled => HostError::Unavailable(e.to_string()),
            FileError::OutsideOrUnreadable | FileError::Invalid(_) => HostError::Invalid(e.to_string()),
            FileError::Io(_) => HostError::Failed(e.to_string()),
        }
    }
}

impl From<PlatformError> for HostError {
    fn from(e: PlatformError) -> Self {
        match e {
            PlatformError::NotFound(what) => HostError::NotFound(what),
            PlatformError::TooLarge { .. } => HostError::TooLarge(e.to_string()),
            PlatformError::Unsupported(what) => HostError::Unavailable(what.to_string()),
            PlatformError::Unavailable(why) => HostError::Unavailable(why),
            PlatformError::Invalid(why) => HostError::Invalid(why),
            PlatformError::Failed(why) => HostError::Failed(why),
        }
    }
}

impl From<SpeechError> for HostError {
    fn from(e: SpeechError) -> Self {
        match e {
            SpeechError::Unavailable(why) => HostError::Unavailable(why),
            SpeechError::BadAudio(why) => HostError::Invalid(why),
            SpeechError::TooLong { .. } | SpeechError::TooLarge { .. } => HostError::TooLarge(e.to_string()),
            SpeechError::Cancelled => HostError::Failed(e.to_string()),
            SpeechError::Failed(why) => {
                tracing::error!(error = %why, "speech failed");
                HostError::Failed("the speech engine failed".into())
            }
        }
    }
}

impl From<StoreError> for HostError {
    fn from(e: StoreError) -> Self {
        if let StoreError::Unavailable(_) = e {
            tracing::warn!(error = %e, "store unreachable");
            return HostError::Unavailable("the database cannot be reached just now; try again in a moment".into());
        }
        tracing::error!(error = %e, "store failed");
        HostError::Failed("the database could not store it".to_string())
    }
}

/// Everything host functions may use during one invocation.
pub struct GuestCtx {
    pub command: Arc<CommandConfig>,
    pub message: Arc<Message>,
    pub conversation: Arc<dyn Conversation>,
    pub services: Services,
    pub registry: Registry,
    /// Messages sent (and edits made) so far, against `limits.messages`.
    pub messages_sent: u32,
    /// The ids of the messages sent so far: the only ones it may edit.
    pub sent: Vec<String>,
    /// Log lines written so far, against [`log::MAX_LINES`].
    pub log_lines: u32,
    /// Messages fetched and attachments downloaded so far, against
    /// [`chat::MAX_PLATFORM_READS`]: each is a request on the bot's shared
    /// Discord budget.
    pub platform_reads: u32,
    /// The prompt of the last `call-model`, until a message carries the
    /// answer (then the pair is recorded for `!correct`).
    pub pending_answer: Option<String>,
    /// Training jobs this invocation started; the dispatcher reports them.
    pub started_jobs: Vec<String>,
    /// It asked for `commands.list`: its `describe()` depends on the others.
    pub read_command_list: bool,
    /// Answers being written (`stream-model`), as WIT resources.
    pub answers: wasmtime::component::ResourceTable,
    pub answers_open: usize,
}

impl GuestCtx {
    /// The context of one invocation, before anything happened in it.
    pub fn new(
        command: Arc<CommandConfig>,
        message: Arc<Message>,
        conversation: Arc<dyn Conversation>,
        services: Services,
        registry: Registry,
    ) -> GuestCtx {
        GuestCtx {
            command,
            message,
            conversation,
            services,
            registry,
            messages_sent: 0,
            sent: Vec::new(),
            platform_reads: 0,
            log_lines: 0,
            pending_answer: None,
            started_jobs: Vec::new(),
            read_command_list: false,
            answers: wasmtime::component::ResourceTable::new(),
            answers_open: 0,
        }
    }
}

impl GuestCtx {
    /// The first line of every host function: deny unless granted.
    fn check(&self, f: HostFn) -> Result<(), HostError> {
        if self.command.grants.allows(f) {
            return Ok(());
        }
        tracing::warn!(command = %self.command.name, function = %f, "denied: not granted");
        // While a command describes itself there is no message, and no
        // user to list the denial under (`sandbot check` describes with
        // nothing granted).
        if !self.message.id.is_empty() {
            crate::telemetry::denied_call(&self.command.name, &f.to_string(), &self.message.author.id);
        }
        Err(HostError::Denied(format!("`{f}` is not granted to `{}`", self.command.name)))
    }
}

impl types::Host for GuestCtx {
    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<types::Error> {
        Ok(match err {
            HostError::Denied(s) => types::Error::Denied(s),
            HostError::NotFound(s) => types::Error::NotFound(s),
            HostError::Invalid(s) => types::Error::Invalid(s),
            HostError::TooLarge(s) => types::Error::TooLarge(s),
            HostError::Unavailable(s) => types::Error::Unavailable(s),
            HostError::Failed(s) => types::Error::Failed(s),
            HostError::Trap(trap) => return Err(trap),
        })
    }
}

/// The table of contents of what a guest can import: WASI for Rust's std,
/// then one line per sandbot interface, for each version of the contract.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    fn guest(state: &mut HostState) -> &mut GuestCtx {
        &mut state.guest
    }
    bindings::v0_1::types::add_to_linker::<_, HasSelf<GuestCtx>>(linker, guest)?;
    bindings::v0_1::chat::add_to_linker::<_, HasSelf<GuestCtx>>(linker, guest)?;
    bindings::v0_1::voice::add_to_linker::<_, HasSelf<GuestCtx>>(linker, guest)?;
    bindings::v0_1::model::add_to_linker::<_, HasSelf<GuestCtx>>(linker, guest)?;
    bindings::v0_1::files::add_to_linker::<_, HasSelf<GuestCtx>>(linker, guest)?;
    bindings::v0_1::store::add_to_linker::<_, HasSelf<GuestCtx>>(linker, guest)?;
    bindings::v0_1::log::add_to_linker::<_, HasSelf<GuestCtx>>(linker, guest)?;
    bindings::v0_1::commands::add_to_linker::<_, HasSelf<GuestCtx>>(linker, guest)?;
    bindings::types::add_to_linker::<_, HasSelf<GuestCtx>>(linker, guest)?;
    bindings::chat::add_to_linker::<_, HasSelf<GuestCtx>>(linker, guest)?;
    bindings::voice::add_to_linker::<_, HasSelf<GuestCtx>>(linker, guest)?;
    bindings::model::add_to_linker::<_, HasSelf<GuestCtx>>(linker, guest)?;
    bindings::files::add_to_linker::<_, HasSelf<GuestCtx>>(linker, guest)?;
    bindings::store::add_to_linker::<_, HasSelf<GuestCtx>>(linker, guest)?;
    bindings::log::add_to_linker::<_, HasSelf<GuestCtx>>(linker, guest)?;
    bindings::commands::add_to_linker::<_, HasSelf<GuestCtx>>(linker, guest)?;
    Ok(())
}
