//! A fake Discord on 127.0.0.1: the REST routes the bot uses and a gateway
//! websocket that speaks the real protocol (HELLO, IDENTIFY, READY,
//! heartbeats, RESUME, dispatches with sequence numbers). Tests drive it
//! from plain threads: push gateway events, wait for what the bot posts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ed25519_dalek::{Signer, SigningKey};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as Frame;

pub const BOT_ID: &str = "900";
pub const GUILD_ID: &str = "800";
pub const TEXT_CHANNEL: &str = "700";
pub const VOICE_CHANNEL: &str = "701";
pub const ADMIN_ROLE: &str = "600";
/// A role that someone renamed `admin`: not the operators' role.
pub const RENAMED_ROLE: &str = "601";
/// A channel whose messages the fake refuses with 403 Missing Permissions.
pub const FORBIDDEN_CHANNEL: &str = "703";
/// How long a test waits for the bot before failing.
const PATIENCE: Duration = Duration::from_secs(60);

/// A message the bot posted.
#[derive(Debug, Clone)]
pub struct Posted {
    pub id: String,
    pub channel: String,
    pub content: String,
    /// `(filename, bytes)` of a multipart upload.
    pub files: Vec<(String, Vec<u8>)>,
    pub multipart: bool,
    pub allowed_mentions: Value,
    pub at: Instant,
}

/// What the bot did with an interaction's token.
#[derive(Debug, Clone)]
pub struct Answered {
    pub token: String,
    /// `response` (callback type 4), `defer` (type 5), `edit_original`,
    /// `followup`, `edit_followup`.
    pub kind: String,
    pub content: String,
    pub ephemeral: bool,
    pub message_id: String,
    pub files: Vec<(String, Vec<u8>)>,
    pub at: Instant,
}

enum Command {
    Dispatch {
        kind: String,
        data: Value,
    },
    /// Drop the TCP connection without a close frame, like a network fault.
    Drop,
}

#[derive(Default)]
struct Inner {
    identifies: Vec<Value>,
    /// When each IDENTIFY arrived, beside `identifies`.
    identified_at: Vec<Instant>,
    resumes: u32,
    connections: u32,
    posts: Vec<Posted>,
    /// Files served under `/files/`, and how often each was downloaded.
    files: HashMap<String, Vec<u8>>,
    /// Files served in chunks with no Content-Length.
    streamed: std::collections::HashSet<String>,
    downloads: HashMap<String, u32>,
    messages: HashMap<String, Value>,
    next_id: u64,
    gateway: Option<mpsc::UnboundedSender<Command>>,
    /// Each identified shard's connection, by shard id, and the shard
    /// count: a guild's events go to shard `(guild_id >> 22) % count`, as
    /// Discord routes them (several bot processes, one per shard range).
    shards: HashMap<u64, mpsc::UnboundedSender<Command>>,
    shard_count: u64,
    /// When each MESSAGE_CREATE went out, by message id (for benchmarks).
    sent_at: HashMap<String, Instant>,
    /// Slash command sets the bot registered: (`global` or the guild id,
    /// the commands), in order.
    registrations: Vec<(String, Value)>,
    /// Every answer through an interaction token, in order.
    answered: Vec<Answered>,
    /// Interaction token → the id of its original response message.
    originals: HashMap<String, String>,
    /// When each INTERACTION_CREATE went out, by token (for benchmarks).
    interacted_at: HashMap<String, Instant>,
    /// The bot's edits: (message id, new content), in order.
    edits: Vec<(String, String)>,
    /// The bot's voice state updates (gateway op 4), in order.
    voice_updates: Vec<Value>,
    /// TLS handshakes started at the voice endpoint the fake gave out.
    voice_handshakes: u32,
    /// Typing indicators the bot started: (channel, when), in order.
    typing: Vec<(String, Instant)>,
}

struct Shared {
    inner: Mutex<Inner>,
    changed: Condvar,
    http_base: String,
    gateway_url: String,
    /// What VOICE_SERVER_UPDATE names: a listener that only notes a TLS
    /// ClientHello, since Discord's voice websocket (wss, DAVE) cannot be
    /// faked on loopback.
    voice_endpoint: String,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_id(&self) -> String {
        let mut inner = self.lock();
        inner.next_id += 1;
        (1_000_000 + inner.next_id).to_string()
    }
}

#[derive(Clone)]
pub struct FakeDiscord {
    shared: Arc<Shared>,
}

