//! Granted folders and files, reached only through capability handles.
//!
//! A [`Root`] is opened once, when the config loads. Every later lookup goes
//! through `cap_std::fs::Dir`, which refuses `..` that climbs out, absolute
//! paths and symlinks that point outside — the kernel-level guarantee a
//! string check on the path cannot give.

use std::io::{self, Read, Seek, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cap_std::ambient_authority;
#[cfg(unix)]
use cap_std::fs::OpenOptionsExt;
use cap_std::fs::{Dir, OpenOptions};

/// A folder, or a single file, the operator made readable to commands.
#[derive(Debug)]
pub enum Root {
    Dir(Dir),
    /// One file: its folder's handle and its name in it.
    File {
        dir: Dir,
        name: String,
    },
}

/// Why a read failed, in terms a guest can be told.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FileError {
    #[error("no such file or folder")]
    NotFound,
    #[error("the path leaves the folder or cannot be read")]
    OutsideOrUnreadable,
    #[error("{0}")]
    Invalid(&'static str),
    #[error("{size} bytes is over the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("the archive grew past the limit of {limit} bytes")]
    ArchiveTooLarge { limit: u64 },
    #[error("more than {limit} {what}")]
    TooMany { what: &'static str, limit: usize },
    #[error("nobody waits for it any more")]
    Cancelled,
    #[error("{0}")]
    Io(String),
}

impl From<io::Error> for FileError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => FileError::NotFound,
            // cap-std reports an escape attempt as PermissionDenied.
            io::ErrorKind::PermissionDenied => FileError::OutsideOrUnreadable,
            _ => FileError::Io(e.to_string()),
        }
    }
}

/// Entries one listing returns: a folder of millions would otherwise be
/// read whole on the blocking pool, and sent whole to the guest.
pub const MAX_LISTED: usize = 1000;

/// Files and folders one archive may hold, empty ones included.
pub const MAX_ARCHIVED: usize = 10_000;

/// Folders inside folders an archive descends.
pub const MAX_DEPTH: usize = 16;

/// One entry of a folder listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
}

