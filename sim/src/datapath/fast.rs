//! The fast lane: the decision for the common frame, made stage by stage over a batch.
//!
//! The common frame comes from a VF, parses by the parser's fast path (untagged IPv4 TCP or
//! UDP, no options, not a fragment), belongs to an enabled production network whose ACL
//! lets it through by an allow rule or the network's default, and goes to a map entry on
//! another host over an IPv4 substrate; its mirror rule, if one matches, copies it to an
//! enabled mirror-mode session. For such a frame [`Datapath::process`] makes the same
//! decision every time — a VXLAN frame to the substrate and at most one copy — and the lane
//! makes it with less work:
//!
//! 1. [`Datapath::plan`] (every frame of the batch): the fixed-offset parse, the port's
//!    network, ACL and mirror answers (once per port per batch, [`PortLane`]: a scope without
//!    rules, or whose first rule matches every such packet, needs no classifier walk), the
//!    flow hash and the map and shadow-map hashes (from hash states the port's key prefix
//!    was folded into once). A frame it cannot take goes to the general path.
//! 2. [`Probes::touch`], [`Probes::resolve`] (every frame, software-pipelined):
//!    tags, then slots and values of the map and shadow-map look-ups; a miss, a local or
//!    shadow destination, or anything outside the fixed outer layout sends the frame to the
//!    general path.
//! 3. [`Datapath::decide_fast`] (each frame in turn, after the scheduler admitted it): the
//!    side effects — rule match counts for sampling, sequence numbers, the frames' bytes —
//!    and counters accumulated per batch in [`FastCounts`].
//!
//! Plans are pure functions of the tables, sessions and configuration, which change only
//! between batches; a frame the scheduler does not admit leaves no trace of its plan. A
//! test in this module runs mixed traffic through the lane and through the general path and
//! compares every byte and counter.

use shadownet_hw::Port;
use shadownet_hw::{
    NUM_SESSIONS, NUM_VPORTS,
    counters::{self, PortCounter, SessionCounter, TableCounter},
    layout::{
        acl::{AclAction, Verdict},
        ip_to_bytes, is_v4_mapped, map,
        mirror_filter::{MirrorAction, MirrorVerdict},
        rule::Direction,
        session::{Encap, Mode},
        shadow_map, vni,
    },
    table::{TableId, exact},
};
use shadownet_wire::{L4, Plain, ShadowMetadata, flow_entropy_port, geneve, parse_plain};

use super::{Datapath, NO_TUNNELS, OUTER_TTL, OutFrame, Queue, Two, flow_mix};
use crate::{
    counters::Counters,
    tables::{ExactView, PacketKey, RuleAnswer},
};

/// Bytes 8..12 of an IPv4-mapped address as a key word (key words are little-endian).
const V4_MAPPED_WORD: u32 = u32::from_le_bytes([0, 0, 0xff, 0xff]);

/// Ethernet + IPv4 + UDP.
const UDP_OUTER: usize = 14 + 20 + 8;

/// How a frame of the batch is decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// By the fast lane, from its plan.
    Fast,
    /// By the general path, from the read-ahead with this index in the batch's list.
    General(u32),
    /// By the general path, from a read-ahead made when the frame is processed: the plan
    /// found it uncommon only at the look-ups (a map miss, a local destination, …).
    Late,
}

/// A rule table's answer for a port's frames, as far as the port alone tells.
#[derive(Clone, Copy, Debug)]
enum Quick<A> {
    /// No rule matches any of them.
    NoRule,
    /// This rule (slot, action) wins for all of them.
    Always(u32, A),
    /// It depends on the frame: walk the rules.
    Walk,
}

impl<A: Copy> Quick<A> {
    fn of(a: RuleAnswer<'_, A>) -> Quick<A> {
        match a {
            RuleAnswer::NoRule => Quick::NoRule,
            RuleAnswer::Always(r) => Quick::Always(r.slot, r.action),
            RuleAnswer::Walk(_) => Quick::Walk,
        }
    }
}

/// What the fast lane needs of one VF port, worked out once per batch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PortLane {
    /// The batch it was worked out for.
    epoch: u64,
    /// Its frames may take the fast lane: the port is enabled, its network known and not a
    /// shadow, and its ACL does not drop every frame without a rule.
    usable: bool,
    vni: u32,
    /// The network drops frames from VMs that match no ACL rule.
    deny_from_vm: bool,
    acl: Quick<AclAction>,
    mirror: Quick<MirrorAction>,
    /// [`exact::hash`]'s state after the map key's words but the address's last.
    map_prefix: u64,
    /// For a mirror rule that copies every frame of the port: what its copies need.
    copy: Option<CopyLane>,
    /// Its production frames' outer header but the destination.
    vxlan: Option<crate::outer::Vxlan>,
    /// Neither its ACL nor its mirror filter needs a walk: the answers for all its frames.
    simple: Option<SimpleLane>,
    /// The outer header of [`PortLane::copy`]'s copies to its session's collector (where
    /// copies go that the shadow map has no node for).
    collector_header: Option<crate::outer::Prepared>,
    /// [`PortLane::copy`] when it copies every frame whole (sampling one in one, no
    /// truncation) in Geneve: its copies to the collector take [`Datapath::decide_plain`].
    plain: Option<PlainCopy>,
}

/// What [`Datapath::decide_plain`] needs of a port: its production frames' header
/// ([`PortLane::vxlan`], here too so that one check finds both), its copies' rule slot and
/// session, and the collector's header with the session and direction in its shadow option.
#[derive(Clone, Copy, Debug)]
struct PlainCopy {
    vxlan: crate::outer::Vxlan,
    slot: u32,
    session: u16,
    header: crate::outer::ShadowCopy,
}

/// The answers for every frame of a port whose ACL and mirror filter need no walk.
#[derive(Clone, Copy, Debug)]
struct SimpleLane {
    /// The longest frame whose production frame and copy (if any) fit the uplink's MTU
    /// (negative: none).
    max_len: i64,
    acl_hit: bool,
    mirror_hit: bool,
    /// Its frames are copied ([`PortLane::copy`]).
    copies: bool,
}

/// What the copies of a mirror rule need, worked out once: its session takes the fast lane
/// (enabled, mirror mode), the shadow-map key's hash state before the address's last word,
/// and the outer tunnel header's length.
#[derive(Clone, Copy, Debug)]
struct CopyLane {
    /// The copy as plans carry it.
    copy: PlanCopy,
    shadow_prefix: u64,
    tunnel_len: usize,
    /// The session's collector, where copies go that the shadow map has no node for;
    /// `None` outside the fixed outer layout (IPv6, a VNI over 24 bits).
    collector: Option<Target>,
}

/// A copy a mirror rule asks for, as a plan carries it: the rule's slot (its match count
/// samples), the session, truncation, sampling, and the tunnel (Geneve or VXLAN).
#[derive(Clone, Copy, Debug)]
struct PlanCopy {
    slot: u32,
    session: u16,
    truncate: Option<u16>,
    sample_one_in: u32,
    geneve: bool,
}

/// A copy's outer destination: IPv4 address, MAC and shadow VNI.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Target {
    ip: [u8; 4],
    mac: [u8; 6],
    vni: u32,
}

