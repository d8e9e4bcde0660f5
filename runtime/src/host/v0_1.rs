//! `sandbot:bot@0.1.0` for components built before 0.2.0: every function
//! calls its 0.2.0 twin, so grants, limits and behaviour are the same code.
//! Only the shapes differ: 0.1.0 has no options, no `source`, no private
//! replies and no edits.

use crate::bindings::v0_1;
use crate::bindings::{chat, commands, files, log, model, store, types, voice};
use crate::host::{GuestCtx, HostError};

fn file(f: v0_1::types::File) -> types::File {
    types::File { name: f.name, data: f.data }
}

fn old_file(f: types::File) -> v0_1::types::File {
    v0_1::types::File { name: f.name, data: f.data }
}

/// What a 0.1.0 component's `describe()` said, as 0.2.0 says it: one
/// optional string option that carries the argument text.
pub fn command_info(info: v0_1::types::CommandInfo) -> types::CommandInfo {
    let description = if info.usage.trim().is_empty() {
        "What follows the command".to_string()
    } else {
        format!("As in: {}", info.usage).chars().take(100).collect()
    };
    types::CommandInfo {
        name: info.name,
        summary: info.summary,
        usage: info.usage,
        needs: info.needs,
        options: vec![types::CommandOption {
            name: ARGS_OPTION.to_string(),
            description,
            kind: types::OptionKind::String,
            required: false,
            choices: Vec::new(),
        }],
    }
}

/// The one option of a 0.1.0 command as a slash command.
pub const ARGS_OPTION: &str = "args";

fn old_command_info(info: types::CommandInfo) -> v0_1::types::CommandInfo {
    v0_1::types::CommandInfo { name: info.name, summary: info.summary, usage: info.usage, needs: info.needs }
}

/// A 0.2.0 invocation as a 0.1.0 component reads it: the argument text
/// and the message, nothing else.
pub fn invocation(inv: &types::Invocation) -> v0_1::types::Invocation {
    let m = &inv.message;
    v0_1::types::Invocation {
        command: inv.command.clone(),
        args: inv.args.clone(),
        prefix: inv.prefix.clone(),
        message: v0_1::types::Message {
            id: m.id.clone(),
            channel: m.channel.clone(),
            guild: m.guild.clone(),
            author: v0_1::types::Author {
                id: m.author.id.clone(),
                name: m.author.name.clone(),
                is_operator: m.author.is_operator,
                roles: m.author.roles.clone(),
                voice_channel: m.author.voice_channel.clone(),
            },
            content: m.content.clone(),
            attachments: m
                .attachments
                .iter()
                .map(|a| v0_1::types::Attachment {
                    id: a.id.clone(),
                    filename: a.filename.clone(),
                    content_type: a.content_type.clone(),
                    size: a.size,
                })
                .collect(),
        },
    }
}

impl v0_1::types::Host for GuestCtx {
    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<v0_1::types::Error> {
        use v0_1::types::Error;
        Ok(match <GuestCtx as types::Host>::convert_error(self, err)? {
            types::Error::Denied(s) => Error::Denied(s),
            types::Error::NotFound(s) => Error::NotFound(s),
            types::Error::Invalid(s) => Error::Invalid(s),
            types::Error::TooLarge(s) => Error::TooLarge(s),
            types::Error::Unavailable(s) => Error::Unavailable(s),
            types::Error::Failed(s) => Error::Failed(s),
        })
    }
}

impl v0_1::chat::Host for GuestCtx {
    async fn send_message(&mut self, content: String, files: Vec<v0_1::types::File>) -> Result<String, HostError> {
        chat::Host::send_message(self, content, files.into_iter().map(file).collect()).await
    }

    async fn read_attachment(&mut self, id: String) -> Result<Vec<u8>, HostError> {
        chat::Host::read_attachment(self, id).await
    }

    async fn fetch_message(&mut self, id: String) -> Result<v0_1::chat::FetchedMessage, HostError> {
        let m = chat::Host::fetch_message(self, id).await?;
        Ok(v0_1::chat::FetchedMessage {
            id: m.id,
            author_id: m.author_id,
            author_name: m.author_name,
            from_bot: m.from_bot,
            content: m.content,
        })
    }
}

impl v0_1::voice::Host for GuestCtx {
    async fn join(&mut self) -> Result<v0_1::voice::JoinOutcome, HostError> {
        Ok(match voice::Host::join(self).await? {
            voice::JoinOutcome::Joined(c) => v0_1::voice::JoinOutcome::Joined(c),
            voice::JoinOutcome::AlreadyThere(c) => v0_1::voice::JoinOutcome::AlreadyThere(c),
        })
    }