impl FakeDiscord {
    /// Starts the fake on its own thread; `api_base()` is what the bot is
    /// pointed at.
    pub fn start() -> FakeDiscord {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("fake Discord runtime");
            runtime.block_on(async move {
                let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                let gateway = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                let voice = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                let http_addr: SocketAddr = http.local_addr().unwrap();
                let gateway_addr: SocketAddr = gateway.local_addr().unwrap();
                let shared = Arc::new(Shared {
                    inner: Mutex::new(Inner::default()),
                    changed: Condvar::new(),
                    http_base: format!("http://{http_addr}"),
                    gateway_url: format!("ws://{gateway_addr}"),
                    voice_endpoint: voice.local_addr().unwrap().to_string(),
                });
                tx.send(shared.clone()).unwrap();
                let app = Router::new()
                    .route("/api/v10/gateway", get(gateway_url))
                    .route("/api/v10/gateway/bot", get(gateway_bot))
                    .route("/api/v10/users/@me", get(current_user))
                    .route("/api/v10/oauth2/applications/@me", get(application))
                    .route("/api/v10/channels/{channel}/messages", axum::routing::post(create_message))
                    .route("/api/v10/channels/{channel}/messages/{id}", get(get_message).patch(edit_message))
                    .route("/api/v10/users/@me/channels", axum::routing::post(open_direct))
                    .route("/api/v10/channels/{channel}/typing", axum::routing::post(typing))
                    .route("/api/v10/applications/{app}/commands", axum::routing::put(register_global))
                    .route("/api/v10/applications/{app}/guilds/{guild}/commands", axum::routing::put(register_guild))
                    .route("/api/v10/interactions/{id}/{token}/callback", axum::routing::post(callback))
                    .route("/api/v10/webhooks/{app}/{token}", axum::routing::post(followup))
                    .route(
                        "/api/v10/webhooks/{app}/{token}/messages/{message}",
                        get(get_webhook_message).patch(edit_webhook_message),
                    )
                    .route("/files/{name}", get(download))
                    .with_state(shared.clone());
                tokio::spawn(async move { axum::serve(http, app).await });
                tokio::spawn(voice_endpoint(shared.clone(), voice));
                loop {
                    let Ok((stream, _)) = gateway.accept().await else { continue };
                    tokio::spawn(gateway_session(shared.clone(), stream));
                }
            });
        });
        FakeDiscord { shared: rx.recv().expect("the fake Discord started") }
    }

    /// `SANDBOT_DISCORD_API_BASE` for the bot.
    pub fn api_base(&self) -> String {
        self.shared.http_base.clone()
    }

    /// Waits until `check` holds, or fails the test saying `what`.
    fn wait<T>(&self, what: &str, mut check: impl FnMut(&Inner) -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        let mut inner = self.shared.lock();
        loop {
            if let Some(value) = check(&inner) {
                return value;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the fake Discord waited {PATIENCE:?} for {what}");
            inner = self.shared.changed.wait_timeout(inner, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Waits for the `n`th IDENTIFY; returns its payload.
    pub fn wait_identified(&self, n: usize) -> Value {
        self.wait(&format!("IDENTIFY number {n}"), |inner| inner.identifies.get(n - 1).cloned())
    }

    /// Every IDENTIFY so far: its shard id and when it arrived, in order.
    pub fn identified_shards(&self) -> Vec<(u64, Instant)> {
        let inner = self.shared.lock();
        let shards = inner.identifies.iter().map(|d| d["shard"][0].as_u64().unwrap_or(0));
        shards.zip(inner.identified_at.iter().copied()).collect()
    }

    /// How many IDENTIFYs have come so far.
    pub fn identifies(&self) -> usize {
        self.shared.lock().identifies.len()
    }

    /// Waits until the bot has resumed or identified `n` sessions in all.
    pub fn wait_sessions(&self, n: usize) {
        self.wait(&format!("{n} gateway sessions"), |inner| {
            (inner.identifies.len() + inner.resumes as usize >= n).then_some(())
        })
    }

    pub fn connections(&self) -> u32 {
        self.shared.lock().connections
    }

    /// Waits for the bot's `n`th voice state update (op 4); all so far.
    pub fn wait_voice_updates(&self, n: usize) -> Vec<Value> {
        self.wait(&format!("{n} voice state updates"), |i| {
            (i.voice_updates.len() >= n).then(|| i.voice_updates.clone())
        })
    }

    pub fn voice_updates(&self) -> Vec<Value> {
        self.shared.lock().voice_updates.clone()
    }

    /// Waits until the bot has dialled the voice endpoint (a TLS ClientHello).
    pub fn wait_voice_handshake(&self) {
        self.wait("a TLS handshake at the voice endpoint", |i| (i.voice_handshakes > 0).then_some(()));
    }

    /// Waits for a post after the first `after` that `wanted` accepts.
    pub fn wait_post_after(&self, after: usize, what: &str, wanted: impl Fn(&Posted) -> bool) -> Posted {
        self.wait(what, |inner| inner.posts.iter().skip(after).find(|p| wanted(p)).cloned())
    }

    /// Waits until the bot has posted `n` messages in all; returns them all.
    pub fn wait_posts(&self, n: usize) -> Vec<Posted> {
        self.wait(&format!("{n} posted messages"), |inner| (inner.posts.len() >= n).then(|| inner.posts.clone()))
    }

    /// Waits until the bot has edited `n` messages in all; returns every
    /// edit as (message id, new content).
    pub fn wait_edits(&self, n: usize) -> Vec<(String, String)> {
        self.wait(&format!("{n} edits"), |inner| (inner.edits.len() >= n).then(|| inner.edits.clone()))
    }

    /// Waits until the bot has registered its slash commands `n` times;
    /// returns every registration.
    pub fn wait_registrations(&self, n: usize) -> Vec<(String, Value)> {
        self.wait(&format!("{n} registrations"), |i| (i.registrations.len() >= n).then(|| i.registrations.clone()))
    }

    pub fn registrations(&self) -> Vec<(String, Value)> {
        self.shared.lock().registrations.clone()
    }

    /// Waits until `n` answers came through interaction `token`; returns them.
    pub fn wait_answered(&self, token: &str, n: usize) -> Vec<Answered> {
        self.wait(&format!("{n} answers to interaction {token}"), |i| {
            let answers: Vec<Answered> = i.answered.iter().filter(|a| a.token == token).cloned().collect();
            (answers.len() >= n).then_some(answers)
        })
    }

    /// The typing indicators the bot started: (channel, when).
    pub fn typing(&self) -> Vec<(String, Instant)> {
        self.shared.lock().typing.clone()
    }

    /// What came through interaction `token` so far.
    pub fn answered(&self, token: &str) -> Vec<Answered> {
        self.shared.lock().answered.iter().filter(|a| a.token == token).cloned().collect()
    }

    /// Sends an INTERACTION_CREATE for `/name` by `user` with `options`
    /// (Discord's shape: `[{"name", "type", "value"}]`) and `resolved`
    /// data; returns the interaction's token.
    pub fn interact(&self, user: &str, name: &str, options: Value, resolved: Value) -> String {
        let id = self.shared.new_id();
        let token = format!("token-{id}");
        let data = interaction(&id, &token, user, name, options, resolved);
        self.shared.lock().interacted_at.insert(token.clone(), Instant::now());
        self.dispatch("INTERACTION_CREATE", data);
        token
    }

    /// Discord POSTing `/name` to the bot's interactions endpoint at `url`,
    /// signed with `key` at `timestamp` (Unix seconds). A 200 answer is
    /// taken as the interaction's first response, as Discord takes it.
    /// Returns the token, the status and the body.
    #[allow(clippy::too_many_arguments)]
    pub fn interact_over_http(
        &self,
        url: &str,
        key: &SigningKey,
        timestamp: u64,
        user: &str,
        name: &str,
        options: Value,
        resolved: Value,
    ) -> (String, u16, Value) {
        let id = self.shared.new_id();
        let token = format!("token-{id}");
        let (status, body) =
            self.post_signed(url, key, timestamp, &interaction(&id, &token, user, name, options, resolved));
        if status == 200 {
            self.took_response(&token, &body);
        }
        (token, status, body)
    }

    /// What Discord does with an endpoint's HTTP response to interaction
    /// `token`: it becomes the original response (type 4 or 5).
    pub fn took_response(&self, token: &str, body: &Value) {
        let id = self.shared.new_id();
        self.shared.lock().originals.insert(token.to_string(), id.clone());
        match body["type"].as_u64() {
            Some(4) => answer(&self.shared, token, "response", &body["data"], Vec::new(), &id),
            Some(5) => answer(&self.shared, token, "defer", &body["data"], Vec::new(), &id),
            _ => {}
        }
    }

    /// POSTs `payload` to `url` the way Discord signs it; the status and
    /// the JSON answer (`null` if it is not JSON).
    pub fn post_signed(&self, url: &str, key: &SigningKey, timestamp: u64, payload: &Value) -> (u16, Value) {
        let body = serde_json::to_vec(payload).unwrap();
        let timestamp = timestamp.to_string();
        let signature = key.sign(&[timestamp.as_bytes(), &body].concat());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let response = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .header("x-signature-ed25519", hex::encode(signature.to_bytes()))
                .header("x-signature-timestamp", timestamp)
                .body(body)
                .send()
                .await
                .expect("POST to the interactions endpoint");
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
    }

    /// When the INTERACTION_CREATE with this token went out.
    pub fn interacted_at(&self, token: &str) -> Option<Instant> {
        self.shared.lock().interacted_at.get(token).copied()
    }

    pub fn posts(&self) -> Vec<Posted> {
        self.shared.lock().posts.clone()
    }

    /// How many messages the bot has posted. Benchmarks count and copy
    /// only what they need: a copy of every post holds the lock that the
    /// REST side needs to take the next one.
    pub fn post_count(&self) -> usize {
        self.shared.lock().posts.len()
    }

    /// The posts after the first `from`.
    pub fn posts_since(&self, from: usize) -> Vec<Posted> {
        self.shared.lock().posts.get(from..).map(<[Posted]>::to_vec).unwrap_or_default()
    }

    /// Waits for the `n`th post; returns it alone.
    pub fn wait_post(&self, n: usize) -> Posted {
        self.wait(&format!("post number {n}"), |inner| inner.posts.get(n - 1).cloned())
    }

    /// Serves `data` at a URL for an attachment.
    pub fn serve_file(&self, name: &str, data: Vec<u8>) -> String {
        self.shared.lock().files.insert(name.to_string(), data);
        format!("{}/files/{name}", self.shared.http_base)
    }

    /// Serves `data` without saying its length up front, in chunks.
    pub fn serve_streamed(&self, name: &str, data: Vec<u8>) -> String {
        self.shared.lock().streamed.insert(name.to_string());
        self.serve_file(name, data)
    }

    pub fn downloads(&self, name: &str) -> u32 {
        self.shared.lock().downloads.get(name).copied().unwrap_or(0)
    }

    /// Sends a gateway event to the connected bot: a guild's to the shard
    /// that has it, when several shards identified.
    pub fn dispatch(&self, kind: &str, data: Value) {
        let gateway = {
            let inner = self.shared.lock();
            let guild = data["guild_id"].as_str().and_then(|g| g.parse::<u64>().ok());
            let shard = match guild {
                Some(guild) if inner.shard_count > 1 => inner.shards.get(&((guild >> 22) % inner.shard_count)),
                _ => None,
            };
            shard.or(inner.gateway.as_ref()).cloned().expect("the bot is not connected")
        };
        let _ = gateway.send(Command::Dispatch { kind: kind.to_string(), data });
    }

    /// Sends a MESSAGE_CREATE; returns the message id.
    pub fn say(&self, message: MessageBuilder) -> String {
        let id = self.shared.new_id();
        let data = message.build(&id);
        {
            let mut inner = self.shared.lock();
            inner.messages.insert(id.clone(), data.clone());
            inner.sent_at.insert(id.clone(), Instant::now());
        }
        self.dispatch("MESSAGE_CREATE", data);
        id
    }

    /// When the MESSAGE_CREATE with this id went out.
    pub fn sent_at(&self, id: &str) -> Option<Instant> {
        self.shared.lock().sent_at.get(id).copied()
    }

    /// Cuts the gateway connection, as a network fault would.
    pub fn drop_gateway(&self) {
        let gateway = self.shared.lock().gateway.take().expect("the bot is not connected");
        let _ = gateway.send(Command::Drop);
    }
}

/// A user's message, in the shape of Discord's MESSAGE_CREATE.
pub struct MessageBuilder {
    content: String,
    channel: String,
    guild: Option<String>,
    author_id: String,
    author_name: String,
    bot: bool,
    kind: u8,
    roles: Vec<String>,
    attachments: Vec<Value>,
}

/// A message from user `author_id` in the fake's text channel.
pub fn message(author_id: &str, content: &str) -> MessageBuilder {
    MessageBuilder {
        content: content.to_string(),
        channel: TEXT_CHANNEL.to_string(),
        guild: Some(GUILD_ID.to_string()),
        author_id: author_id.to_string(),
        author_name: format!("user{author_id}"),
        bot: false,
        kind: 0,
        roles: Vec::new(),
        attachments: Vec::new(),
    }
}

impl MessageBuilder {
    /// A direct message: its own channel, no guild.
    pub fn direct(mut self, channel: &str) -> Self {
        self.channel = channel.to_string();
        self.guild = None;
        self
    }
    /// In server `guild` (the fake's own server by default).
    pub fn in_guild(mut self, guild: &str) -> Self {
        self.guild = Some(guild.to_string());
        self
    }

    pub fn in_channel(mut self, channel: &str) -> Self {
        self.channel = channel.to_string();
        self
    }
    pub fn by_a_bot(mut self) -> Self {
        self.bot = true;
        self
    }
    /// Discord's message type: 0 is a user's message, 7 a member joining.
    pub fn kind(mut self, kind: u8) -> Self {
        self.kind = kind;
        self
    }
    pub fn with_role(mut self, role_id: &str) -> Self {
        self.roles.push(role_id.to_string());
        self
    }
    /// An attachment whose stated size is `size` (a liar may state less).
    pub fn attach(mut self, id: &str, filename: &str, url: &str, size: u64) -> Self {
        self.attachments.push(json!({
            "id": id, "filename": filename, "size": size, "url": url, "proxy_url": url,
            "content_type": "text/plain",
        }));
        self
    }

    /// The MESSAGE_CREATE payload, with message id `id`.
    pub fn build(self, id: &str) -> Value {
        let mut data = json!({
            "id": id,
            "channel_id": self.channel,
            "author": user(&self.author_id, &self.author_name, self.bot),
            "content": self.content,
            "timestamp": "2026-11-23T10:00:00.000000+00:00",
            "tts": false,
            "mention_everyone": false,
            "mentions": [],
            "mention_roles": [],
            "attachments": self.attachments,
            "embeds": [],
            "pinned": false,
            "type": self.kind,
        });
        if let Some(guild) = self.guild {
            data["guild_id"] = json!(guild);
            data["member"] = json!({
                "roles": self.roles, "joined_at": "2026-01-01T00:00:00.000000+00:00",
                "deaf": false, "mute": false,
            });
        }
        data
    }
}

pub fn user(id: &str, name: &str, bot: bool) -> Value {
    json!({ "id": id, "username": name, "discriminator": "0", "global_name": null, "avatar": null, "bot": bot })
}

fn bot_user() -> Value {
    user(BOT_ID, "sandbot", true)
}

/// The guild the bot is in: a text and a voice channel, an `admin` role,
/// the bot as an administrator, and user 51 in the voice channel.
pub fn guild_create() -> Value {
    let role = |id: &str, name: &str, permissions: &str, position: u16| {
        json!({
            "id": id, "name": name, "color": 0, "colors": {"primary_color": 0, "secondary_color": null,
            "tertiary_color": null}, "hoist": false, "managed": false, "mentionable": false,
            "permissions": permissions, "position": position, "icon": null, "unicode_emoji": null, "flags": 0,
        })
    };
    let channel = |id: &str, name: &str, kind: u8| {
        json!({ "id": id, "type": kind, "guild_id": GUILD_ID, "name": name, "position": 0,
                "permission_overwrites": [] })
    };
    let member = |user: Value, roles: Vec<&str>| {
        json!({ "user": user, "roles": roles, "joined_at": "2026-01-01T00:00:00.000000+00:00", "deaf": false,
                "mute": false, "flags": 0 })
    };
    let mut guild = json!({
        "id": GUILD_ID, "name": "fake guild", "icon": null, "splash": null, "discovery_splash": null,
        "owner_id": "1", "afk_channel_id": null, "afk_timeout": 300, "verification_level": 0,
        "default_message_notifications": 0, "explicit_content_filter": 0,
        "roles": [
            role(GUILD_ID, "@everyone", "104324673", 0),
            role(ADMIN_ROLE, "admin", "8", 1),
            role(RENAMED_ROLE, "admin", "0", 2),
        ],
        "emojis": [], "features": [], "mfa_level": 0, "application_id": null, "system_channel_id": null,
        "system_channel_flags": 0, "rules_channel_id": null, "vanity_url_code": null, "description": null,
        "banner": null, "premium_tier": 0, "preferred_locale": "en-US", "public_updates_channel_id": null,
        "nsfw_level": 0, "stickers": [], "premium_progress_bar_enabled": false,
    });
    // Two halves: one `json!` this size passes the macro recursion limit.
    let live = json!({
        "joined_at": "2026-01-01T00:00:00.000000+00:00", "large": false, "unavailable": false, "member_count": 2,
        "voice_states": [{
            "channel_id": VOICE_CHANNEL, "user_id": "51", "session_id": "s51", "deaf": false, "mute": false,
            "self_deaf": false, "self_mute": false, "self_video": false, "suppress": false,
            "request_to_speak_timestamp": null,
        }],
        "members": [member(bot_user(), vec![ADMIN_ROLE]), member(user("51", "voicey", false), vec![])],
        "channels": [channel(TEXT_CHANNEL, "general", 0), channel(VOICE_CHANNEL, "Voice", 2),
                     channel(FORBIDDEN_CHANNEL, "read-only", 0)],
        "threads": [], "presences": [], "stage_instances": [], "guild_scheduled_events": [],
    });
    if let (Some(guild), Value::Object(live)) = (guild.as_object_mut(), live) {
        guild.extend(live);
    }
    guild
}

fn ready(gateway_url: &str) -> Value {
    json!({
        "v": 10, "user": bot_user(), "guilds": [{"id": GUILD_ID, "unavailable": true}],
        "session_id": "fake-session", "resume_gateway_url": gateway_url,
        "application": {"id": BOT_ID, "flags": 0},
    })
}

/// One gateway connection, from HELLO to the end.
async fn gateway_session(shared: Arc<Shared>, stream: tokio::net::TcpStream) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { return };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    shared.lock().connections += 1;
    let hello = json!({"op": 10, "d": {"heartbeat_interval": 41250}});
    if sink.send(Frame::text(hello.to_string())).await.is_err() {
        return;
    }
    let mut seq: u64 = 0;
    let frame = |seq: &mut u64, kind: &str, data: Value| {
        *seq += 1;
        Frame::text(json!({"op": 0, "s": *seq, "t": kind, "d": data}).to_string())
    };
    loop {
        tokio::select! {
            incoming = source.next() => {
                let Some(Ok(incoming)) = incoming else { return };
                let Ok(text) = incoming.to_text() else { continue };
                let Ok(payload) = serde_json::from_str::<Value>(text) else { continue };
                let mut out = Vec::new();
                match payload["op"].as_u64() {
                    Some(1) => out.push(Frame::text(json!({"op": 11}).to_string())),
                    Some(2) if payload["d"]["token"].as_str().is_some_and(|t| t.ends_with("bad-token")) => {
                        let close = CloseFrame { code: CloseCode::Library(4004), reason: "Authentication failed.".into() };
                        let _ = sink.send(Frame::Close(Some(close))).await;
                        return;
                    }
                    Some(2) => {
                        out.push(frame(&mut seq, "READY", ready(&shared.gateway_url)));
                        // So the bot's cache knows roles and voice states.
                        out.push(frame(&mut seq, "GUILD_CREATE", guild_create()));
                        let mut inner = shared.lock();
                        inner.identifies.push(payload["d"].clone());
                        inner.identified_at.push(Instant::now());
                        inner.gateway = Some(tx.clone());
                        let shard = &payload["d"]["shard"];
                        if let (Some(id), Some(count)) = (shard[0].as_u64(), shard[1].as_u64()) {
                            inner.shards.insert(id, tx.clone());
                            inner.shard_count = count;
                        }
                    }
                    // Voice state update: answered as Discord does, with the
                    // bot's new voice state and, when joining, the server to
                    // connect to.
                    Some(4) => {
                        let d = &payload["d"];
                        let state = json!({
                            "guild_id": snowflake(&d["guild_id"]), "channel_id": snowflake(&d["channel_id"]),
                            "user_id": BOT_ID,
                            "session_id": "voice-session", "deaf": false, "mute": false,
                            "self_deaf": d["self_deaf"], "self_mute": d["self_mute"], "self_video": false,
                            "suppress": false, "request_to_speak_timestamp": null,
                        });
                        out.push(frame(&mut seq, "VOICE_STATE_UPDATE", state));
                        if !d["channel_id"].is_null() {
                            let server = json!({
                                "token": "voice-token", "guild_id": snowflake(&d["guild_id"]),
                                "endpoint": shared.voice_endpoint,
                            });
                            out.push(frame(&mut seq, "VOICE_SERVER_UPDATE", server));
                        }
                        shared.lock().voice_updates.push(d.clone());
                    }
                    Some(6) => {
                        seq = payload["d"]["seq"].as_u64().unwrap_or(seq);
                        out.push(frame(&mut seq, "RESUMED", json!({})));
                        let mut inner = shared.lock();
                        inner.resumes += 1;
                        inner.gateway = Some(tx.clone());
                    }
                    _ => {}
                }
                for frame in out {
                    if sink.send(frame).await.is_err() {
                        return;
                    }
                }
                shared.changed.notify_all();
            }
            command = rx.recv() => match command {
                Some(Command::Dispatch { kind, data }) => {
                    if sink.send(frame(&mut seq, &kind, data)).await.is_err() {
                        return;
                    }
                }
                Some(Command::Drop) | None => return,
            },
        }
    }
}

/// An id as Discord writes it (a string), whether the bot sent a string or
/// a number; `null` stays `null`.
pub fn snowflake(id: &Value) -> Value {
    match id {
        Value::Number(n) => Value::String(n.to_string()),
        other => other.clone(),
    }
}

/// The voice endpoint: counts connections that open with a TLS handshake
/// record (0x16), then hangs up.
async fn voice_endpoint(shared: Arc<Shared>, listener: tokio::net::TcpListener) {
    use tokio::io::AsyncReadExt;
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut first = [0u8; 1];
            if stream.read_exact(&mut first).await.is_ok() && first[0] == 0x16 {
                shared.lock().voice_handshakes += 1;
                shared.changed.notify_all();
            }
        });
    }
}

