//! The `bindgen!`s over the WIT contract in `../wit`, one per version.
//!
//! The current version (0.2.2) is re-exported at the top: the host
//! implements it in `host/`. Components built for 0.2.0 and 0.2.1 link
//! their imports against it as they are: wasmtime's linker is
//! semver-aware, and each of those versions only adds. Their `handle`
//! returns a plain `err` text, so [`v0_2_1`] gives them an export of that
//! shape over the current interfaces. Components built for 0.1.0 link
//! against [`v0_1`], which `host/v0_1.rs` implements by calling the
//! current one.
//!
//! Every import is `async` (host functions may wait on the network or the
//! database without blocking a thread) and `trappable` (a guest that breaks
//! the rules is stopped, not answered). `result<_, error>` returns become
//! `Result<_, HostError>` so host code can use `?`.

/// `CommandPre::instantiate_async` without its type check of every
/// export on every instance: `CommandPre::new` checked them against the
/// component's type when the command was loaded, and each instance of a
/// component has its exports, so here they are only looked up (a few µs
/// of each message's instance). Expanded in each version's module, where
/// the generated fields are visible.
macro_rules! instantiate_checked_at_load {
    () => {
        impl<T: Send + 'static> CommandPre<T> {
            pub async fn instantiate_checked_at_load(
                &self,
                mut store: impl wasmtime::AsContextMut<Data = T>,
            ) -> wasmtime::Result<Command> {
                let mut store = store.as_context_mut();
                let instance = self.instance_pre.instantiate_async(&mut store).await?;
                let mut export = |index: &wasmtime::component::ComponentExportIndex| {
                    instance.get_func(&mut store, index).ok_or_else(|| wasmtime::format_err!("an export is missing"))
                };
                Ok(Command { handle: export(&self.indices.handle)?, describe: export(&self.indices.describe)? })
            }
        }
    };
}

/// `sandbot:bot@0.2.2`, the current contract (and 0.2.0's and 0.2.1's
/// superset).
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit/0.2.2",
        world: "command",
        // A streamed answer lives in the invocation's resource table.
        with: { "sandbot:bot/model.answer": crate::host::AnswerStream },
        // Option values are compared with a command's declared choices.
        additional_derives: [PartialEq],
        imports: { default: async | trappable },
        exports: { default: async },
        trappable_error_type: {
            "sandbot:bot/types.error" => crate::host::HostError,
        },
    });
    instantiate_checked_at_load!();
}

/// The exports of `sandbot:bot@0.2.0` and 0.2.1 (`handle` returns
/// `result<_, string>`), over the current interfaces' types: the records
/// they pass are the same.
pub mod v0_2_1 {
    wasmtime::component::bindgen!({
        path: "../wit/0.2.1",
        world: "command",
        with: {
            "sandbot:bot/types": super::v0_2::sandbot::bot::types,
            "sandbot:bot/chat": super::v0_2::sandbot::bot::chat,
            "sandbot:bot/voice": super::v0_2::sandbot::bot::voice,
            "sandbot:bot/model": super::v0_2::sandbot::bot::model,
            "sandbot:bot/files": super::v0_2::sandbot::bot::files,
            "sandbot:bot/store": super::v0_2::sandbot::bot::store,
            "sandbot:bot/log": super::v0_2::sandbot::bot::log,
            "sandbot:bot/commands": super::v0_2::sandbot::bot::commands,
        },
        imports: { default: async | trappable },
        exports: { default: async },
        trappable_error_type: {
            "sandbot:bot/types.error" => crate::host::HostError,
        },
    });
    instantiate_checked_at_load!();
}

/// `sandbot:bot@0.1.0`, kept so that components built for it still load.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0",
        world: "command",
        imports: { default: async | trappable },
        exports: { default: async },
        trappable_error_type: {
            "sandbot:bot/types.error" => crate::host::HostError,
        },
    });
    instantiate_checked_at_load!();

    pub use self::sandbot::bot::{chat, commands, files, log, model, store, types, voice};
}

pub use v0_2::sandbot::bot::{chat, commands, files, log, model, store, types, voice};
pub use v0_2::{Command, CommandPre};