    async fn leave(&mut self) -> Result<(), HostError> {
        voice::Host::leave(self).await
    }

    async fn play_audio(&mut self, audio: Vec<u8>) -> Result<(), HostError> {
        voice::Host::play_audio(self, audio).await
    }

    async fn speak(&mut self, text: String) -> Result<(), HostError> {
        voice::Host::speak(self, text).await
    }

    async fn transcribe(&mut self, audio: Vec<u8>) -> Result<String, HostError> {
        voice::Host::transcribe(self, audio).await
    }
}

fn example(e: v0_1::model::Example) -> model::Example {
    model::Example { input: e.input, output: e.output, label: e.label }
}

fn old_example(e: model::Example) -> v0_1::model::Example {
    v0_1::model::Example { input: e.input, output: e.output, label: e.label }
}

fn old_job(j: model::Job) -> v0_1::model::Job {
    v0_1::model::Job { id: j.id, status: j.status, detail: j.detail, examples: j.examples }
}

impl v0_1::model::Host for GuestCtx {
    async fn call_model(&mut self, prompt: String) -> Result<String, HostError> {
        model::Host::call_model(self, prompt).await
    }

    async fn train(&mut self, examples: Vec<v0_1::model::Example>) -> Result<v0_1::model::Job, HostError> {
        model::Host::train(self, examples.into_iter().map(example).collect()).await.map(old_job)
    }

    async fn job_status(&mut self, id: String) -> Result<v0_1::model::Job, HostError> {
        model::Host::job_status(self, id).await.map(old_job)
    }

    async fn predict(&mut self, input: String) -> Result<String, HostError> {
        model::Host::predict(self, input).await
    }

    async fn save_dataset(&mut self, name: String, examples: Vec<v0_1::model::Example>) -> Result<u32, HostError> {
        model::Host::save_dataset(self, name, examples.into_iter().map(example).collect()).await
    }

    async fn load_dataset(&mut self, name: String) -> Result<Vec<v0_1::model::Example>, HostError> {
        Ok(model::Host::load_dataset(self, name).await?.into_iter().map(old_example).collect())
    }
}

impl v0_1::files::Host for GuestCtx {
    async fn read_file(&mut self, root: String, path: String) -> Result<v0_1::types::File, HostError> {
        files::Host::read_file(self, root, path).await.map(old_file)
    }

    async fn list_dir(&mut self, root: String, path: String) -> Result<Vec<v0_1::files::DirEntry>, HostError> {
        Ok(files::Host::list_dir(self, root, path)
            .await?
            .into_iter()
            .map(|e| v0_1::files::DirEntry { name: e.name, is_dir: e.is_dir, size: e.size })
            .collect())
    }

    async fn archive(&mut self, root: String, path: String) -> Result<v0_1::types::File, HostError> {
        files::Host::archive(self, root, path).await.map(old_file)
    }
}

impl v0_1::store::Host for GuestCtx {
    async fn log_correction(
        &mut self,
        message_id: String,
        original: String,
        correction: String,
    ) -> Result<u64, HostError> {
        store::Host::log_correction(self, message_id, original, correction).await
    }

    async fn log_feedback(&mut self, text: String) -> Result<u64, HostError> {
        store::Host::log_feedback(self, text).await
    }
}

impl v0_1::log::Host for GuestCtx {
    async fn log(&mut self, level: v0_1::log::Level, message: String) -> wasmtime::Result<()> {
        use v0_1::log::Level as Old;
        let level = match level {
            Old::Trace => log::Level::Trace,
            Old::Debug => log::Level::Debug,
            Old::Info => log::Level::Info,
            Old::Warn => log::Level::Warn,
            Old::Error => log::Level::Error,
        };
        log::Host::log(self, level, message).await
    }
}

impl v0_1::commands::Host for GuestCtx {
    async fn list(&mut self) -> Result<Vec<v0_1::commands::Entry>, HostError> {
        Ok(commands::Host::list(self)
            .await?
            .into_iter()
            .map(|e| v0_1::commands::Entry {
                name: e.name,
                info: old_command_info(e.info),
                operators_only: e.operators_only,
            })
            .collect())
    }

    async fn versions(&mut self) -> Result<Vec<v0_1::commands::Version>, HostError> {
        Ok(commands::Host::versions(self)
            .await?
            .into_iter()
            .map(|v| v0_1::commands::Version {
                name: v.name,
                sha256: v.sha256,
                loaded_at: v.loaded_at,
                cached: v.cached,
                missing_grants: v.missing_grants,
            })
            .collect())
    }

    async fn reload(&mut self) -> Result<Vec<String>, HostError> {
        commands::Host::reload(self).await
    }
}
