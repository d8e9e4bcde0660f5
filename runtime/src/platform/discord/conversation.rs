//! One Discord message's [`Conversation`]: answers go to its channel over
//! REST (private ones to the author's direct messages, since a message
//! cannot be answered ephemerally), attachments come from the URLs Discord
//! gave with it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serenity::all::{
    ChannelId, CreateAllowedMentions, CreateAttachment, CreateMessage, EditMessage, GuildId, Http, MessageId, UserId,
};
use serenity::http::{HttpError, LightMethod, Request, Route};

use super::download::Downloader;
use super::voice::Voice;
use crate::platform::{Conversation, FetchedMessage, JoinOutcome, Outgoing, PlatformError};

/// Discord's limit on the characters of one message.
pub const MAX_MESSAGE_CHARS: usize = 2000;
/// A command still silent after this shows "sandbot is typing…".
const TYPING_AFTER: Duration = Duration::from_millis(500);
/// Discord shows "typing…" for about 10 s per request.
const TYPING_RENEW: Duration = Duration::from_secs(8);
/// The longest a typing request may hold up an answer.
const TYPING_PATIENCE: Duration = Duration::from_secs(2);

/// What every conversation of the adapter shares.
pub struct Shared {
    pub downloader: Downloader,
    /// The most bytes of files one message may carry.
    pub upload_bytes: u64,
    /// `None` without the gateway, which voice connections go through.
    pub voice: Option<Arc<Voice>>,
}

/// An attachment of the incoming message, with where to fetch it.
pub struct Download {
    pub id: String,
    pub url: String,
    pub size: u64,
}

pub struct DiscordConversation {
    pub http: Arc<Http>,
    pub shared: Arc<Shared>,
    pub channel: ChannelId,
    /// `None` in direct messages.
    pub guild: Option<GuildId>,
    /// The voice channel the author is in, if any.
    pub author_voice: Option<ChannelId>,
    pub downloads: Vec<Download>,
    pub author: UserId,
    /// The author's direct-message channel, once a private answer opened it.
    pub direct: tokio::sync::OnceCell<ChannelId>,
    /// Ids of the messages sent there, so an edit goes to the right channel.
    pub sent_direct: Mutex<HashSet<String>>,
    /// Whether something was sent: then "typing…" is over. Held while a
    /// typing request is on its way, so none arrives after the answer.
    answered: tokio::sync::Mutex<bool>,
}

impl DiscordConversation {
    /// The conversation of a message in `channel` by `author`.
    pub fn new(
        http: Arc<Http>,
        shared: Arc<Shared>,
        channel: ChannelId,
        guild: Option<GuildId>,
        author: UserId,
        author_voice: Option<ChannelId>,
        downloads: Vec<Download>,
    ) -> DiscordConversation {
        DiscordConversation {
            http,
            shared,
            channel,
            guild,
            author_voice,
            downloads,
            author,
            direct: tokio::sync::OnceCell::new(),
            sent_direct: Mutex::new(HashSet::new()),
            answered: tokio::sync::Mutex::new(false),
        }
    }

    /// Runs `work` (the message's command) and, if it has not ended after
    /// [`TYPING_AFTER`], shows "typing…" until the first message is sent.
    /// Most commands end well before: they cost a timer, not a task of
    /// their own (a task per message woke the other worker thread every
    /// time, which cost more than the sandbox).
    pub async fn typing_while<F: std::future::Future>(self: &Arc<Self>, work: F) -> F::Output {
        let mut work = std::pin::pin!(work);
        if let Ok(done) = tokio::time::timeout(TYPING_AFTER, &mut work).await {
            return done;
        }
        let typing = tokio::spawn(self.clone().keep_typing());
        let done = work.await;
        typing.abort();
        done
    }

