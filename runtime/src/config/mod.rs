//! The resolved configuration: every value checked, defaults filled in,
//! grants compiled and granted folders opened as capability handles.
//!
//! Relative paths in `sandbot.toml` are relative to the file itself, so the
//! bot behaves the same whatever directory it is started from. A bad value
//! is reported with the file, the key and the reason, and the bot does not
//! start.

mod discord;
mod grants;
mod raw;

use std::collections::{BTreeMap, HashSet};
use std::num::NonZeroU32;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use discord::{DiscordConfig, ShardRange, ShardRangeError, Token, API_BASE_ENV, TOKEN_ENV};
pub use grants::{Grants, HostFn, UnknownGrant};
use raw::{RawConfig, RawDashboard, RawLimits, RawSpeech};
pub use raw::{RawEntry, Secret};

use crate::platform::Author;
use crate::services::files::Root;
use crate::services::model::answer::Unknown;
use crate::services::model::embedder::architecture;
use crate::services::model::llm::LlmSettings;
use crate::services::model::openai::OpenAiSettings;
use crate::services::model::retrieval::Scoring;
use crate::services::speech::openai::OpenAiSpeechSettings;
use crate::services::speech::tts::TtsSettings;
use crate::services::speech::{SpeechSettings, SynthesizerSettings, TranscriberSettings};

/// Commands that touch the bot's data: operators only unless the config
/// says otherwise (SPEC: "Who may run what").
const OPERATORS_ONLY_BY_DEFAULT: &[&str] = &["train", "archive", "select_dataset", "getfile"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read it: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// Only the line and a message without values: toml's own report
    /// quotes the offending line, which may hold the token or an API key.
    #[error("{path}, line {line}: {reason}")]
    Parse { path: PathBuf, line: usize, reason: String },
    #[error("{path}: `{key}`: {reason}")]
    Invalid { path: PathBuf, key: String, reason: String },
}

/// Per-invocation limits of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory a guest may grow to.
    pub memory_bytes: usize,
    /// Wall-clock time for one invocation, host calls included.
    pub deadline: Duration,
    /// Bytes a guest may pass to the host in one call.
    pub hostcall_bytes: usize,
    /// Messages one invocation may send (after splitting long texts).
    pub messages: u32,
    /// Size of one file sent, read or downloaded.
    pub file_bytes: u64,
    /// Invocations of this command running at once; more wait for a place
    /// until their deadline, then are told it is busy, so one command
    /// cannot hold the whole pool.
    pub concurrency: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            deadline: Duration::from_secs(5),
            hostcall_bytes: 16 << 20,
            messages: 10,
            file_bytes: 8 << 20,
            concurrency: 8,
        }
    }
}

/// One command as the operator configured it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandConfig {
    pub name: String,
    pub wasm: PathBuf,
    pub grants: Grants,
    /// The roots `files.*` may read.
    pub read: Vec<String>,
    pub operators_only: bool,
    pub limits: Limits,
}

/// `[dashboard]`: where the operator's web page listens, and its token.
#[derive(Debug, Clone)]
pub struct DashboardSettings {
    pub listen: std::net::SocketAddr,
    /// `None` only on loopback: the dashboard makes one up at start and
    /// prints it.
    pub token: Option<Secret>,
}

#[derive(Debug, Clone, Default)]
pub struct Operators {
    pub users: HashSet<String>,
    /// Role ids. Not names: anyone who may manage roles in a server can
    /// rename "Member" to `admin`.
    pub roles: HashSet<String>,
    /// Role names, an explicit opt-in for operators who accept that.
    pub role_names: HashSet<String>,
    /// The servers where roles count (anyone can make a role in a server
    /// of theirs and invite the bot), so roles count nowhere else, and
    /// never in direct messages.
    pub guilds: HashSet<String>,
}

impl Operators {
    pub fn includes(&self, author: &Author, guild: Option<&str>) -> bool {
        self.users.contains(&author.id)
            || guild.is_some_and(|g| self.guilds.contains(g))
                && (author.role_ids.iter().any(|r| self.roles.contains(r))
                    || author.roles.iter().any(|r| self.role_names.contains(r)))
    }
}

/// At most `messages` per `per`, per user; operators are exempt.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub messages: NonZeroU32,
    pub per: Duration,
}

/// Which model answers, and how.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    /// No model: `model.*` answers `unavailable`.
    None,
    /// Retrieval over what was trained and corrected (the offline default),
    /// and a small local language model.
    Embedded {
        answers: AnswerSettings,
        /// The small language model, if any.
        llm: Option<LlmSettings>,
    },
    /// Retrieval as above, and an OpenAI-compatible server's model.
    OpenAi { answers: AnswerSettings, settings: OpenAiSettings },
}

impl ModelConfig {
    /// How answers are found; `None` when the model is off.
    pub fn answers(&self) -> Option<&AnswerSettings> {
        match self {
            ModelConfig::None => None,
            ModelConfig::Embedded { answers, .. } | ModelConfig::OpenAi { answers, .. } => Some(answers),
        }
    }
}

