//! Following `eve.json` as Suricata writes it.
//!
//! Suricata appends one JSON object per line, but a reader can catch a line half written,
//! the file can be rotated (renamed, a new one created) or truncated. [`EveTail`] hands out
//! complete lines only, keeps the partial rest for the next read, notices rotation (another
//! file at the path) and truncation (the file shorter than what was read), and reports the
//! offset after the last complete line so a follower started again resumes where it stopped.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use serde_json::Value;

use super::SuricataError;

/// What a tail has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailStats {
    /// Complete lines handed out as events.
    pub events: u64,
    /// Complete lines that were not a JSON object (skipped, logged).
    pub bad_lines: u64,
    /// Times another file appeared at the path.
    pub rotations: u64,
    /// Times the file became shorter than what had been read.
    pub truncations: u64,
    /// Bytes of an unfinished last line dropped because the file was rotated or truncated
    /// before the line was finished.
    pub dropped_partial_bytes: u64,
}

/// A reader that follows one EVE file.
#[derive(Debug)]
pub struct EveTail {
    path: PathBuf,
    file: Option<File>,
    /// (device, inode) of the open file.
    identity: Option<(u64, u64)>,
    /// Offset just after the last complete line handed out.
    offset: u64,
    /// Bytes after `offset` already read: the start of an unfinished line.
    partial: Vec<u8>,
    /// The last bytes (up to [`FINGERPRINT`]) before `offset`: a truncated file rewritten
    /// past the old length between two polls no longer has them there.
    fingerprint: Vec<u8>,
    stats: TailStats,
}

const FINGERPRINT: usize = 64;

impl EveTail {
    /// A tail of `path` that starts at `offset` (0 for the beginning; an offset from
    /// [`EveTail::offset`] to resume). The file need not exist yet.
    pub fn new(path: &Path, offset: u64) -> EveTail {
        EveTail {
            path: path.to_path_buf(),
            file: None,
            identity: None,
            offset,
            partial: Vec::new(),
            fingerprint: Vec::new(),
            stats: TailStats::default(),
        }
    }

    /// Offset just after the last complete line handed out.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// What this tail has seen.
    pub fn stats(&self) -> TailStats {
        self.stats
    }