impl PortLane {
    const UNUSED: PortLane = PortLane {
        epoch: 0,
        usable: false,
        vni: 0,
        deny_from_vm: false,
        acl: Quick::NoRule,
        mirror: Quick::NoRule,
        map_prefix: 0,
        copy: None,
        vxlan: None,
        simple: None,
        collector_header: None,
        plain: None,
    };
}

/// The fast lane's state in the data path: the per-port answers of the current batch.
pub(crate) struct FastLane {
    ports: Box<[PortLane; NUM_VPORTS]>,
    /// Current batch; 0 is never one.
    epoch: u64,
}

impl Default for FastLane {
    fn default() -> Self {
        FastLane {
            ports: Box::new([PortLane::UNUSED; NUM_VPORTS]),
            epoch: 0,
        }
    }
}

/// What the fast lane worked out for one frame of a batch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    /// How it is decided.
    pub(crate) route: Route,
    /// The VF port it came from.
    port: u16,
    vni: u32,
    dst: [u8; 4],
    flow: u32,
    /// The ACL's allow rule matched (else no rule did, and the network allows).
    acl_hit: bool,
    /// A mirror rule matched.
    mirror_hit: bool,
    /// The copy it asks for, if any.
    copy: Option<PlanCopy>,
    map_hash: u64,
    shadow_hash: u64,
    /// The production frame's outer destination (resolved).
    substrate: [u8; 4],
    substrate_mac: [u8; 6],
    /// The copy's outer destination (the session's collector until the shadow map has a
    /// node for it), whether that is in the fixed layout, and whether the shadow map had it.
    shadow: Target,
    shadow_ok: bool,
    shadow_hit: bool,
    /// The shadow map may hold the copy's key (its filter does not rule it out).
    shadow_probe: bool,
    /// The copy is the port's ([`PortLane::copy`]): without a shadow-map node it goes to the
    /// collector whose header the port's lane holds (`shadow` is not set then).
    port_copy: bool,
    /// The copy is the port's and the port's copies are plain ([`PortLane::plain`]).
    plain: bool,
}

impl Plan {
    /// A frame for the general path.
    pub(crate) const GENERAL: Plan = Plan {
        route: Route::Late,
        port: 0,
        vni: 0,
        dst: [0; 4],
        flow: 0,
        acl_hit: false,
        mirror_hit: false,
        copy: None,
        map_hash: 0,
        shadow_hash: 0,
        substrate: [0; 4],
        substrate_mac: [0; 6],
        shadow: Target {
            ip: [0; 4],
            mac: [0; 6],
            vni: 0,
        },
        shadow_ok: false,
        shadow_hit: false,
        shadow_probe: false,
        port_copy: false,
        plain: false,
    };
}

/// The last copy header a batch used: its session (`u16::MAX`: none yet), destination,
/// and the outer cache's generation then.
#[derive(Clone, Copy, Debug)]
struct LastCopy {
    session: u16,
    target: Target,
    generation: u64,
}

impl LastCopy {
    const NONE: LastCopy = LastCopy {
        session: u16::MAX,
        target: Target {
            ip: [0; 4],
            mac: [0; 6],
            vni: 0,
        },
        generation: 0,
    };

    /// Whether it was for `session` and `target` at `generation` (field by field, the
    /// cheapest first).
    #[inline(always)]
    fn is(&self, session: u16, target: &Target, generation: u64) -> bool {
        self.session == session
            && self.generation == generation
            && self.target.ip == target.ip
            && self.target.vni == target.vni
            && self.target.mac == target.mac
    }
}

/// A plain copy's header to a shadow-map node (see [`FastCounts::plain_hit`]).
#[derive(Clone, Copy, Debug)]
struct PlainHit {
    session: u16,
    target: Target,
    header: crate::outer::ShadowCopy,
}

/// Counters of fast-lane frames, accumulated over a batch and added once
/// ([`FastCounts::flush`]): the same totals as counting each frame.
#[derive(Debug)]
pub(crate) struct FastCounts {
    /// Frames decided (each a VPORT, VNI and MAP hit).
    decided: u64,
    acl_hits: u64,
    acl_misses: u64,
    mirror_hits: u64,
    mirror_misses: u64,
    shadow_hits: u64,
    shadow_misses: u64,
    /// Copies made, by session.
    copies: [u64; NUM_SESSIONS],
    /// Their bytes, by session (apart from the count: two plain adds per copy).
    copy_bytes: [u64; NUM_SESSIONS],
    /// The last copy header the batch used: its session and destination, and the outer
    /// cache's generation then (the source, port and tunnel are the batch's constants).
    last_copy: LastCopy,
    /// The last header a plain copy to a shadow-map node used ([`Datapath::decide_plain`]):
    /// its session and destination (the source, port and tunnel are the batch's constants).
    plain_hit: Option<PlainHit>,
    /// Received frames and bytes of `rx_port`, not yet counted (when `rx_key` is not 0).
    rx_port: Port,
    /// `rx_port`'s [`Port::index`] plus one, or 0 while none is counted: one compare per
    /// frame.
    rx_key: u32,
    rx_packets: u64,
    rx_bytes: u64,
}

impl Default for FastCounts {
    fn default() -> Self {
        FastCounts {
            decided: 0,
            acl_hits: 0,
            acl_misses: 0,
            mirror_hits: 0,
            mirror_misses: 0,
            shadow_hits: 0,
            shadow_misses: 0,
            copies: [0; NUM_SESSIONS],
            copy_bytes: [0; NUM_SESSIONS],
            last_copy: LastCopy::NONE,
            plain_hit: None,
            rx_port: Port::Uplink,
            rx_key: 0,
            rx_packets: 0,
            rx_bytes: 0,
        }
    }
}

impl FastCounts {
    /// Counts a copy of `len` bytes made for `session` (a session number in range).
    #[inline(always)]
    fn copied(&mut self, session: u16, len: usize) {
        // The session was checked in range when the copy was planned: the remainder only
        // spares the bounds check.
        let s = session as usize % NUM_SESSIONS;
        self.copies[s] += 1;
        self.copy_bytes[s] += len as u64;
    }

    /// Counts the copy in `buf` made for `session` and hands it on as the packet's copy to
    /// the uplink's mirror queue (the fast lane's copies all leave by the uplink).
    #[inline(always)]
    fn copy_out(&mut self, copies: &mut Two<OutFrame>, session: u16, buf: crate::frames::FrameBuf) {
        self.copied(session, buf.len());
        copies.push(OutFrame::new(
            Port::Uplink,
            Queue::Mirror,
            Some(session),
            1,
            buf,
        ));
    }

    /// Counts `frames` frames of `bytes` bytes in all received on `port`, of [`Port::index`]
    /// `index` (of any route).
    #[inline(always)]
    pub(crate) fn received(
        &mut self,
        port: Port,
        index: usize,
        frames: u64,
        bytes: u64,
        counters: &mut Counters,
    ) {
        let key = index as u32 + 1;
        if self.rx_key != key {
            self.flush_rx(counters);
            self.rx_port = port;
            self.rx_key = key;
        }
        self.rx_packets += frames;
        self.rx_bytes += bytes;
    }

    fn flush_rx(&mut self, counters: &mut Counters) {
        if self.rx_key != 0 {
            let p = self.rx_port;
            counters.add(counters::port(p, PortCounter::RxPackets), self.rx_packets);
            counters.add(counters::port(p, PortCounter::RxBytes), self.rx_bytes);
        }
        self.rx_key = 0;
        self.rx_packets = 0;
        self.rx_bytes = 0;
    }

