//! A serde mirror of `sandbot.toml`: what the operator typed, no logic.
//! [`super::Config`] is built from it and owns the validated form.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub prefix: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub guests_dir: Option<PathBuf>,
    pub default_handler: Option<String>,
    pub ignore_bots: Option<bool>,
    #[serde(default)]
    pub operators: RawOperators,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub rate_limit: RawRateLimit,
    #[serde(default)]
    pub sandbox: RawSandbox,
    #[serde(default)]
    pub model: RawModel,
    #[serde(default)]
    pub discord: RawDiscord,
    #[serde(default)]
    pub speech: RawSpeech,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub health: RawHealth,
    #[serde(default)]
    pub dashboard: RawDashboard,
    #[serde(default)]
    pub roots: BTreeMap<String, PathBuf>,
    #[serde(default)]
    pub commands: BTreeMap<String, RawCommand>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOperators {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub role_names: Vec<String>,
    #[serde(default)]
    pub guilds: Vec<String>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub memory_mib: Option<u64>,
    pub deadline_ms: Option<u64>,
    pub hostcall_kib: Option<u64>,
    pub messages: Option<u32>,
    pub file_mib: Option<u64>,
    pub concurrency: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub messages: Option<u32>,
    pub per_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDashboard {
    pub listen: Option<String>,
    pub token: Option<Secret>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSandbox {
    pub max_concurrency: Option<u32>,
    pub per_user: Option<u32>,
    pub per_server: Option<u32>,
    pub cache_dir: Option<PathBuf>,
    pub watch: Option<bool>,
    pub quiet_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCommand {
    pub wasm: PathBuf,
    #[serde(default)]
    pub grants: Vec<String>,
    #[serde(default)]
    pub read: Vec<String>,
    pub operators_only: Option<bool>,
    #[serde(default)]
    pub limits: RawLimits,
}

impl RawCommand {
    /// The entry without its file: what a deployment stores.
    pub fn entry(self) -> RawEntry {
        RawEntry { grants: self.grants, read: self.read, operators_only: self.operators_only, limits: self.limits }
    }
}

/// A `[commands.<name>]` entry without `wasm`: what `sandbot deploy`
/// stores beside the component.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawEntry {
    #[serde(default)]
    pub grants: Vec<String>,
    #[serde(default)]
    pub read: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operators_only: Option<bool>,
    #[serde(default)]
    pub limits: RawLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub provider: Option<String>,
    pub embeddings: Option<PathBuf>,
    pub min_similarity: Option<f32>,
    pub near_similarity: Option<f32>,
    pub unknown: Option<String>,
    pub fine_tune: Option<bool>,
    pub base_url: Option<String>,
    pub api_key: Option<Secret>,
    pub model: Option<String>,
    pub fine_tune_model: Option<String>,
    pub use_fine_tuned: Option<bool>,
    pub system_prompt: Option<String>,
    pub context_turns: Option<usize>,
    pub timeout_secs: Option<u64>,
    pub llm: Option<PathBuf>,
    pub max_tokens: Option<usize>,
    pub global_servers: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDiscord {
    pub token: Option<Secret>,
    pub api_base: Option<String>,
    pub rate_limiter: Option<bool>,
    pub upload_mib: Option<u64>,
    pub download_timeout_secs: Option<u64>,
    pub shards: Option<String>,
    pub voice_idle_secs: Option<u64>,
    pub command_guilds: Option<Vec<String>>,
    pub message_content: Option<bool>,
    pub gateway: Option<bool>,
    pub interactions_listen: Option<String>,
    pub public_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpeech {
    pub transcriber: Option<String>,
    pub synthesizer: Option<String>,
    pub language: Option<String>,
    pub whisper: Option<PathBuf>,
    pub max_seconds: Option<u32>,
    pub max_mib: Option<u64>,
    pub espeak: Option<String>,
    pub voice: Option<String>,
    pub base_url: Option<String>,
    pub api_key: Option<Secret>,
    pub transcription_model: Option<String>,
    pub speech_model: Option<String>,
    pub speech_voice: Option<String>,
    pub timeout_secs: Option<u64>,
}

/// A key or token as written in the file; its `Debug` never shows it.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}
