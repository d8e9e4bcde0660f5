//! `files`: read-only access to the roots granted to the command, through
//! the capability handles opened when the config loaded.

use std::sync::Arc;

use crate::bindings::{files, types};
use crate::config::HostFn;
use crate::host::{GuestCtx, HostError};
use crate::services::files::Root;
use crate::services::CancelOnDrop;

impl GuestCtx {
    /// The root named `name`, if this command may read it.
    fn root(&self, name: &str) -> Result<Arc<Root>, HostError> {
        if !self.command.read.iter().any(|r| r == name) {
            tracing::warn!(command = %self.command.name, root = name, "denied: root not granted");
            return Err(HostError::Denied(format!("the folder `{name}` is not granted to this command")));
        }
        self.services
            .roots
            .get(name)
            .cloned()
            .ok_or_else(|| HostError::NotFound(format!("no folder `{name}` is configured")))
    }
}

impl files::Host for GuestCtx {
    async fn read_file(&mut self, root: String, path: String) -> Result<types::File, HostError> {
        self.check(HostFn::FilesReadFile)?;
        let handle = self.root(&root)?;
        let limit = self.command.limits.file_bytes;
        let name = path.rsplit(['/', '\\']).find(|s| !s.is_empty()).unwrap_or(&root).to_string();
        let data = tokio::task::spawn_blocking(move || handle.read(&path, limit))
            .await
            .map_err(|e| HostError::Failed(e.to_string()))??;
        Ok(types::File { name, data })
    }

    async fn archive(&mut self, root: String, path: String) -> Result<types::File, HostError> {
        self.check(HostFn::FilesArchive)?;
        let handle = self.root(&root)?;
        let limit = self.command.limits.file_bytes;
        let folder = path.trim().trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_string();
        // Stops with the guest: its deadline drops this future.
        let cancel = CancelOnDrop::new();
        let flag = cancel.flag();
        let data = tokio::task::spawn_blocking(move || handle.archive(&path, limit, &flag))
            .await
            .map_err(|e| HostError::Failed(e.to_string()))??;
        drop(cancel);
        let name = if folder.is_empty() || folder == ".." || folder == "." { root } else { folder };
        Ok(types::File { name: format!("{name}.zip"), data })
    }

    async fn list_dir(&mut self, root: String, path: String) -> Result<Vec<files::DirEntry>, HostError> {
        self.check(HostFn::FilesListDir)?;
        let handle = self.root(&root)?;
        let entries = tokio::task::spawn_blocking(move || handle.list(&path))
            .await
            .map_err(|e| HostError::Failed(e.to_string()))??;
        Ok(entries.into_iter().map(|e| files::DirEntry { name: e.name, is_dir: e.is_dir, size: e.size }).collect())
    }
}