impl Root {
    /// Opens `path` (a folder or a file) with ambient authority: this is
    /// the one place the operator's paths turn into capabilities.
    pub fn open(path: &Path) -> io::Result<Root> {
        if path.is_dir() {
            return Ok(Root::Dir(Dir::open_ambient_dir(path, ambient_authority())?));
        }
        if !path.is_file() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such file or folder"));
        }
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "file name is not UTF-8"))?;
        Ok(Root::File { dir: Dir::open_ambient_dir(parent, ambient_authority())?, name: name.to_string() })
    }

    /// Reads a whole regular file, at most `limit` bytes. Blocking.
    pub fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, FileError> {
        let (dir, path) = self.locate(path)?;
        let mut options = OpenOptions::new();
        options.read(true);
        // Never block in `open` on a FIFO someone left in the folder; the
        // checks below run on the handle itself, so nothing can be swapped
        // in between.
        #[cfg(unix)]
        options.custom_flags(libc::O_NONBLOCK);
        let file = dir.open_with(path, &options)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(FileError::Invalid("that is a folder, not a file"));
        }
        if !meta.is_file() {
            return Err(FileError::Invalid("that is not a regular file"));
        }
        if meta.len() > limit {
            return Err(FileError::TooLarge { size: meta.len(), limit });
        }
        let mut data = Vec::with_capacity(meta.len() as usize);
        // `take` guards against a file that grew after the check.
        file.take(limit + 1).read_to_end(&mut data)?;
        if data.len() as u64 > limit {
            return Err(FileError::TooLarge { size: data.len() as u64, limit });
        }
        Ok(data)
    }

    /// Lists a folder inside the root ("" for the root), sorted by name.
    /// Blocking.
    pub fn list(&self, path: &str) -> Result<Vec<Entry>, FileError> {
        let Root::Dir(root) = self else {
            return Err(FileError::Invalid("this root is a single file"));
        };
        let path = clean(path)?;
        let listing = if path.is_empty() { root.entries()? } else { root.read_dir(path)? };
        let mut entries = Vec::new();
        for entry in listing {
            if entries.len() == MAX_LISTED {
                return Err(FileError::TooMany { what: "entries in the folder", limit: MAX_LISTED });
            }
            let entry = entry?;
            let meta = entry.metadata()?;
            entries.push(Entry {
                name: entry.file_name().to_string_lossy().into_owned(),
                is_dir: meta.is_dir(),
                size: meta.len(),
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Zips the folder `path` (files and subfolders, not symlinks). The
    /// bot's own database files are left out: they are not a consistent
    /// copy while the bot runs. Refused as soon as the files add up to more
    /// than four times `limit`, the archive to more than `limit`, the
    /// entries to [`MAX_ARCHIVED`] or the depth to [`MAX_DEPTH`]; stops
    /// when `cancel` is set. Blocking.
    pub fn archive(&self, path: &str, limit: u64, cancel: &AtomicBool) -> Result<Vec<u8>, FileError> {
        let Root::Dir(root) = self else {
            return Err(FileError::Invalid("this root is a single file"));
        };
        let path = clean(path)?;
        if path.is_empty() {
            return Err(FileError::Invalid("a folder name is needed"));
        }
        let folder = root.open_dir(path)?;
        let over = Arc::new(AtomicBool::new(false));
        let written = Capped { data: io::Cursor::new(Vec::new()), limit, over: over.clone() };
        let mut archive = Archive {
            zip: zip::ZipWriter::new(written),
            files_bytes: 0,
            files_cap: limit.saturating_mul(4),
            entries: 0,
            cancel,
        };
        let zipped = archive.add_folder(&folder, "", 0).and_then(|()| {
            archive.zip.finish().map_err(|e| FileError::Io(e.to_string())).map(|capped| capped.data.into_inner())
        });
        match zipped {
            Err(_) if over.load(Ordering::Relaxed) => Err(FileError::ArchiveTooLarge { limit }),
            other => other,
        }
    }

    fn locate<'a>(&'a self, path: &'a str) -> Result<(&'a Dir, &'a str), FileError> {
        match self {
            Root::File { dir, name } if path.is_empty() => Ok((dir, name)),
            Root::File { .. } => Err(FileError::Invalid("this root is a single file; read it with an empty path")),
            Root::Dir(dir) => {
                let path = clean(path)?;
                if path.is_empty() {
                    return Err(FileError::Invalid("a file name is needed"));
                }
                Ok((dir, path))
            }
        }
    }
}

/// The archive's bytes, refusing to grow past `limit` (and saying so in
/// `over`, since the zip writer wraps the error).
struct Capped {
    data: io::Cursor<Vec<u8>>,
    limit: u64,
    over: Arc<AtomicBool>,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.data.position().saturating_add(buf.len() as u64) > self.limit {
            self.over.store(true, Ordering::Relaxed);
            return Err(io::Error::other("the archive is over its limit"));
        }
        self.data.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Capped {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        self.data.seek(to)
    }
}

/// One archive being written, and what it has used of its limits.
struct Archive<'a> {
    zip: zip::ZipWriter<Capped>,
    files_bytes: u64,
    files_cap: u64,
    entries: usize,
    cancel: &'a AtomicBool,
}

impl Archive<'_> {
    fn add_folder(&mut self, folder: &Dir, prefix: &str, depth: usize) -> Result<(), FileError> {
        if depth > MAX_DEPTH {
            return Err(FileError::TooMany { what: "folders inside folders", limit: MAX_DEPTH });
        }
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        let zip_error = |e: zip::result::ZipError| FileError::Io(e.to_string());
        let mut entries = Vec::new();
        for entry in folder.entries()? {
            // Counted as they are read: a folder of millions stops here.
            if self.entries + entries.len() >= MAX_ARCHIVED {
                return Err(FileError::TooMany { what: "files and folders", limit: MAX_ARCHIVED });
            }
            entries.push(entry?);
        }
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(FileError::Cancelled);
            }
            self.entries += 1;
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = entry.file_type()?;
            let inner = format!("{prefix}{name}");
            if kind.is_dir() {
                self.zip.add_directory(format!("{inner}/"), options).map_err(zip_error)?;
                self.add_folder(&entry.open_dir()?, &format!("{inner}/"), depth + 1)?;
            } else if kind.is_file() && !(name == "sandbot.db" || name.starts_with("sandbot.db-")) {
                let mut open = OpenOptions::new();
                open.read(true);
                // A FIFO swapped in after the listing must not block us.
                #[cfg(unix)]
                open.custom_flags(libc::O_NONBLOCK);
                let file = entry.open_with(&open)?;
                let meta = file.metadata()?;
                if !meta.is_file() {
                    continue;
                }
                self.files_bytes = self.files_bytes.saturating_add(meta.len());
                if self.files_bytes > self.files_cap {
                    return Err(FileError::TooLarge { size: self.files_bytes, limit: self.files_cap });
                }
                self.zip.start_file(inner, options).map_err(zip_error)?;
                io::copy(&mut file.take(meta.len()), &mut self.zip)?;
            }
        }
        Ok(())
    }
}

