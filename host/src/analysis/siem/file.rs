//! NDJSON files: one event per line, appended whole, rotated by size.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use serde_json::Value;

use super::{EventSink, SiemError};

/// When lines reach the disk (not just the page cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Only on [`NdjsonFile::flush`], rotation and drop; a power loss may cost the lines
    /// since (a process crash costs nothing: every line is in the kernel once written).
    OnFlush,
    /// After every line (slow; for low-volume alert files).
    EveryLine,
    /// After every N lines.
    EveryLines(u32),
}

/// Where and how an NDJSON file is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    /// The live file; rotated files are `<path>.1` (newest) to `<path>.<keep>`.
    pub path: PathBuf,
    /// Rotate before a line would take the file over this size; 0 never rotates.
    pub max_bytes: u64,
    /// Rotated files kept (at least 1 when rotating).
    pub keep: u32,
    /// When to fsync.
    pub fsync: FsyncPolicy,
}

impl FileConfig {
    /// `path`, no rotation, fsync on flush.
    pub fn new(path: impl Into<PathBuf>) -> FileConfig {
        FileConfig {
            path: path.into(),
            max_bytes: 0,
            keep: 0,
            fsync: FsyncPolicy::OnFlush,
        }
    }
}

/// An append-only file of whole lines.
#[derive(Debug)]
pub struct NdjsonFile {
    cfg: FileConfig,
    file: File,
    size: u64,
    unsynced: u32,
    buf: Vec<u8>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SiemError + '_ {
    move |source| SiemError::File {
        path: path.to_owned(),
        source,
    }
}

/// Cuts a torn last line (no trailing newline) off `path`, returning the new length.
fn repair(path: &Path) -> Result<u64, SiemError> {
    let mut f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(path)(e)),
    };
    let len = f.metadata().map_err(io_err(path))?.len();
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    // Scan back from the end for the last newline.
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start)).map_err(io_err(path))?;
        f.read_exact(&mut chunk[..n]).map_err(io_err(path))?;
        if let Some(i) = chunk[..n].iter().rposition(|&b| b == b'\n') {
            end = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    if end != len {
        tracing::warn!(path = %path.display(), cut = len - end, "cutting a torn last line");
        f.set_len(end).map_err(io_err(path))?;
        f.sync_all().map_err(io_err(path))?;
    }
    Ok(end)
}

impl NdjsonFile {
    /// Opens (creating) the file for appending, after cutting off a torn last line.
    pub fn open(cfg: FileConfig) -> Result<NdjsonFile, SiemError> {
        if cfg.max_bytes > 0 && cfg.keep == 0 {
            return Err(SiemError::Config {
                field: "keep",
                reason: "must be at least 1 when max_bytes rotates the file".into(),
            });
        }
        if let FsyncPolicy::EveryLines(0) = cfg.fsync {
            return Err(SiemError::Config {
                field: "fsync",
                reason: "EveryLines needs at least 1".into(),
            });
        }
        let size = repair(&cfg.path)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cfg.path)
            .map_err(io_err(&cfg.path))?;
        Ok(NdjsonFile {
            cfg,
            file,
            size,
            unsynced: 0,
            buf: Vec::new(),
        })
    }

    /// The live file's path.
    pub fn path(&self) -> &Path {
        &self.cfg.path
    }

    /// Appends `line` and a newline in one write. The line must not hold a newline itself
    /// (compact JSON never does).
    pub fn write_line(&mut self, line: &[u8]) -> Result<(), SiemError> {
        if line.contains(&b'\n') {
            return Err(SiemError::Config {
                field: "line",
                reason: "an NDJSON line cannot contain a newline".into(),
            });
        }
        let need = line.len() as u64 + 1;
        if self.cfg.max_bytes > 0 && self.size > 0 && self.size + need > self.cfg.max_bytes {
            self.rotate()?;
        }
        self.buf.clear();
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
        self.file
            .write_all(&self.buf)
            .map_err(io_err(&self.cfg.path))?;
        self.size += need;
        self.unsynced += 1;
        match self.cfg.fsync {
            FsyncPolicy::EveryLine => self.sync()?,
            FsyncPolicy::EveryLines(n) if self.unsynced >= n => self.sync()?,
            _ => {}
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), SiemError> {
        self.file.sync_data().map_err(io_err(&self.cfg.path))?;
        self.unsynced = 0;
        Ok(())
    }

    /// The path of rotated file `n` (1 is the newest).
    pub fn rotated_path(&self, n: u32) -> PathBuf {
        let mut p = self.cfg.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    /// Moves the live file to `.1` (shifting older ones, dropping the oldest) and starts a
    /// new one.
    pub fn rotate(&mut self) -> Result<(), SiemError> {
        self.sync()?;
        let keep = self.cfg.keep.max(1);
        for n in (1..keep).rev() {
            let from = self.rotated_path(n);
            if from.exists() {
                let to = self.rotated_path(n + 1);
                std::fs::rename(&from, &to).map_err(io_err(&from))?;
            }
        }
        let first = self.rotated_path(1);
        std::fs::rename(&self.cfg.path, &first).map_err(io_err(&self.cfg.path))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.cfg.path)
            .map_err(io_err(&self.cfg.path))?;
        self.size = 0;
        tracing::debug!(path = %self.cfg.path.display(), "rotated");
        Ok(())
    }

    /// Syncs what was written to disk.
    pub fn flush(&mut self) -> Result<(), SiemError> {
        self.sync()
    }
}