    /// Adds what was counted to `counters` and starts again.
    pub(crate) fn flush(&mut self, counters: &mut Counters) {
        self.flush_rx(counters);
        let mut add = |t: TableId, k: TableCounter, n: u64| {
            if n > 0 {
                counters.add(counters::table(t, k), n);
            }
        };
        add(TableId::Vport, TableCounter::Hits, self.decided);
        add(TableId::Vni, TableCounter::Hits, self.decided);
        add(TableId::Map, TableCounter::Hits, self.decided);
        add(TableId::Acl, TableCounter::Hits, self.acl_hits);
        add(TableId::Acl, TableCounter::Misses, self.acl_misses);
        add(TableId::MirrorFilter, TableCounter::Hits, self.mirror_hits);
        add(
            TableId::MirrorFilter,
            TableCounter::Misses,
            self.mirror_misses,
        );
        add(TableId::ShadowMap, TableCounter::Hits, self.shadow_hits);
        add(TableId::ShadowMap, TableCounter::Misses, self.shadow_misses);
        for (s, (&copies, &bytes)) in self.copies.iter().zip(&self.copy_bytes).enumerate() {
            if copies > 0 {
                counters.session(s as u16, SessionCounter::Copies, copies);
                counters.session(s as u16, SessionCounter::CopyBytes, bytes);
            }
        }
        *self = FastCounts::default();
    }
}

/// Copies `src` into `dst` (the same length). Minimum-size frames, the common case, are
/// copied with fixed-size moves instead of a call to `memcpy`.
#[inline(always)]
fn copy_frame(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if (32..=64).contains(&n) && dst.len() == n {
        // Two overlapping halves of 32 bytes cover any length from 32 to 64.
        dst[..32].copy_from_slice(&src[..32]);
        dst[n - 32..].copy_from_slice(&src[n - 32..]);
    } else {
        dst.copy_from_slice(src);
    }
}

/// Copies `src` into `a` and into `b` (both its length): [`copy_frame`] twice, with one
/// check of the length for both.
#[inline(always)]
fn copy_frame_twice(a: &mut [u8], b: &mut [u8], src: &[u8]) {
    let n = src.len();
    if (32..=64).contains(&n) && a.len() == n && b.len() == n {
        a[..32].copy_from_slice(&src[..32]);
        a[n - 32..].copy_from_slice(&src[n - 32..]);
        b[..32].copy_from_slice(&src[..32]);
        b[n - 32..].copy_from_slice(&src[n - 32..]);
    } else {
        a.copy_from_slice(src);
        b.copy_from_slice(src);
    }
}

/// Whether a plain frame is a TCP connection attempt (see `is_syn`).
#[inline(always)]
fn plain_syn(p: &Plain) -> bool {
    use shadownet_wire::tcp::flags::{ACK, SYN};
    matches!(p.l4, L4::Tcp { flags, .. } if flags & (SYN | ACK) == SYN)
}

#[inline(always)]
fn mapped(a: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
    ]
}

#[inline(always)]
fn v4_of(b: &[u8; 16]) -> [u8; 4] {
    [b[12], b[13], b[14], b[15]]
}

/// The map key of IPv4 `dst` in `vni` ([`map::key_words`] of its IPv4-mapped form).
#[inline(always)]
fn map_key(vni: u32, dst: [u8; 4]) -> exact::Key {
    [vni, 0, 0, V4_MAPPED_WORD, u32::from_le_bytes(dst), 0]
}

/// The shadow-map key ([`shadow_map::key_words`] of the IPv4-mapped form).
#[inline(always)]
fn shadow_key(session: u16, vni: u32, dst: [u8; 4]) -> exact::Key {
    [
        session as u32,
        vni,
        0,
        0,
        V4_MAPPED_WORD,
        u32::from_le_bytes(dst),
    ]
}

/// Bytes of the outer tunnel header of a copy in `encap` (Geneve carries the shadow option).
#[inline(always)]
fn tunnel_len(encap: Encap) -> usize {
    match encap {
        Encap::Vxlan => 8,
        Encap::Geneve => geneve::HEADER_LEN + ShadowMetadata::OPTION_LEN,
    }
}

impl Datapath {
    /// Starts a batch for the fast lane; whether its frames may take it at all (the device
    /// forwards and has an IPv4 substrate address). Tracing and flow sampling are the
    /// caller's to rule out.
    pub(crate) fn begin_fast_batch(&mut self) -> bool {
        if !self.config.enabled || self.config.local_ipv4.is_none() {
            return false;
        }
        self.fast.epoch += 1;
        self.tables.shadow_map.refresh_filter();
        // Compiled now, so that plans can walk rules without compiling.
        self.tables.acl.classifier();
        self.tables.mirror_filters.classifier();
        true
    }

    /// Makes sure the fast lane's answers for VF port `v` are those of this batch;
    /// whether the port has any (it is in range).
    #[inline(always)]
    fn refresh_port(&mut self, v: u16) -> bool {
        let epoch = self.fast.epoch;
        match self.fast.ports.get(v as usize) {
            Some(lane) if lane.epoch == epoch => true,
            Some(_) => {
                self.fast.ports[v as usize] = self.work_out_port(v);
                true
            }
            None => false,
        }
    }

    #[cold]
    #[inline(never)]
    fn work_out_port(&mut self, v: u16) -> PortLane {
        let mut lane = PortLane {
            epoch: self.fast.epoch,
            ..PortLane::UNUSED
        };
        let Some(vport) = self.tables.vport(v).filter(|p| p.enabled) else {
            return lane;
        };
        let Some(words) = self.tables.vni.get(&vni::key_words(vport.vni)) else {
            return lane;
        };
        let net = vni::VniEntry::read(words);
        let acl = Quick::of(
            self.tables
                .acl
                .classifier()
                .answer_v4(vport.vni, Direction::FromVm),
        );
        let mirror = Quick::of(
            self.tables
                .mirror_filters
                .classifier()
                .answer_v4(v as u32, Direction::FromVm),
        );
        let acl_drops_all = match acl {
            Quick::NoRule => net.default_deny_from_vm,
            Quick::Always(_, a) => a.verdict != Verdict::Allow,
            Quick::Walk => false,
        };
        let mut prefix = exact::HASH_START;
        for w in &map_key(vport.vni, [0; 4])[..4] {
            prefix = exact::hash_word(prefix, *w);
        }
        // A rule copying every frame to a session the lane cannot serve sends them all down
        // the general path.
        let mut copies_ok = true;
        if let Quick::Always(slot, a) = mirror
            && a.verdict == MirrorVerdict::Mirror
        {
            lane.copy = self.copy_lane(slot, &a, vport.vni);
            copies_ok = lane.copy.is_some();
        }
        // A VNI outside the fixed outer layout takes the general path.
        lane.vxlan = self.config.local_ipv4.and_then(|ip| {
            crate::outer::Vxlan::new(
                self.config.local_mac.0,
                v4_of(&ip),
                self.config.parse.vxlan_port,
                vport.vni,
                OUTER_TTL,
            )
        });
        lane.usable = !net.shadow
            && !acl_drops_all
            && copies_ok
            && vport.vni <= geneve::VNI_MAX
            && lane.vxlan.is_some();
        lane.simple = self.simple_lane(acl, mirror, lane.copy.as_ref());
        lane.collector_header = lane
            .copy
            .as_ref()
            .and_then(|c| self.copy_header(c.copy.geneve, c.collector?));
        lane.plain = match (&lane.copy, &lane.collector_header, &lane.vxlan) {
            (Some(c), Some(h), Some(vxlan))
                if c.copy.sample_one_in == 1 && c.copy.truncate.is_none() && c.copy.geneve =>
            {
                crate::outer::ShadowCopy::new(h, c.copy.session, Direction::FromVm.code()).map(
                    |header| PlainCopy {
                        vxlan: *vxlan,
                        slot: c.copy.slot,
                        session: c.copy.session,
                        header,
                    },
                )
            }
            _ => None,
        };
        lane.vni = vport.vni;
        lane.deny_from_vm = net.default_deny_from_vm;
        lane.acl = acl;
        lane.mirror = mirror;
        lane.map_prefix = prefix;
        lane
    }

