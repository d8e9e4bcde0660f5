//! What the bot needs from a chat platform, and nothing about any one of
//! them: the console and Discord adapters implement
//! [`Conversation`], and every line of command logic is shared.

pub mod console;
pub mod discord;

use std::sync::Arc;

use async_trait::async_trait;

/// A file attached to an incoming message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub id: String,
    pub filename: String,
    pub content_type: Option<String>,
    pub size: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Author {
    pub id: String,
    pub name: String,
    /// Role names, as guests see them.
    pub roles: Vec<String>,
    /// The same roles' ids, which operators are matched by: a name can be
    /// changed by anyone who manages roles.
    pub role_ids: Vec<String>,
    pub is_bot: bool,
    /// The voice channel the author is in, if any.
    pub voice_channel: Option<String>,
    /// Made an operator by the platform itself (the console's own user),
    /// on top of the config's operator list.
    pub platform_operator: bool,
}

/// An incoming message, as every adapter describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub channel: String,
    /// `None` in direct messages.
    pub guild: Option<String>,
    pub author: Author,
    pub content: String,
    pub attachments: Vec<Attachment>,
}

/// One message the bot sends: text within the platform's limit, and files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outgoing {
    pub content: String,
    pub files: Vec<OutFile>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFile {
    pub name: String,
    pub data: Vec<u8>,
}

/// A message of the conversation, looked up by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedMessage {
    pub id: String,
    pub author_id: String,
    pub author_name: String,
    pub from_bot: bool,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutcome {
    Joined(String),
    AlreadyThere(String),
}

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("{size} bytes is over the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("{0}")]
    Unsupported(&'static str),
    /// Supported, but not now (a voice connection that fails, say).
    #[error("{0}")]
    Unavailable(String),
    /// What the guest handed over cannot be used (audio that does not play).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
}

/// The place a message came from, and through which the bot answers it.
///
/// Adapters make one per incoming message, so it can carry what answering
/// needs (the console's input line number, Discord's channel handle and
/// attachment URLs) without the rest of the bot knowing about it.
#[async_trait]
pub trait Conversation: Send + Sync {
    /// The most characters one message may hold (2000 on Discord).
    fn max_message_chars(&self) -> usize {
        2000
    }
    /// Sends one message to the channel; returns its id.
    async fn send(&self, message: Outgoing) -> Result<String, PlatformError>;
    /// Sends one message that only the invoking user sees; returns its id.
    async fn send_private(&self, _message: Outgoing) -> Result<String, PlatformError> {
        Err(PlatformError::Unsupported("private messages are not supported here yet"))
    }
    /// Replaces the text of a message the bot sent in this conversation.
    async fn edit(&self, _id: &str, _content: String) -> Result<(), PlatformError> {
        Err(PlatformError::Unsupported("editing messages is not supported here yet"))
    }
    /// A message of this channel, if the platform still has it.
    async fn fetch_message(&self, id: &str) -> Result<Option<FetchedMessage>, PlatformError>;
    /// The bytes of one attachment of the incoming message, refused above
    /// `limit` before anything is downloaded.
    async fn read_attachment(&self, id: &str, limit: u64) -> Result<Vec<u8>, PlatformError>;
    /// Joins the author's voice channel.
    async fn join_voice(&self) -> Result<JoinOutcome, PlatformError>;
    /// Leaves the guild's voice channel; `false` when not in one.
    async fn leave_voice(&self) -> Result<bool, PlatformError>;
    /// Plays audio (WAV, Ogg, MP3 bytes) in the voice channel where the
    /// author is, after what is already playing there.
    async fn play_audio(&self, _audio: Vec<u8>) -> Result<(), PlatformError> {
        Err(PlatformError::Unsupported("playing audio is not supported here yet"))
    }
}

/// An option's value as the platform delivered it, before it is checked
/// against what the command declared.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionInput {
    String(String),
    Integer(i64),
    Number(f64),
    Boolean(bool),
    /// A user, channel or role: an id, or a mention (`<@id>`).
    Mention(String),
    Attachment(Attachment),
}

/// A slash command: its name and the options the user gave.
#[derive(Debug, Clone, PartialEq)]
pub struct SlashCommand {
    pub name: String,
    pub options: Vec<(String, OptionInput)>,
}

/// An incoming message (or slash command) and the way to answer it.
#[derive(Clone)]
pub struct Event {
    /// For a slash command, what the user sees of it: `content` reads
    /// `/name option:value`, `attachments` are the attachment options'.
    pub message: Arc<Message>,
    pub conversation: Arc<dyn Conversation>,
    /// `Some` for a slash command, `None` for a message.
    pub slash: Option<SlashCommand>,
}

/// A conversation that goes nowhere: what `describe()` runs against, since
/// it answers no message.
pub struct Nowhere;

#[async_trait]
impl Conversation for Nowhere {
    async fn send(&self, _message: Outgoing) -> Result<String, PlatformError> {
        Err(PlatformError::Unsupported("there is no conversation while a command loads"))
    }
    async fn fetch_message(&self, _id: &str) -> Result<Option<FetchedMessage>, PlatformError> {
        Ok(None)
    }
    async fn read_attachment(&self, id: &str, _limit: u64) -> Result<Vec<u8>, PlatformError> {
        Err(PlatformError::NotFound(id.to_string()))
    }
    async fn join_voice(&self) -> Result<JoinOutcome, PlatformError> {
        Err(PlatformError::Unsupported("there is no conversation while a command loads"))
    }
    async fn leave_voice(&self) -> Result<bool, PlatformError> {
        Ok(false)
    }
}
