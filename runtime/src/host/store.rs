//! `store`: corrections and feedback, with who, where and when taken from
//! the invocation (never from the guest), committed before returning.

use crate::bindings::store;
use crate::config::HostFn;
use crate::host::{GuestCtx, HostError};
use crate::services::store::{Correction, Feedback, Provenance, Scope, Store};

/// Longest text stored per field; longer is refused, not cut.
const MAX_TEXT_CHARS: usize = 8000;

impl GuestCtx {
    fn provenance(&self) -> Provenance {
        let m = &self.message;
        Provenance {
            author_id: m.author.id.clone(),
            author_name: m.author.name.clone(),
            channel: m.channel.clone(),
            guild: m.guild.clone(),
            message_id: m.id.clone(),
        }
    }

    /// Whose teaching this invocation reads and writes: its server's own,
    /// the global set in the servers the operators chose, and in direct
    /// messages the author's own.
    pub(crate) fn scope(&self) -> Scope {
        match &self.message.guild {
            Some(guild) if self.services.global_servers.contains(guild) => Scope::global(),
            Some(guild) => Scope::server(guild),
            None => Scope::direct(&self.message.author.id),
        }
    }
}

fn checked(field: &str, text: &str) -> Result<(), HostError> {
    if text.trim().is_empty() {
        return Err(HostError::Invalid(format!("the {field} is empty")));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(HostError::TooLarge(format!("the {field} is over {MAX_TEXT_CHARS} characters")));
    }
    Ok(())
}

/// How long a correction waits, at most, for the question a bot message
/// answered: the answer is recorded just after it is posted (it needs the
/// message's id), maybe by another process. Looked up again after 50, 100,
/// 200 and 400 ms; a message that was no model answer costs that wait.
const ANSWER_LOOKUP_GAPS_MS: [u64; 4] = [50, 100, 200, 400];

/// The question `message_id` answered, if it was a model answer.
async fn answered_question(store: &dyn Store, channel: &str, message_id: &str) -> Result<Option<String>, HostError> {
    let mut gaps = ANSWER_LOOKUP_GAPS_MS.into_iter();
    loop {
        if let Some(question) = store.question_for(channel, message_id).await? {
            return Ok(Some(question));
        }
        let Some(ms) = gaps.next() else { return Ok(None) };
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

impl store::Host for GuestCtx {
    async fn log_correction(
        &mut self,
        message_id: String,
        original: String,
        correction: String,
    ) -> Result<u64, HostError> {
        self.check(HostFn::StoreLogCorrection)?;
        checked("correction", &correction)?;
        checked("message id", &message_id)?;
        if original.chars().count() > MAX_TEXT_CHARS {
            return Err(HostError::TooLarge("the original text is too long".into()));
        }
        let store = &self.services.store;
        let question = answered_question(store.as_ref(), &self.message.channel, &message_id).await?;
        let scope = self.scope();
        let correction = Correction {
            from: self.provenance(),
            scope: scope.clone(),
            corrected_message_id: message_id,
            question,
            original,
            correction,
        };
        let taught = correction.question.is_some();
        let id = store.log_correction(correction).await?;
        tracing::info!(command = %self.command.name, id, teaches = taught, %scope, "correction stored");
        // Stored first, so nothing is lost if the model fails to take it in.
        if let (true, Some(model)) = (taught, &self.services.model) {
            if let Err(e) = model.learn_correction(&scope).await {
                tracing::warn!(error = %e, "the model could not take in the correction");
            }
        }
        Ok(id)
    }

    async fn log_feedback(&mut self, text: String) -> Result<u64, HostError> {
        self.check(HostFn::StoreLogFeedback)?;
        checked("feedback", &text)?;
        let id = self.services.store.log_feedback(Feedback { from: self.provenance(), text }).await?;
        tracing::info!(command = %self.command.name, id, "feedback stored");
        Ok(id)
    }
}