    /// The prepared outer header of a copy to `target` (Geneve or VXLAN); `None` when the
    /// device has no IPv4 address (the lane is not used then).
    fn copy_header(&self, geneve: bool, target: Target) -> Option<crate::outer::Prepared> {
        crate::outer::Prepared::new(self.copy_key(geneve, &target)?, OUTER_TTL)
    }

    /// The outer cache's key for a copy to `target`.
    #[inline(always)]
    fn copy_key(&self, geneve: bool, target: &Target) -> Option<crate::outer::Key> {
        let config = &self.config;
        let (kind, udp_dst_port) = if geneve {
            (2, config.parse.geneve_port)
        } else {
            (0, config.parse.vxlan_port)
        };
        Some(crate::outer::Key {
            dst_mac: target.mac,
            src_mac: config.local_mac.0,
            src: v4_of(&config.local_ipv4?),
            dst: target.ip,
            udp_dst_port,
            vni: target.vni,
            kind,
        })
    }

    /// The MTU the lane checks frames against (at most what an IPv4 total length allows).
    #[inline(always)]
    fn lane_mtu(&self) -> usize {
        (self.config.uplink_mtu as usize).min(u16::MAX as usize + 14)
    }

    /// The answers for every frame of a port with these ACL and mirror answers, when neither
    /// needs a walk: the same as [`Datapath::plan`] works out frame by frame.
    fn simple_lane(
        &self,
        acl: Quick<AclAction>,
        mirror: Quick<MirrorAction>,
        copy: Option<&CopyLane>,
    ) -> Option<SimpleLane> {
        let acl_hit = match acl {
            Quick::NoRule => false,
            Quick::Always(..) => true,
            Quick::Walk => return None,
        };
        let (mirror_hit, copies) = match mirror {
            Quick::NoRule => (false, false),
            Quick::Always(_, a) => (true, a.verdict == MirrorVerdict::Mirror),
            Quick::Walk => return None,
        };
        let mtu = self.lane_mtu() as i64;
        // The production frame: UDP_OUTER + 8 + len <= mtu.
        let mut max_len = mtu - (UDP_OUTER + 8) as i64;
        if copies {
            // The copy: UDP_OUTER + tunnel + min(truncate, len) <= mtu, which holds for
            // every length when the truncation fits, else for lengths that fit.
            let c = copy?;
            let room = mtu - (UDP_OUTER + c.tunnel_len) as i64;
            if c.copy.truncate.is_none_or(|t| i64::from(t) > room) {
                max_len = max_len.min(room);
            }
        }
        Some(SimpleLane {
            max_len,
            acl_hit,
            mirror_hit,
            copies,
        })
    }

    /// What copies by mirror rule action `a` of frames in network `vni_id` need, or `None`
    /// when its session is not one the lane serves (out of range, disabled, redirect).
    #[inline(always)]
    fn copy_lane(&self, slot: u32, a: &MirrorAction, vni_id: u32) -> Option<CopyLane> {
        if a.session as usize >= NUM_SESSIONS {
            return None;
        }
        let cfg = self.sessions.get(a.session);
        if !cfg.enabled || cfg.mode != Mode::Mirror {
            return None;
        }
        let mut prefix = exact::HASH_START;
        for w in &shadow_key(a.session, vni_id, [0; 4])[..5] {
            prefix = exact::hash_word(prefix, *w);
        }
        let collector = ip_to_bytes(cfg.collector_ip);
        Some(CopyLane {
            copy: PlanCopy {
                slot,
                session: a.session,
                truncate: a.truncate,
                sample_one_in: a.sample_one_in,
                geneve: cfg.encap == Encap::Geneve,
            },
            shadow_prefix: prefix,
            tunnel_len: tunnel_len(cfg.encap),
            collector: (is_v4_mapped(&collector) && cfg.shadow_vni <= geneve::VNI_MAX).then(|| {
                Target {
                    ip: v4_of(&collector),
                    mac: cfg.collector_mac.0,
                    vni: cfg.shadow_vni,
                }
            }),
        })
    }

    /// Stage 1 for one frame received on `port`: writes its plan into `out` and returns
    /// whether it takes the fast lane (else `out` is left for the general path). Changes
    /// nothing the pipeline observes.
    #[inline(always)]
    pub(crate) fn plan(&mut self, port: Port, frame: &[u8], out: &mut Plan) -> bool {
        let Port::Vport(v) = port else {
            return false;
        };
        let Some(p) = parse_plain(frame, &NO_TUNNELS) else {
            return false;
        };
        if !self.refresh_port(v) {
            return false;
        }
        // From here on only reads: the port's answers stay borrowed.
        let lane = &self.fast.ports[v as usize];
        if !lane.usable {
            return false;
        }
        let ports = p.ports();
        let len = frame.len();
        let dst_word = u32::from_le_bytes(p.dst);
        let walked;
        // Whether the copy (if any) is the port's own ([`PortLane::copy`]).
        let mut port_copy = true;
        let (acl_hit, mirror_hit, copy_lane) = if let Some(s) = &lane.simple {
            // Every frame of the port gets the same answers: only its length is checked.
            if len as i64 > s.max_len {
                return false;
            }
            (
                s.acl_hit,
                s.mirror_hit,
                lane.copy.as_ref().filter(|_| s.copies),
            )
        } else {
            let key = || {
                PacketKey::new(
                    &mapped(p.src),
                    &mapped(p.dst),
                    p.protocol,
                    Some(ports),
                    Direction::FromVm,
                    plain_syn(&p),
                )
            };
            let acl_hit = match lane.acl {
                Quick::NoRule => false,
                Quick::Always(..) => true,
                Quick::Walk => {
                    let Some(c) = self.tables.acl.compiled() else {
                        return false;
                    };
                    match c.lookup_with(lane.vni, key).map(|r| r.action.verdict) {
                        Some(Verdict::Allow) => true,
                        None if !lane.deny_from_vm => false,
                        _ => return false,
                    }
                }
            };
            // The copy a mirror rule asks for: the port's own when one rule copies all its
            // frames, else worked out for the rule this frame matched.
            let rule = match &lane.mirror {
                Quick::NoRule => None,
                Quick::Always(slot, a) => Some((*slot, a)),
                Quick::Walk => {
                    let Some(c) = self.tables.mirror_filters.compiled() else {
                        return false;
                    };
                    c.lookup_with(v as u32, key).map(|r| (r.slot, &r.action))
                }
            };
            let mtu = self.lane_mtu();
            if UDP_OUTER + 8 + len > mtu {
                return false;
            }
            let mut copy_lane = None;
            if let Some((slot, a)) = rule.filter(|(_, a)| a.verdict == MirrorVerdict::Mirror) {
                let c = match &lane.copy {
                    Some(c) if matches!(lane.mirror, Quick::Always(..)) => c,
                    _ => match self.copy_lane(slot, a, lane.vni) {
                        Some(c) => {
                            port_copy = false;
                            walked = c;
                            &walked
                        }
                        None => return false,
                    },
                };
                let inner = match c.copy.truncate {
                    Some(t) if (t as usize) < len => t as usize,
                    _ => len,
                };
                if UDP_OUTER + c.tunnel_len + inner > mtu {
                    return false;
                }
                copy_lane = Some(c);
            }
            (acl_hit, rule.is_some(), copy_lane)
        };
        out.plain = port_copy && copy_lane.is_some() && lane.plain.is_some();
        // Written where it goes, not staged in a local.
        out.copy = None;
        if let Some(c) = copy_lane {
            out.copy = Some(c.copy);
            let h = exact::hash_finish(exact::hash_word(c.shadow_prefix, dst_word));
            out.shadow_hash = h;
            out.shadow_probe = true;
            out.shadow_hit = false;
            out.port_copy = port_copy;
            // The port's collector is in its lane; another rule's is carried.
            if !port_copy {
                out.shadow = c.collector.unwrap_or_default();
            }
            out.shadow_ok = c.collector.is_some();
        }
        out.route = Route::Fast;
        out.port = v;
        out.vni = lane.vni;
        out.dst = p.dst;
        out.flow = flow_mix(
            V4_MAPPED_WORD,
            u32::from_le_bytes(p.src),
            V4_MAPPED_WORD,
            dst_word,
            ports,
            p.protocol,
        );
        out.acl_hit = acl_hit;
        out.mirror_hit = mirror_hit;
        out.map_hash = exact::hash_finish(exact::hash_word(
            exact::hash_word(lane.map_prefix, dst_word),
            0,
        ));
        true
    }

