//! `commands`: the loaded commands, for `!help`.

use crate::bindings::commands;
use crate::config::HostFn;
use crate::host::{GuestCtx, HostError};

impl commands::Host for GuestCtx {
    async fn list(&mut self) -> Result<Vec<commands::Entry>, HostError> {
        self.check(HostFn::CommandsList)?;
        Ok(self
            .registry
            .snapshot()
            .values()
            .map(|c| commands::Entry {
                name: c.config.name.clone(),
                info: c.info.clone(),
                operators_only: c.config.operators_only,
            })
            .collect())
    }
}