/// Rejects what is never a valid relative path; everything else is left to
/// cap-std, which is what actually enforces the confinement.
fn clean(path: &str) -> Result<&str, FileError> {
    if path.contains('\0') {
        return Err(FileError::Invalid("the path contains a NUL byte"));
    }
    Ok(path.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 32, failure_persistence: None, ..Default::default() })]
        /// Any small tree of files and folders zips and reads back (by the
        /// zip crate's reader) to the same names and bytes.
        #[test]
        fn fuzz_archives_read_back_as_written(files in proptest::collection::btree_map(
            "[a-z]{1,6}(/[a-z]{1,6}){0,3}",
            proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            0..12,
        )) {
            let top = tempfile::tempdir().unwrap();
            let folder = top.path().join("tree");
            std::fs::create_dir(&folder).unwrap();
            let mut written = std::collections::BTreeMap::new();
            for (path, bytes) in &files {
                let target = folder.join(path);
                // A name already taken by a folder (or under a file) is skipped.
                if std::fs::create_dir_all(target.parent().unwrap()).is_ok() && !target.exists() && std::fs::write(&target, bytes).is_ok() {
                    written.insert(path.clone(), bytes.clone());
                }
            }
            let root = Root::open(top.path()).unwrap();
            let zipped = root.archive("tree", 1 << 20, &go()).unwrap();
            let mut archive = zip::ZipArchive::new(io::Cursor::new(zipped)).unwrap();
            let mut read = std::collections::BTreeMap::new();
            for i in 0..archive.len() {
                let mut entry = archive.by_index(i).unwrap();
                if entry.is_file() {
                    let mut bytes = Vec::new();
                    entry.read_to_end(&mut bytes).unwrap();
                    read.insert(entry.name().unwrap().to_string(), bytes);
                }
            }
            proptest::prop_assert_eq!(read, written);
        }
    }

    /// Not cancelled.
    fn go() -> AtomicBool {
        AtomicBool::new(false)
    }

    /// The review's findings: listings had no cap, and archives descended
    /// without a depth limit, counted neither folders nor empty files, and
    /// checked the zip's size only once it was finished.
    #[test]
    fn listings_and_archives_stop_at_their_limits() {
        let top = tempfile::tempdir().unwrap();
        let many = top.path().join("many");
        std::fs::create_dir(&many).unwrap();
        for i in 0..=MAX_ARCHIVED {
            std::fs::File::create(many.join(format!("{i:05}"))).unwrap();
        }
        let mut deep = top.path().join("deep");
        for _ in 0..=MAX_DEPTH + 1 {
            deep = deep.join("d");
        }
        std::fs::create_dir_all(&deep).unwrap();
        // xorshift64: bytes deflate cannot shrink.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 56) as u8
            })
            .collect();
        std::fs::create_dir(top.path().join("noisy")).unwrap();
        std::fs::write(top.path().join("noisy/noise.bin"), &noise).unwrap();
        let root = Root::open(top.path()).unwrap();

        let listed = root.list("many").unwrap_err();
        assert_eq!(listed, FileError::TooMany { what: "entries in the folder", limit: MAX_LISTED });
        let archived = root.archive("many", 1 << 30, &go()).unwrap_err();
        assert_eq!(archived, FileError::TooMany { what: "files and folders", limit: MAX_ARCHIVED });
        let deep = root.archive("deep", 1 << 30, &go()).unwrap_err();
        assert_eq!(deep, FileError::TooMany { what: "folders inside folders", limit: MAX_DEPTH });
        // Incompressible: the zip passes its limit while it is written.
        let noisy = root.archive("noisy", 100_000, &go()).unwrap_err();
        assert_eq!(noisy, FileError::ArchiveTooLarge { limit: 100_000 });
        assert_eq!(root.archive("noisy", 1 << 20, &AtomicBool::new(true)).unwrap_err(), FileError::Cancelled);
        assert!(root.archive("noisy", 1 << 20, &go()).is_ok());
    }

    fn fixture() -> (tempfile::TempDir, Root) {
        let top = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(top.path().join("shared/sub")).unwrap();
        std::fs::write(top.path().join("secret.txt"), "secret").unwrap();
        std::fs::write(top.path().join("shared/a.txt"), "hello").unwrap();
        std::fs::write(top.path().join("shared/sub/b.txt"), "world").unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(top.path().join("secret.txt"), top.path().join("shared/link")).unwrap();
            std::os::unix::fs::symlink("sub/b.txt", top.path().join("shared/inner-link")).unwrap();
        }
        let root = Root::open(&top.path().join("shared")).unwrap();
        (top, root)
    }

    #[test]
    fn reads_inside() {
        let (_top, root) = fixture();
        assert_eq!(root.read("a.txt", 100).unwrap(), b"hello");
        assert_eq!(root.read("sub/b.txt", 100).unwrap(), b"world");
        assert_eq!(root.read("sub/../a.txt", 100).unwrap(), b"hello");
        assert_eq!(root.read("inner-link", 100).unwrap(), b"world");
    }

    #[test]
    fn refuses_escapes() {
        let (top, root) = fixture();
        for path in ["../secret.txt", "sub/../../secret.txt", "link", "/etc/passwd", "../../../../etc/passwd"] {
            assert_eq!(root.read(path, 100), Err(FileError::OutsideOrUnreadable), "{path}");
        }
        let absolute = top.path().join("secret.txt");
        assert_eq!(root.read(absolute.to_str().unwrap(), 100), Err(FileError::OutsideOrUnreadable));
    }

    #[test]
    fn refuses_folders_missing_and_large() {
        let (_top, root) = fixture();
        assert_eq!(root.read("sub", 100), Err(FileError::Invalid("that is a folder, not a file")));
        assert_eq!(root.read("nope.txt", 100), Err(FileError::NotFound));
        assert_eq!(root.read("a.txt", 3), Err(FileError::TooLarge { size: 5, limit: 3 }));
        assert_eq!(root.read("", 100), Err(FileError::Invalid("a file name is needed")));
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let (top, root) = fixture();
        let fifo = top.path().join("shared/pipe");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(status.success());
        assert_eq!(root.read("pipe", 100), Err(FileError::Invalid("that is not a regular file")));
    }

    #[test]
    fn archives_a_folder_and_reads_back() {
        let (_top, root) = fixture();
        std::fs::write(_top.path().join("shared/sandbot.db"), "not for the archive").unwrap();
        let data = root.archive("", 1 << 20, &go()).unwrap_err();
        assert_eq!(data, FileError::Invalid("a folder name is needed"));
        std::fs::create_dir_all(_top.path().join("shared/sub/deeper")).unwrap();
        std::fs::write(_top.path().join("shared/sub/deeper/c.txt"), "deep").unwrap();
        let zipped = root.archive("sub", 1 << 20, &go()).unwrap();
        let mut archive = zip::ZipArchive::new(io::Cursor::new(zipped)).unwrap();
        let mut names: Vec<String> = archive.file_names().map(|n| n.unwrap().to_string()).collect();
        names.sort();
        assert_eq!(names, ["b.txt", "deeper/", "deeper/c.txt"]);
        let mut text = String::new();
        archive.by_name("deeper/c.txt").unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "deep");
        assert_eq!(root.archive("..", 1 << 20, &go()).unwrap_err(), FileError::OutsideOrUnreadable);
        assert!(matches!(root.archive("sub", 10, &go()), Err(FileError::ArchiveTooLarge { limit: 10 })));
    }

    #[test]
    fn lists_sorted() {
        let (_top, root) = fixture();
        let names: Vec<_> = root.list("").unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["a.txt", "inner-link", "link", "sub"]);
        assert_eq!(root.list("..").unwrap_err(), FileError::OutsideOrUnreadable);
    }

    #[test]
    fn single_file_root() {
        let (top, _) = fixture();
        let root = Root::open(&top.path().join("secret.txt")).unwrap();
        assert_eq!(root.read("", 100).unwrap(), b"secret");
        assert!(matches!(root.read("x", 100), Err(FileError::Invalid(_))));
    }
}
