//! `model`: answers, training and predictions. No provider is configured
//! in this build yet, so every function answers `unavailable`.

use crate::bindings::model;
use crate::config::HostFn;
use crate::host::{GuestCtx, HostError};

const NO_MODEL: &str = "no language model is set up in this build of the bot";

impl model::Host for GuestCtx {
    async fn call_model(&mut self, _prompt: String) -> Result<String, HostError> {
        self.check(HostFn::ModelCallModel)?;
        Err(HostError::Unavailable(NO_MODEL.into()))
    }

    async fn train(&mut self, _examples: Vec<model::Example>) -> Result<model::Job, HostError> {
        self.check(HostFn::ModelTrain)?;
        Err(HostError::Unavailable(NO_MODEL.into()))
    }

    async fn job_status(&mut self, _id: String) -> Result<model::Job, HostError> {
        self.check(HostFn::ModelJobStatus)?;
        Err(HostError::Unavailable(NO_MODEL.into()))
    }

    async fn predict(&mut self, _input: String) -> Result<String, HostError> {
        self.check(HostFn::ModelPredict)?;
        Err(HostError::Unavailable(NO_MODEL.into()))
    }
}
