//! The path of one message, end to end. Read this file first.
//!
//! ```text
//! adapter (console | discord) ──Event──▶ Dispatcher::dispatch
//!   1. ignore bots (configurable)
//!   2. `/name` or `!name args` → registry lookup; anything else → the
//!      default handler
//!   3. per-user rate limit (before any reply), operators-only check
//!   4. options: a slash command's checked against the declaration, a
//!      prefix command's read from its text (`options.rs`)
//!   5. sandbox: fresh instance, limits, guest.handle(invocation)
//!        └─ host functions (checked against grants) → platform, services
//!   6. a failure → a short reply for the user (private for a slash
//!      command) + a log line for the operator
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use crate::bindings::types;
use crate::config::{Config, ConfigError, ModelConfig};
use crate::error::InvokeError;
use crate::host::GuestCtx;
use crate::options;
use crate::platform::{Event, Message, Nowhere, Outgoing};
use crate::ratelimit::{UserRateLimiter, Verdict};
use crate::registry::{LoadedCommand, Registry, ReloadReport};
use crate::sandbox::{EngineSettings, Sandbox};
use crate::services::files::Root;
use crate::services::model::embedded::EmbeddedModel;
use crate::services::model::openai::OpenAiModel;
use crate::services::model::{JobRecord, ModelProvider};
use crate::services::speech;
use crate::services::store::{self, Store};
use crate::services::Services;
use crate::shares::{Holder, Shares};
use crate::telemetry;

/// How often a running training job is polled for the channel's sake:
/// soon at first (learning for retrieval ends in seconds), then every
/// [`JOB_POLL_MAX`] (fine-tuning takes minutes to hours).
const JOB_POLL_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
const JOB_POLL_MAX: std::time::Duration = std::time::Duration::from_secs(30);
/// After this the job's end is no longer reported (the job goes on).
const JOB_REPORTED_FOR: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// What became of one message; the adapters only need it for tests and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not for the bot (a bot's message, or no default handler).
    Ignored,
    /// The command ran to the end.
    Handled,
    /// `!name` that no command has.
    Unknown,
    /// Operators-only command from someone else.
    Refused,
    /// Over the user's rate limit.
    RateLimited,
    /// A slash command whose options do not fit the declaration.
    BadOptions,
    /// The command, the user or the server has its share running; the
    /// user was told to try again.
    Busy,
    /// The guest failed; the user was told why.
    Failed,
}

/// Everything a message needs on its way: built once at start-up.
pub struct Dispatcher {
    config: Arc<Config>,
    registry: Registry,
    sandbox: Sandbox,
    services: Services,
    rate_limiter: Option<UserRateLimiter>,
    shares: Shares,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    health: crate::health::Health,
    /// The store's changes, until the reloader takes them (deployments).
    deployments: std::sync::Mutex<Option<tokio::sync::broadcast::Receiver<store::Change>>>,
}

