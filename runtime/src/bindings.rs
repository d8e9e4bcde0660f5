//! The only `bindgen!` over the WIT contract in `../wit`.
//!
//! Every import is `async` (host functions may wait on the network or the
//! database without blocking a thread) and `trappable` (a guest that breaks
//! the rules is stopped, not answered). `result<_, error>` returns become
//! `Result<_, HostError>` so host code can use `?`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "command",
    imports: { default: async | trappable },
    exports: { default: async },
    trappable_error_type: {
        "sandbot:bot/types.error" => crate::host::HostError,
    },
});

pub use self::sandbot::bot::{chat, commands, files, log, model, store, types, voice};