    /// Reads what was appended since the last call and hands every complete line to `f`, in
    /// order. Returns how many events were handed out. A missing file is not an error (it
    /// is not written yet).
    pub fn poll(&mut self, f: &mut dyn FnMut(Value)) -> Result<usize, SuricataError> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Rotated away and not created again yet: finish the old file.
                return self.drain_open(f);
            }
            Err(e) => return Err(SuricataError::io(&self.path, e)),
        };
        let id = (meta.dev(), meta.ino());
        let mut n = 0;
        if self.identity.is_some() && self.identity != Some(id) {
            // Rotated: what the old file still holds comes first, then the new file from 0.
            n += self.drain_open(f)?;
            self.stats.rotations += 1;
            self.drop_partial();
            self.fingerprint.clear();
            self.file = None;
            self.offset = 0;
        }
        if self.file.is_none() {
            let file = File::open(&self.path).map_err(|e| SuricataError::io(&self.path, e))?;
            self.file = Some(file);
            self.identity = Some(id);
        }
        let read_to = self.offset + self.partial.len() as u64;
        if meta.len() < read_to || !self.fingerprint_matches()? {
            // Truncated (copytruncate rotation or a restart without append): start over.
            self.stats.truncations += 1;
            self.drop_partial();
            self.fingerprint.clear();
            self.offset = 0;
        }
        n += self.read_lines(f)?;
        Ok(n)
    }

    fn fingerprint_matches(&mut self) -> Result<bool, SuricataError> {
        let (Some(file), false) = (self.file.as_mut(), self.fingerprint.is_empty()) else {
            return Ok(true);
        };
        let len = self.fingerprint.len() as u64;
        let mut now = vec![0u8; self.fingerprint.len()];
        file.seek(SeekFrom::Start(self.offset - len))
            .and_then(|_| file.read_exact(&mut now))
            .map_or(Ok(false), |()| Ok(now == self.fingerprint))
    }

    fn drop_partial(&mut self) {
        self.stats.dropped_partial_bytes += self.partial.len() as u64;
        self.partial.clear();
    }

    fn drain_open(&mut self, f: &mut dyn FnMut(Value)) -> Result<usize, SuricataError> {
        if self.file.is_some() {
            self.read_lines(f)
        } else {
            Ok(0)
        }
    }

    fn read_lines(&mut self, f: &mut dyn FnMut(Value)) -> Result<usize, SuricataError> {
        let Some(file) = self.file.as_mut() else {
            return Ok(0);
        };
        let pos = self.offset + self.partial.len() as u64;
        file.seek(SeekFrom::Start(pos))
            .map_err(|e| SuricataError::io(&self.path, e))?;
        let mut buf = std::mem::take(&mut self.partial);
        file.read_to_end(&mut buf)
            .map_err(|e| SuricataError::io(&self.path, e))?;
        let mut n = 0;
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
            let line = &buf[start..start + nl];
            start += nl + 1;
            self.offset += (nl + 1) as u64;
            let text = line.strip_suffix(b"\r").unwrap_or(line);
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Value>(text) {
                Ok(v @ Value::Object(_)) => {
                    self.stats.events += 1;
                    n += 1;
                    f(v);
                }
                Ok(_) | Err(_) => {
                    self.stats.bad_lines += 1;
                    tracing::warn!(
                        path = %self.path.display(),
                        offset = self.offset,
                        "an EVE line is not a JSON object; skipped"
                    );
                }
            }
        }
        if start > 0 {
            let keep = start.min(FINGERPRINT);
            self.fingerprint.clear();
            self.fingerprint
                .extend_from_slice(&buf[start - keep..start]);
        }
        buf.drain(..start);
        self.partial = buf;
        Ok(n)
    }
}

/// A thread following an EVE file, handing each event to a callback.
#[derive(Debug)]
pub struct EveFollower {
    stop: Arc<AtomicBool>,
    offset: Arc<AtomicU64>,
    thread: Option<JoinHandle<TailStats>>,
}

impl EveFollower {
    /// Follows `path` from `offset`, polling every `interval`, and hands each event to
    /// `on_event` on the follower's thread.
    pub fn spawn(
        path: &Path,
        offset: u64,
        interval: Duration,
        mut on_event: Box<dyn FnMut(Value) + Send>,
    ) -> Result<EveFollower, SuricataError> {
        let stop = Arc::new(AtomicBool::new(false));
        let shared_offset = Arc::new(AtomicU64::new(offset));
        let mut tail = EveTail::new(path, offset);
        let (s, o) = (stop.clone(), shared_offset.clone());
        let thread = std::thread::Builder::new()
            .name("eve-follow".into())
            .spawn(move || {
                loop {
                    // Read once more after the stop request so nothing written before it
                    // is lost.
                    let stopping = s.load(Ordering::Acquire);
                    if let Err(e) = tail.poll(&mut *on_event) {
                        tracing::warn!(error = %e, "reading EVE");
                    }
                    o.store(tail.offset(), Ordering::Release);
                    if stopping {
                        break;
                    }
                    std::thread::sleep(interval);
                }
                tail.stats()
            })
            .map_err(|e| SuricataError::io(path, e))?;
        Ok(EveFollower {
            stop,
            offset: shared_offset,
            thread: Some(thread),
        })
    }

    /// Offset after the last complete line handed out so far.
    pub fn offset(&self) -> u64 {
        self.offset.load(Ordering::Acquire)
    }

    /// Reads what is left, stops, and returns the final offset (to resume from) and what
    /// the tail saw.
    pub fn stop(mut self) -> (u64, TailStats) {
        let stats = self.finish();
        (self.offset(), stats)
    }

    fn finish(&mut self) -> TailStats {
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(stats)) => stats,
            Some(Err(_)) => {
                tracing::error!("the EVE follower thread panicked");
                TailStats::default()
            }
            None => TailStats::default(),
        }
    }
}