impl Dispatcher {
    /// Opens the database, builds the sandbox and loads every command.
    pub async fn start(mut config: Config) -> anyhow::Result<Dispatcher> {
        let store = store::open(config.store_url(), &config.data_dir).await?;
        // Heard from now on: a deployment made while this process starts
        // is not missed.
        let deployments = std::sync::Mutex::new(store.changes());
        for (command, why) in crate::deploy::apply(&mut config, &*store).await? {
            tracing::warn!(%command, error = %why, "its deployment is not used; the config's entry serves");
        }
        let model: Option<Arc<dyn ModelProvider>> = match &config.model {
            ModelConfig::None => None,
            ModelConfig::Embedded { answers, llm } => {
                Some(Arc::new(EmbeddedModel::open(store.clone(), answers, llm.clone()).await?))
            }
            ModelConfig::OpenAi { answers, settings } => {
                Some(Arc::new(OpenAiModel::open(settings.clone(), answers, store.clone()).await?))
            }
        };
        let speech = speech::transcriber(&config.speech)?;
        let tts = speech::synthesizer(&config.speech)?;
        let services = Services {
            store,
            model,
            speech,
            tts,
            roots: Arc::new(config.roots.iter().map(|(k, v)| (k.clone(), Arc::<Root>::clone(v))).collect()),
            global_servers: config.global_servers.iter().cloned().collect(),
        };
        let mut sandbox = Sandbox::new(EngineSettings {
            max_concurrency: config.max_concurrency,
            max_memory_bytes: config.max_memory_bytes(),
        })?;
        if let Some(dir) = &config.cache_dir {
            // Without the cache the bot only starts slower: say so, go on.
            if let Err(e) = sandbox.use_cache(dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "compiling without a cache");
            }
        }
        if let Some(seed) = config.random_seed {
            sandbox.pin_randomness(seed);
        }
        let registry = Registry::default();
        registry.load_all(&config, &sandbox, &services).await?;
        tracing::info!(commands = registry.snapshot().len(), "ready");
        Ok(Dispatcher {
            rate_limiter: config.rate_limit.map(UserRateLimiter::new),
            shares: Shares::default(),
            config: Arc::new(config),
            registry,
            sandbox,
            services,
            reloading: tokio::sync::Mutex::new(()),
            health: crate::health::Health::default(),
            deployments,
        })
    }

    /// Reads the config file again and brings the commands in line with
    /// it and the guests folder (see [`Registry::reload`]). Only the
    /// `[commands.*]` entries apply while running; other keys, and new
    /// roots, on the next start.
    pub async fn reload(&self) -> Result<ReloadReport, ConfigError> {
        let _one_at_a_time = self.reloading.lock().await;
        let path = self.config.path.clone();
        let mut config = tokio::task::spawn_blocking(move || Config::load(&path)).await.map_err(|e| {
            ConfigError::Invalid { path: self.config.path.clone(), key: String::new(), reason: e.to_string() }
        })??;
        // Deployed through the store: over the config's entries. A store
        // out of reach stops the reload (what runs keeps running).
        let refused = crate::deploy::apply(&mut config, &*self.services.store).await.map_err(|e| {
            ConfigError::Invalid { path: self.config.path.clone(), key: "store".into(), reason: e.to_string() }
        })?;
        // Roots are opened at start: a command that reads one opened since
        // keeps its old version until a restart.
        let mut pinned: BTreeMap<String, String> = config
            .commands
            .iter()
            .filter_map(|(name, command)| {
                let root = command.read.iter().find(|r| !self.services.roots.contains_key(*r))?;
                Some((name.clone(), format!("root `{root}` is new: restart the bot to open it")))
            })
            .collect();
        pinned.extend(refused);
        let report = self.registry.reload(&config, &self.sandbox, &self.services, &pinned).await;
        for line in report.lines() {
            tracing::info!(change = %line, "reloaded");
        }
        Ok(report)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// What `/readyz` reports; the adapters keep it.
    pub fn health(&self) -> &crate::health::Health {
        &self.health
    }

    /// The store's changes since start (for deployments), once.
    pub fn take_store_changes(&self) -> Option<tokio::sync::broadcast::Receiver<store::Change>> {
        self.deployments.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// The sandbox's slots running a message now.
    pub fn slots_in_use(&self) -> usize {
        self.sandbox.slots_in_use()
    }

    /// Where the bot's records are (and, on PostgreSQL, its deployments).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.services.store
    }

    /// Handles one incoming message from start to end.
    pub async fn dispatch(&self, event: Event) -> Outcome {
        let message = &event.message;
        let span = tracing::info_span!(
            "message",
            id = %message.id,
            author = %message.author.id,
            channel = %message.channel,
        );
        self.route(&event).instrument(span).await
    }

    async fn route(&self, event: &Event) -> Outcome {
        let message = &event.message;
        let author = &message.author;
        if author.is_bot && self.config.ignore_bots {
            tracing::debug!("ignored: the author is a bot");
            return Outcome::Ignored;
        }
        let prefix = &self.config.prefix;
        let (name, args, typed) = match (&event.slash, parse_command(prefix, &message.content)) {
            (Some(slash), _) => (slash.name.to_lowercase(), "", true),
            (None, Some((name, args))) => (name, args, true),
            (None, None) => match &self.config.default_handler {
                Some(handler) => (handler.clone(), message.content.trim(), false),
                None => return Outcome::Ignored,
            },
        };
        // Replies name the command as the user typed it.
        let shown = if event.slash.is_some() { format!("/{name}") } else { format!("{prefix}{name}") };
        let is_operator = author.platform_operator || self.config.operators.includes(author, message.guild.as_deref());
        // Before anything that answers: the bot's replies count as well.
        if let (Some(limiter), false) = (&self.rate_limiter, is_operator) {
            if let Verdict::Deny { warn } = limiter.check(&author.id) {
                tracing::info!(command = %name, "refused: rate limited");
                telemetry::refused("rate_limited");
                // A slash command must be answered, and privately, so it
                // cannot flood the channel: always told.
                if warn || event.slash.is_some() {
                    self.reply(event, "You are sending messages too fast; please wait a few seconds.".to_string())
                        .await;
                }
                return Outcome::RateLimited;
            }
        }
        let Some(command) = self.registry.get(&name) else {
            tracing::info!(command = %name, "unknown command");
            telemetry::refused("unknown");
            self.reply(event, format!("Unknown command `{shown}`. Try `{prefix}help`.")).await;
            return Outcome::Unknown;
        };
        if command.config.operators_only && !is_operator {
            tracing::info!(command = %name, "refused: operators only");
            telemetry::refused("operators_only");
            self.reply(event, format!("Sorry, `{shown}` is for operators only.")).await;
            return Outcome::Refused;
        }
        self.invoke(event, command, args, is_operator, typed).await
    }

    async fn invoke(
        &self,
        event: &Event,
        command: Arc<LoadedCommand>,
        args: &str,
        is_operator: bool,
        typed: bool,
    ) -> Outcome {
        let name = command.config.name.as_str();
        let declared = &command.info.options;
        let (source, args, given) = match &event.slash {
            Some(slash) => match options::from_slash(declared, slash.options.clone()) {
                Ok(given) => (types::Source::Slash, options::args_text(declared, &given), given),
                Err(why) => {
                    tracing::info!(command = name, reason = %why, "refused: options do not fit");
                    telemetry::refused("bad_options");
                    self.reply(event, format!("`/{name}`: {why}.")).await;
                    return Outcome::BadOptions;
                }
            },
            None => {
                let given = options::from_text(declared, args, &event.message.attachments);
                (types::Source::Prefix, args.to_string(), given)
            }
        };
        let invocation = types::Invocation {
            command: name.to_string(),
            args,
            prefix: self.config.prefix.clone(),
            source,
            options: given,
            message: wit_message(&event.message, is_operator),
        };
        // The command's place first: invocations of a command that spins
        // wait behind each other without holding their user's or their
        // server's places, which every other command needs too.
        let wanted = [
            (Holder::Command(name.to_string()), command.config.limits.concurrency),
            (Holder::User(event.message.author.id.clone()), self.config.per_user),
            (Holder::Server(event.message.guild.clone()), self.config.per_server),
        ];
        let share = match self.shares.take(&wanted, command.config.limits.deadline).await {
            Ok(taken) => taken,
            Err(full) => {
                let (who, reply) = match full {
                    Holder::Command(_) => ("command", format!("`{name}` is busy right now; try again in a moment.")),
                    Holder::User(_) => ("user", "You have several commands running; wait for one to finish.".into()),
                    Holder::Server(_) => ("server", "I am busy in this server; try again in a moment.".into()),
                };
                tracing::info!(command = name, share = who, "refused: share in use");
                telemetry::refused("busy");
                self.reply(event, reply).await;
                return Outcome::Busy;
            }
        };
        let guest = GuestCtx::new(
            command.config.clone(),
            event.message.clone(),
            event.conversation.clone(),
            self.services.clone(),
            self.registry.clone(),
        );
        let started = Instant::now();
        let (guest, result) = self.sandbox.handle(&command.pre, &command.spare, guest, &invocation).await;
        let elapsed = started.elapsed();
        let micros = elapsed.as_micros() as u64;
        let user = event.message.author.id.as_str();
        command.metrics.invocation(elapsed, result.as_ref().err(), user);
        for job in guest.started_jobs {
            self.report_job(event, job).await;
        }
        let outcome = match result {
            Ok(()) => {
                tracing::info!(command = name, user, micros, "handled");
                Outcome::Handled
            }
            Err(error) => {
                // A user's bad input is routine; a command that gave up, or
                // was stopped, is for the operator to look at.
                match &error {
                    InvokeError::Usage(_) => {
                        tracing::info!(command = name, user, micros, cause = %error.cause(), "refused the input")
                    }
                    InvokeError::Guest(_) => {
                        tracing::info!(command = name, user, micros, cause = %error.cause(), "answered with an error")
                    }
                    _ => tracing::warn!(command = name, user, micros, cause = %error.cause(), "failed"),
                }
                // Replies name a typed command; a plain message's failure is
                // about the answer.
                let what = match (&event.slash, typed) {
                    (Some(_), _) => format!("`/{name}`"),
                    (None, true) => format!("`{}{name}`", self.config.prefix),
                    (None, false) => "Answering that".into(),
                };
                self.reply(event, error.user_reply(&what)).await;
                Outcome::Failed
            }
        };
        // Answered: the next message's instance is made now, off its path,
        // with the user's and the server's places already given back.
        drop(share);
        let nobody = || {
            GuestCtx::new(
                command.config.clone(),
                Arc::new(Message::default()),
                Arc::new(Nowhere),
                self.services.clone(),
                self.registry.clone(),
            )
        };
        self.sandbox.warm(&command.pre, &command.spare, nobody, &command.config.limits).await;
        outcome
    }

    /// Tells the channel how a training job the invocation started is
    /// doing: at once if it already ended, else from a background task
    /// that polls it until it does.
    async fn report_job(&self, event: &Event, id: String) {
        let Some(model) = self.services.model.clone() else { return };
        let status = |job: &JobRecord| {
            let detail = job.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
            format!("Training job `{}` {}{detail}.", job.id, job.status)
        };
        match model.job(&id).await {
            Ok(job) if job.is_finished() => {
                telemetry::training_job(&job.status);
                self.reply(event, status(&job)).await
            }
            Ok(first) => {
                telemetry::training_job(&first.status);
                let event = event.clone();
                tokio::spawn(async move {
                    let mut last = first.status.clone();
                    let since = tokio::time::Instant::now();
                    let mut wait = JOB_POLL_FIRST;
                    while since.elapsed() < JOB_REPORTED_FOR {
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(JOB_POLL_MAX);
                        let Ok(job) = model.job(&id).await else { continue };
                        if job.status != last || job.is_finished() {
                            if job.status != last {
                                telemetry::training_job(&job.status);
                            }
                            last = job.status.clone();
                            let report = Outgoing { content: status(&job), files: Vec::new() };
                            if let Err(e) = event.conversation.send(report).await {
                                tracing::warn!(job = %id, error = %e, "could not report the job");
                            }
                        }
                        if job.is_finished() {
                            break;
                        }
                    }
                });
            }
            Err(e) => tracing::warn!(job = %id, error = %e, "cannot read the job back"),
        }
    }

    /// The host's own replies (refusals, failures): best effort, logged.
    /// To a slash command they are private, as Discord users expect.
    async fn reply(&self, event: &Event, text: String) {
        let max = event.conversation.max_message_chars();
        let content: String = text.chars().take(max).collect();
        let outgoing = Outgoing { content, files: Vec::new() };
        let sent = match event.slash {
            Some(_) => event.conversation.send_private(outgoing).await,
            None => event.conversation.send(outgoing).await,
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not send a reply");
        }
    }
}