async fn gateway_url(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({ "url": shared.gateway_url }))
}

/// GET /gateway/bot: one shard recommended, one IDENTIFY per 5 s.
async fn gateway_bot(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({
        "url": shared.gateway_url, "shards": 1,
        "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 86_400_000, "max_concurrency": 1},
    }))
}

async fn current_user() -> Json<Value> {
    Json(bot_user())
}

/// The application's signing key: Discord's half of the pair whose public
/// half the bot checks requests against (`discord.public_key`).
pub fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

/// `discord.public_key` for [`signing_key`].
pub fn public_key_hex() -> String {
    hex::encode(signing_key().verifying_key().to_bytes())
}

/// Seconds since the Unix epoch, as Discord stamps its requests.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// POST /channels/{channel}/typing: "sandbot is typing…".
async fn typing(State(shared): State<Arc<Shared>>, Path(channel): Path<String>) -> StatusCode {
    shared.lock().typing.push((channel, Instant::now()));
    shared.changed.notify_all();
    StatusCode::NO_CONTENT
}

/// GET /oauth2/applications/@me: the bot's application.
async fn application() -> Json<Value> {
    Json(json!({
        "id": BOT_ID, "name": "sandbot", "icon": null, "description": "", "bot_public": true,
        "bot_require_code_grant": false, "verify_key": public_key_hex(), "team": null, "flags": 0,
    }))
}

