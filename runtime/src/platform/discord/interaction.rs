//! One slash command's [`Conversation`]: answers go back through the
//! interaction (its token), not as channel messages.
//!
//! Discord wants an acknowledgement within 3 seconds. The first message a
//! guest sends is the response itself (private ones ephemeral): a callback
//! request for an interaction from the gateway, the HTTP response's body
//! for one from the interactions endpoint. A guest that has sent nothing
//! after [`DEFER_AFTER`] gets a deferred response ("thinking…"), which its
//! first message then replaces. Later messages are follow-ups. The token
//! lasts 15 minutes; past that, public messages go to the channel and
//! private ones fail saying why.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serenity::all::{
    CommandInteraction, CreateAllowedMentions, CreateAttachment, CreateInteractionResponse,
    CreateInteractionResponseFollowup, CreateInteractionResponseMessage, EditInteractionResponse, MessageId,
};

use tokio::sync::oneshot;

use super::conversation::{refusal, DiscordConversation, MAX_MESSAGE_CHARS};
use crate::platform::{Conversation, FetchedMessage, JoinOutcome, Outgoing, PlatformError};

/// How long the host waits for a guest's first message before deferring.
pub const DEFER_AFTER: Duration = Duration::from_millis(2000);
/// How long Discord honours an interaction's token.
const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// How often, and how far apart, a response by HTTP body is looked for.
const READ_BACK_ATTEMPTS: u32 = 5;
const READ_BACK_PAUSE: Duration = Duration::from_millis(25);
/// Discord's name for an interaction's first response.
const ORIGINAL: &str = "@original";
/// What a deferred response says when a private answer takes its place.
const ANSWERED_PRIVATELY: &str = "Answered privately.";

/// A first response to write as an HTTP body, and who to tell once it
/// has been written.
pub type FirstResponse = (CreateInteractionResponse, oneshot::Sender<()>);

/// How the first response reaches Discord.
pub enum Acknowledgement {
    /// `POST /interactions/{id}/{token}/callback` (gateway interactions).
    Callback,
    /// As the body of the HTTP request Discord made to the endpoint; the
    /// second sender says when that body has been written.
    Body(Mutex<Option<oneshot::Sender<FirstResponse>>>),
}

impl Acknowledgement {
    /// An acknowledgement by HTTP body, and where that body arrives.
    pub fn body() -> (Acknowledgement, oneshot::Receiver<FirstResponse>) {
        let (sender, receiver) = oneshot::channel();
        (Acknowledgement::Body(Mutex::new(Some(sender))), receiver)
    }
}

/// Where the interaction's response stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// Nothing sent yet.
    Fresh,
    /// Acknowledged with "thinking…"; the first message replaces it.
    Deferred,
    /// The response (by its message id) is there; more are follow-ups.
    Answered { original: String },
}

pub struct InteractionConversation {
    pub interaction: CommandInteraction,
    /// The channel's conversation: fetching messages, attachments, voice.
    pub channel: DiscordConversation,
    stage: tokio::sync::Mutex<Stage>,
    acknowledgement: Acknowledgement,
    received: Instant,
}

impl InteractionConversation {
    pub fn new(
        interaction: CommandInteraction,
        channel: DiscordConversation,
        acknowledgement: Acknowledgement,
    ) -> InteractionConversation {
        InteractionConversation {
            interaction,
            channel,
            stage: tokio::sync::Mutex::new(Stage::Fresh),
            acknowledgement,
            received: Instant::now(),
        }
    }

    fn http(&self) -> &serenity::all::Http {
        self.channel.http.as_ref()
    }