    /// The look-ups of stage 2, for a batch.
    #[inline(always)]
    pub(crate) fn probes(&self) -> Probes<'_> {
        Probes {
            map: self.tables.map.view(),
            shadow_map: self.tables.shadow_map.view(),
        }
    }

    /// Stage 3: the decision for a fast-lane frame the scheduler admitted — the same as
    /// [`Datapath::process`]'s: the production frame, and its copy pushed to `copies` (empty
    /// before) — with its side effects; table counters go to `n`. `None`,
    /// with nothing changed, when the outer headers fall outside the fixed layout after all
    /// (the plan rules that out): the general path then decides.
    #[inline(always)]
    pub(crate) fn decide_fast(
        &mut self,
        p: &Plan,
        frame: &[u8],
        n: &mut FastCounts,
        copies: &mut Two<OutFrame>,
    ) -> Option<OutFrame> {
        if p.plain {
            return self.decide_plain(p, frame, n, copies);
        }
        // Field by field: the prepared headers stay borrowed while the rest is written.
        let entropy = flow_entropy_port(p.flow);
        // A plan's port is a VF port in range (its lane was worked out): the remainder only
        // spares the bounds check.
        let lane = &self.fast.ports[p.port as usize % NUM_VPORTS];
        let vxlan = lane.vxlan.as_ref()?;
        // The copy's header is looked up before anything is counted or built.
        let copy = match p.copy {
            // The port's copy to its collector: the header prepared for the batch. (The
            // outer cache is not consulted: its slots prepare the same bytes for a key.)
            Some(c) if p.port_copy && !p.shadow_hit => Some((c, lane.collector_header.as_ref()?)),
            // The same destination as the batch's last copy, with no header prepared since:
            // the session's slot still holds the header for it.
            Some(c)
                if n.last_copy
                    .is(c.session, &p.shadow, self.outer.generation()) =>
            {
                Some((c, self.outer.slot(c.session)?))
            }
            Some(c) => {
                let key = self.copy_key(c.geneve, &p.shadow)?;
                self.outer.get(c.session, &key, OUTER_TTL)?;
                n.last_copy = LastCopy {
                    session: c.session,
                    target: p.shadow,
                    generation: self.outer.generation(),
                };
                Some((c, self.outer.slot(c.session)?))
            }
            None => None,
        };
        n.decided += 1;
        if p.acl_hit {
            n.acl_hits += 1;
        } else {
            n.acl_misses += 1;
        }
        if p.mirror_hit {
            n.mirror_hits += 1;
        } else {
            n.mirror_misses += 1;
        }
        // Production's frame first, as on the general path (the arena's order).
        let header_len = crate::outer::VXLAN_LEN;
        let (buf, out) = self.frames.alloc(header_len + frame.len());
        vxlan.write(out, p.substrate_mac, p.substrate, frame.len(), entropy);
        copy_frame(&mut out[header_len..], frame);
        let primary = OutFrame::new(Port::Uplink, Queue::Primary, None, 0, buf);
        if let Some((c, prepared)) = copy {
            let session = c.session;
            let nth = self.tables.mirror_filters.count_match(c.slot);
            // One in one, the common rule, needs no division.
            if c.sample_one_in != 1 && !nth.is_multiple_of(c.sample_one_in as u64) {
                self.counters
                    .session(session, SessionCounter::SampledOut, 1);
            } else {
                if p.shadow_hit {
                    n.shadow_hits += 1;
                } else {
                    n.shadow_misses += 1;
                }
                let len = match c.truncate {
                    Some(t) if (t as usize) < frame.len() => t as usize,
                    _ => frame.len(),
                };
                // In range (the copy was planned for a session in range): the remainder
                // only spares the bounds check.
                let sequence = self.sessions.next_sequence(session % NUM_SESSIONS as u16);
                let meta = ShadowMetadata {
                    session,
                    direction: Direction::FromVm.code(),
                    flags: if len < frame.len() {
                        geneve::SHADOW_FLAG_TRUNCATED
                    } else {
                        0
                    },
                    sequence,
                    original_len: frame.len().min(u16::MAX as usize) as u16,
                };
                let (buf, out) = self.frames.alloc(prepared.len() + len);
                prepared.write(out, len, entropy, c.geneve.then_some(&meta));
                copy_frame(&mut out[prepared.len()..], &frame[..len]);
                n.copy_out(copies, session, buf);
            }
        }
        Some(primary)
    }
}