fn discord_error(status: StatusCode, code: u32, message: &str) -> Response {
    (status, Json(json!({"message": message, "code": code}))).into_response()
}

/// POST /channels/{channel}/messages, JSON or multipart with `payload_json`
/// and `files[n]`; answers with the message as Discord would.
async fn create_message(State(shared): State<Arc<Shared>>, Path(channel): Path<String>, request: Request) -> Response {
    let at = Instant::now();
    if channel == FORBIDDEN_CHANNEL {
        return discord_error(StatusCode::FORBIDDEN, 50013, "Missing Permissions");
    }
    let (payload, files, multipart) = match read_body(request).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let content = payload["content"].as_str().unwrap_or_default().to_string();
    if content.chars().count() > 2000 {
        return discord_error(StatusCode::BAD_REQUEST, 50035, "Must be 2000 or fewer in length.");
    }
    if content.is_empty() && files.is_empty() {
        return discord_error(StatusCode::BAD_REQUEST, 50006, "Cannot send an empty message");
    }
    let id = shared.new_id();
    let attachments: Vec<Value> = files
        .iter()
        .enumerate()
        .map(|(i, (name, data))| {
            json!({"id": format!("{id}{i}"), "filename": name, "size": data.len(),
                   "url": format!("{}/files/{name}", shared.http_base), "proxy_url": ""})
        })
        .collect();
    let message = json!({
        "id": id, "channel_id": channel, "author": bot_user(), "content": content,
        "timestamp": "2026-11-23T10:00:00.000000+00:00", "tts": false, "mention_everyone": false,
        "mentions": [], "mention_roles": [], "attachments": attachments, "embeds": [], "pinned": false, "type": 0,
    });
    {
        let mut inner = shared.lock();
        inner.messages.insert(id.clone(), message.clone());
        inner.posts.push(Posted {
            id,
            channel,
            content,
            files,
            multipart,
            allowed_mentions: payload["allowed_mentions"].clone(),
            at,
        });
    }
    shared.changed.notify_all();
    Json(message).into_response()
}

