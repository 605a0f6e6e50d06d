//! A TCP conversation played out segment by segment: handshake, application messages in
//! windows that grow as in slow start with the receiver acknowledging every second segment,
//! and a FIN or RST close. One window is produced at a time, so a long transfer never sits
//! in memory whole.

use std::collections::VecDeque;

use shadownet_wire::tcp::flags::{ACK, FIN, PSH, RST, SYN};

use super::app::Message;
use super::packet::{Endpoint, IpFields, MSS, TcpFields, tcp_frame};
use super::rng::Rng;

/// Who sends a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    ClientToServer,
    ServerToClient,
}

impl Dir {
    fn index(self) -> usize {
        match self {
            Dir::ClientToServer => 0,
            Dir::ServerToClient => 1,
        }
    }
}

/// How the connection opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Open {
    /// Three-way handshake.
    Full,
    /// A SYN the client never follows up, answered by a SYN-ACK or not (a flood's half-open
    /// connection).
    Unanswered { syn_ack: bool },
    /// SYN answered by RST-ACK: a closed port.
    Refused,
    /// SYN, SYN-ACK, and the client's RST: a SYN scan finding an open port.
    Probed,
}

/// How it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    /// FIN from the client, ACK, FIN from the server, ACK.
    Fin,
    /// RST from the client.
    Rst,
}

/// Tiny periodic sends after the script (slowloris).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Trickle {
    pub(crate) interval_ns: f64,
    pub(crate) jitter: f64,
    pub(crate) until_ns: u64,
}

/// One message of the script and the pause before it.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) dir: Dir,
    pub(crate) gap_ns: u64,
    pub(crate) msg: Message,
}

/// Everything about a connection decided before it starts.
#[derive(Debug, Clone)]
pub(crate) struct TcpPlan {
    pub(crate) client: Endpoint,
    pub(crate) server: Endpoint,
    pub(crate) open: Open,
    pub(crate) close: Close,
    pub(crate) script: Vec<Step>,
    pub(crate) trickle: Option<Trickle>,
    /// Round trip seen at the capture point (data to its acknowledgement).
    pub(crate) rtt_ns: u64,
    /// Bottleneck rate of the connection, bits per second.
    pub(crate) rate_bps: f64,
    pub(crate) ttl: [u8; 2],
    pub(crate) window: [u16; 2],
}

const INITIAL_WINDOW: usize = 10;
const MAX_WINDOW: usize = 64;
const MSS_OPTION: [u8; 4] = [2, 4, (MSS >> 8) as u8, MSS as u8];

/// Segments the receiver's advertised window lets into flight.
fn receive_window(window: u16) -> usize {
    (usize::from(window) / MSS).max(1)
}

fn windows(total: usize, rwnd: usize) -> impl Iterator<Item = usize> {
    let mut segs = total.div_ceil(MSS).max(1);
    let mut cwnd = INITIAL_WINDOW;
    std::iter::from_fn(move || {
        if segs == 0 {
            return None;
        }
        let w = segs.min(cwnd).min(rwnd);
        segs -= w;
        cwnd = (cwnd * 2).min(MAX_WINDOW);
        Some(w)
    })
}