impl Datapath {
    /// [`Datapath::decide_fast`] for a frame whose copy is its port's plain copy
    /// ([`PortLane::plain`]): the same bytes, counts and sequence numbers, with no sampling
    /// or truncation to decide, and the copy's header prepared with the session in it — for
    /// the session's collector once per port and batch, for a shadow-map node when the
    /// batch's last one was for another.
    #[inline(always)]
    fn decide_plain(
        &mut self,
        p: &Plan,
        frame: &[u8],
        n: &mut FastCounts,
        copies: &mut Two<OutFrame>,
    ) -> Option<OutFrame> {
        // A plan's port is a VF port in range (its lane was worked out): the remainder only
        // spares the bounds check.
        let port = p.port as usize % NUM_VPORTS;
        let session = self.fast.ports[port].plain.as_ref()?.session;
        // A shadow-map node's header is prepared before anything is counted or built.
        if p.shadow_hit
            && !n
                .plain_hit
                .as_ref()
                .is_some_and(|h| h.session == session && h.target == p.shadow)
        {
            let key = self.copy_key(true, &p.shadow)?;
            let prepared = crate::outer::Prepared::new(key, OUTER_TTL)?;
            n.plain_hit = Some(PlainHit {
                session,
                target: p.shadow,
                header: crate::outer::ShadowCopy::new(
                    &prepared,
                    session,
                    Direction::FromVm.code(),
                )?,
            });
        }
        // Mutable: the copy's header keeps the lengths of the last frame it was written for.
        let PlainCopy {
            vxlan,
            slot,
            header: collector_header,
            ..
        } = self.fast.ports[port].plain.as_mut()?;
        let entropy = flow_entropy_port(p.flow);
        let len = frame.len();
        n.decided += 1;
        if p.acl_hit {
            n.acl_hits += 1;
        } else {
            n.acl_misses += 1;
        }
        // A plain copy's rule matched.
        n.mirror_hits += 1;
        let header = if p.shadow_hit {
            n.shadow_hits += 1;
            &mut n.plain_hit.as_mut()?.header
        } else {
            n.shadow_misses += 1;
            collector_header
        };
        // Production's frame first, then the copy, as on the general path (the arena's
        // order).
        let vxlan_len = crate::outer::VXLAN_LEN;
        let copy_header_len = crate::outer::MAX_LEN;
        let (buf, copy_buf, out, copy_out) = self
            .frames
            .alloc_two(vxlan_len + len, copy_header_len + len);
        vxlan.write(out, p.substrate_mac, p.substrate, len, entropy);
        let primary = OutFrame::new(Port::Uplink, Queue::Primary, None, 0, buf);
        header.write(
            copy_out,
            len,
            entropy,
            self.sessions.next_sequence(session % NUM_SESSIONS as u16),
            len.min(u16::MAX as usize) as u16,
        );
        copy_frame_twice(
            &mut out[vxlan_len..],
            &mut copy_out[copy_header_len..],
            frame,
        );
        // Sampling one in one: the count only moves.
        self.tables.mirror_filters.count_match(*slot);
        n.copy_out(copies, session, copy_buf);
        Some(primary)
    }
}

/// Stage 2 of the fast lane for a batch: its look-ups in table memory viewed once.
pub(crate) struct Probes<'a> {
    map: ExactView<'a>,
    shadow_map: ExactView<'a>,
}

impl Probes<'_> {
    /// Stage 2a: reads the tags of the buckets a fast-lane frame will look in (see
    /// [`Datapath::touch_tags`]).
    #[inline(always)]
    pub(crate) fn touch(&self, p: &mut Plan) -> u32 {
        let mut acc = self.map.touch_tags(p.map_hash);
        if p.copy.is_some() {
            // Most destinations have no shadow node: the filter tells without the tags.
            if self.shadow_map.may_hold(p.shadow_hash) {
                acc ^= self.shadow_map.touch_tags(p.shadow_hash);
            } else {
                p.shadow_probe = false;
            }
        }
        acc
    }

    /// Stage 2b: makes a fast-lane frame's look-ups; one that turns out uncommon goes to the
    /// general path ([`Route::Late`]).
    #[inline(always)]
    pub(crate) fn resolve(&self, p: &mut Plan) {
        let found = self.map.find_value(&map_key(p.vni, p.dst), p.map_hash);
        let Some(w) = found else {
            p.route = Route::Late;
            return;
        };
        let dest = map::MapWords::read(w);
        if dest.shadow || dest.local_vport.is_some() || !v4_mapped_words(w) {
            p.route = Route::Late;
            return;
        }
        p.substrate = w[3].to_le_bytes();
        p.substrate_mac = dest.substrate_mac;
        let Some(c) = p.copy else { return };
        let found = if p.shadow_probe {
            let key = shadow_key(c.session, p.vni, p.dst);
            self.shadow_map.find_value(&key, p.shadow_hash)
        } else {
            None
        };
        // A miss keeps the collector the plan put there.
        if let Some(w) = found {
            let v = shadow_map::ShadowMapWords::read(w);
            p.shadow_hit = true;
            p.shadow = Target {
                ip: w[3].to_le_bytes(),
                mac: v.substrate_mac,
                vni: v.shadow_vni,
            };
            p.shadow_ok = v4_mapped_words(w) && v.shadow_vni <= geneve::VNI_MAX;
        }
        if !p.shadow_ok {
            p.route = Route::Late;
        }
    }
}

/// Whether the address in the first four value words (the map's and the shadow map's
/// substrate address) is IPv4-mapped.
#[inline(always)]
fn v4_mapped_words(w: &exact::Value) -> bool {
    w[0] == 0 && w[1] == 0 && w[2] == V4_MAPPED_WORD
}

#[cfg(test)]
mod tests {
    //! The fast lane against the general path: the same traffic through two models, one
    //! with the lane off, must give the same departures (bytes, times, arena positions),
    //! counters and run statistics.

    use super::*;
    use crate::{
        device::{Arrival, NicModel, Sink},
        sched::Departure,
        tables::to_window,
    };
    use shadownet_hw::{
        device_regs::tbl_cmd::cmd::TableOp,
        layout::{
            Mac, PortRange, Prefix,
            acl::AclRule,
            map::{MapKey, MapValue},
            mirror_filter::MirrorFilter,
            rule::{self, RuleMatch},
            session::MirrorSession,
            shadow_map::{ShadowMapKey, ShadowMapValue},
            vni::{VniEntry, VniKey},
            vport::VportEntry,
        },
        timing::Timing,
    };
    use std::net::{IpAddr, Ipv4Addr};

    fn write(m: &mut NicModel, t: TableId, index: u32, key: &[u32; 16], value: &[u32; 16]) {
        let out =
            m.dp.tables
                .execute(t as u8, Some(TableOp::Write), index, key, value);
        assert_eq!(out.result as u8, 0, "{t} write {index}: {:?}", out.result);
    }

    fn network(m: &mut NicModel, vni_id: u32, shadow: bool, miss_to_host: bool, deny: bool) {
        let mut k = [0u8; vni::KEY_LEN];
        VniKey { vni: vni_id }.emit(&mut k);
        let mut v = [0u8; vni::VALUE_LEN];
        VniEntry {
            shadow,
            miss_to_host,
            default_deny_to_vm: deny,
            default_deny_from_vm: deny,
            production_vni: shadow.then_some(5001),
        }
        .emit(&mut v);
        write(m, TableId::Vni, 0, &to_window(&k), &to_window(&v));
    }

    fn vport(m: &mut NicModel, v: u32, vni_id: u32, enabled: bool) {
        let mut b = [0u8; shadownet_hw::layout::vport::VALUE_LEN];
        VportEntry {
            vni: vni_id,
            mac: Mac([2, 0, 0, 0, 0, 0x10 + v as u8]),
            enabled,
        }
        .emit(&mut b);
        write(m, TableId::Vport, v, &[0; 16], &to_window(&b));
    }