impl Drop for EveFollower {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn collect(t: &mut EveTail) -> Vec<Value> {
        let mut v = Vec::new();
        t.poll(&mut |e| v.push(e)).expect("poll");
        v
    }

    fn append(path: &Path, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        f.write_all(bytes).expect("write");
    }

    #[test]
    fn half_lines_wait_for_their_end_and_offsets_resume() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("eve.json");
        let mut t = EveTail::new(&path, 0);
        assert!(collect(&mut t).is_empty(), "no file yet");
        append(&path, br#"{"event_type":"alert","n":1}"#);
        append(&path, b"\n{\"event_type\":\"fl");
        let got = collect(&mut t);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["n"], 1);
        let after_first = t.offset();
        assert_eq!(after_first, 29);
        assert!(
            collect(&mut t).is_empty(),
            "the half line is not handed out"
        );
        append(&path, b"ow\",\"n\":2}\nnot json\n{\"n\":3}\n");
        let got = collect(&mut t);
        assert_eq!(
            got.iter().map(|e| e["n"].clone()).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(t.stats().bad_lines, 1);
        // A new tail from the first offset reads the same events again, from the second.
        let mut again = EveTail::new(&path, after_first);
        assert_eq!(collect(&mut again).len(), 2);
    }

    #[test]
    fn a_writer_of_half_lines_is_read_whole_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("eve.json");
        let p2 = path.clone();
        let writer = std::thread::spawn(move || {
            for n in 0..300u32 {
                let line = format!(
                    "{{\"event_type\":\"flow\",\"n\":{n},\"pad\":\"{}\"}}\n",
                    "x".repeat((n % 50) as usize)
                );
                let (a, b) = line.as_bytes().split_at(line.len() / 2);
                append(&p2, a);
                if n % 7 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                append(&p2, b);
            }
        });
        let mut t = EveTail::new(&path, 0);
        let mut seen = Vec::new();
        while seen.len() < 300 {
            t.poll(&mut |e| seen.push(e["n"].as_u64().expect("n")))
                .expect("poll");
        }
        writer.join().expect("writer");
        assert_eq!(seen, (0..300).collect::<Vec<u64>>());
        assert_eq!(t.stats().bad_lines, 0);
    }

    #[test]
    fn rotation_and_truncation_are_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("eve.json");
        let mut t = EveTail::new(&path, 0);
        append(&path, b"{\"n\":1}\n");
        assert_eq!(collect(&mut t).len(), 1);
        // Written to the old file just before the rename: still read, then the new file.
        append(&path, b"{\"n\":2}\n");
        std::fs::rename(&path, dir.path().join("eve.json.1")).expect("rename");
        append(&path, b"{\"n\":3}\n");
        let got = collect(&mut t);
        assert_eq!(
            got.iter().map(|e| e["n"].clone()).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(t.stats().rotations, 1);
        // Truncated in place: read from the start again.
        std::fs::write(&path, b"").expect("truncate");
        append(&path, b"{\"n\":4}\n");
        let got = collect(&mut t);
        assert_eq!(got.iter().map(|e| e["n"].clone()).collect::<Vec<_>>(), [4]);
        assert_eq!(t.stats().truncations, 1);
    }

    #[test]
    fn the_follower_thread_hands_out_events_and_its_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("eve.json");
        let (tx, rx) = std::sync::mpsc::channel();
        let f = EveFollower::spawn(
            &path,
            0,
            Duration::from_millis(5),
            Box::new(move |e| {
                let _ = tx.send(e);
            }),
        )
        .expect("spawn");
        append(&path, b"{\"n\":1}\n{\"n\":");
        let e = rx.recv_timeout(Duration::from_secs(5)).expect("event");
        assert_eq!(e["n"], 1);
        append(&path, b"2}\n");
        let e = rx.recv_timeout(Duration::from_secs(5)).expect("event");
        assert_eq!(e["n"], 2);
        let (offset, stats) = f.stop();
        assert_eq!(offset, 16);
        assert_eq!(stats.events, 2);
    }
}