/// How answers are found, the same for every provider.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerSettings {
    /// The sentence-embedding model's folder; `None`: words only.
    pub embeddings: Option<PathBuf>,
    pub scoring: Scoring,
    pub system_prompt: String,
    /// Earlier (taught) turns of the channel the language model sees.
    pub context_turns: usize,
    pub unknown: Unknown,
}

const DEFAULT_SYSTEM_PROMPT: &str =
    "You are sandbot, a helpful assistant in a Discord server. Answer briefly and plainly.";

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from, for messages.
    pub path: PathBuf,
    pub prefix: String,
    pub data_dir: PathBuf,
    pub guests_dir: PathBuf,
    /// The command that answers messages that are not commands.
    pub default_handler: Option<String>,
    pub ignore_bots: bool,
    pub operators: Operators,
    pub rate_limit: Option<RateLimit>,
    /// Instances that may run at once; the size of the instance pool.
    pub max_concurrency: u32,
    /// Invocations one user may have running at once.
    pub per_user: u32,
    /// Invocations one server (or the direct messages) may have running.
    pub per_server: u32,
    /// Where compiled components are kept; `None`: compile every start.
    pub cache_dir: Option<PathBuf>,
    /// Reload commands when the guests folder or this file changes.
    pub watch: bool,
    /// How long writes in place must be quiet before a reload (a `.wasm`
    /// renamed into place is complete, and is loaded at once).
    pub quiet: Duration,
    pub model: ModelConfig,
    /// Servers whose teaching (corrections, `!train`, datasets) is the
    /// global set every server sees; any other server's is its own.
    pub global_servers: Vec<String>,
    pub roots: BTreeMap<String, Arc<Root>>,
    pub commands: BTreeMap<String, CommandConfig>,
    pub discord: DiscordConfig,
    pub speech: SpeechSettings,
    /// A PostgreSQL database shared by a fleet (`[store] url`, else
    /// `SANDBOT_DATABASE_URL`); `None`: the SQLite file in the data folder.
    /// It may hold a password: its `Debug` never shows it.
    pub store_url: Option<Secret>,
    /// Where `/healthz` and `/readyz` answer (`[health] listen`); off when
    /// `None`.
    pub health_listen: Option<std::net::SocketAddr>,
    /// The operator's dashboard (`[dashboard]`); off when `None`.
    pub dashboard: Option<DashboardSettings>,
    /// `[limits]`: what a command's own `limits` start from.
    pub default_limits: Limits,
    /// Every instance's `wasi:random` from this seed, for reproducible
    /// output. Never read from a file: `sandbot try --seed` sets it, since a
    /// bot whose dice are known in advance is no bot to serve people.
    pub random_seed: Option<u64>,
}

impl Config {
    /// Reads, parses and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::from_toml(path, &text)
    }

    /// Parses and checks `text` as if read from `path`.
    pub fn from_toml(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            // Counted in bytes: a span need not fall on a character's edge.
            line: e
                .span()
                .map_or(0, |span| text.as_bytes().iter().take(span.start).filter(|&&b| b == b'\n').count() + 1),
            reason: without_values(e.message()),
        })?;
        Resolver { path, base: path.parent().unwrap_or(Path::new(".")) }.resolve(raw)
    }

    /// Command `name` as a deployment gives it: `entry` (a
    /// `[commands.<name>]` table as TOML, without `wasm`), running `wasm`,
    /// checked against this config's roots and default limits.
    pub fn deployed_command(&self, name: &str, entry: &str, wasm: PathBuf) -> Result<CommandConfig, ConfigError> {
        let resolver = Resolver { path: &self.path, base: self.path.parent().unwrap_or(Path::new(".")) };
        let key = format!("commands.{name}");
        let entry: RawEntry = toml::from_str(entry)
            .map_err(|e| resolver.invalid(&key, format!("the deployed entry: {}", without_values(e.message()))))?;
        resolver.command(name.to_string(), wasm, entry, |root| self.roots.contains_key(root), &self.default_limits)
    }

    /// `[store] url`: a PostgreSQL database, or `None` for SQLite.
    pub fn store_url(&self) -> Option<&str> {
        self.store_url.as_ref().map(|url| url.0.as_str())
    }

    /// The largest memory limit of any command: the pool's slot size.
    pub fn max_memory_bytes(&self) -> usize {
        self.commands.values().map(|c| c.limits.memory_bytes).max().unwrap_or(Limits::default().memory_bytes)
    }
}