    /// Sends the interaction's first response, whichever way it goes.
    async fn acknowledge(&self, response: CreateInteractionResponse) -> Result<(), PlatformError> {
        let body = match &self.acknowledgement {
            Acknowledgement::Callback => return Ok(self.interaction.create_response(self.http(), response).await?),
            Acknowledgement::Body(body) => body.lock().unwrap_or_else(|e| e.into_inner()).take(),
        };
        let gone = || PlatformError::Unavailable("Discord's request for this slash command is gone".into());
        let (written, was_written) = oneshot::channel();
        body.ok_or_else(gone)?.send((response, written)).map_err(|_| gone())?;
        // Edits of `@original` must not overtake it.
        was_written.await.map_err(|_| gone())
    }

    /// Acknowledges the interaction unless something was sent already.
    pub async fn defer_if_fresh(&self) {
        let mut stage = self.stage.lock().await;
        if *stage != Stage::Fresh {
            return;
        }
        match self.acknowledge(CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new())).await {
            Ok(()) => *stage = Stage::Deferred,
            Err(e) => return tracing::warn!(error = %e, "could not defer a slash command"),
        }
        // What replaces it must find it there.
        if matches!(self.acknowledgement, Acknowledgement::Body(_)) {
            self.original_id().await;
        }
    }

    /// After the command ran: a response that never came would leave the
    /// user with "The application did not respond".
    pub async fn finish(&self) {
        let stage = self.stage.lock().await.clone();
        let done = Outgoing { content: "Done.".into(), files: Vec::new() };
        let result = match stage {
            Stage::Fresh => self.deliver(done, true).await.map(drop),
            Stage::Deferred => self.deliver(done, false).await.map(drop),
            Stage::Answered { .. } => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not close a slash command's response");
        }
    }

    async fn deliver(&self, message: Outgoing, private: bool) -> Result<String, PlatformError> {
        let total: u64 = message.files.iter().map(|f| f.data.len() as u64).sum();
        if total > self.channel.shared.upload_bytes {
            return Err(PlatformError::TooLarge { size: total, limit: self.channel.shared.upload_bytes });
        }
        if self.received.elapsed() >= TOKEN_LIFETIME {
            if private {
                return Err(PlatformError::Unavailable(
                    "the slash command is over 15 minutes old: Discord no longer takes private answers to it".into(),
                ));
            }
            return self.channel.send(message).await;
        }
        let files: Vec<CreateAttachment> =
            message.files.into_iter().map(|f| CreateAttachment::bytes(f.data, f.name)).collect();
        let http = self.http();
        let mut stage = self.stage.lock().await;
        let sent = match &*stage {
            // A body carries no files: "thinking…", then the files in
            // its place.
            Stage::Fresh if !files.is_empty() && matches!(self.acknowledgement, Acknowledgement::Body(_)) => {
                let thinking = CreateInteractionResponseMessage::new().ephemeral(private);
                self.acknowledge(CreateInteractionResponse::Defer(thinking)).await?;
                // Should the edit fail, `finish` still closes the "thinking…".
                *stage = Stage::Deferred;
                self.original_id().await;
                let original = self.interaction.edit_response(http, new_response(message.content, files)).await?;
                *stage = Stage::Answered { original: original.id.to_string() };
                Ok(original.id.to_string())
            }
            Stage::Fresh => {
                let response = CreateInteractionResponseMessage::new()
                    .content(message.content)
                    .ephemeral(private)
                    .allowed_mentions(CreateAllowedMentions::new())
                    .add_files(files);
                self.acknowledge(CreateInteractionResponse::Message(response)).await?;
                let original = self.original_id().await;
                *stage = Stage::Answered { original: original.clone() };
                Ok(original)
            }
            // The deferral was public: a private answer goes beside it.
            Stage::Deferred if private => {
                let id = self.follow_up(message.content, files, true).await?;
                let note = EditInteractionResponse::new().content(ANSWERED_PRIVATELY);
                let original = self.interaction.edit_response(http, note).await?.id.to_string();
                *stage = Stage::Answered { original };
                Ok(id)
            }
            Stage::Deferred => {
                let original =
                    self.interaction.edit_response(http, new_response(message.content, files)).await?.id.to_string();
                *stage = Stage::Answered { original: original.clone() };
                Ok(original)
            }
            Stage::Answered { .. } => self.follow_up(message.content, files, private).await,
        };
        sent.inspect_err(|e| tracing::warn!(error = %e, "Discord did not take a slash command's answer"))
    }

    /// The id of the response just sent, which neither way of sending it
    /// returns. A response by HTTP body reaches Discord a moment after it
    /// is written, so it is asked for a few times. If that fails the
    /// answer is still there, and `@original` names it for edits.
    async fn original_id(&self) -> String {
        let attempts = match self.acknowledgement {
            Acknowledgement::Callback => 1,
            Acknowledgement::Body(_) => READ_BACK_ATTEMPTS,
        };
        for attempt in 1..=attempts {
            match self.interaction.get_response(self.http()).await {
                Ok(message) => return message.id.to_string(),
                Err(_) if attempt < attempts => tokio::time::sleep(READ_BACK_PAUSE * attempt).await,
                Err(e) => tracing::warn!(error = %refusal(e), "could not read back a slash command's response"),
            }
        }
        ORIGINAL.to_string()
    }

    async fn follow_up(
        &self,
        content: String,
        files: Vec<CreateAttachment>,
        private: bool,
    ) -> Result<String, PlatformError> {
        let follow_up = CreateInteractionResponseFollowup::new()
            .content(content)
            .ephemeral(private)
            .allowed_mentions(CreateAllowedMentions::new())
            .add_files(files);
        Ok(self.interaction.create_followup(self.http(), follow_up).await?.id.to_string())
    }
}