impl TcpPlan {
    /// Frames the connection produces (without a trickle), for calibrating arrival rates.
    pub(crate) fn frames(&self) -> usize {
        let open = match self.open {
            Open::Full | Open::Probed => 3,
            Open::Unanswered { syn_ack } => 1 + usize::from(syn_ack),
            Open::Refused => 2,
        };
        if self.open != Open::Full {
            return open;
        }
        let data: usize = self
            .script
            .iter()
            .map(|s| {
                let rwnd = receive_window(self.window[1 - s.dir.index()]);
                windows(s.msg.total, rwnd)
                    .map(|w| w + w.div_ceil(2))
                    .sum::<usize>()
            })
            .sum();
        let close = match self.close {
            Close::Fin => 4,
            Close::Rst => 1,
        };
        open + data + close
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Open,
    Data,
    Close,
    Done,
}

#[derive(Debug)]
struct Current {
    dir: Dir,
    msg: Message,
    off: usize,
    cwnd: usize,
}

/// A connection being played out.
#[derive(Debug)]
pub(crate) struct TcpFlow {
    plan: TcpPlan,
    vlan: Option<u16>,
    stage: Stage,
    script: VecDeque<Step>,
    cur: Option<Current>,
    /// Next sequence number of client (0) and server (1).
    seq: [u32; 2],
    ident: [u16; 2],
    t: u64,
    pace_ns: f64,
    trickle_n: u32,
}

impl TcpFlow {
    pub(crate) fn new(
        mut plan: TcpPlan,
        start_ns: u64,
        vlan: Option<u16>,
        rng: &mut Rng,
    ) -> TcpFlow {
        let script = std::mem::take(&mut plan.script).into();
        let pace_ns = ((MSS + 58) * 8) as f64 / plan.rate_bps.max(1e3) * 1e9;
        TcpFlow {
            vlan,
            stage: Stage::Open,
            script,
            cur: None,
            seq: [rng.next_u32(), rng.next_u32()],
            ident: [rng.next_u32() as u16, rng.next_u32() as u16],
            t: start_ns,
            pace_ns,
            trickle_n: 0,
            plan,
        }
    }

    fn frame(&mut self, from: usize, flags: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
        let (src, dst) = if from == 0 {
            (&self.plan.client, &self.plan.server)
        } else {
            (&self.plan.server, &self.plan.client)
        };
        let ip = IpFields {
            ttl: self.plan.ttl[from],
            ident: self.ident[from],
        };
        self.ident[from] = self.ident[from].wrapping_add(1);
        let ack = if flags & ACK != 0 {
            self.seq[1 - from]
        } else {
            0
        };
        let t = TcpFields {
            seq: self.seq[from],
            ack,
            flags,
            window: self.plan.window[from],
        };
        tcp_frame(src, dst, self.vlan, ip, t, options, payload)
    }

    /// Appends the next batch of frames (time-ordered, none earlier than the last batch's);
    /// appends nothing once the connection is over.
    pub(crate) fn refill(&mut self, rng: &mut Rng, out: &mut VecDeque<(u64, Vec<u8>)>) {
        loop {
            match self.stage {
                Stage::Done => return,
                Stage::Open => {
                    self.open(rng, out);
                    return;
                }
                Stage::Data => {
                    if self.cur.is_none() && !self.next_message(rng) {
                        self.stage = Stage::Close;
                        continue;
                    }
                    self.window(rng, out);
                    return;
                }
                Stage::Close => {
                    self.close(rng, out);
                    self.stage = Stage::Done;
                    return;
                }
            }
        }
    }

    fn jitter(&self, rng: &mut Rng) -> u64 {
        // Host processing between a segment's arrival and the reply: tens of microseconds.
        (rng.exp(30_000.0) as u64).max(1_000)
    }

    fn open(&mut self, rng: &mut Rng, out: &mut VecDeque<(u64, Vec<u8>)>) {
        let rtt = self.plan.rtt_ns;
        let t0 = self.t;
        let syn = self.frame(0, SYN, &MSS_OPTION, &[]);
        out.push_back((t0, syn));
        self.seq[0] = self.seq[0].wrapping_add(1);
        let t1 = t0 + rtt;
        match self.plan.open {
            Open::Unanswered { syn_ack: false } => {
                self.stage = Stage::Done;
            }
            Open::Unanswered { syn_ack: true } => {
                let f = self.frame(1, SYN | ACK, &MSS_OPTION, &[]);
                out.push_back((t1, f));
                self.stage = Stage::Done;
            }
            Open::Refused => {
                // The RST's sequence number is zero and it acknowledges the SYN.
                self.seq[1] = 0;
                let f = self.frame(1, RST | ACK, &[], &[]);
                out.push_back((t1, f));
                self.stage = Stage::Done;
            }
            Open::Probed => {
                let f = self.frame(1, SYN | ACK, &MSS_OPTION, &[]);
                out.push_back((t1, f));
                self.seq[1] = self.seq[1].wrapping_add(1);
                let f = self.frame(0, RST, &[], &[]);
                out.push_back((t1 + self.jitter(rng), f));
                self.stage = Stage::Done;
            }
            Open::Full => {
                let f = self.frame(1, SYN | ACK, &MSS_OPTION, &[]);
                out.push_back((t1, f));
                self.seq[1] = self.seq[1].wrapping_add(1);
                let t2 = t1 + self.jitter(rng);
                let f = self.frame(0, ACK, &[], &[]);
                out.push_back((t2, f));
                self.t = t2;
                self.stage = Stage::Data;
            }
        }
    }