    /// Shows "typing…" in the channel until the first message is sent;
    /// the caller aborts it when the command ends.
    async fn keep_typing(self: Arc<Self>) {
        loop {
            {
                let answered = self.answered.lock().await;
                if *answered {
                    return;
                }
                // Bounded: the answer waits for this lock.
                let typing = self.channel.broadcast_typing(self.http.as_ref());
                match tokio::time::timeout(TYPING_PATIENCE, typing).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        return tracing::debug!(channel = %self.channel, error = %refusal(e), "could not show typing")
                    }
                    Err(_) => return tracing::debug!(channel = %self.channel, "Discord took too long to show typing"),
                }
            }
            tokio::time::sleep(TYPING_RENEW).await;
        }
    }

    async fn send_to(&self, channel: ChannelId, message: Outgoing) -> Result<String, PlatformError> {
        let total: u64 = message.files.iter().map(|f| f.data.len() as u64).sum();
        if total > self.shared.upload_bytes {
            return Err(PlatformError::TooLarge { size: total, limit: self.shared.upload_bytes });
        }
        *self.answered.lock().await = true;
        // Guests' text reaches the channel verbatim: it may not ping anyone.
        let builder = CreateMessage::new().content(message.content).allowed_mentions(CreateAllowedMentions::new());
        let sent = if message.files.is_empty() {
            post_text(&self.http, channel, &builder).await
        } else {
            let builder = builder.add_files(message.files.into_iter().map(|f| CreateAttachment::bytes(f.data, f.name)));
            // The HTTP client alone: with the cache, serenity would
            // second-guess permissions from a cache that may be stale;
            // Discord decides.
            channel.send_message(self.http.as_ref(), builder).await.map(|sent| sent.id)
        };
        match sent {
            Ok(id) => Ok(id.to_string()),
            Err(e) => {
                let e = refusal(e);
                tracing::warn!(channel = %channel, error = %e, "Discord did not take a message");
                Err(e)
            }
        }
    }

    /// The author's direct-message channel (this channel, in a DM).
    async fn direct_channel(&self) -> Result<ChannelId, PlatformError> {
        if self.guild.is_none() {
            return Ok(self.channel);
        }
        let opened = self
            .direct
            .get_or_try_init(|| async {
                let dm = self.author.create_dm_channel(self.http.as_ref()).await.map_err(refusal)?;
                Ok::<_, PlatformError>(dm.id)
            })
            .await;
        if let Err(e) = &opened {
            tracing::warn!(user = %self.author, error = %e, "could not open a direct message");
        }
        opened.copied()
    }

    fn guild(&self) -> Result<GuildId, PlatformError> {
        self.guild.ok_or_else(|| PlatformError::Invalid("voice channels exist only in servers".into()))
    }

    fn voice(&self) -> Result<&Arc<Voice>, PlatformError> {
        self.shared.voice.as_ref().ok_or_else(|| {
            PlatformError::Unavailable(
                "voice needs the gateway, and this bot answers slash commands by HTTP only".into(),
            )
        })
    }
}

#[async_trait]
impl Conversation for DiscordConversation {
    fn max_message_chars(&self) -> usize {
        MAX_MESSAGE_CHARS
    }

    async fn send(&self, message: Outgoing) -> Result<String, PlatformError> {
        self.send_to(self.channel, message).await
    }