/// The text and files that replace a deferred response.
fn new_response(content: String, files: Vec<CreateAttachment>) -> EditInteractionResponse {
    let mut edit = EditInteractionResponse::new().content(content).allowed_mentions(CreateAllowedMentions::new());
    for file in files {
        edit = edit.new_attachment(file);
    }
    edit
}

impl From<serenity::Error> for PlatformError {
    fn from(e: serenity::Error) -> Self {
        refusal(e)
    }
}

#[async_trait]
impl Conversation for InteractionConversation {
    fn max_message_chars(&self) -> usize {
        MAX_MESSAGE_CHARS
    }

    async fn send(&self, message: Outgoing) -> Result<String, PlatformError> {
        self.deliver(message, false).await
    }

    async fn send_private(&self, message: Outgoing) -> Result<String, PlatformError> {
        self.deliver(message, true).await
    }

    async fn edit(&self, id: &str, content: String) -> Result<(), PlatformError> {
        let original = match &*self.stage.lock().await {
            Stage::Answered { original } => original.clone(),
            _ => String::new(),
        };
        let http = self.http();
        if id == original {
            let edit = EditInteractionResponse::new().content(content).allowed_mentions(CreateAllowedMentions::new());
            self.interaction.edit_response(http, edit).await?;
            return Ok(());
        }
        let message = id.parse::<u64>().ok().filter(|&n| n != 0).map(MessageId::new);
        let message = message.ok_or_else(|| PlatformError::NotFound(format!("message {id}")))?;
        let edit =
            CreateInteractionResponseFollowup::new().content(content).allowed_mentions(CreateAllowedMentions::new());
        self.interaction.edit_followup(http, message, edit).await?;
        Ok(())
    }

    async fn fetch_message(&self, id: &str) -> Result<Option<FetchedMessage>, PlatformError> {
        self.channel.fetch_message(id).await
    }

    async fn read_attachment(&self, id: &str, limit: u64) -> Result<Vec<u8>, PlatformError> {
        self.channel.read_attachment(id, limit).await
    }

    async fn join_voice(&self) -> Result<JoinOutcome, PlatformError> {
        self.channel.join_voice().await
    }

    async fn leave_voice(&self) -> Result<bool, PlatformError> {
        self.channel.leave_voice().await
    }

    async fn play_audio(&self, audio: Vec<u8>) -> Result<(), PlatformError> {
        self.channel.play_audio(audio).await
    }
}