async fn get_message(State(shared): State<Arc<Shared>>, Path((channel, id)): Path<(String, String)>) -> Response {
    let message = shared.lock().messages.get(&id).filter(|m| m["channel_id"] == channel.as_str()).cloned();
    match message {
        Some(message) => Json(message).into_response(),
        None => discord_error(StatusCode::NOT_FOUND, 10008, "Unknown Message"),
    }
}

/// An INTERACTION_CREATE payload: `/name` typed by `user` in the text
/// channel of the guild.
pub fn interaction(id: &str, token: &str, user_id: &str, name: &str, options: Value, resolved: Value) -> Value {
    json!({
        "id": id, "application_id": BOT_ID, "type": 2, "token": token, "version": 1,
        "data": {"id": "500", "name": name, "type": 1, "options": options, "resolved": resolved},
        "guild_id": GUILD_ID, "channel_id": TEXT_CHANNEL,
        "member": {
            "user": user(user_id, &format!("user{user_id}"), false), "roles": [],
            "joined_at": "2026-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false, "permissions": "0",
            "flags": 0,
        },
        "app_permissions": "0", "locale": "en-US", "guild_locale": "en-US", "entitlements": [],
        "authorizing_integration_owners": {}, "context": 0, "attachment_size_limit": 10485760,
    })
}