    fn overlay(i: u32) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8)
    }

    fn acl(m: &mut NicModel, slot: u32, matches: RuleMatch, verdict: Verdict, priority: u16) {
        let r = AclRule {
            matches,
            action: AclAction {
                priority,
                verdict,
                rule_id: slot + 100,
            },
        };
        let mut k = [0u8; rule::LEN];
        r.matches.emit(&mut k);
        let mut v = [0u8; 16];
        r.action.emit(&mut v);
        write(m, TableId::Acl, slot, &to_window(&k), &to_window(&v));
    }

    fn mirror(m: &mut NicModel, slot: u32, matches: RuleMatch, action: MirrorAction) {
        let f = MirrorFilter { matches, action };
        let mut k = [0u8; rule::LEN];
        f.matches.emit(&mut k);
        let mut v = [0u8; 16];
        f.action.emit(&mut v);
        write(
            m,
            TableId::MirrorFilter,
            slot,
            &to_window(&k),
            &to_window(&v),
        );
    }

    fn session(encap: Encap, mode: Mode, collector: IpAddr) -> MirrorSession {
        MirrorSession {
            enabled: true,
            encap,
            mode,
            shadow_vni: 9001,
            collector_ip: collector,
            collector_mac: Mac([2, 0, 0, 0, 0, 0x50]),
            policer_mbps: 0,
            policer_burst: 0,
        }
    }

    /// Writes (`Some(node)`: to shadow node `node`'s address) or deletes (`None`) the
    /// shadow-map entry of session `s` for overlay address `i` in network 5001.
    fn shadow_entry(m: &mut NicModel, s: u16, i: u32, node: Option<u32>) {
        let mut k = [0u8; shadow_map::KEY_LEN];
        ShadowMapKey {
            session: s,
            vni: 5001,
            ip: overlay(i).into(),
        }
        .emit(&mut k);
        let Some(n) = node else {
            let out = m.dp.tables.execute(
                TableId::ShadowMap as u8,
                Some(TableOp::Delete),
                0,
                &to_window(&k),
                &[0; 16],
            );
            assert_eq!(out.result as u8, 0, "shadow-map delete {s} {i}");
            return;
        };
        let mut v = [0u8; shadow_map::VALUE_LEN];
        ShadowMapValue {
            substrate_ip: if n % 31 == 6 {
                "fd00::3".parse().expect("literal")
            } else {
                Ipv4Addr::new(10, 253, 0, (n % 4) as u8).into()
            },
            substrate_mac: Mac([2, 0, 0, 0, 0, 3]),
            shadow_vni: 9001 + n % 2,
        }
        .emit(&mut v);
        write(m, TableId::ShadowMap, 0, &to_window(&k), &to_window(&v));
    }

    /// A model with networks, ports, rules and maps that send frames down every route:
    /// the lane's common case, and every way out of it.
    fn programmed(fast: bool) -> NicModel {
        // A small receive FIFO, so that bursts make admission drops.
        let timing = Timing {
            rx_fifo_bytes: 16 * 1024,
            ..Timing::DEFAULT
        };
        let mut m = NicModel::new(timing).expect("valid timing");
        m.set_fast_lane(fast);
        m.dp.config.enabled = true;
        m.dp.config.local_mac = Mac([2, 0, 0, 0, 0, 1]);
        m.dp.config.local_ipv4 = Some(ip_to_bytes("10.255.0.1".parse().expect("literal")));
        m.dp.config.local_ipv6 = Some(ip_to_bytes("fd00::1".parse().expect("literal")));
        m.dp.config.uplink_mtu = 1500;
        network(&mut m, 5001, false, false, false);
        network(&mut m, 5002, false, false, true);
        network(&mut m, 5003, false, true, false);
        network(&mut m, 9001, true, false, false);
        for (v, vni_id, enabled) in [
            (0, 5001, true),
            (1, 5001, true),
            (2, 5002, true),
            (3, 5003, true),
            (4, 9001, true),
            (5, 5001, false),
            (6, 7777, true),
            (7, 5001, true),
            (8, 5001, true),
        ] {
            vport(&mut m, v, vni_id, enabled);
        }
        for vni_id in [5001, 5002, 5003, 9001] {
            for i in 0..200u32 {
                if i % 10 == 9 {
                    continue; // map misses
                }
                let mut k = [0u8; map::KEY_LEN];
                MapKey {
                    vni: vni_id,
                    ip: overlay(i).into(),
                }
                .emit(&mut k);
                let substrate: IpAddr = if i % 17 == 5 {
                    "fd00::99".parse().expect("literal")
                } else {
                    Ipv4Addr::new(10, 254, 0, (i % 50) as u8).into()
                };
                let mut v = [0u8; map::VALUE_LEN];
                MapValue {
                    substrate_ip: substrate,
                    substrate_mac: Mac([2, 0, 0, 0, 1, i as u8]),
                    local_vport: (i % 13 == 3).then_some((i % 3) as u16),
                    shadow: (i % 23 == 7) != (vni_id == 9001),
                }
                .emit(&mut v);
                write(&mut m, TableId::Map, 0, &to_window(&k), &to_window(&v));
            }
        }
        for s in [1u16, 2, 5] {
            for i in (0..200u32).step_by(3) {
                shadow_entry(&mut m, s, i, Some(i));
            }
        }
        let v4: IpAddr = "10.253.0.50".parse().expect("literal");
        m.dp.sessions
            .commit(1, session(Encap::Geneve, Mode::Mirror, v4));
        m.dp.sessions
            .commit(2, session(Encap::Vxlan, Mode::Mirror, v4));
        m.dp.sessions
            .commit(3, session(Encap::Geneve, Mode::Redirect, v4));
        m.dp.sessions.commit(
            5,
            session(
                Encap::Geneve,
                Mode::Mirror,
                "fd00::50".parse().expect("literal"),
            ),
        );
        let scoped = |scope: u32| RuleMatch {
            scope: Some(scope),
            ..RuleMatch::ANY
        };
        // ACL: 5001 allows everything by a rule; 5002 denies by default and allows HTTPS,
        // polices DNS, denies one prefix; 5003 has none.
        acl(&mut m, 0, scoped(5001), Verdict::Allow, 1);
        acl(
            &mut m,
            1,
            RuleMatch {
                protocol: Some(6),
                dport: PortRange::single(443),
                ..scoped(5002)
            },
            Verdict::Allow,
            10,
        );
        acl(
            &mut m,
            2,
            RuleMatch {
                protocol: Some(17),
                dport: PortRange::single(53),
                ..scoped(5002)
            },
            Verdict::Police {
                rate_pps: 1000,
                burst: 3,
            },
            10,
        );
        acl(
            &mut m,
            3,
            RuleMatch {
                dst: Some(Prefix::new("10.0.0.0".parse().expect("literal"), 28).expect("valid")),
                ..scoped(5002)
            },
            Verdict::Deny,
            20,
        );
        let action = |session, verdict, truncate, sample_one_in| MirrorAction {
            priority: 5,
            verdict,
            rule_id: 7,
            session,
            truncate,
            sample_one_in,
        };
        // Mirror filters: vport 0 copies everything (Geneve); vport 1 copies TCP, truncated,
        // one in three (VXLAN); vport 2 never; vport 3 redirects; vport 7 copies SYNs to a
        // session with an IPv6 collector, and everything else to session 4 (disabled).
        mirror(
            &mut m,
            0,
            scoped(0),
            action(1, MirrorVerdict::Mirror, None, 1),
        );
        mirror(
            &mut m,
            1,
            RuleMatch {
                protocol: Some(6),
                ..scoped(1)
            },
            action(2, MirrorVerdict::Mirror, Some(80), 3),
        );
        mirror(
            &mut m,
            2,
            scoped(2),
            action(1, MirrorVerdict::DoNotMirror, None, 1),
        );
        mirror(
            &mut m,
            3,
            scoped(3),
            action(3, MirrorVerdict::Mirror, None, 1),
        );
        mirror(
            &mut m,
            4,
            RuleMatch {
                protocol: Some(6),
                tcp_syn: true,
                ..scoped(7)
            },
            MirrorAction {
                priority: 9,
                ..action(5, MirrorVerdict::Mirror, None, 1)
            },
        );
        mirror(
            &mut m,
            5,
            scoped(7),
            action(4, MirrorVerdict::Mirror, None, 2),
        );
        // Vport 8 copies everything, truncated (a port whose frames all get one answer).
        mirror(
            &mut m,
            6,
            scoped(8),
            action(2, MirrorVerdict::Mirror, Some(100), 1),
        );
        m
    }

    /// A TCP (`udp` false) or UDP frame of `len` bytes to overlay address `dst`.
    fn frame(dst: u32, len: usize, udp: bool, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; len.max(60)];
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xfe]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0x11]);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        let n = f.len();
        f[16..18].copy_from_slice(&((n - 14) as u16).to_be_bytes());
        f[22] = 64;
        f[23] = if udp { 17 } else { 6 };
        f[26..30].copy_from_slice(&[10, 200, 0, 11]);
        f[30..34].copy_from_slice(&overlay(dst).octets());
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        if udp {
            f[38..40].copy_from_slice(&((n - 34) as u16).to_be_bytes());
        } else {
            f[46] = 0x50;
            f[47] = flags;
        }
        f
    }

    /// Frames of the shared corpus (when it is next to the repository), at most `max`.
    fn corpus(max: usize) -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!(
                "corpus not found at {}: bench-like frames only",
                dir.display()
            );
            return Vec::new();
        };
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        let mut frames = Vec::new();
        for p in paths {
            let Ok(reader) = shadownet_capture::CaptureReader::open(&p) else {
                continue;
            };
            for r in reader.flatten().take(40) {
                if let shadownet_capture::Frame::Ethernet(f) = r.frame
                    && f.len() >= 14
                {
                    frames.push(f);
                }
            }
            if frames.len() >= max {
                break;
            }
        }
        frames
    }

    /// Everything the sink sees, in order.
    #[derive(Default)]
    struct Record(Vec<(String, Vec<u8>)>);

    impl Sink for Record {
        fn transmit(&mut self, d: &Departure, bytes: &[u8]) {
            self.0.push((format!("{d:?}"), bytes.to_vec()));
        }
    }

    #[test]
    fn the_fast_lane_decides_as_the_general_path() {
        let mut traffic: Vec<(Port, Vec<u8>)> = Vec::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..6000 {
            let r = next();
            let v = match r % 16 {
                0..=5 => 0,
                6..=8 => 1,
                9 => 2,
                10 => 3,
                11 => 4,
                12 => 5,
                13 => 6,
                14 => 7,
                _ => 8,
            };
            let dst = (r >> 8) as u32 % 210;
            let len = [60, 60, 60, 200, 1000, 1500][(r >> 20) as usize % 6];
            let udp = (r >> 24) % 4 == 0;
            let dport = [443, 53, 80, 4789][(r >> 28) as usize % 4];
            let flags = [0x18, 0x02, 0x12, 0x10][(r >> 32) as usize % 4];
            let f = frame(dst, len, udp, 40000 + (r >> 40) as u16 % 100, dport, flags);
            traffic.push((Port::Vport(v), f));
        }
        let corpus = corpus(3000);
        assert!(
            corpus.len() >= 1000 || corpus.is_empty(),
            "{} corpus frames",
            corpus.len()
        );
        for (i, f) in corpus.into_iter().enumerate() {
            let port = match i % 5 {
                0 | 1 => Port::Vport(0),
                2 => Port::Vport(1),
                3 => Port::Uplink,
                _ => Port::Pf,
            };
            let at = (next() % traffic.len() as u64) as usize;
            traffic.insert(at, (port, f));
        }
        let mut models = [programmed(true), programmed(false)];
        let mut records = [Record::default(), Record::default()];
        for (m, rec) in models.iter_mut().zip(records.iter_mut()) {
            let mut now = 1_000_000u64;
            let mut gap = 0;
            for (c, chunk) in traffic.chunks(97).enumerate() {
                // The shadow map changes between batches (its key filter must follow): an
                // entry deleted, re-inserted later to another node, and a new one added.
                let i = (c as u32 / 3 * 3) % 201;
                match c % 3 {
                    0 if c > 0 => shadow_entry(m, 1, i, None),
                    1 => shadow_entry(m, 1, i, Some(i + 1)),
                    2 => shadow_entry(m, 1, i + 1, Some(i)),
                    _ => {}
                }
                let batch: Vec<Arrival<'_>> = chunk
                    .iter()
                    .map(|(port, f)| {
                        // Bursts at twice the line rate fill the receive FIFO (admission
                        // drops), then quiet stretches let it drain.
                        gap = (gap + 1) % 400;
                        now += if gap < 200 { 100 } else { 60_000 };
                        Arrival {
                            port: *port,
                            frame: f,
                            at_ps: now,
                        }
                    })
                    .collect();
                m.receive_batch(&batch, rec);
            }
            m.finish(rec);
        }
        let [fast, general] = &models;
        let [a, b] = &records;
        assert_eq!(a.0.len(), b.0.len(), "departures");
        for (i, (x, y)) in a.0.iter().zip(&b.0).enumerate() {
            assert_eq!(x, y, "departure {i}");
        }
        let (cf, cg) = (fast.dp.counters.values(), general.dp.counters.values());
        for (i, (x, y)) in cf.iter().zip(cg.iter()).enumerate() {
            assert_eq!(x, y, "counter {i}");
        }
        assert_eq!(
            format!("{:?}", fast.stats()),
            format!("{:?}", general.stats())
        );
        // The traffic took every route: the lane, its refusals, and the general path's
        // drops, copies and redirects.
        let c = |id| fast.dp.counters.get(id);
        use shadownet_hw::drop::DropReason as D;
        let mut missing = Vec::new();
        for reason in [
            D::RxFifoOverflow,
            D::AclDeny,
            D::AclDefaultDeny,
            D::MapMiss,
            D::ShadowIsolation,
            D::VportDisabled,
            D::VniUnknown,
            D::MtuExceeded,
        ] {
            if c(counters::drop_reason(reason)) == 0 {
                missing.push(format!("{reason:?}"));
            }
        }
        for (s, kind) in [
            (1, SessionCounter::Copies),
            (2, SessionCounter::SampledOut),
            (2, SessionCounter::Copies),
            (3, SessionCounter::Redirected),
            (4, SessionCounter::Copies),
            (5, SessionCounter::Copies),
        ] {
            if c(counters::session(s, kind)) == 0 {
                missing.push(format!("session {s} {kind:?}"));
            }
        }
        assert!(missing.is_empty(), "routes not taken: {missing:?}");
        assert!(a.0.len() > 5_000, "{} departures", a.0.len());
    }
}
