//! sandbot: a Discord bot runtime whose every command is a sandboxed
//! WebAssembly component.
//!
//! Where a message goes, in the order it travels:
//!
//! | module       | job                                                                  |
//! |--------------|----------------------------------------------------------------------|
//! | [`platform`] | adapters (console, Discord) turn chat events into [`platform::Event`]s |
//! | [`dispatch`] | **the message path, end to end — read this first**                   |
//! | [`options`]  | typed options: Discord's rules, slash values checked, prefix text read |
//! | [`registry`] | command name → loaded component, grants and limits                   |
//! | [`shares`]   | fair shares: invocations running per command, user and server        |
//! | [`reload`]   | hot swap: the guests folder and config watched, commands reloaded    |
//! | [`deploy`]   | commands deployed to a fleet through the shared store                |
//! | [`sandbox`]  | one wasmtime engine; a fresh, limited instance per message           |
//! | [`host`]     | the WIT host interfaces, one file each, checked against grants       |
//! | [`services`] | what host functions reach: the database, the granted folders         |
//! | [`health`]   | `/healthz`, `/readyz` and `/metrics` for orchestrators               |
//! | [`telemetry`]| what the bot counts: Prometheus metrics, recent failures, latencies   |
//! | [`dashboard`]| the operator's web page: commands, failures, jobs, deploys           |
//! | [`error`]    | the one place that turns failures into user replies and log causes   |
//! | [`config`]   | `sandbot.toml`: raw form, then resolved and validated                |
//!
//! `bindings` holds one `bindgen!` per version of the contract in `../wit`.

pub mod bindings;
pub mod calibrate;
pub mod check;
pub mod config;
pub mod dashboard;
pub mod deploy;
pub mod dispatch;
pub mod error;
pub mod health;
pub mod host;
pub mod options;
pub mod platform;
pub mod ratelimit;
pub mod registry;
pub mod reload;
pub mod sandbox;
pub mod scaffold;
pub mod services;
pub mod shares;
pub mod telemetry;
pub mod text;
pub mod trial;

pub use config::Config;
pub use dispatch::{Dispatcher, Outcome};