/// PUT /applications/{app}/commands: the bulk overwrite, echoed with ids.
async fn register_global(State(shared): State<Arc<Shared>>, Json(set): Json<Value>) -> Response {
    register(&shared, "global", set)
}

async fn register_guild(
    State(shared): State<Arc<Shared>>,
    Path((_app, guild)): Path<(String, String)>,
    Json(set): Json<Value>,
) -> Response {
    register(&shared, &guild, set)
}

fn register(shared: &Shared, scope: &str, set: Value) -> Response {
    let Some(commands) = set.as_array() else {
        return discord_error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
    };
    let echoed: Vec<Value> = commands
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c["id"] = json!(shared.new_id());
            c["application_id"] = json!(BOT_ID);
            c["version"] = json!("1");
            c
        })
        .collect();
    shared.lock().registrations.push((scope.to_string(), set.clone()));
    shared.changed.notify_all();
    Json(Value::Array(echoed)).into_response()
}

/// A message sent through an interaction token, as Discord returns it.
fn webhook_message(id: &str, content: &str, ephemeral: bool) -> Value {
    json!({
        "id": id, "channel_id": TEXT_CHANNEL, "author": bot_user(), "content": content,
        "timestamp": "2026-11-23T10:00:00.000000+00:00", "tts": false, "mention_everyone": false,
        "mentions": [], "mention_roles": [], "attachments": [], "embeds": [], "pinned": false, "type": 20,
        "flags": if ephemeral { 64 } else { 0 }, "webhook_id": BOT_ID,
    })
}

