//! The `bindgen!`s over the WIT contract in `../wit`, one per version.
//!
//! The current version (0.2.1) is re-exported at the top: the host
//! implements it in `host/`. Components built for 0.2.0 link against it
//! as they are: wasmtime's linker is semver-aware, and 0.2.1 only adds.
//! Components built for 0.1.0 link against [`v0_1`], which
//! `host/v0_1.rs` implements by calling the current one.
//!
//! Every import is `async` (host functions may wait on the network or the
//! database without blocking a thread) and `trappable` (a guest that breaks
//! the rules is stopped, not answered). `result<_, error>` returns become
//! `Result<_, HostError>` so host code can use `?`.

/// `sandbot:bot@0.2.1`, the current contract (and 0.2.0's superset).
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit/0.2.1",
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

    pub use self::sandbot::bot::{chat, commands, files, log, model, store, types, voice};
}

pub use v0_2::sandbot::bot::{chat, commands, files, log, model, store, types, voice};
pub use v0_2::{Command, CommandPre};
