//! `commands`: the loaded commands, for `!help`, and their versions and
//! reloading, for operators (`!commands`, `!reload`).

use crate::bindings::commands;
use crate::config::HostFn;
use crate::host::{GuestCtx, HostError};

impl commands::Host for GuestCtx {
    async fn list(&mut self) -> Result<Vec<commands::Entry>, HostError> {
        // Even when denied: a grant added later is then seen at the next
        // reload, which describes it again.
        self.read_command_list = true;
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

    async fn versions(&mut self) -> Result<Vec<commands::Version>, HostError> {
        self.check(HostFn::CommandsVersions)?;
        Ok(self
            .registry
            .snapshot()
            .values()
            .map(|c| commands::Version {
                name: c.config.name.clone(),
                sha256: c.sha256.clone(),
                loaded_at: c.loaded_at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                cached: c.cached,
                missing_grants: c.config.grants.missing(&c.info.needs).into_iter().map(String::from).collect(),
            })
            .collect())
    }

    async fn outcomes(&mut self) -> Result<Vec<commands::OutcomeCounts>, HostError> {
        self.check(HostFn::CommandsOutcomes)?;
        let recent = crate::telemetry::recent::recent();
        Ok(self
            .registry
            .snapshot()
            .values()
            .map(|c| {
                let summary = recent.command(&c.config.name).summary();
                let count = |cause: &str| summary.causes.get(cause).copied().unwrap_or(0);
                // A denied call does not end an invocation: not an outcome.
                let ended: u64 =
                    summary.causes.iter().filter(|(cause, _)| **cause != "denied_call").map(|(_, n)| n).sum();
                let (usage, replied, failed) = (count("usage"), count("error_reply"), count("guest_failed"));
                commands::OutcomeCounts {
                    name: c.config.name.clone(),
                    answered: summary.invocations.saturating_sub(ended),
                    usage,
                    replied,
                    failed,
                    stopped: ended.saturating_sub(usage + replied + failed),
                }
            })
            .collect())
    }

    async fn reload(&mut self) -> Result<Vec<String>, HostError> {
        self.check(HostFn::CommandsReload)?;
        let report = self.registry.request_reload().await.map_err(HostError::Unavailable)?;
        Ok(report.lines())
    }
}
