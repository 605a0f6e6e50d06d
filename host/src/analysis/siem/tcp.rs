//! A TCP connection to a receiver that comes and goes: frames wait in a bounded backlog
//! until they are written, the connection is re-established with exponential backoff, and
//! what the backlog cannot hold is counted.

use std::{
    collections::VecDeque,
    io::{ErrorKind, Write},
    net::{SocketAddr, TcpStream, ToSocketAddrs},
    time::{Duration, Instant},
};

use super::SiemError;

/// Where to connect and how patiently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpConfig {
    /// `host:port` of the receiver (resolved at every connection attempt).
    pub addr: String,
    /// Frames held while the receiver is away; the oldest is dropped (and counted) when a
    /// new one would not fit.
    pub backlog: usize,
    /// Connection attempt timeout.
    pub connect_timeout: Duration,
    /// A write blocked longer than this counts as a broken connection.
    pub write_timeout: Duration,
    /// First delay before reconnecting.
    pub backoff_min: Duration,
    /// Largest delay between attempts (the delay doubles up to this).
    pub backoff_max: Duration,
}

impl TcpConfig {
    /// `addr` with a 10 000-frame backlog, 2 s timeouts and 100 ms..5 s backoff.
    pub fn new(addr: impl Into<String>) -> TcpConfig {
        TcpConfig {
            addr: addr.into(),
            backlog: 10_000,
            connect_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(2),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }

    fn check(&self) -> Result<(), SiemError> {
        let bad = |field, reason: &str| {
            Err(SiemError::Config {
                field,
                reason: reason.into(),
            })
        };
        if self.backlog == 0 {
            return bad("backlog", "must hold at least one frame");
        }
        if self.backoff_min.is_zero() || self.backoff_max < self.backoff_min {
            return bad("backoff", "needs 0 < backoff_min <= backoff_max");
        }
        if self.connect_timeout.is_zero() || self.write_timeout.is_zero() {
            return bad("timeout", "timeouts must be positive");
        }
        Ok(())
    }
}

/// What a forwarder did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Frames written to a connection.
    pub sent: u64,
    /// Frames dropped because the backlog was full.
    pub dropped: u64,
    /// Connections established.
    pub connects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Connections lost (write error or closed by the receiver).
    pub disconnects: u64,
    /// Frames waiting now.
    pub backlog: usize,
}

/// Frames to one TCP receiver, delivered in order, at least once: a frame leaves the
/// backlog only once written; one cut by a broken connection is sent again whole.
#[derive(Debug)]
pub struct TcpForwarder {
    cfg: TcpConfig,
    stream: Option<TcpStream>,
    backlog: VecDeque<Vec<u8>>,
    next_attempt: Instant,
    backoff: Duration,
    stats: TcpStats,
}

impl TcpForwarder {
    /// A forwarder; it connects on the first frame.
    pub fn new(cfg: TcpConfig) -> Result<TcpForwarder, SiemError> {
        cfg.check()?;
        Ok(TcpForwarder {
            backoff: cfg.backoff_min,
            cfg,
            stream: None,
            backlog: VecDeque::new(),
            next_attempt: Instant::now(),
            stats: TcpStats::default(),
        })
    }

    /// Counters.
    pub fn stats(&self) -> TcpStats {
        TcpStats {
            backlog: self.backlog.len(),
            ..self.stats
        }
    }

    /// The receiver's address as configured.
    pub fn addr(&self) -> &str {
        &self.cfg.addr
    }

    /// Queues a frame and writes what it can without waiting for a reconnection.
    pub fn push(&mut self, frame: Vec<u8>) {
        if self.backlog.len() >= self.cfg.backlog {
            self.backlog.pop_front();
            self.stats.dropped += 1;
            if self.stats.dropped.is_power_of_two() {
                tracing::warn!(addr = %self.cfg.addr, dropped = self.stats.dropped, "backlog full, dropping the oldest events");
            }
        }
        self.backlog.push_back(frame);
        self.pump();
    }