/// `!name args` → `(name, args)`, the name lower-cased. `None` when the
/// text is not a command: no prefix, or no name right after it.
fn parse_command<'a>(prefix: &str, content: &'a str) -> Option<(String, &'a str)> {
    let rest = content.trim_start().strip_prefix(prefix)?;
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let name = &rest[..end];
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
        return None;
    }
    Some((name.to_lowercase(), rest[end..].trim()))
}

fn wit_message(message: &Message, is_operator: bool) -> types::Message {
    types::Message {
        id: message.id.clone(),
        channel: message.channel.clone(),
        guild: message.guild.clone(),
        author: types::Author {
            id: message.author.id.clone(),
            name: message.author.name.clone(),
            is_operator,
            roles: message.author.roles.clone(),
            voice_channel: message.author.voice_channel.clone(),
        },
        content: message.content.clone(),
        attachments: message
            .attachments
            .iter()
            .map(|a| types::Attachment {
                id: a.id.clone(),
                filename: a.filename.clone(),
                content_type: a.content_type.clone(),
                size: a.size,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_command;

    #[test]
    fn parses_commands() {
        assert_eq!(parse_command("!", "!hi"), Some(("hi".into(), "")));
        assert_eq!(parse_command("!", "  !GetFile  a b "), Some(("getfile".into(), "a b")));
        assert_eq!(parse_command("!", "!correct 12\nline two"), Some(("correct".into(), "12\nline two")));
        assert_eq!(parse_command("?", "?help"), Some(("help".into(), "")));
    }

    #[test]
    fn plain_text_is_not_a_command() {
        assert_eq!(parse_command("!", "hello"), None);
        assert_eq!(parse_command("!", "! hi"), None);
        assert_eq!(parse_command("!", "!!!"), None);
        assert_eq!(parse_command("!", ""), None);
    }
}
