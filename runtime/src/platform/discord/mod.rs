//! The Discord adapter: serenity's gateway and REST client on one side, the
//! dispatcher on the other. Everything Discord-specific lives in this
//! folder; no command logic does.
//!
//! ```text
//! gateway ─MESSAGE_CREATE─────▶ events::Handler ─Event─▶ Dispatcher (same as the console)
//!         ─INTERACTION_CREATE─▶        │   guests' host calls ─▶ conversation ─REST─▶ Discord
//! HTTP POST (signed) ─▶ endpoint ──────┘          (slash: interaction ─callback/body/webhook─▶ Discord)
//!                                                                      └─voice──▶ songbird
//! registry changes ─▶ commands::keep_registered ─PUT commands─▶ Discord
//! ```
//!
//! Sharding: each process runs the shard range of its config; shards share
//! nothing in memory. What several processes would share is on disk: the
//! data folder (SQLite in WAL mode takes concurrent writers on one machine)
//! and the guests. Rate limits and the model's in-memory state are per
//! process. Slash commands by HTTP need no gateway at all: replicas with
//! `gateway = false` behind a load balancer each answer what they get.

mod commands;
mod conversation;
mod download;
mod endpoint;
mod events;
mod interaction;
mod unreadable;
mod voice;

pub use unreadable::UnreadableEvents;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serenity::all::{ClientBuilder, CreateAllowedMentions, GatewayError, GatewayIntents, Http, HttpBuilder};
use serenity::cache::Cache;
use songbird::SerenityInit;

use crate::config::DiscordConfig;
use crate::dispatch::Dispatcher;
use conversation::Shared;
use download::Downloader;

/// How long one REST call to Discord may take.
const REST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the bot listens to. MESSAGE_CONTENT is privileged: turn it on for
/// the bot in the developer portal, or every message arrives empty; with
/// `message_content = false` it is not asked for, and only slash commands
/// (and direct messages, and messages that mention the bot) reach commands.
pub const INTENTS: GatewayIntents = GatewayIntents::GUILDS
    .union(GatewayIntents::GUILD_MESSAGES)
    .union(GatewayIntents::DIRECT_MESSAGES)
    .union(GatewayIntents::MESSAGE_CONTENT)
    .union(GatewayIntents::GUILD_VOICE_STATES);