    /// Writes the backlog, waiting for reconnections, until it is empty or `timeout` has
    /// passed.
    pub fn flush(&mut self, timeout: Duration) -> Result<(), SiemError> {
        let start = Instant::now();
        loop {
            self.pump();
            if self.backlog.is_empty() {
                if let Some(s) = &mut self.stream {
                    // Nothing is buffered in user space; flush is for form's sake.
                    let _ = s.flush();
                }
                return Ok(());
            }
            let now = Instant::now();
            if now.duration_since(start) >= timeout {
                return Err(SiemError::Undelivered {
                    addr: self.cfg.addr.clone(),
                    pending: self.backlog.len(),
                    waited_ms: timeout.as_millis() as u64,
                });
            }
            let wake = self.next_attempt.min(start + timeout);
            std::thread::sleep(
                wake.saturating_duration_since(now)
                    .max(Duration::from_millis(1)),
            );
        }
    }

    fn connect(&mut self) -> Option<TcpStream> {
        let addrs: Vec<SocketAddr> = match self.cfg.addr.to_socket_addrs() {
            Ok(a) => a.collect(),
            Err(e) => {
                tracing::warn!(addr = %self.cfg.addr, error = %e, "cannot resolve the receiver");
                Vec::new()
            }
        };
        for a in addrs {
            match TcpStream::connect_timeout(&a, self.cfg.connect_timeout) {
                Ok(s) => {
                    if let Err(e) = s.set_write_timeout(Some(self.cfg.write_timeout)) {
                        tracing::warn!(error = %e, "cannot set the write timeout");
                    }
                    let _ = s.set_nodelay(true);
                    return Some(s);
                }
                Err(e) => tracing::debug!(addr = %a, error = %e, "connect failed"),
            }
        }
        None
    }

    /// Whether the receiver closed the connection (a FIN or RST already arrived). Writes
    /// into a connection the peer has closed succeed locally and are lost, so this is
    /// checked before writing.
    fn peer_closed(s: &TcpStream) -> bool {
        if s.set_nonblocking(true).is_err() {
            return true;
        }
        let mut b = [0u8; 1];
        let closed = match s.peek(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != ErrorKind::WouldBlock,
        };
        closed || s.set_nonblocking(false).is_err()
    }

    fn disconnect(&mut self, why: &str) {
        if self.stream.take().is_some() {
            self.stats.disconnects += 1;
            tracing::warn!(addr = %self.cfg.addr, why, backlog = self.backlog.len(), "receiver connection lost");
        }
        self.next_attempt = Instant::now() + self.backoff;
    }

    /// Connects if due, then writes frames from the front of the backlog.
    fn pump(&mut self) {
        if self.backlog.is_empty() {
            return;
        }
        if let Some(s) = &self.stream
            && Self::peer_closed(s)
        {
            self.disconnect("closed by the receiver");
        }
        if self.stream.is_none() {
            if Instant::now() < self.next_attempt {
                return;
            }
            match self.connect() {
                Some(s) => {
                    self.stats.connects += 1;
                    self.backoff = self.cfg.backoff_min;
                    tracing::info!(addr = %self.cfg.addr, backlog = self.backlog.len(), "connected to the receiver");
                    self.stream = Some(s);
                }
                None => {
                    self.stats.connect_failures += 1;
                    self.next_attempt = Instant::now() + self.backoff;
                    self.backoff = (self.backoff * 2).min(self.cfg.backoff_max);
                    return;
                }
            }
        }
        while let Some(frame) = self.backlog.front() {
            let Some(s) = &mut self.stream else { return };
            match s.write_all(frame) {
                Ok(()) => {
                    self.backlog.pop_front();
                    self.stats.sent += 1;
                }
                Err(e) => {
                    let why = e.to_string();
                    self.disconnect(&why);
                    return;
                }
            }
        }
    }
}