    fn next_message(&mut self, rng: &mut Rng) -> bool {
        let step = match self.script.pop_front() {
            Some(s) => s,
            None => match self.plan.trickle {
                Some(tr) => {
                    let gap = tr.interval_ns * (1.0 + tr.jitter * (2.0 * rng.f64() - 1.0));
                    if self.t + gap as u64 >= tr.until_ns {
                        return false;
                    }
                    self.trickle_n += 1;
                    let line = format!("X-a: {}\r\n", rng.range(1, 5000));
                    Step {
                        dir: Dir::ClientToServer,
                        gap_ns: gap as u64,
                        msg: Message::bytes(line.into_bytes()),
                    }
                }
                None => return false,
            },
        };
        self.t += step.gap_ns;
        self.cur = Some(Current {
            dir: step.dir,
            msg: step.msg,
            off: 0,
            cwnd: INITIAL_WINDOW,
        });
        true
    }

    fn window(&mut self, rng: &mut Rng, out: &mut VecDeque<(u64, Vec<u8>)>) {
        let Some(mut cur) = self.cur.take() else {
            return;
        };
        let from = cur.dir.index();
        let total = cur.msg.total;
        let remaining_segs = (total - cur.off).div_ceil(MSS).max(1);
        let w = remaining_segs
            .min(cur.cwnd)
            .min(receive_window(self.plan.window[1 - from]));
        let mut batch: Vec<(u64, Vec<u8>)> = Vec::with_capacity(w + w.div_ceil(2));
        let mut buf = vec![0u8; MSS];
        for i in 0..w {
            let ts = self.t + (i as f64 * self.pace_ns) as u64;
            let n = (total - cur.off).min(MSS);
            cur.msg.read(cur.off, &mut buf[..n]);
            cur.off += n;
            let last = cur.off >= total;
            let flags = if last { ACK | PSH } else { ACK };
            let f = self.frame(from, flags, &[], &buf[..n]);
            self.seq[from] = self.seq[from].wrapping_add(n as u32);
            batch.push((ts, f));
            if i % 2 == 1 || i + 1 == w {
                let ack_ts = ts + self.plan.rtt_ns + self.jitter(rng);
                let f = self.frame(1 - from, ACK, &[], &[]);
                batch.push((ack_ts, f));
            }
        }
        // Stable: a segment and an acknowledgement at the same instant keep their order.
        batch.sort_by_key(|(ts, _)| *ts);
        self.t = batch.last().map_or(self.t, |(ts, _)| *ts) + self.jitter(rng);
        out.extend(batch);
        cur.cwnd = (cur.cwnd * 2).min(MAX_WINDOW);
        if cur.off < total {
            self.cur = Some(cur);
        }
    }

    fn close(&mut self, rng: &mut Rng, out: &mut VecDeque<(u64, Vec<u8>)>) {
        let rtt = self.plan.rtt_ns;
        match self.plan.close {
            Close::Rst => {
                let t = match self.plan.trickle {
                    Some(tr) => tr.until_ns.max(self.t),
                    None => self.t + self.jitter(rng),
                };
                let f = self.frame(0, RST | ACK, &[], &[]);
                out.push_back((t, f));
            }
            Close::Fin => {
                let t0 = self.t + self.jitter(rng);
                let f = self.frame(0, FIN | ACK, &[], &[]);
                out.push_back((t0, f));
                self.seq[0] = self.seq[0].wrapping_add(1);
                let t1 = t0 + rtt;
                let f = self.frame(1, ACK, &[], &[]);
                out.push_back((t1, f));
                let t2 = t1 + self.jitter(rng);
                let f = self.frame(1, FIN | ACK, &[], &[]);
                out.push_back((t2, f));
                self.seq[1] = self.seq[1].wrapping_add(1);
                let f = self.frame(0, ACK, &[], &[]);
                out.push_back((t2 + rtt, f));
            }
        }
    }
}