/// Connects to Discord and answers messages until the gateway gives up for
/// good (a bad token, say) or the process is interrupted.
pub async fn run(dispatcher: Arc<Dispatcher>, settings: &DiscordConfig) -> anyhow::Result<()> {
    let token = settings.token.as_ref().context("no Discord token")?;
    let mut http = HttpBuilder::new(token.expose()).default_allowed_mentions(CreateAllowedMentions::new());
    if let Some(base) = &settings.api_base {
        tracing::warn!(api_base = %base, "Discord REST and gateway go to this server, not discord.com");
        http = http.proxy(base.as_str());
    }
    // serenity's own client has no timeout: one hung request would hang
    // the task answering that message for good.
    let rest = reqwest::Client::builder()
        .timeout(REST_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("cannot build the HTTP client")?;
    let http = http.client(rest).ratelimiter_disabled(!settings.rate_limiter).build();
    if let Some(base) = settings.api_base.as_ref().filter(|_| settings.gateway) {
        // serenity falls back to Discord's own gateway when this fails, and
        // would identify there with the token: stop instead.
        let gateway = http.get_gateway().await.with_context(|| format!("{base} did not say where its gateway is"))?;
        tracing::info!(gateway = %gateway.url, "gateway of the API base");
    }
    let endpoint = match &settings.interactions {
        // Bound before anything else: a taken port is a config error.
        Some(endpoint) => Some((
            tokio::net::TcpListener::bind(endpoint.listen)
                .await
                .with_context(|| format!("cannot listen on {} (`discord.interactions_listen`)", endpoint.listen))?,
            endpoint.public_key,
        )),
        None => None,
    };
    let downloader = Downloader::new(settings.download_timeout, settings.api_base.is_none())?;
    if !settings.gateway {
        let shared = Arc::new(Shared { downloader, upload_bytes: settings.upload_bytes, voice: None });
        let http = Arc::new(http);
        let application = http
            .get_current_application_info()
            .await
            .context("Discord did not say whose application the token is: check DISCORD_TOKEN")?;
        http.set_application_id(application.id);
        tracing::info!(application = %application.id, "no gateway: slash commands by HTTP only");
        tokio::spawn(commands::keep_registered(
            http.clone(),
            dispatcher.registry().clone(),
            settings.command_guilds.clone(),
        ));
        let (listener, public_key) = endpoint.context("no gateway and no interactions endpoint")?;
        let cache = Arc::new(Cache::new());
        tokio::select! {
            result = serve_interactions(listener, dispatcher, shared, http, cache, public_key) => result?,
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: closing the interactions endpoint"),
        }
        return Ok(());
    }
    let songbird = songbird::Songbird::serenity_from_config(voice::songbird_config());
    let shared = Arc::new(Shared {
        downloader,
        upload_bytes: settings.upload_bytes,
        voice: Some(voice::Voice::new(songbird.clone(), settings.voice_idle)),
    });
    let handler = events::Handler {
        dispatcher: dispatcher.clone(),
        shared: shared.clone(),
        command_guilds: settings.command_guilds.clone(),
        registering: std::sync::Once::new(),
    };
    let intents = if settings.message_content { INTENTS } else { INTENTS.difference(GatewayIntents::MESSAGE_CONTENT) };
    let mut client = ClientBuilder::new_with_http(http, intents)
        .event_handler(handler)
        .register_songbird_with(songbird)
        .await
        .context("cannot set up the Discord client")?;
    let shards = match settings.shards {
        auto if auto.is_auto() => {
            let gateway = client.http.get_bot_gateway().await.context("Discord did not say how many shards to run")?;
            tracing::info!(
                shards = gateway.shards,
                identify_per_5s = gateway.session_start_limit.max_concurrency,
                "Discord recommends this many shards"
            );
            let total = gateway.shards.max(1);
            crate::config::ShardRange { first: 0, last: total - 1, total }
        }
        range => range,
    };
    dispatcher.health().expect_shards(shards.first..=shards.last);
    tracing::info!(shards = %shards, "connecting to Discord");
    let manager = client.shard_manager.clone();
    let (http, cache) = (client.http.clone(), client.cache.clone());
    let interactions = async move {
        match endpoint {
            Some((listener, public_key)) => {
                serve_interactions(listener, dispatcher, shared, http, cache, public_key).await
            }
            None => std::future::pending().await,
        }
    };
    // serenity counts the end of this range in.
    let connection = client.start_shard_range(shards.first..shards.last, shards.total);
    tokio::select! {
        result = connection => result.map_err(explain)?,
        result = interactions => result?,
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("interrupted: closing the gateway");
            manager.shutdown_all().await;
        }
    }
    Ok(())
}

/// Answers slash commands by HTTP until the listener fails. The caller
/// handles Ctrl-C (with the gateway, it must also close the shards).
async fn serve_interactions(
    listener: tokio::net::TcpListener,
    dispatcher: Arc<Dispatcher>,
    shared: Arc<Shared>,
    http: Arc<Http>,
    cache: Arc<Cache>,
    public_key: ed25519_dalek::VerifyingKey,
) -> anyhow::Result<()> {
    let address = listener.local_addr().context("the interactions listener has no address")?;
    tracing::info!(%address, "answering slash commands by HTTP");
    let endpoint =
        Arc::new(endpoint::Endpoint { dispatcher, shared, http, cache, guard: endpoint::Guard::new(public_key) });
    endpoint::serve(listener, endpoint).await.context("the interactions endpoint stopped")
}

/// Why the gateway gave up, in words an operator can act on.
fn explain(error: serenity::Error) -> anyhow::Error {
    match error {
        serenity::Error::Gateway(GatewayError::InvalidAuthentication) => {
            anyhow::anyhow!("Discord refused the token: check DISCORD_TOKEN (or `discord.token`)")
        }
        serenity::Error::Gateway(GatewayError::DisallowedGatewayIntents) => anyhow::anyhow!(
            "Discord refused the intents: turn on MESSAGE CONTENT INTENT for the bot in the developer portal"
        ),
        other => anyhow::Error::new(other).context("the Discord connection ended"),
    }
}