fn answer(shared: &Shared, token: &str, kind: &str, payload: &Value, files: Vec<(String, Vec<u8>)>, id: &str) {
    let content = payload["content"].as_str().unwrap_or_default().to_string();
    let ephemeral = payload["flags"].as_u64().is_some_and(|f| f & 64 != 0);
    {
        let mut inner = shared.lock();
        inner.messages.insert(id.to_string(), webhook_message(id, &content, ephemeral));
        inner.answered.push(Answered {
            token: token.to_string(),
            kind: kind.to_string(),
            content,
            ephemeral,
            message_id: id.to_string(),
            files,
            at: Instant::now(),
        });
    }
    shared.changed.notify_all();
}

/// POST /interactions/{id}/{token}/callback: type 4 answers, type 5 defers.
async fn callback(
    State(shared): State<Arc<Shared>>,
    Path((_id, token)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (body, files) = match read_body(request).await {
        Ok((body, files, _)) => (body, files),
        Err(refused) => return refused,
    };
    if shared.lock().originals.contains_key(&token) {
        return discord_error(StatusCode::BAD_REQUEST, 40060, "Interaction has already been acknowledged.");
    }
    let id = shared.new_id();
    shared.lock().originals.insert(token.clone(), id.clone());
    match body["type"].as_u64() {
        Some(4) => answer(&shared, &token, "response", &body["data"], files, &id),
        Some(5) => answer(&shared, &token, "defer", &body["data"], files, &id),
        _ => return discord_error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body"),
    }
    StatusCode::NO_CONTENT.into_response()
}

/// POST /webhooks/{app}/{token}: a follow-up message.
async fn followup(
    State(shared): State<Arc<Shared>>,
    Path((_app, token)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (body, files) = match read_body(request).await {
        Ok((body, files, _)) => (body, files),
        Err(refused) => return refused,
    };
    if !shared.lock().originals.contains_key(&token) {
        return discord_error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook");
    }
    let id = shared.new_id();
    answer(&shared, &token, "followup", &body, files, &id);
    let message = shared.lock().messages.get(&id).cloned().unwrap_or_default();
    Json(message).into_response()
}

/// The interaction message `message` (`@original` or an id) of `token`.
fn interaction_message_id(shared: &Shared, token: &str, message: &str) -> Option<String> {
    let inner = shared.lock();
    let original = inner.originals.get(token)?;
    if message == "@original" {
        return Some(original.clone());
    }
    inner.answered.iter().any(|a| a.token == token && a.message_id == message).then(|| message.to_string())
}

/// GET /webhooks/{app}/{token}/messages/{message}.
async fn get_webhook_message(
    State(shared): State<Arc<Shared>>,
    Path((_app, token, message)): Path<(String, String, String)>,
) -> Response {
    let found =
        interaction_message_id(&shared, &token, &message).and_then(|id| shared.lock().messages.get(&id).cloned());
    match found {
        Some(message) => Json(message).into_response(),
        None => discord_error(StatusCode::NOT_FOUND, 10008, "Unknown Message"),
    }
}

/// PATCH /webhooks/{app}/{token}/messages/{message}: an edit of the
/// original response or of a follow-up.
async fn edit_webhook_message(
    State(shared): State<Arc<Shared>>,
    Path((_app, token, message)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let (body, files) = match read_body(request).await {
        Ok((body, files, _)) => (body, files),
        Err(refused) => return refused,
    };
    let Some(id) = interaction_message_id(&shared, &token, &message) else {
        return discord_error(StatusCode::NOT_FOUND, 10008, "Unknown Message");
    };
    let kind = if message == "@original" { "edit_original" } else { "edit_followup" };
    let ephemeral = shared.lock().messages.get(&id).is_some_and(|m| m["flags"] == 64);
    let mut payload = body.clone();
    if ephemeral {
        payload["flags"] = json!(64);
    }
    answer(&shared, &token, kind, &payload, files, &id);
    let message = shared.lock().messages.get(&id).cloned().unwrap_or_default();
    Json(message).into_response()
}

/// A JSON body, or multipart with `payload_json` and `files[n]`.
async fn read_body(request: Request) -> Result<(Value, Vec<(String, Vec<u8>)>, bool), Response> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let mut payload = Value::Null;
    let mut files = Vec::new();
    if multipart {
        let Ok(mut form) = Multipart::from_request(request, &()).await else {
            return Err(discord_error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body"));
        };
        while let Ok(Some(field)) = form.next_field().await {
            let name = field.name().unwrap_or_default().to_string();
            let filename = field.file_name().map(str::to_string);
            let Ok(bytes) = field.bytes().await else {
                return Err(discord_error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body"));
            };
            if name == "payload_json" {
                payload = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            } else if name.starts_with("files[") {
                files.push((filename.unwrap_or(name), bytes.to_vec()));
            }
        }
    } else {
        let Ok(bytes) = Bytes::from_request(request, &()).await else {
            return Err(discord_error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body"));
        };
        payload = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    }
    Ok((payload, files, multipart))
}

/// The channel of direct messages with a user: `9` and the user's id.
pub fn direct_channel(user: &str) -> String {
    format!("9{user}")
}

async fn open_direct(Json(body): Json<Value>) -> Response {
    let Some(user) = body["recipient_id"].as_str().map(str::to_string) else {
        return discord_error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
    };
    Json(json!({
        "id": direct_channel(&user), "type": 1, "last_message_id": null,
        "recipients": [{"id": user, "username": "someone", "discriminator": "0", "avatar": null, "global_name": null}],
    }))
    .into_response()
}

async fn edit_message(
    State(shared): State<Arc<Shared>>,
    Path((channel, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let content = body["content"].as_str().unwrap_or_default().to_string();
    if content.chars().count() > 2000 {
        return discord_error(StatusCode::BAD_REQUEST, 50035, "Must be 2000 or fewer in length.");
    }
    let edited = {
        let mut inner = shared.lock();
        let edited = match inner.messages.get_mut(&id) {
            // Only the bot's own messages, as Discord allows.
            Some(m) if m["channel_id"] == channel.as_str() && m["author"]["id"] == BOT_ID => {
                m["content"] = Value::String(content.clone());
                Some(m.clone())
            }
            _ => None,
        };
        if edited.is_some() {
            inner.edits.push((id, content));
        }
        edited
    };
    shared.changed.notify_all();
    match edited {
        Some(message) => Json(message).into_response(),
        None => discord_error(StatusCode::NOT_FOUND, 10008, "Unknown Message"),
    }
}

async fn download(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let mut inner = shared.lock();
    *inner.downloads.entry(name.clone()).or_default() += 1;
    match inner.files.get(&name) {
        Some(data) if inner.streamed.contains(&name) => {
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> = data.chunks(64 << 10).map(|c| Ok(c.to_vec())).collect();
            axum::body::Body::from_stream(futures_util::stream::iter(chunks)).into_response()
        }
        Some(data) => data.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