impl Drop for NdjsonFile {
    fn drop(&mut self) {
        if self.unsynced > 0
            && let Err(e) = self.file.sync_data()
        {
            tracing::warn!(path = %self.cfg.path.display(), error = %e, "fsync on close failed");
        }
    }
}

/// EVE events as NDJSON (Suricata's own `eve.json` format).
#[derive(Debug)]
pub struct EveFileSink {
    file: NdjsonFile,
}

impl EveFileSink {
    /// Opens the file (see [`NdjsonFile::open`]).
    pub fn open(cfg: FileConfig) -> Result<EveFileSink, SiemError> {
        Ok(EveFileSink {
            file: NdjsonFile::open(cfg)?,
        })
    }

    /// The file underneath.
    pub fn file(&mut self) -> &mut NdjsonFile {
        &mut self.file
    }
}

impl EventSink for EveFileSink {
    fn send(&mut self, event: &Value) -> Result<(), SiemError> {
        if !event.is_object() {
            return Err(SiemError::Event(super::EveError::NotObject(
                "not an object",
            )));
        }
        self.file.write_line(event.to_string().as_bytes())
    }

    fn flush(&mut self) -> Result<(), SiemError> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("shadownet-siem-file-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn torn_last_line_is_cut_on_open() {
        let d = tmp("torn");
        let p = d.join("eve.json");
        std::fs::write(&p, b"{\"a\":1}\n{\"b\":2}\n{\"c\":").expect("write");
        let mut f = NdjsonFile::open(FileConfig::new(&p)).expect("open");
        f.write_line(br#"{"d":4}"#).expect("line");
        drop(f);
        assert_eq!(
            std::fs::read_to_string(&p).expect("read"),
            "{\"a\":1}\n{\"b\":2}\n{\"d\":4}\n"
        );
        // A file holding only a torn line becomes empty.
        std::fs::write(&p, b"{\"x\"").expect("write");
        drop(NdjsonFile::open(FileConfig::new(&p)).expect("open"));
        assert_eq!(std::fs::read(&p).expect("read"), b"");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn rotates_by_size_and_keeps_n_files() {
        let d = tmp("rotate");
        let p = d.join("eve.json");
        let cfg = FileConfig {
            path: p.clone(),
            max_bytes: 30,
            keep: 2,
            fsync: FsyncPolicy::EveryLines(2),
        };
        let mut s = EveFileSink::open(cfg).expect("open");
        for i in 0..10 {
            s.send(&serde_json::json!({"n": i, "pad": "xxxx"}))
                .expect("send");
        }
        s.flush().expect("flush");
        let read = |p: &Path| std::fs::read_to_string(p).expect("read");
        // Each line is 21 bytes, so every file holds one line; two rotated files are kept.
        assert_eq!(read(&p), "{\"n\":9,\"pad\":\"xxxx\"}\n");
        assert_eq!(
            read(&s.file().rotated_path(1)),
            "{\"n\":8,\"pad\":\"xxxx\"}\n"
        );
        assert_eq!(
            read(&s.file().rotated_path(2)),
            "{\"n\":7,\"pad\":\"xxxx\"}\n"
        );
        assert!(!s.file().rotated_path(3).exists());
        for line in read(&p).lines() {
            serde_json::from_str::<Value>(line).expect("whole JSON lines");
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn bad_settings_and_lines_are_refused() {
        let d = tmp("bad");
        let mut cfg = FileConfig::new(d.join("x"));
        cfg.max_bytes = 10;
        assert!(
            NdjsonFile::open(cfg)
                .unwrap_err()
                .to_string()
                .contains("keep")
        );
        let mut f = NdjsonFile::open(FileConfig::new(d.join("y"))).expect("open");
        assert!(f.write_line(b"a\nb").is_err());
        assert_eq!(
            std::fs::read(d.join("y")).expect("read"),
            b"",
            "nothing written"
        );
        let mut s = EveFileSink::open(FileConfig::new(d.join("z"))).expect("open");
        assert!(s.send(&serde_json::json!([1])).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }
}