/// `path` with symlinks resolved, as far as it exists; the rest (a folder
/// not made yet) appended as written.
fn real_path(path: &Path) -> PathBuf {
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |p, part| p.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// A parser's message with the values it quotes taken out. Key names stay
/// ("unknown field `tokn`"); a value ("invalid type: string \"…\"") may be
/// a secret put under the wrong key.
fn without_values(message: &str) -> String {
    let first_line = message.lines().next().unwrap_or_default();
    for prefix in ["invalid type", "invalid value", "invalid length", "unknown variant"] {
        if let Some(rest) = first_line.strip_prefix(prefix) {
            let expected = rest.find(", expected").map_or("", |at| &rest[at..]);
            return format!("{prefix}{expected}");
        }
    }
    // Anything else in double quotes is a value too.
    let mut out = String::with_capacity(first_line.len());
    let mut quoted = false;
    for c in first_line.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…\"");
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

struct Resolver<'a> {
    path: &'a Path,
    base: &'a Path,
}

impl Resolver<'_> {
    fn invalid(&self, key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { path: self.path.to_path_buf(), key: key.into(), reason: reason.into() }
    }

    /// `p` made absolute against the config's folder, with `.` and `..`
    /// resolved lexically so paths in logs and effects read well.
    fn relative(&self, p: &Path) -> PathBuf {
        let joined = std::path::absolute(self.base.join(p)).unwrap_or_else(|_| self.base.join(p));
        let mut clean = PathBuf::new();
        for part in joined.components() {
            match part {
                Component::CurDir => {}
                Component::ParentDir => {
                    clean.pop();
                }
                other => clean.push(other),
            }
        }
        clean
    }

    fn resolve(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let prefix = raw.prefix.unwrap_or_else(|| "!".to_string());
        if prefix.is_empty() || prefix.chars().any(char::is_whitespace) {
            return Err(self.invalid("prefix", "must be non-empty and contain no spaces"));
        }
        let data_dir = self.relative(&raw.data_dir.unwrap_or_else(|| "data".into()));
        // Owner-only when the bot makes it: it holds every message taught.
        crate::sandbox::cache::create_private_dir(&data_dir)
            .map_err(|e| self.invalid("data_dir", format!("cannot create {}: {e}", data_dir.display())))?;

        let guests_dir = self.relative(&raw.guests_dir.unwrap_or_else(|| "guests".into()));
        let default_limits = self.limits("limits", &raw.limits, &Limits::default())?;

        let mut roots = BTreeMap::new();
        for (name, path) in &raw.roots {
            let path = self.relative(path);
            if !path.exists() && path.starts_with(&data_dir) {
                // Folders inside the data area are the bot's own: make them.
                std::fs::create_dir_all(&path).map_err(|e| {
                    self.invalid(format!("roots.{name}"), format!("cannot create {}: {e}", path.display()))
                })?;
            }
            let root = Root::open(&path)
                .map_err(|e| self.invalid(format!("roots.{name}"), format!("cannot open {}: {e}", path.display())))?;
            roots.insert(name.clone(), Arc::new(root));
        }

        // Compiled code is run as is: keep it where no guest can read the
        // cache's key (inside a root, `!archive` would zip it).
        let cache_dir = match raw.sandbox.cache_dir.as_deref() {
            Some(p) if p.as_os_str().is_empty() => None,
            Some(p) => Some(self.relative(p)),
            None => std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
                .map(|base| base.join("sandbot")),
        };
        if let Some(cache) = &cache_dir {
            // Compared as the file system resolves them: a symlink into a
            // root is inside it.
            let cache = real_path(cache);
            for (name, path) in &raw.roots {
                let root = real_path(&self.relative(path));
                if cache.starts_with(&root) {
                    return Err(self.invalid(
                        "sandbox.cache_dir",
                        format!("is inside root `{name}`; guests granted it could read the cache's key"),
                    ));
                }
            }
        }

        let mut commands = BTreeMap::new();
        for (name, raw_cmd) in raw.commands {
            // Whether the file exists and fits the world is checked when the
            // registry loads it, so `sandbot export` works without guests.
            let wasm = guests_dir.join(&raw_cmd.wasm);
            let command =
                self.command(name.clone(), wasm, raw_cmd.entry(), |root| roots.contains_key(root), &default_limits)?;
            commands.insert(name, command);
        }

        if let Some(handler) = &raw.default_handler {
            if !commands.contains_key(handler) {
                return Err(self.invalid("default_handler", format!("no command `{handler}` in [commands]")));
            }
        }

        let rate_limit = match (raw.rate_limit.messages, raw.rate_limit.per_seconds) {
            (Some(0), _) => None,
            (messages, per) => {
                let per = per.unwrap_or(10);
                if per == 0 {
                    return Err(self.invalid("rate_limit.per_seconds", "must be at least 1"));
                }
                NonZeroU32::new(messages.unwrap_or(5))
                    .map(|messages| RateLimit { messages, per: Duration::from_secs(per) })
            }
        };

        let embeddings = raw.model.embeddings.as_ref().filter(|p| !p.as_os_str().is_empty()).map(|p| self.relative(p));
        let defaults = Scoring::calibrated(embeddings.as_deref().and_then(architecture).as_deref());
        let accept = raw.model.min_similarity.unwrap_or(defaults.accept);
        if !(0.0..=1.0).contains(&accept) {
            return Err(self.invalid("model.min_similarity", "must be between 0 and 1"));
        }
        let near = raw.model.near_similarity.unwrap_or(defaults.near.min(accept));
        if !(0.0..=accept).contains(&near) {
            return Err(self.invalid("model.near_similarity", "must be between 0 and `min_similarity`"));
        }
        let unknown = match raw.model.unknown.as_deref().unwrap_or("decline") {
            "decline" => Unknown::Decline,
            "generate" => Unknown::Generate,
            other => {
                return Err(self.invalid("model.unknown", format!("`{other}` is neither `decline` nor `generate`")))
            }
        };
        let answers = AnswerSettings {
            embeddings,
            scoring: Scoring { accept, near, hint: defaults.hint.min(near), ..defaults },
            system_prompt: raw.model.system_prompt.clone().unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.into()),
            context_turns: raw.model.context_turns.unwrap_or(6),
            unknown,
        };
        // The console's messages come from the server `local`: what an
        // operator teaches there is everyone's, unless the config says
        // otherwise.
        let global_servers = raw.model.global_servers.clone().unwrap_or_else(|| vec!["local".into()]);
        if global_servers.iter().any(|s| s.trim().is_empty()) {
            return Err(self.invalid("model.global_servers", "a server id is empty"));
        }
        let model = match raw.model.provider.as_deref().unwrap_or("embedded") {
            "embedded" => ModelConfig::Embedded {
                answers,
                llm: raw.model.llm.as_ref().filter(|p| !p.as_os_str().is_empty()).map(|path| LlmSettings {
                    path: self.relative(path),
                    max_tokens: raw.model.max_tokens.unwrap_or(96).clamp(1, 2048),
                }),
            },
            "none" => ModelConfig::None,
            "openai" => {
                let m = raw.model;
                let base_url = m
                    .base_url
                    .or_else(|| std::env::var("OPENAI_BASE_URL").ok())
                    .unwrap_or_else(|| "https://api.openai.com/v1".into());
                if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                    return Err(self.invalid("model.base_url", "must start with http:// or https://"));
                }
                let model = m.model.unwrap_or_else(|| "gpt-4o-mini".into());
                ModelConfig::OpenAi {
                    settings: OpenAiSettings {
                        base_url,
                        // The key stays in the host: from the config or the
                        // environment, never passed to a guest.
                        api_key: m
                            .api_key
                            .map(|k| k.0)
                            .or_else(|| std::env::var("OPENAI_API_KEY").ok())
                            .filter(|k| !k.is_empty()),
                        fine_tune: m.fine_tune.unwrap_or(false),
                        fine_tune_model: m.fine_tune_model.unwrap_or_else(|| model.clone()),
                        model,
                        use_fine_tuned: m.use_fine_tuned.unwrap_or(true),
                        timeout: Duration::from_secs(m.timeout_secs.unwrap_or(60).max(1)),
                    },
                    answers,
                }
            }
            other => {
                return Err(self
                    .invalid("model.provider", format!("unknown provider `{other}`; known: embedded, openai, none")))
            }
        };

        let discord = DiscordConfig::resolve(raw.discord, |key| std::env::var(key).ok())
            .map_err(|(key, reason)| self.invalid(key, reason))?;

        let speech = self.speech(raw.speech)?;

        let health_listen = match raw.health.listen.as_deref() {
            None | Some("") => None,
            Some(text) => Some(text.parse().map_err(|_| {
                self.invalid("health.listen", format!("`{text}` is not an address; write one like `127.0.0.1:8092`"))
            })?),
        };
        let dashboard = self.dashboard(raw.dashboard, std::env::var("SANDBOT_DASHBOARD_TOKEN").ok())?;
        let store_url = raw.store.url.or_else(|| std::env::var("SANDBOT_DATABASE_URL").ok()).filter(|u| !u.is_empty());
        if store_url.as_deref().is_some_and(|url| !crate::services::store::is_postgres(url)) {
            return Err(self.invalid(
                "store.url",
                "must be a PostgreSQL url (`postgres://user@host/database`); without it the bot uses SQLite in the data folder",
            ));
        }

        if raw.sandbox.quiet_ms.is_some_and(|ms| ms > 60_000) {
            return Err(self.invalid("sandbox.quiet_ms", "must be at most 60000"));
        }
        let max_concurrency = raw.sandbox.max_concurrency.unwrap_or(32);
        if !(1..=1000).contains(&max_concurrency) {
            return Err(self.invalid("sandbox.max_concurrency", "must be between 1 and 1000"));
        }
        let per_user = raw.sandbox.per_user.unwrap_or(4);
        let per_server = raw.sandbox.per_server.unwrap_or(max_concurrency.div_ceil(2));
        if per_user == 0 || per_server == 0 {
            return Err(self.invalid("sandbox", "`per_user` and `per_server` must be at least 1"));
        }

        Ok(Config {
            path: self.path.to_path_buf(),
            prefix,
            data_dir,
            guests_dir,
            default_handler: raw.default_handler,
            ignore_bots: raw.ignore_bots.unwrap_or(true),
            operators: Operators {
                users: raw.operators.users.into_iter().collect(),
                roles: self.role_ids(raw.operators.roles)?,
                role_names: raw.operators.role_names.into_iter().collect(),
                guilds: raw.operators.guilds.into_iter().collect(),
            },
            rate_limit,
            max_concurrency,
            per_user,
            per_server,
            cache_dir,
            watch: raw.sandbox.watch.unwrap_or(true),
            quiet: Duration::from_millis(raw.sandbox.quiet_ms.unwrap_or(300)),
            model,
            global_servers,
            roots,
            commands,
            discord,
            speech,
            store_url: store_url.map(Secret),
            default_limits,
            health_listen,
            dashboard,
            random_seed: None,
        })
    }

    /// The `[dashboard]` table; `env_token` is `SANDBOT_DASHBOARD_TOKEN`,
    /// which wins over the file's.
    fn dashboard(
        &self,
        raw: RawDashboard,
        env_token: Option<String>,
    ) -> Result<Option<DashboardSettings>, ConfigError> {
        let listen: std::net::SocketAddr = match raw.listen.as_deref() {
            None | Some("") => return Ok(None),
            Some(text) => text.parse().map_err(|_| {
                self.invalid("dashboard.listen", format!("`{text}` is not an address; write one like `127.0.0.1:8091`"))
            })?,
        };
        let token = env_token.or(raw.token.map(|t| t.0)).filter(|t| !t.is_empty());
        if let Some(token) = &token {
            if token.len() < 16 {
                return Err(self.invalid("dashboard.token", "must be at least 16 characters (`openssl rand -hex 16`)"));
            }
        }
        if token.is_none() && !listen.ip().is_loopback() {
            return Err(self.invalid(
                "dashboard.listen",
                format!(
                    "{listen} is reachable from other machines: set `[dashboard] token` (or SANDBOT_DASHBOARD_TOKEN), \
                     or listen on 127.0.0.1"
                ),
            ));
        }
        Ok(Some(DashboardSettings { listen, token: token.map(Secret) }))
    }

    /// The `[speech]` table: which engines hear and speak, and their limits.
    fn speech(&self, raw: RawSpeech) -> Result<SpeechSettings, ConfigError> {
        let max_seconds = raw.max_seconds.unwrap_or(120);
        if !(1..=3600).contains(&max_seconds) {
            return Err(self.invalid("speech.max_seconds", "must be between 1 and 3600"));
        }
        let max_mib = raw.max_mib.unwrap_or(25);
        if !(1..=500).contains(&max_mib) {
            return Err(self.invalid("speech.max_mib", "must be between 1 and 500"));
        }
        let language = raw.language.clone().unwrap_or_else(|| "en".into());
        if language.len() != 2 || !language.chars().all(|c| c.is_ascii_lowercase()) {
            return Err(self.invalid("speech.language", "a two-letter ISO-639-1 code, like `en` or `de`"));
        }
        let openai = || -> Result<OpenAiSpeechSettings, ConfigError> {
            let base_url = raw
                .base_url
                .clone()
                .or_else(|| std::env::var("OPENAI_BASE_URL").ok())
                .unwrap_or_else(|| "https://api.openai.com/v1".into());
            if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                return Err(self.invalid("speech.base_url", "must start with http:// or https://"));
            }
            Ok(OpenAiSpeechSettings {
                base_url,
                // Like the model's key: config or environment, host only.
                api_key: raw
                    .api_key
                    .clone()
                    .map(|k| k.0)
                    .or_else(|| std::env::var("OPENAI_API_KEY").ok())
                    .filter(|k| !k.is_empty()),
                transcription_model: raw.transcription_model.clone().unwrap_or_else(|| "whisper-1".into()),
                speech_model: raw.speech_model.clone().unwrap_or_else(|| "tts-1".into()),
                voice: raw.speech_voice.clone().unwrap_or_else(|| "alloy".into()),
                language: language.clone(),
                timeout: Duration::from_secs(raw.timeout_secs.unwrap_or(60).clamp(1, 3600)),
            })
        };
        let whisper = raw.whisper.as_ref().filter(|p| !p.as_os_str().is_empty()).map(|p| self.relative(p));
        let transcriber = match raw.transcriber.as_deref().unwrap_or("whisper") {
            "whisper" => match whisper {
                // Whisper tiny.en knows English only.
                Some(_) if language != "en" => return Err(self.invalid(
                    "speech.language",
                    "the embedded Whisper tiny.en hears only English (`en`); use transcriber = \"openai\" for other \
                         languages",
                )),
                Some(dir) => TranscriberSettings::Whisper(dir),
                None => TranscriberSettings::Off,
            },
            "openai" => TranscriberSettings::OpenAi(openai()?),
            "none" => TranscriberSettings::Off,
            other => {
                return Err(self.invalid(
                    "speech.transcriber",
                    format!("unknown transcriber `{other}`; known: whisper, openai, none"),
                ))
            }
        };
        let synthesizer = match raw.synthesizer.as_deref().unwrap_or("espeak") {
            "espeak" => match raw.espeak.as_deref().unwrap_or("espeak-ng") {
                "" => SynthesizerSettings::Off,
                program => {
                    let voice = raw.voice.clone().unwrap_or_else(|| language.clone());
                    if voice.is_empty() || !voice.chars().all(|c| c.is_ascii_alphanumeric() || "-_+/".contains(c)) {
                        return Err(self.invalid("speech.voice", "an espeak-ng voice name, like `en` or `en-us`"));
                    }
                    SynthesizerSettings::Espeak(TtsSettings { program: program.to_string(), voice })
                }
            },
            "openai" => SynthesizerSettings::OpenAi(openai()?),
            "none" => SynthesizerSettings::Off,
            other => {
                return Err(self.invalid(
                    "speech.synthesizer",
                    format!("unknown synthesizer `{other}`; known: espeak, openai, none"),
                ))
            }
        };
        Ok(SpeechSettings { transcriber, synthesizer, max_seconds, max_bytes: max_mib << 20 })
    }

    /// `operators.roles`, which are ids now: a name there would match no
    /// role at all, silently, so it is refused with the way out.
    fn role_ids(&self, roles: Vec<String>) -> Result<HashSet<String>, ConfigError> {
        if let Some(name) = roles.iter().find(|r| r.is_empty() || !r.bytes().all(|b| b.is_ascii_digit())) {
            return Err(self.invalid(
                "operators.roles",
                format!(
                    "`{name}` is not a role id; give the role's id (roles can be renamed by anyone who \
                     manages them), or put the name in `role_names` if you accept that"
                ),
            ));
        }
        Ok(roles.into_iter().collect())
    }

    /// One `[commands.<name>]` entry, running `wasm`; `has_root` says
    /// which roots exist.
    fn command(
        &self,
        name: String,
        wasm: PathBuf,
        entry: RawEntry,
        has_root: impl Fn(&str) -> bool,
        defaults: &Limits,
    ) -> Result<CommandConfig, ConfigError> {
        let key = format!("commands.{name}");
        // Users' `!Name` is lower-cased before the lookup.
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            return Err(self.invalid(key, "a command name is lower-case letters, digits, `_` and `-` only"));
        }
        let grants = Grants::parse(&entry.grants).map_err(|UnknownGrant(g)| {
            self.invalid(format!("{key}.grants"), format!("unknown grant `{g}`; known: {}", Grants::known_names()))
        })?;
        for root in &entry.read {
            if !has_root(root) {
                return Err(self.invalid(format!("{key}.read"), format!("no root `{root}` in [roots]")));
            }
        }
        let limits = self.limits(&format!("{key}.limits"), &entry.limits, defaults)?;
        // Commands that see or change what is deployed are for operators
        // unless the config says otherwise.
        let operates = grants.allows(HostFn::CommandsVersions)
            || grants.allows(HostFn::CommandsReload)
            || grants.allows(HostFn::CommandsOutcomes);
        let operators_only =
            entry.operators_only.unwrap_or(operates || OPERATORS_ONLY_BY_DEFAULT.contains(&name.as_str()));
        Ok(CommandConfig { name, wasm, grants, read: entry.read, operators_only, limits })
    }

    fn limits(&self, key: &str, raw: &RawLimits, defaults: &Limits) -> Result<Limits, ConfigError> {
        let positive = |field: &str, v: Option<u64>, max: u64| -> Result<Option<u64>, ConfigError> {
            match v {
                Some(v) if v == 0 || v > max => {
                    Err(self.invalid(format!("{key}.{field}"), format!("must be between 1 and {max}")))
                }
                other => Ok(other),
            }
        };
        let memory_mib = positive("memory_mib", raw.memory_mib, 4096)?;
        let deadline_ms = positive("deadline_ms", raw.deadline_ms, 3_600_000)?;
        let hostcall_kib = positive("hostcall_kib", raw.hostcall_kib, 1 << 20)?;
        let messages = positive("messages", raw.messages.map(u64::from), 1000)?;
        let file_mib = positive("file_mib", raw.file_mib, 1024)?;
        let concurrency = positive("concurrency", raw.concurrency.map(u64::from), 1000)?;
        Ok(Limits {
            memory_bytes: memory_mib.map_or(defaults.memory_bytes, |m| (m as usize) << 20),
            deadline: deadline_ms.map_or(defaults.deadline, Duration::from_millis),
            hostcall_bytes: hostcall_kib.map_or(defaults.hostcall_bytes, |k| (k as usize) << 10),
            messages: messages.map_or(defaults.messages, |m| m as u32),
            file_bytes: file_mib.map_or(defaults.file_bytes, |m| m << 20),
            concurrency: concurrency.map_or(defaults.concurrency, |c| c as u32),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Any text: a config or an error naming a line or a key, never a
        /// panic.
        #[test]
        fn fuzz_the_config_loader_takes_any_text(text in "\\PC{0,200}") {
            let _ = load(&text);
        }

        /// Real keys with values of every kind, in every table.
        #[test]
        fn fuzz_the_config_loader_takes_any_value(
            table in proptest::sample::select(vec!["", "[limits]", "[sandbox]", "[operators]", "[model]", "[discord]", "[speech]", "[commands.hi]", "[rate_limit]"]),
            key in proptest::sample::select(vec![
                "prefix", "memory_mib", "deadline_ms", "concurrency", "max_concurrency", "per_user", "quiet_ms", "roles",
                "role_names", "guilds", "provider", "token", "wasm", "grants", "limits", "messages", "shards", "cache_dir",
            ]),
            value in proptest::sample::select(vec![
                "0", "-1", "18446744073709551615", "\"\"", "\"x\"", "[]", "[\"a\", 1]", "{}", "true", "1.5", "\"../../etc\"",
            ]),
        ) {
            let _ = load(&format!("{table}\n{key} = {value}\n"));
        }
    }

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        Config::from_toml(&dir.path().join("sandbot.toml"), text)
    }

    #[test]
    fn defaults_are_deny_everything() {
        let config = load("[commands.hi]\nwasm = \"hi.wasm\"\n").unwrap();
        let hi = &config.commands["hi"];
        assert!(HostFn::ALL.iter().all(|f| !hi.grants.allows(*f)));
        assert_eq!(hi.limits, Limits::default());
        assert_eq!(config.prefix, "!");
        assert!(!hi.operators_only);
    }

    /// toml's own report quotes the offending line; through `!reload` and
    /// the log that would post a token with a typo around it.
    #[test]
    fn a_parse_error_names_the_line_but_never_shows_a_secret() {
        let secret = "MTIzNDU2Nzg5.secret-token-value";
        let typos = [
            format!("prefix = \"!\"\n[discord]\ntokn = \"{secret}\"\n"),
            format!("prefix = \"!\"\n[discord]\ntoken = \"{secret}\n"),
            format!("prefix = \"!\"\n[discord]\ntoken = {secret}\n"),
            format!("prefix = \"!\"\n[model]\nmax_tokens = \"{secret}\"\n"),
            format!("prefix = \"!\"\n[discord]\ntoken = \"{secret}\"\ntoken = \"{secret}\"\n"),
        ];
        for text in &typos {
            let err = load(text).unwrap_err().to_string();
            assert!(!err.contains("secret-token") && !err.contains("MTIz"), "{err}");
            assert!(err.contains("line 3") || err.contains("line 4"), "{err}");
        }
        let err = load(&typos[0]).unwrap_err().to_string();
        assert!(err.contains("tokn"), "the misspelt key is named: {err}");
    }

    #[test]
    fn errors_name_the_key() {
        let err = load("[commands.hi]\nwasm = \"hi.wasm\"\ngrants = [\"chta\"]\n").unwrap_err().to_string();
        assert!(err.contains("`commands.hi.grants`") && err.contains("unknown grant `chta`"), "{err}");

        let err = load("prefx = \"?\"\n").unwrap_err().to_string();
        assert!(err.contains("sandbot.toml") && err.contains("prefx"), "{err}");

        let err = load("[limits]\nmemory_mib = 0\n").unwrap_err().to_string();
        assert!(err.contains("`limits.memory_mib`"), "{err}");

        let err = load("[commands.GetFile]\nwasm = \"hi.wasm\"\n").unwrap_err().to_string();
        assert!(err.contains("`commands.GetFile`") && err.contains("lower-case"), "{err}");

        let err = load("default_handler = \"chat\"\n").unwrap_err().to_string();
        assert!(err.contains("`default_handler`"), "{err}");

        let err = load("[commands.hi]\nwasm = \"hi.wasm\"\nread = [\"shared\"]\n").unwrap_err().to_string();
        assert!(err.contains("`commands.hi.read`") && err.contains("no root `shared`"), "{err}");
    }

    #[test]
    fn speech_engines_are_chosen_and_checked() {
        let config = load("[speech]\nwhisper = \"models/w\"\n").unwrap();
        assert!(matches!(config.speech.transcriber, TranscriberSettings::Whisper(_)));
        assert!(matches!(&config.speech.synthesizer, SynthesizerSettings::Espeak(t) if t.voice == "en"));
        assert_eq!(config.speech.max_bytes, 25 << 20);
        let config = load(
            "[speech]\ntranscriber = \"openai\"\nsynthesizer = \"none\"\nlanguage = \"de\"\nbase_url = \"http://127.0.0.1:1/v1\"\n",
        )
        .unwrap();
        assert!(matches!(&config.speech.transcriber, TranscriberSettings::OpenAi(s) if s.language == "de"
            && s.transcription_model == "whisper-1"));
        assert_eq!(config.speech.synthesizer, SynthesizerSettings::Off);
        let err = load("[speech]\nwhisper = \"models/w\"\nlanguage = \"de\"\n").unwrap_err().to_string();
        assert!(err.contains("speech.language") && err.contains("only English"), "{err}");
        let err = load("[speech]\ntranscriber = \"vosk\"\n").unwrap_err().to_string();
        assert!(err.contains("speech.transcriber") && err.contains("known: whisper, openai, none"), "{err}");
        let err = load("[speech]\nlanguage = \"english\"\n").unwrap_err().to_string();
        assert!(err.contains("two-letter"), "{err}");
        let config = load(
            "[model]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\napi_key = \"sk-model\"\n\
             [speech]\nsynthesizer = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\napi_key = \"sk-speech\"\n",
        )
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("sk-model") && !shown.contains("sk-speech"), "a key reached Debug: {shown}");
    }

    #[test]
    fn command_limits_override_defaults() {
        let config =
            load("[limits]\ndeadline_ms = 100\n[commands.hi]\nwasm = \"hi.wasm\"\nlimits = { memory_mib = 8 }\n")
                .unwrap();
        let limits = &config.commands["hi"].limits;
        assert_eq!(limits.deadline, Duration::from_millis(100));
        assert_eq!(limits.memory_bytes, 8 << 20);
    }

    #[test]
    fn operator_roles_count_only_in_the_listed_servers() {
        let config = load("[operators]\nusers = [\"7\"]\nroles = [\"600\"]\nguilds = [\"800\"]\n").unwrap();
        let author = |id: &str, role_id: &str| Author {
            id: id.into(),
            roles: vec!["admin".into()],
            role_ids: vec![role_id.into()],
            ..Author::default()
        };
        let admin = author("5", "600");
        assert!(config.operators.includes(&admin, Some("800")));
        assert!(!config.operators.includes(&admin, Some("801")), "someone else's server");
        assert!(!config.operators.includes(&admin, None), "a direct message");
        assert!(!config.operators.includes(&author("5", "601"), Some("800")), "a role renamed `admin`");
        assert!(config.operators.includes(&author("7", "1"), None), "users count everywhere");
    }

    /// The review's finding: role names were compared with the list, so
    /// renaming "Member" to `admin` made every member an operator.
    #[test]
    fn operator_roles_are_ids_and_names_only_by_choice() {
        let err = load("[operators]\nroles = [\"admin\"]\n").unwrap_err().to_string();
        assert!(err.contains("`operators.roles`") && err.contains("role_names"), "{err}");
        let config = load("[operators]\nrole_names = [\"admin\"]\nguilds = [\"800\"]\n").unwrap();
        let renamed =
            Author { id: "5".into(), roles: vec!["admin".into()], role_ids: vec!["601".into()], ..Author::default() };
        assert!(config.operators.includes(&renamed, Some("800")), "names count when asked for");
    }

    /// The review's findings: the data folder was made world-readable, and
    /// a cache folder reached through a symlink into a root passed the
    /// "not inside a root" check, which compared the paths as text.
    #[cfg(unix)]
    #[test]
    fn the_data_folder_is_private_and_a_symlinked_cache_is_still_inside_its_root() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("shared")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("shared"), dir.path().join("innocent")).unwrap();
        let text = "[roots]\nshared = \"shared\"\n[sandbox]\ncache_dir = \"innocent/cache\"\n";
        let err = Config::from_toml(&dir.path().join("sandbot.toml"), text).unwrap_err().to_string();
        assert!(err.contains("`sandbox.cache_dir`") && err.contains("inside root `shared`"), "{err}");

        let text = "[sandbox]\ncache_dir = \"cache\"\n";
        let config = Config::from_toml(&dir.path().join("sandbot.toml"), text).unwrap();
        let mode = std::fs::metadata(&config.data_dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "data folder mode {mode:o}");
    }

    #[test]
    fn data_commands_are_for_operators_by_default() {
        let config = load("[commands.getfile]\nwasm = \"hi.wasm\"\n").unwrap();
        assert!(config.commands["getfile"].operators_only);
        let config = load("[commands.getfile]\nwasm = \"hi.wasm\"\noperators_only = false\n").unwrap();
        assert!(!config.commands["getfile"].operators_only);
    }

    /// Each embedding model comes with its own calibrated thresholds, and
    /// the config's own still win.
    #[test]
    fn thresholds_follow_the_embedding_model() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        std::fs::create_dir(&model).unwrap();
        std::fs::write(model.join("config.json"), r#"{"model_type": "mpnet"}"#).unwrap();
        let config = |extra: &str| {
            let text = format!("[model]\nprovider = \"embedded\"\nembeddings = \"model\"\nllm = \"\"\n{extra}");
            let config = Config::from_toml(&dir.path().join("sandbot.toml"), &text).unwrap();
            config.model.answers().unwrap().scoring
        };
        assert_eq!(config(""), Scoring::calibrated(Some("mpnet")));
        assert_ne!(config("").accept, Scoring::default().accept);
        assert_eq!(config("min_similarity = 0.7\n").accept, 0.7);
        std::fs::write(model.join("config.json"), r#"{"model_type": "bert"}"#).unwrap();
        assert_eq!(config(""), Scoring::default());
    }
}
