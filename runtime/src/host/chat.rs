//! `chat`: text and files for the invoking user: in the channel, in
//! private, and edits of what this invocation sent.

use crate::bindings::{chat, types};
use crate::config::HostFn;
use crate::host::{GuestCtx, HostError};
use crate::platform::{OutFile, Outgoing};
use crate::text::split_message;

/// Discord's limit on files per message.
const MAX_FILES: usize = 10;
/// Longest file name accepted from a guest.
const MAX_FILE_NAME: usize = 200;

/// Where a message goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Audience {
    Channel,
    /// The invoking user alone.
    Private,
}

impl GuestCtx {
    async fn send(
        &mut self,
        content: String,
        files: Vec<types::File>,
        audience: Audience,
    ) -> Result<String, HostError> {
        let limits = &self.command.limits;
        if content.trim().is_empty() && files.is_empty() {
            return Err(HostError::Invalid("the message is empty".into()));
        }
        if files.len() > MAX_FILES {
            return Err(HostError::TooLarge(format!("at most {MAX_FILES} files per message")));
        }
        for file in &files {
            if file.name.trim().is_empty() || file.name.len() > MAX_FILE_NAME || file.name.contains(['/', '\\', '\0']) {
                return Err(HostError::Invalid(format!("`{}` is not a usable file name", file.name)));
            }
            if file.data.len() as u64 > limits.file_bytes {
                return Err(HostError::TooLarge(format!(
                    "`{}` is {} bytes; the limit is {} bytes",
                    file.name,
                    file.data.len(),
                    limits.file_bytes
                )));
            }
        }
        let max_chars = self.conversation.max_message_chars();
        // Refuse before splitting a huge text into thousands of pieces.
        if content.len() > max_chars.saturating_mul(4).saturating_mul(limits.messages as usize) {
            return Err(HostError::TooLarge(format!(
                "{} bytes of text; a command may send at most {} messages",
                content.len(),
                limits.messages
            )));
        }
        let parts = split_message(&content, max_chars);
        let wanted = parts.len() as u32;
        if self.messages_sent + wanted > limits.messages {
            return Err(HostError::TooLarge(format!("a command may send at most {} messages", limits.messages)));
        }
        self.messages_sent += wanted;

        let last = parts.len() - 1;
        let mut files: Vec<OutFile> = files.into_iter().map(|f| OutFile { name: f.name, data: f.data }).collect();
        let mut first_id = None;
        for (i, part) in parts.into_iter().enumerate() {
            let files = if i == last { std::mem::take(&mut files) } else { Vec::new() };
            let outgoing = Outgoing { content: part, files };
            let id = match audience {
                Audience::Channel => self.conversation.send(outgoing).await?,
                Audience::Private => self.conversation.send_private(outgoing).await?,
            };
            self.sent.push(id.clone());
            first_id.get_or_insert(id);
        }
        let first_id = first_id.ok_or_else(|| HostError::Failed("nothing was sent".into()))?;
        if let Some(question) = self.pending_answer.take() {
            let stored = self.services.store.record_answer(&self.message.channel, &first_id, &question, &content).await;
            if let Err(e) = stored {
                tracing::warn!(error = %e, "could not remember the answer for corrections");
            }
        }
        Ok(first_id)
    }
}

/// Messages fetched plus attachments downloaded in one invocation. Each
/// goes to Discord again (a message has at most ten attachments), and the
/// bot's request budget is shared by every server.
pub const MAX_PLATFORM_READS: u32 = 20;

impl GuestCtx {
    fn count_platform_read(&mut self) -> Result<(), HostError> {
        if self.platform_reads >= MAX_PLATFORM_READS {
            return Err(HostError::Unavailable(format!(
                "at most {MAX_PLATFORM_READS} messages and attachments are fetched in one command"
            )));
        }
        self.platform_reads += 1;
        Ok(())
    }
}

impl chat::Host for GuestCtx {
    async fn send_message(&mut self, content: String, files: Vec<types::File>) -> Result<String, HostError> {
        self.check(HostFn::ChatSendMessage)?;
        self.send(content, files, Audience::Channel).await
    }

    async fn send_private(&mut self, content: String, files: Vec<types::File>) -> Result<String, HostError> {
        self.check(HostFn::ChatSendPrivate)?;
        self.send(content, files, Audience::Private).await
    }

    async fn edit_message(&mut self, id: String, content: String) -> Result<(), HostError> {
        self.check(HostFn::ChatEditMessage)?;
        // Only this invocation's own messages: a command cannot rewrite
        // what another command (or an earlier run of itself) said.
        if !self.sent.contains(&id) {
            return Err(HostError::NotFound(format!("this command sent no message `{id}`")));
        }
        if content.trim().is_empty() {
            return Err(HostError::Invalid("the message is empty".into()));
        }
        let max_chars = self.conversation.max_message_chars();
        if content.chars().count() > max_chars {
            return Err(HostError::TooLarge(format!("an edit holds at most {max_chars} characters")));
        }
        // Each edit is a call to the platform, like a message.
        let limit = self.command.limits.messages;
        if self.messages_sent >= limit {
            return Err(HostError::TooLarge(format!("a command may send at most {limit} messages and edits")));
        }
        self.messages_sent += 1;
        Ok(self.conversation.edit(&id, content).await?)
    }

    async fn read_attachment(&mut self, id: String) -> Result<Vec<u8>, HostError> {
        self.check(HostFn::ChatReadAttachment)?;
        self.count_platform_read()?;
        let limit = self.command.limits.file_bytes;
        let attachment = self
            .message
            .attachments
            .iter()
            .find(|a| a.id == id)
            .ok_or_else(|| HostError::NotFound(format!("no attachment `{id}` on this message")))?;
        if attachment.size > limit {
            return Err(HostError::TooLarge(format!(
                "`{}` is {} bytes; the limit is {limit} bytes",
                attachment.filename, attachment.size
            )));
        }
        Ok(self.conversation.read_attachment(&id, limit).await?)
    }

    async fn fetch_message(&mut self, id: String) -> Result<chat::FetchedMessage, HostError> {
        self.check(HostFn::ChatFetchMessage)?;
        self.count_platform_read()?;
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(HostError::Invalid(format!("`{id}` is not a message id")));
        }
        let message = self
            .conversation
            .fetch_message(&id)
            .await?
            .ok_or_else(|| HostError::NotFound(format!("no message `{id}` in this channel")))?;
        Ok(chat::FetchedMessage {
            id: message.id,
            author_id: message.author_id,
            author_name: message.author_name,
            from_bot: message.from_bot,
            content: message.content,
        })
    }
}