    async fn send_private(&self, message: Outgoing) -> Result<String, PlatformError> {
        let channel = self.direct_channel().await?;
        let id = self.send_to(channel, message).await?;
        self.sent_direct.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone());
        Ok(id)
    }

    async fn edit(&self, id: &str, content: String) -> Result<(), PlatformError> {
        let message = id
            .parse::<u64>()
            .ok()
            .filter(|&n| n != 0)
            .map(MessageId::new)
            .ok_or_else(|| PlatformError::NotFound(format!("message {id}")))?;
        let direct = self.sent_direct.lock().unwrap_or_else(|p| p.into_inner()).contains(id);
        let channel = if direct { self.direct_channel().await? } else { self.channel };
        let builder = EditMessage::new().content(content).allowed_mentions(CreateAllowedMentions::new());
        match channel.edit_message(self.http.as_ref(), message, builder).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = refusal(e);
                tracing::warn!(channel = %channel, message = %id, error = %e, "Discord did not take an edit");
                Err(e)
            }
        }
    }

    async fn fetch_message(&self, id: &str) -> Result<Option<FetchedMessage>, PlatformError> {
        let Some(id) = id.parse::<u64>().ok().filter(|&n| n != 0).map(MessageId::new) else {
            return Ok(None);
        };
        match self.channel.message(self.http.as_ref(), id).await {
            Ok(message) => Ok(Some(FetchedMessage {
                id: message.id.to_string(),
                author_id: message.author.id.to_string(),
                author_name: message.author.name.clone(),
                from_bot: message.author.bot,
                content: message.content,
            })),
            Err(serenity::Error::Http(HttpError::UnsuccessfulRequest(response)))
                if response.status_code.as_u16() == 404 =>
            {
                Ok(None)
            }
            Err(e) => {
                let e = refusal(e);
                tracing::warn!(channel = %self.channel, fetched = %id, error = %e, "could not fetch a message");
                Err(e)
            }
        }
    }

    async fn read_attachment(&self, id: &str, limit: u64) -> Result<Vec<u8>, PlatformError> {
        let download = self
            .downloads
            .iter()
            .find(|d| d.id == id)
            .ok_or_else(|| PlatformError::NotFound(format!("attachment {id}")))?;
        // Discord said how big it is: refuse before the first byte.
        if download.size > limit {
            return Err(PlatformError::TooLarge { size: download.size, limit });
        }
        let data = self.shared.downloader.fetch(&download.url, limit).await;
        if let Err(e) = &data {
            tracing::warn!(attachment = %id, error = %e, "could not download an attachment");
        }
        data
    }

    async fn join_voice(&self) -> Result<JoinOutcome, PlatformError> {
        let voice = self.voice()?;
        let channel =
            self.author_voice.ok_or_else(|| PlatformError::NotFound("the author is not in a voice channel".into()))?;
        voice.join(self.guild()?, channel).await
    }

    async fn leave_voice(&self) -> Result<bool, PlatformError> {
        self.voice()?.leave(self.guild()?).await
    }

    async fn play_audio(&self, audio: Vec<u8>) -> Result<(), PlatformError> {
        self.voice()?.play(self.guild()?, self.author_voice, audio).await
    }
}

/// Posts a message of text alone: the request serenity's `send_message`
/// makes (through its rate limiter), reading only the new message's id
/// from Discord's answer, where serenity would parse the whole message
/// (author, member, mentions, embeds) to hand back an id.
async fn post_text(http: &Http, channel: ChannelId, message: &CreateMessage) -> serenity::Result<MessageId> {
    #[derive(serde::Deserialize)]
    struct Created {
        id: MessageId,
    }
    let body = serde_json::to_vec(message)?;
    let request = Request::new(Route::ChannelMessages { channel_id: channel }, LightMethod::Post).body(Some(body));
    let answer = http.request(request).await?.bytes().await?;
    Ok(serde_json::from_slice::<Created>(&answer)?.id)
}

/// A failed REST call, in words for the log and the guest.
pub(super) fn refusal(error: serenity::Error) -> PlatformError {
    match error {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(response)) => {
            let status = response.status_code.as_u16();
            crate::telemetry::rest_error(status);
            let why = &response.error.message;
            match status {
                404 => PlatformError::NotFound(format!("Discord: {why}")),
                403 => PlatformError::Failed(format!("Discord refused it (missing permissions?): {why}")),
                413 => PlatformError::Failed(format!("Discord refused it as too large: {why}")),
                _ => PlatformError::Failed(format!("Discord answered {status}: {why}")),
            }
        }
        other => PlatformError::Failed(format!("Discord: {other}")),
    }
}
