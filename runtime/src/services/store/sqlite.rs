//! The embedded store: one SQLite file in the data folder.
//!
//! WAL with `synchronous = FULL`: a row is on disk when `log_*` returns, so
//! a `kill -9` (or a power cut) right after the reply loses nothing.
//! rusqlite is blocking, so every call runs on tokio's blocking pool.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection};
use serde_json::json;

use super::{Correction, Feedback, Store, StoreError, Table};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS corrections (
    id                   INTEGER PRIMARY KEY,
    created_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    author_id            TEXT NOT NULL,
    author_name          TEXT NOT NULL,
    channel              TEXT NOT NULL,
    guild                TEXT,
    message_id           TEXT NOT NULL,
    corrected_message_id TEXT NOT NULL,
    original             TEXT NOT NULL,
    correction           TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id          INTEGER PRIMARY KEY,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    author_id   TEXT NOT NULL,
    author_name TEXT NOT NULL,
    channel     TEXT NOT NULL,
    guild       TEXT,
    message_id  TEXT NOT NULL,
    text        TEXT NOT NULL
);
";

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteStore { conn: Arc::new(Mutex::new(conn)) })
    }

    async fn write<F>(&self, f: F) -> Result<u64, StoreError>
    where
        F: FnOnce(&Connection) -> rusqlite::Result<usize> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&conn)?;
            Ok(conn.last_insert_rowid() as u64)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn log_correction(&self, c: Correction) -> Result<u64, StoreError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO corrections (author_id, author_name, channel, guild, message_id,
                                          corrected_message_id, original, correction)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    c.from.author_id,
                    c.from.author_name,
                    c.from.channel,
                    c.from.guild,
                    c.from.message_id,
                    c.corrected_message_id,
                    c.original,
                    c.correction
                ],
            )
        })
        .await
    }

    async fn log_feedback(&self, f: Feedback) -> Result<u64, StoreError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO feedback (author_id, author_name, channel, guild, message_id, text)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![f.from.author_id, f.from.author_name, f.from.channel, f.from.guild, f.from.message_id, f.text],
            )
        })
        .await
    }

    fn export(&self, table: Table, out: &mut dyn Write) -> Result<u64, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (sql, extra): (&str, &[&str]) = match table {
            Table::Corrections => (
                "SELECT id, created_at, author_id, author_name, channel, guild, message_id,
                        corrected_message_id, original, correction FROM corrections ORDER BY id",
                &["corrected_message_id", "original", "correction"],
            ),
            Table::Feedback => (
                "SELECT id, created_at, author_id, author_name, channel, guild, message_id, text
                 FROM feedback ORDER BY id",
                &["text"],
            ),
        };
        let mut stmt = conn.prepare(sql)?;
        let mut rows = stmt.query([])?;
        let mut count = 0;
        while let Some(row) = rows.next()? {
            let mut line = json!({
                "id": row.get::<_, i64>(0)?,
                "created_at": row.get::<_, String>(1)?,
                "author_id": row.get::<_, String>(2)?,
                "author_name": row.get::<_, String>(3)?,
                "channel": row.get::<_, String>(4)?,
                "guild": row.get::<_, Option<String>>(5)?,
                "message_id": row.get::<_, String>(6)?,
            });
            for (i, name) in extra.iter().enumerate() {
                line[*name] = json!(row.get::<_, String>(7 + i)?);
            }
            serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            count += 1;
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Provenance;
    use super::*;

    fn from() -> Provenance {
        Provenance {
            author_id: "7".into(),
            author_name: "ann".into(),
            channel: "general".into(),
            guild: Some("g".into()),
            message_id: "100".into(),
        }
    }

    #[tokio::test]
    async fn stores_and_exports_both_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let store = SqliteStore::open(&path).unwrap();
        let id = store
            .log_correction(Correction {
                from: from(),
                corrected_message_id: "42".into(),
                original: "2+2=5".into(),
                correction: "2+2=4".into(),
            })
            .await
            .unwrap();
        assert_eq!(id, 1);
        store.log_feedback(Feedback { from: from(), text: "nice".into() }).await.unwrap();
        drop(store);

        // A second process opening the same file sees everything.
        let store = SqliteStore::open(&path).unwrap();
        let mut out = Vec::new();
        assert_eq!(store.export(Table::Corrections, &mut out).unwrap(), 1);
        let row: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(row["correction"], "2+2=4");
        assert_eq!(row["author_name"], "ann");
        assert_eq!(row["corrected_message_id"], "42");
        assert!(row["created_at"].as_str().unwrap().ends_with('Z'));

        let mut out = Vec::new();
        assert_eq!(store.export(Table::Feedback, &mut out).unwrap(), 1);
        let row: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(row["text"], "nice");
    }
}
