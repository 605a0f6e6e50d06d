//! The data path: what the NIC does with one frame (DESIGN.md, "The data path").
//!
//! ```text
//! rx port ─► parse ─► classify (VF ─► VNI) ─► ACL ─► map (VNI, dst) ─► encap ─► primary queue
//!         └► mirror filter (VM, direction, …; 1/N; truncate) ─► clone ─► shadow map
//!              ─► shadow VNI + substrate ─► encap ─► (policer, mirror queue: see `sched`)
//! ```
//!
//! [`Datapath::process`] decides, for one received frame, where the production frame goes (or
//! why it is dropped) and which mirror copies are made, and builds their bytes. It is a pure
//! function of the tables, sessions and configuration; *when* things happen — FIFOs, the
//! pipeline's cycles, queues, the policer — is the scheduler's business.
//!
//! Frames from a VF leave toward the destination's host (encapsulated in VXLAN with the
//! network's VNI), to another local VF, or down the standard path (the PF) for non-IP frames
//! and map misses the network sends to the host. Frames from the uplink that are tunnels to
//! this NIC are decapsulated and delivered to the local VF of their destination; everything
//! else from the uplink takes the standard path to the PF, and everything from the PF goes to
//! the uplink. Shadow networks stay inside the shadow: the tables never let a shadow packet
//! reach a production destination or the standard path, and shadow traffic is never mirrored.

use shadownet_hw::{
    NUM_SESSIONS, Port,
    counters::{PipelineCounter, SessionCounter},
    drop::DropReason,
    layout::{
        acl::Verdict,
        ip_from_bytes, is_v4_mapped, map,
        mirror_filter::{MirrorAction, MirrorVerdict},
        rule::Direction,
        session::{Encap, Mode},
        shadow_map, vni,
    },
    table::TableId,
};
use shadownet_wire::{
    EncapParams, EthernetAddress, L3, L4, Layer, MAX_ENCAP_OVERHEAD, ParseConfig, ParseError,
    ShadowMetadata, TunnelHeader, TunnelKind, emit_encap_headers, encap_overhead,
    flow_entropy_port,
    geneve::{SHADOW_FLAG_REDIRECTED, SHADOW_FLAG_RELEASED, SHADOW_FLAG_TRUNCATED},
    parse::Headers,
};

mod fast;

pub(crate) use fast::{FastCounts, Plan, Route};

use std::num::NonZeroU8;

use crate::{
    config::RunningConfig,
    counters::Counters,
    frames::{FrameBuf, Frames},
    sessions::Sessions,
    tables::{PacketKey, Prefetched, Tables},
    trace::{Event, Stage},
};

/// Parsing without tunnel recognition: for frames from VMs and the host, and for the inner
/// frames of tunnels (no nesting).
const NO_TUNNELS: ParseConfig = ParseConfig {
    vxlan_port: 0,
    geneve_port: 0,
};

/// Outer TTL / hop limit of the tunnels the NIC originates.
const OUTER_TTL: u8 = 64;

/// EtherType of Ethernet carried in Geneve (transparent Ethernet bridging).
const TEB: u16 = 0x6558;

/// Which egress queue a frame waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queue {
    /// Production traffic (including redirected frames): strict high priority.
    Primary,
    /// Mirror copies: strict low priority, policed.
    Mirror,
}

/// A frame the pipeline sends, kept as plain words (the port as its index, the session with
/// a sentinel for none, the queue and copy number in one byte): the scheduler moves it from
/// the decision to the departure as 16 bytes, and reading its port is a load, not an enum
/// match. Read it through its methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutFrame {
    /// Where its bytes are in the frame arena ([`Datapath::frames`]); the sink receives them
    /// with the departure.
    buf: FrameBuf,
    /// Mirror session of a copy or a redirected frame, [`NO_SESSION`] for none.
    session: u16,
    /// Egress port's [`Port::index`].
    port: u8,
    /// [`KIND`] always (never zero: `Option<OutFrame>` needs no tag of its own), [`MIRROR_BIT`]
    /// for the mirror queue, the copy number in the bits below [`KIND`].
    kind: NonZeroU8,
}

// `OutFrame` keeps a port's index in a byte.
const _: () = assert!(Port::COUNT <= u8::MAX as usize + 1);

/// [`OutFrame::session`] of a frame with none (sessions are below [`shadownet_hw::NUM_SESSIONS`]).
const NO_SESSION: u16 = u16::MAX;
/// [`OutFrame`]'s bit for the mirror queue.
const MIRROR_BIT: u8 = 0x80;
/// [`OutFrame`]'s bit set in every kind byte.
const KIND: NonZeroU8 = NonZeroU8::new(0x40).unwrap();

impl OutFrame {
    /// A frame for `port`'s `queue`: copy number `copy` (0 for the production frame, 1..
    /// for copies, below 64) of a frame, of mirror session `session`, its bytes at `buf`.
    #[inline(always)]
    pub fn new(port: Port, queue: Queue, session: Option<u16>, copy: u8, buf: FrameBuf) -> Self {
        debug_assert!(copy < KIND.get() && session != Some(NO_SESSION));
        OutFrame {
            buf,
            session: session.unwrap_or(NO_SESSION),
            port: port.index() as u8,
            kind: KIND
                | copy
                | if queue == Queue::Mirror {
                    MIRROR_BIT
                } else {
                    0
                },
        }
    }

    /// Egress port.
    #[inline(always)]
    pub fn port(&self) -> Port {
        port_of_index(self.port as usize)
    }

    /// Egress port's [`Port::index`].
    #[inline(always)]
    pub fn port_index(&self) -> usize {
        self.port as usize
    }

    /// Egress queue.
    #[inline(always)]
    pub fn queue(&self) -> Queue {
        if self.is_mirror() {
            Queue::Mirror
        } else {
            Queue::Primary
        }
    }

    /// Whether it leaves by the mirror queue.
    #[inline(always)]
    pub fn is_mirror(&self) -> bool {
        self.kind.get() & MIRROR_BIT != 0
    }

    /// Mirror session of a copy or a redirected frame.
    #[inline(always)]
    pub fn session(&self) -> Option<u16> {
        (self.session != NO_SESSION).then_some(self.session)
    }

    /// 0 for the production frame, 1.. for copies.
    #[inline(always)]
    pub fn copy(&self) -> u8 {
        self.kind.get() & (KIND.get() - 1)
    }

    /// Where its bytes are in the frame arena.
    #[inline(always)]
    pub fn buf(&self) -> FrameBuf {
        self.buf
    }

    /// Its length in bytes.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether it has no bytes.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// The port of a [`Port::index`] below [`Port::COUNT`] (one past it is taken as the uplink).
#[inline(always)]
pub(crate) fn port_of_index(i: usize) -> Port {
    if i < shadownet_hw::NUM_VPORTS {
        Port::Vport(i as u16)
    } else if i == shadownet_hw::NUM_VPORTS {
        Port::Pf
    } else {
        Port::Uplink
    }
}

/// A mirror copy the pipeline could not make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyDrop {
    /// Session of the copy.
    pub session: u16,
    /// 1.. copy number.
    pub copy: u8,
    /// Why.
    pub reason: DropReason,
}

/// Up to two items kept inline: a frame is evaluated in at most two directions (VF to VF),
/// so it has at most two copies, and the hot path allocates nothing for them.
#[derive(Debug)]
pub struct Two<T> {
    items: [Option<T>; 2],
}

impl<T> Default for Two<T> {
    fn default() -> Self {
        Two {
            items: [None, None],
        }
    }
}

impl<T> Two<T> {
    /// Adds an item; a third one is a logic error.
    #[inline(always)]
    pub fn push(&mut self, t: T) {
        match self.items.iter_mut().find(|x| x.is_none()) {
            Some(slot) => *slot = Some(t),
            None => unreachable!("a frame is evaluated in at most two directions"),
        }
    }

    /// Number of items.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.items.iter().filter(|x| x.is_some()).count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items[0].is_none()
    }

    /// The items.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter().flatten()
    }

    /// Takes both items out, leaving none (the second is `None` when the first is).
    #[inline(always)]
    pub fn take_both(&mut self) -> (Option<T>, Option<T>) {
        (self.items[0].take(), self.items[1].take())
    }

    /// Takes the items out, leaving none.
    #[inline(always)]
    pub fn take_all(&mut self) -> impl Iterator<Item = T> + '_ {
        self.items.iter_mut().filter_map(Option::take)
    }
}

impl<T> IntoIterator for Two<T> {
    type Item = T;
    type IntoIter = std::iter::Flatten<std::array::IntoIter<Option<T>, 2>>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter().flatten()
    }
}

/// What the pipeline decided for one frame.
#[derive(Debug)]
pub struct Decision {
    /// The production frame's egress, or why it was dropped.
    pub primary: Result<OutFrame, DropReason>,
    /// Mirror copies made (at most one per direction evaluated: two for VF-to-VF traffic).
    pub copies: Two<OutFrame>,
    /// Copies asked for but not made.
    pub copy_drops: Two<CopyDrop>,
}

/// What the read-ahead of a batch finds out about one frame before the pipeline processes
/// it: the parse, and the look-ups the frame will make, started (or made) early so that
/// table memory is cached in time. Tables do not change while a batch is received (commands
/// are performed between batches), so an answer found ahead is the one the pipeline would
/// get.
#[derive(Clone, Debug, Default)]
pub struct ReadAhead {
    /// The parsed headers (unspecified after a parse error).
    headers: Headers,
    /// Why the frame did not parse.
    parse_error: Option<ParseError>,
    /// The look-ups.
    lookups: Lookups,
    /// The parse of a tunnel's inner frame, for a tunnel to this NIC: made once here, used
    /// again when the frame is decapsulated.
    inner: Option<Result<Headers, ParseError>>,
}

impl ReadAhead {
    /// The flow hash of the frame ([`flow_hash`]): of the inner headers for a tunnel to this
    /// NIC, else of its own; `None` when it did not parse.
    #[inline]
    pub fn flow(&self) -> Option<u32> {
        match (&self.inner, self.parsed()) {
            (Some(Ok(inner)), _) => Some(flow_hash(inner)),
            (_, Ok(h)) => Some(flow_hash(h)),
            _ => None,
        }
    }

    /// The parser's result.
    pub fn parsed(&self) -> Result<&Headers, ParseError> {
        match self.parse_error {
            None => Ok(&self.headers),
            Some(e) => Err(e),
        }
    }
}

/// Look-ups of one frame made or started by the read-ahead (see [`ReadAhead`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Lookups {
    /// The VNI table look-up of the frame's network.
    pub vni: Option<Prefetched>,
    /// The map look-up of the frame's destination.
    pub map: Option<Prefetched>,
    /// The shadow-map look-up its mirror copy will likely make.
    pub shadow_map: Option<Prefetched>,
    /// The mirror filter's winning rule for the frame's own headers, as evaluated for a VM
    /// and direction.
    mirror_rule: Option<MirrorRuleAhead>,
}

/// The mirror filter's answer for a frame's headers, VM and direction: the winning rule's
/// slot and action, if any rule matches.
#[derive(Clone, Copy, Debug)]
struct MirrorRuleAhead {
    vport: u16,
    dir: Direction,
    rule: Option<(u32, MirrorAction)>,
}

/// Tables, sessions, configuration and counters: the state the data path reads and counts.
pub struct Datapath {
    /// Every table.
    pub tables: Tables,
    /// Mirror sessions.
    pub sessions: Sessions,
    /// Running configuration.
    pub config: RunningConfig,
    /// Counters.
    pub counters: Counters,
    /// The bytes of the frames built and not yet transmitted or dropped.
    pub frames: Frames,
    /// Outer headers prepared per mirror session.
    outer: crate::outer::Cache,
    /// When the frame being processed was admitted (ps): the clock of the ACL's police rules.
    pub admitted_ps: u64,
    /// The fast lane's per-port answers for the current batch.
    fast: fast::FastLane,
}

/// The network a frame belongs to, as the VNI table says.
#[derive(Clone, Copy)]
struct Network {
    vni: u32,
    shadow: bool,
    miss_to_host: bool,
    deny_to_vm: bool,
    deny_from_vm: bool,
}

/// What a frame headed for a shadow is: which copy, for which session and direction.
#[derive(Clone, Copy)]
struct ShadowBound {
    copy: u8,
    session: u16,
    dir: Direction,
    truncate: Option<u16>,
    redirected: bool,
}

/// A mirror filter's decision to copy.
struct MirrorHit {
    session: u16,
    truncate: Option<u16>,
}

fn parse_drop(layer: Layer) -> DropReason {
    match layer {
        Layer::L2 => DropReason::MalformedL2,
        Layer::L3 => DropReason::MalformedL3,
        Layer::L4 => DropReason::MalformedL4,
        Layer::Tunnel => DropReason::MalformedTunnel,
    }
}

/// Flow hash of the inner headers, for the outer UDP source port (ECMP entropy): the same
/// flow always gets the same port, different flows spread. The telemetry ring's heavy-hitter
/// records name flows by it.
#[inline(always)]
pub fn flow_hash(h: &Headers) -> u32 {
    let word = |b: &[u8; 16], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    flow_mix(
        word(&h.src, 8),
        word(&h.src, 12),
        word(&h.dst, 8),
        word(&h.dst, 12),
        h.ports().unwrap_or((0, 0)),
        h.protocol,
    )
}

/// [`flow_hash`] from the address words it reads (bytes 8..12 and 12..16 of each address,
/// little-endian), the ports and the protocol.
#[inline(always)]
fn flow_mix(src8: u32, src12: u32, dst8: u32, dst12: u32, ports: (u16, u16), protocol: u8) -> u32 {
    let (sp, dp) = ports;
    let mut x = (src12 as u64) << 32 | dst12 as u64;
    x ^= (src8 ^ dst8.rotate_left(7)) as u64;
    x ^= ((sp as u64) << 16 | dp as u64) << 8 | protocol as u64;
    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 32) as u32 ^ x as u32
}

impl Default for Datapath {
    fn default() -> Self {
        Datapath::new()
    }
}

impl Datapath {
    /// Empty tables, disabled sessions, reset configuration.
    pub fn new() -> Datapath {
        Datapath {
            tables: Tables::new(),
            sessions: Sessions::default(),
            config: RunningConfig::RESET,
            counters: Counters::default(),
            frames: Frames::new(),
            outer: crate::outer::Cache::default(),
            admitted_ps: 0,
            fast: fast::FastLane::default(),
        }
    }

    /// How the parser stage parses a frame received on `port`. Only the uplink carries
    /// tunnels to this NIC: a VM's (or the host's) UDP to port 4789 is just UDP.
    fn parse_config(&self, port: Port) -> ParseConfig {
        if port == Port::Uplink {
            self.config.parse
        } else {
            NO_TUNNELS
        }
    }

    /// Decides what happens to `frame`, received on `port`; `ahead` is what
    /// [`Datapath::read_ahead`] found out about it (with the tables as they are now). Trace
    /// events go to `events` when it is given.
    pub fn process(
        &mut self,
        port: Port,
        frame: &[u8],
        ahead: &ReadAhead,
        events: Option<&mut Vec<Event>>,
    ) -> Decision {
        let mut d = Decision {
            primary: Err(DropReason::DeviceDisabled),
            copies: Two::default(),
            copy_drops: Two::default(),
        };
        if !self.config.enabled {
            return d;
        }
        let mut cx = FrameContext {
            lookups: &ahead.lookups,
            inner: ahead.inner.as_ref(),
            events,
            flow: None,
        };
        let h = match ahead.parsed() {
            Ok(h) => h,
            Err(e) => {
                cx.event(Event::stage(Stage::Parse).note(e.name()));
                d.primary = Err(parse_drop(e.layer()));
                return d;
            }
        };
        cx.event(Event::stage(Stage::Parse));
        d.primary = match port {
            Port::Vport(v) => self.vm_ingress(v, frame, h, &mut d, &mut cx),
            Port::Uplink => self.uplink_ingress(frame, h, &mut d, &mut cx),
            Port::Pf => Ok(self.unchanged(Port::Uplink, frame)),
        };
        d
    }

    /// Parses `frame`, received on `port`, into `out` and starts the look-ups it will need
    /// where a quick look can tell which: the VNI (resolved at once, or taken from
    /// `previous`, the read-ahead of the frame before in the same batch, when it is the
    /// same), the map key and the likely shadow-map key (to be read ahead, see
    /// [`ReadAhead`]), and the mirror filter's rule for a VM's frame. Changes nothing the
    /// pipeline observes.
    #[inline(always)]
    pub fn read_ahead(
        &mut self,
        port: Port,
        frame: &[u8],
        previous: Option<&ReadAhead>,
        out: &mut ReadAhead,
    ) {
        // In place: a read-ahead is a few hundred bytes, and a batch holds one per frame.
        out.parse_error =
            shadownet_wire::parse_into(frame, &self.parse_config(port), &mut out.headers).err();
        out.inner = match out.parsed() {
            Ok(h) if port == Port::Uplink && self.config.enabled => h
                .tunnel
                .filter(|_| self.config.is_local(&h.dst))
                .and_then(|_| h.inner_frame(frame))
                .map(|i| shadownet_wire::parse(i, &NO_TUNNELS)),
            _ => None,
        };
        // Field by field, so that the look-ups are written in place (a `Lookups` is a few
        // hundred bytes; returning one by value copied it for every frame).
        let parsed = match out.parse_error {
            None => Ok(&out.headers),
            Some(e) => Err(e),
        };
        self.lookups_ahead(
            port,
            parsed,
            out.inner.as_ref(),
            previous.and_then(|p| p.lookups.vni.as_ref()),
            &mut out.lookups,
        );
    }

    #[inline(always)]
    fn lookups_ahead(
        &mut self,
        port: Port,
        parsed: Result<&Headers, ParseError>,
        inner: Option<&Result<Headers, ParseError>>,
        previous_vni: Option<&Prefetched>,
        ahead: &mut Lookups,
    ) {
        *ahead = Lookups::default();
        if !self.config.enabled {
            return;
        }
        let Ok(h) = parsed else {
            return;
        };
        let vni_lookup = |vni_id: u32| Some(self.vni_ahead(vni_id, previous_vni));
        match port {
            Port::Vport(v) => {
                let Some(vport) = self.tables.vport(v) else {
                    return;
                };
                let vni = vport.vni;
                ahead.vni = vni_lookup(vni);
                if !h.is_ip() {
                    return;
                }
                ahead.map = Some(Prefetched::new(map::key_words(vni, &h.dst)));
                let dir = Direction::FromVm;
                let rule = self.mirror_rule(v, dir, h);
                ahead.mirror_rule = Some(MirrorRuleAhead {
                    vport: v,
                    dir,
                    rule,
                });
                if let Some((_, a)) = rule.filter(|(_, a)| a.verdict == MirrorVerdict::Mirror) {
                    let key = shadow_map::key_words(a.session, vni, &h.dst);
                    ahead.shadow_map = Some(Prefetched::new(key));
                }
            }
            Port::Uplink => {
                let Some(t) = h.tunnel.filter(|_| self.config.is_local(&h.dst)) else {
                    return;
                };
                ahead.vni = vni_lookup(t.vni);
                let Some(Ok(ih)) = inner.filter(|i| i.as_ref().is_ok_and(|ih| ih.is_ip())) else {
                    return;
                };
                ahead.map = Some(Prefetched::new(map::key_words(t.vni, &ih.dst)));
            }
            Port::Pf => {}
        }
    }

    /// The VNI look-up of `vni_id`, taken from `previous` (the frame before's) when it is
    /// the same.
    #[inline(always)]
    fn vni_ahead(&self, vni_id: u32, previous: Option<&Prefetched>) -> Prefetched {
        let key = vni::key_words(vni_id);
        match previous {
            Some(p) if p.key() == &key => *p,
            _ => {
                let mut p = Prefetched::new(key);
                self.tables.vni.resolve(&mut p);
                p
            }
        }
    }

    /// Reads the tags of the map and shadow-map buckets a frame will look in, so that they
    /// are on their way to the cache; returns a value that depends on them.
    #[inline(always)]
    pub fn touch_tags(&self, ahead: &ReadAhead) -> u32 {
        let l = &ahead.lookups;
        let mut acc = 0;
        if let Some(p) = &l.map {
            acc ^= self.tables.map.touch_tags(p);
        }
        if let Some(p) = &l.shadow_map {
            acc ^= self.tables.shadow_map.touch_tags(p);
        }
        acc
    }

    /// Makes a frame's map and shadow-map look-ups (their tags read ahead by then), which
    /// reads the entries' lines.
    #[inline(always)]
    pub fn resolve(&self, ahead: &mut ReadAhead) {
        let l = &mut ahead.lookups;
        if let Some(p) = &mut l.map {
            self.tables.map.resolve(p);
        }
        if let Some(p) = &mut l.shadow_map {
            self.tables.shadow_map.resolve(p);
        }
    }

    /// The mirror filter's winning rule (slot and action) for VM `v`, direction `dir` and
    /// the headers `h`, without counting.
    #[inline(always)]
    fn mirror_rule(&mut self, v: u16, dir: Direction, h: &Headers) -> Option<(u32, MirrorAction)> {
        self.tables
            .mirror_filters
            .classifier()
            .lookup_with(v as u32, || {
                PacketKey::new(&h.src, &h.dst, h.protocol, h.ports(), dir, is_syn(h))
            })
            .map(|r| (r.slot, r.action))
    }

    fn unchanged(&mut self, port: Port, frame: &[u8]) -> OutFrame {
        let (buf, bytes) = self.frames.alloc(frame.len());
        bytes.copy_from_slice(frame);
        OutFrame::new(port, Queue::Primary, None, 0, buf)
    }

    #[inline(always)]
    fn network(&mut self, vni_id: u32, cx: &mut FrameContext<'_>) -> Result<Network, DropReason> {
        let words = self
            .tables
            .vni
            .get_prefetched(&vni::key_words(vni_id), cx.lookups.vni.as_ref())
            .copied();
        self.counters.lookup(TableId::Vni, words.is_some());
        cx.event(Event::lookup(
            Stage::Classify,
            TableId::Vni,
            words.is_some(),
        ));
        let e = vni::VniEntry::read(&words.ok_or(DropReason::VniUnknown)?);
        Ok(Network {
            vni: vni_id,
            shadow: e.shadow,
            miss_to_host: e.miss_to_host,
            deny_to_vm: e.default_deny_to_vm,
            deny_from_vm: e.default_deny_from_vm,
        })
    }

    #[inline(always)]
    fn acl(
        &mut self,
        net: &Network,
        h: &Headers,
        dir: Direction,
        cx: &mut FrameContext<'_>,
    ) -> Result<(), DropReason> {
        let hit = self
            .tables
            .acl
            .classifier()
            .lookup_with(net.vni, || {
                PacketKey::new(&h.src, &h.dst, h.protocol, h.ports(), dir, is_syn(h))
            })
            .map(|r| (r.slot, r.action));
        self.counters.lookup(TableId::Acl, hit.is_some());
        match hit {
            Some((slot, a)) => {
                let (verdict, outcome) = match a.verdict {
                    Verdict::Allow => ("allow", Ok(())),
                    Verdict::Deny => ("deny", Err(DropReason::AclDeny)),
                    Verdict::Police { rate_pps, burst } => {
                        if self
                            .tables
                            .acl
                            .police(slot, rate_pps, burst, self.admitted_ps)
                        {
                            ("police: pass", Ok(()))
                        } else {
                            ("police: drop", Err(DropReason::AclPoliced))
                        }
                    }
                };
                cx.event(Event::rule(
                    Stage::Acl,
                    TableId::Acl,
                    slot,
                    a.rule_id,
                    verdict,
                ));
                outcome
            }
            None => {
                let deny = match dir {
                    Direction::ToVm => net.deny_to_vm,
                    Direction::FromVm => net.deny_from_vm,
                };
                cx.event(
                    Event::lookup(Stage::Acl, TableId::Acl, false).note(if deny {
                        "default deny"
                    } else {
                        "default allow"
                    }),
                );
                if deny {
                    Err(DropReason::AclDefaultDeny)
                } else {
                    Ok(())
                }
            }
        }
    }

    #[inline(always)]
    fn map_lookup(
        &mut self,
        vni_id: u32,
        ip: &[u8; 16],
        cx: &mut FrameContext<'_>,
    ) -> Option<map::MapWords> {
        let words = self
            .tables
            .map
            .get_prefetched(&map::key_words(vni_id, ip), cx.lookups.map.as_ref())
            .copied();
        self.counters.lookup(TableId::Map, words.is_some());
        cx.event(Event::lookup(Stage::Map, TableId::Map, words.is_some()));
        words.as_ref().map(map::MapWords::read)
    }

    /// A frame from local VM `v`.
    fn vm_ingress(
        &mut self,
        v: u16,
        frame: &[u8],
        h: &Headers,
        d: &mut Decision,
        cx: &mut FrameContext<'_>,
    ) -> Result<OutFrame, DropReason> {
        let vport = self.tables.vport(v);
        let vport = vport.filter(|e| e.enabled);
        self.counters.lookup(TableId::Vport, vport.is_some());
        let Some(vport) = vport else {
            cx.event(Event::stage(Stage::Classify).note("vport disabled"));
            return Err(DropReason::VportDisabled);
        };
        let net = self.network(vport.vni, cx)?;
        if !h.is_ip() {
            // ARP and other non-IP frames go to the host's stack (its ARP responder), never
            // out of a shadow.
            if net.shadow {
                return Err(DropReason::ShadowIsolation);
            }
            cx.event(Event::stage(Stage::Map).note("non-IP: standard path"));
            return Ok(self.unchanged(Port::Pf, frame));
        }
        self.acl(&net, h, Direction::FromVm, cx)?;
        let dest = self.map_lookup(net.vni, &h.dst, cx);
        let egress_mirror = if net.shadow {
            None
        } else {
            self.mirror_filter(v, Direction::FromVm, h, cx)
        };
        let Some(dest) = dest else {
            if net.miss_to_host && !net.shadow {
                if let Some(r) =
                    self.redirect(&egress_mirror, Direction::FromVm, &net, h, frame, cx)
                {
                    return r;
                }
                self.make_copy(egress_mirror, Direction::FromVm, &net, h, frame, d, cx);
                cx.event(Event::stage(Stage::Map).note("miss: standard path"));
                return Ok(self.unchanged(Port::Pf, frame));
            }
            return Err(DropReason::MapMiss);
        };
        if dest.shadow != net.shadow {
            return Err(DropReason::ShadowIsolation);
        }
        if let Some(b) = dest.local_vport {
            // VF to VF on this NIC: the destination's ingress checks and mirror apply too.
            let peer = self.tables.vport(b);
            match peer {
                Some(p) if p.enabled && p.vni == net.vni => {}
                Some(p) if p.enabled => return Err(DropReason::VniMismatch),
                _ => return Err(DropReason::VportDisabled),
            }
            self.acl(&net, h, Direction::ToVm, cx)?;
            let ingress_mirror = if net.shadow {
                None
            } else {
                self.mirror_filter(b, Direction::ToVm, h, cx)
            };
            if let Some(r) = self.redirect(&egress_mirror, Direction::FromVm, &net, h, frame, cx) {
                return r;
            }
            if let Some(r) = self.redirect(&ingress_mirror, Direction::ToVm, &net, h, frame, cx) {
                return r;
            }
            self.make_copy(egress_mirror, Direction::FromVm, &net, h, frame, d, cx);
            self.make_copy(ingress_mirror, Direction::ToVm, &net, h, frame, d, cx);
            cx.event(Event::stage(Stage::Encap).note("local delivery"));
            return Ok(self.unchanged(Port::Vport(b), frame));
        }
        if let Some(r) = self.redirect(&egress_mirror, Direction::FromVm, &net, h, frame, cx) {
            return r;
        }
        // Production's frame first: a packet production cannot send (no substrate address,
        // over the MTU) is not copied either — the shadow sees what production sends.
        let out = self.encapsulate(
            None,
            &dest.substrate_ip,
            dest.substrate_mac,
            TunnelHeader::Vxlan { vni: net.vni },
            self.config.parse.vxlan_port,
            cx.flow(h),
            frame,
        )?;
        self.make_copy(egress_mirror, Direction::FromVm, &net, h, frame, d, cx);
        cx.event(Event::stage(Stage::Encap).note("vxlan to substrate"));
        Ok(OutFrame::new(Port::Uplink, Queue::Primary, None, 0, out))
    }

    /// A frame from the uplink.
    fn uplink_ingress(
        &mut self,
        frame: &[u8],
        outer: &Headers,
        d: &mut Decision,
        cx: &mut FrameContext<'_>,
    ) -> Result<OutFrame, DropReason> {
        let Some(t) = outer
            .tunnel
            .filter(|_| outer.is_ip() && self.config.is_local(&outer.dst))
        else {
            cx.event(Event::stage(Stage::Classify).note("not a tunnel to this NIC: standard path"));
            return Ok(self.unchanged(Port::Pf, frame));
        };
        if t.kind == TunnelKind::Geneve && t.geneve_protocol != TEB {
            return Err(DropReason::UnsupportedTunnelPayload);
        }
        if let Some(meta) = t.shadow.filter(|m| m.flags & SHADOW_FLAG_RELEASED != 0) {
            return self.release(frame, outer, t.vni, meta, cx);
        }
        let (inner, h) = cx.inner_headers(outer, frame)?;
        let net = self.network(t.vni, cx)?;
        let target = match h.l3 {
            L3::Ipv4 | L3::Ipv6 => h.dst,
            L3::Arp { target_ip, .. } => {
                let mut m = [0u8; 16];
                m[10] = 0xFF;
                m[11] = 0xFF;
                m[12..].copy_from_slice(&target_ip);
                m
            }
            L3::Other => return Err(DropReason::NotLocal),
        };
        let dest = self
            .map_lookup(net.vni, &target, cx)
            .ok_or(DropReason::MapMiss)?;
        if dest.shadow != net.shadow {
            return Err(DropReason::ShadowIsolation);
        }
        let b = dest.local_vport.ok_or(DropReason::NotLocal)?;
        match self.tables.vport(b) {
            Some(p) if p.enabled && p.vni == net.vni => {}
            Some(p) if p.enabled => return Err(DropReason::VniMismatch),
            _ => return Err(DropReason::VportDisabled),
        }
        if h.is_ip() {
            self.acl(&net, &h, Direction::ToVm, cx)?;
            let mirror = if net.shadow {
                None
            } else {
                self.mirror_filter(b, Direction::ToVm, &h, cx)
            };
            if let Some(r) = self.redirect(&mirror, Direction::ToVm, &net, &h, inner, cx) {
                return r;
            }
            self.make_copy(mirror, Direction::ToVm, &net, &h, inner, d, cx);
        }
        cx.event(Event::stage(Stage::Encap).note("decapsulated"));
        Ok(self.unchanged(Port::Vport(b), inner))
    }

    /// A release from the uplink: a frame the NIC redirected, sent back by the shadow's
    /// analysis node once it accepted it (hw/docs/mirror.md, "Releasing a redirected
    /// frame"). Accepted only for an enabled redirect-mode session and only from the address
    /// the NIC redirects that session's frames for the inner destination to; the inner frame
    /// then passes the production ACL again (a block rule committed while the frame was in
    /// analysis still applies) and is delivered as production — to a local VF, toward the
    /// destination's host, or down the standard path — with no mirror filter and no second
    /// redirect.
    fn release(
        &mut self,
        frame: &[u8],
        outer: &Headers,
        vni_id: u32,
        meta: ShadowMetadata,
        cx: &mut FrameContext<'_>,
    ) -> Result<OutFrame, DropReason> {
        let (inner, h) = cx.inner_headers(outer, frame)?;
        let session = meta.session;
        let redirect_session = (session as usize) < NUM_SESSIONS && {
            let s = self.sessions.get(session);
            s.enabled && s.mode == Mode::Redirect
        };
        if !redirect_session {
            cx.event(Event::stage(Stage::Classify).note("release: not a redirect session"));
            return Err(DropReason::ReleaseNotRedirect);
        }
        let net = self.network(vni_id, cx)?;
        if net.shadow {
            // A release is addressed to production: a shadow VNI here is a shadow frame
            // trying to leave the shadow.
            return Err(DropReason::ShadowIsolation);
        }
        if !h.is_ip() {
            cx.event(Event::stage(Stage::Classify).note("release: inner frame not IP"));
            return Err(DropReason::ReleaseUnauthorized);
        }
        let (from, _, _) = self.shadow_target(0, session, &net, &h.dst, cx);
        if from != outer.src {
            cx.event(Event::stage(Stage::Classify).note("release: not from the shadow"));
            return Err(DropReason::ReleaseUnauthorized);
        }
        cx.event(Event::stage(Stage::Classify).note("release from the shadow"));
        let dir = if meta.direction == Direction::ToVm.code() {
            Direction::ToVm
        } else {
            Direction::FromVm
        };
        self.acl(&net, &h, dir, cx)?;
        let out = match self.map_lookup(net.vni, &h.dst, cx) {
            None if net.miss_to_host => {
                cx.event(Event::stage(Stage::Map).note("released: miss, standard path"));
                self.unchanged(Port::Pf, inner)
            }
            None => return Err(DropReason::MapMiss),
            Some(dest) if dest.shadow => return Err(DropReason::ShadowIsolation),
            Some(dest) => match dest.local_vport {
                Some(b) => {
                    match self.tables.vport(b) {
                        Some(p) if p.enabled && p.vni == net.vni => {}
                        Some(p) if p.enabled => return Err(DropReason::VniMismatch),
                        _ => return Err(DropReason::VportDisabled),
                    }
                    if dir == Direction::FromVm {
                        // VF to VF: the destination's ingress rules apply as on the way in.
                        self.acl(&net, &h, Direction::ToVm, cx)?;
                    }
                    cx.event(Event::stage(Stage::Encap).note("released: local delivery"));
                    self.unchanged(Port::Vport(b), inner)
                }
                None => {
                    let buf = self.encapsulate(
                        None,
                        &dest.substrate_ip,
                        dest.substrate_mac,
                        TunnelHeader::Vxlan { vni: net.vni },
                        self.config.parse.vxlan_port,
                        cx.flow(&h),
                        inner,
                    )?;
                    cx.event(Event::stage(Stage::Encap).note("released: vxlan to substrate"));
                    OutFrame::new(Port::Uplink, Queue::Primary, None, 0, buf)
                }
            },
        };
        self.counters.pipeline(PipelineCounter::Released, 1);
        self.counters
            .pipeline(PipelineCounter::ReleasedBytes, inner.len() as u64);
        Ok(out)
    }

    /// The mirror filter's verdict for VM `v` in direction `dir`, after sampling.
    #[inline(always)]
    fn mirror_filter(
        &mut self,
        v: u16,
        dir: Direction,
        h: &Headers,
        cx: &mut FrameContext<'_>,
    ) -> Option<MirrorHit> {
        // The read-ahead evaluated the frame's own headers (never a tunnel's inner frame).
        let hit = match cx.lookups.mirror_rule {
            Some(m) if m.vport == v && m.dir == dir => m.rule,
            _ => self.mirror_rule(v, dir, h),
        };
        self.counters.lookup(TableId::MirrorFilter, hit.is_some());
        let Some((slot, a)) = hit else {
            cx.event(Event::lookup(
                Stage::MirrorFilter,
                TableId::MirrorFilter,
                false,
            ));
            return None;
        };
        if a.verdict == MirrorVerdict::DoNotMirror {
            cx.event(Event::rule(
                Stage::MirrorFilter,
                TableId::MirrorFilter,
                slot,
                a.rule_id,
                "do not mirror",
            ));
            return None;
        }
        let nth = self.tables.mirror_filters.count_match(slot);
        if !nth.is_multiple_of(a.sample_one_in as u64) {
            self.counters
                .session(a.session, SessionCounter::SampledOut, 1);
            cx.event(Event::rule(
                Stage::MirrorFilter,
                TableId::MirrorFilter,
                slot,
                a.rule_id,
                "sampled out",
            ));
            return None;
        }
        cx.event(Event::rule(
            Stage::MirrorFilter,
            TableId::MirrorFilter,
            slot,
            a.rule_id,
            "mirror",
        ));
        Some(MirrorHit {
            session: a.session,
            truncate: a.truncate,
        })
    }

    /// Where a copy for `session` of a packet toward `dst` goes: the shadow node standing in
    /// for the destination, or the session's collector.
    #[inline(always)]
    fn shadow_target(
        &mut self,
        copy: u8,
        session: u16,
        net: &Network,
        dst: &[u8; 16],
        cx: &mut FrameContext<'_>,
    ) -> ([u8; 16], [u8; 6], u32) {
        let words = self
            .tables
            .shadow_map
            .get_prefetched(
                &shadow_map::key_words(session, net.vni, dst),
                cx.lookups.shadow_map.as_ref(),
            )
            .copied();
        self.counters.lookup(TableId::ShadowMap, words.is_some());
        cx.event(
            Event::lookup(Stage::ShadowMap, TableId::ShadowMap, words.is_some()).for_copy(copy),
        );
        if let Some(w) = words {
            let v = shadow_map::ShadowMapWords::read(&w);
            return (v.substrate_ip, v.substrate_mac, v.shadow_vni);
        }
        let s = self.sessions.get(session);
        (
            shadownet_hw::layout::ip_to_bytes(s.collector_ip),
            s.collector_mac.0,
            s.shadow_vni,
        )
    }

    /// Builds the encapsulated copy (or redirected frame) for a session.
    /// Builds the encapsulated frame a shadow receives: a copy, or a redirected frame.
    #[inline(always)]
    fn shadow_frame(
        &mut self,
        b: ShadowBound,
        net: &Network,
        h: &Headers,
        frame: &[u8],
        cx: &mut FrameContext<'_>,
    ) -> Result<FrameBuf, DropReason> {
        let ShadowBound {
            copy,
            session,
            dir,
            truncate,
            redirected,
        } = b;
        let encap = self.sessions.get(session).encap;
        let (dst_ip, dst_mac, shadow_vni) = self.shadow_target(copy, session, net, &h.dst, cx);
        let sequence = self.sessions.next_sequence(session);
        let len = match truncate {
            Some(t) if (t as usize) < frame.len() => t as usize,
            _ => frame.len(),
        };
        let mut flags = 0;
        if len < frame.len() {
            flags |= SHADOW_FLAG_TRUNCATED;
        }
        if redirected {
            flags |= SHADOW_FLAG_REDIRECTED;
        }
        let (tunnel, port) = match encap {
            Encap::Vxlan => (
                TunnelHeader::Vxlan { vni: shadow_vni },
                self.config.parse.vxlan_port,
            ),
            Encap::Geneve => (
                TunnelHeader::Geneve {
                    vni: shadow_vni,
                    shadow: Some(ShadowMetadata {
                        session,
                        direction: dir.code(),
                        flags,
                        sequence,
                        original_len: frame.len().min(u16::MAX as usize) as u16,
                    }),
                },
                self.config.parse.geneve_port,
            ),
        };
        let flow = cx.flow(h);
        let out = self
            .encapsulate(
                Some(session),
                &dst_ip,
                dst_mac,
                tunnel,
                port,
                flow,
                &frame[..len],
            )
            .map_err(|r| match r {
                DropReason::NoSubstrateAddress if !redirected => {
                    DropReason::MirrorNoSubstrateAddress
                }
                DropReason::MtuExceeded if !redirected => DropReason::MirrorMtuExceeded,
                other => other,
            })?;
        cx.event(
            Event::stage(Stage::MirrorEncap)
                .for_copy(copy)
                .note(if redirected {
                    "redirected to shadow"
                } else {
                    "copy to shadow"
                }),
        );
        Ok(out)
    }

    /// In redirect mode the production frame goes to the shadow instead of production.
    #[inline(always)]
    fn redirect(
        &mut self,
        hit: &Option<MirrorHit>,
        dir: Direction,
        net: &Network,
        h: &Headers,
        frame: &[u8],
        cx: &mut FrameContext<'_>,
    ) -> Option<Result<OutFrame, DropReason>> {
        let hit = hit.as_ref()?;
        let s = self.sessions.get(hit.session);
        if !(s.enabled && s.mode == Mode::Redirect) {
            return None;
        }
        let session = hit.session;
        let built = self.shadow_frame(
            ShadowBound {
                copy: 0,
                session,
                dir,
                truncate: None,
                redirected: true,
            },
            net,
            h,
            frame,
            cx,
        );
        // Counted once the frame exists: a redirect that cannot be built is a drop.
        if built.is_ok() {
            self.counters
                .session(session, SessionCounter::Redirected, 1);
        }
        Some(built.map(|buf| OutFrame::new(Port::Uplink, Queue::Primary, Some(session), 0, buf)))
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn make_copy(
        &mut self,
        hit: Option<MirrorHit>,
        dir: Direction,
        net: &Network,
        h: &Headers,
        frame: &[u8],
        d: &mut Decision,
        cx: &mut FrameContext<'_>,
    ) {
        let Some(hit) = hit else { return };
        let copy = (d.copies.len() + d.copy_drops.len() + 1) as u8;
        let session = hit.session;
        let s = self.sessions.get(session);
        if s.enabled && s.mode == Mode::Redirect {
            // Already redirected as the production frame; no second copy.
            return;
        }
        // Every copy asked for is counted, so copies = sent + dropped by reason.
        self.counters.session(session, SessionCounter::Copies, 1);
        if !s.enabled {
            d.copy_drops.push(CopyDrop {
                session,
                copy,
                reason: DropReason::MirrorSessionDisabled,
            });
            return;
        }
        let bound = ShadowBound {
            copy,
            session,
            dir,
            truncate: hit.truncate,
            redirected: false,
        };
        match self.shadow_frame(bound, net, h, frame, cx) {
            Ok(buf) => {
                self.counters
                    .session(session, SessionCounter::CopyBytes, buf.len() as u64);
                d.copies.push(OutFrame::new(
                    Port::Uplink,
                    Queue::Mirror,
                    Some(session),
                    copy,
                    buf,
                ));
            }
            Err(reason) => {
                d.copy_drops.push(CopyDrop {
                    session,
                    copy,
                    reason,
                });
            }
        }
    }

    /// Wraps `inner` in Ethernet/IP/UDP/tunnel toward `dst_ip`; `flow` is the inner headers'
    /// [`flow_hash`]. The outer header of a copy or redirect (`session` given) comes from
    /// the one prepared for its session; a production frame's is built for it (production
    /// destinations are too many for prepared headers to pay: a cache of 4,096 of them,
    /// direct-mapped, cost more in look-ups and misses than it saved, measured).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn encapsulate(
        &mut self,
        session: Option<u16>,
        dst_ip: &[u8; 16],
        dst_mac: [u8; 6],
        tunnel: TunnelHeader,
        udp_port: u16,
        flow: u32,
        inner: &[u8],
    ) -> Result<FrameBuf, DropReason> {
        if is_v4_mapped(dst_ip)
            && let Some(src) = self.config.local_ipv4
        {
            // The fixed IPv4 layout (`outer`): the same bytes as the general path below.
            let tunnel_len = tunnel.header_len();
            let total = 14 + 20 + 8 + tunnel_len + inner.len();
            if total > self.config.uplink_mtu as usize {
                return Err(DropReason::MtuExceeded);
            }
            let v4 = |b: &[u8; 16]| [b[12], b[13], b[14], b[15]];
            // A copy's or redirect's header from its session's prepared one.
            if let Some(session) = session
                && total - 14 <= u16::MAX as usize
            {
                let (kind, vni, shadow) = crate::outer::Key::tunnel(&tunnel);
                let key = crate::outer::Key {
                    dst_mac,
                    src_mac: self.config.local_mac.0,
                    src: v4(&src),
                    dst: v4(dst_ip),
                    udp_dst_port: udp_port,
                    vni,
                    kind,
                };
                if let Some(p) = self.outer.get(session, &key, OUTER_TTL) {
                    let (buf, out) = self.frames.alloc(total);
                    p.write(out, inner.len(), flow_entropy_port(flow), shadow);
                    out[p.len()..].copy_from_slice(inner);
                    return Ok(buf);
                }
            }
            let mut h = [0u8; crate::outer::MAX_LEN];
            if let Some(header_len) = crate::outer::ipv4_header(
                &mut h,
                dst_mac,
                self.config.local_mac.0,
                v4(&src),
                v4(dst_ip),
                flow_entropy_port(flow),
                udp_port,
                OUTER_TTL,
                &tunnel,
                inner.len(),
            ) {
                let (buf, out) = self.frames.alloc(total);
                crate::outer::put(out, &h, header_len);
                out[header_len..].copy_from_slice(inner);
                return Ok(buf);
            }
        }
        let dst = ip_from_bytes(*dst_ip);
        let src = self
            .config
            .local_addr_for(dst.is_ipv4())
            .ok_or(DropReason::NoSubstrateAddress)?;
        let params = EncapParams {
            src_mac: EthernetAddress(self.config.local_mac.0),
            dst_mac: EthernetAddress(dst_mac),
            src_ip: src,
            dst_ip: dst,
            udp_src_port: flow_entropy_port(flow),
            udp_dst_port: udp_port,
            ttl: OUTER_TTL,
            tunnel,
        };
        let total = encap_overhead(&params) + inner.len();
        if total > self.config.uplink_mtu as usize {
            return Err(DropReason::MtuExceeded);
        }
        let mut headers = [0u8; MAX_ENCAP_OVERHEAD];
        // Only a datagram over 64 KiB fails here (the MTU check bounds the rest).
        let header_len = emit_encap_headers(&params, inner, &mut headers)
            .map_err(|_| DropReason::MtuExceeded)?;
        let (buf, out) = self.frames.alloc(header_len + inner.len());
        out[..header_len].copy_from_slice(&headers[..header_len]);
        out[header_len..].copy_from_slice(inner);
        Ok(buf)
    }
}

/// What the stages share while processing one frame: the read-ahead's look-ups, and where
/// trace events go (when tracing).
struct FrameContext<'a> {
    lookups: &'a Lookups,
    /// The read-ahead's parse of a tunnel's inner frame, if it made one.
    inner: Option<&'a Result<Headers, ParseError>>,
    events: Option<&'a mut Vec<Event>>,
    /// The flow hash of the headers the frame's encapsulations carry, once computed: every
    /// frame the NIC builds from one received frame carries the same headers (its own, or
    /// its tunnel's inner frame's), so production frame and copy share it.
    flow: Option<u32>,
}

impl FrameContext<'_> {
    /// [`flow_hash`] of `h`, the headers every encapsulation of this frame carries.
    #[inline(always)]
    fn flow(&mut self, h: &Headers) -> u32 {
        match self.flow {
            Some(f) => f,
            None => {
                let f = flow_hash(h);
                self.flow = Some(f);
                f
            }
        }
    }

    /// A tunnel's inner frame and its headers (the read-ahead's parse when it made one); a
    /// missing or unparsable inner frame is a malformed tunnel.
    #[inline]
    fn inner_headers<'f>(
        &mut self,
        outer: &Headers,
        frame: &'f [u8],
    ) -> Result<(&'f [u8], Headers), DropReason> {
        let inner = outer
            .inner_frame(frame)
            .ok_or(DropReason::MalformedTunnel)?;
        let parsed = match self.inner {
            Some(p) => *p,
            None => shadownet_wire::parse(inner, &NO_TUNNELS),
        };
        match parsed {
            Ok(h) => Ok((inner, h)),
            Err(e) => {
                self.event(Event::stage(Stage::Parse).note(e.name()));
                Err(DropReason::MalformedTunnel)
            }
        }
    }

    #[inline]
    fn event(&mut self, e: Event) {
        if let Some(ev) = self.events.as_mut() {
            ev.push(e);
        }
    }
}

/// Whether `h` is a TCP connection attempt (SYN set, ACK clear): what rules limited to
/// connection attempts match.
#[inline]
fn is_syn(h: &Headers) -> bool {
    use shadownet_wire::tcp::flags::{ACK, SYN};
    matches!(h.l4, L4::Tcp { flags, .. } if flags & (SYN | ACK) == SYN)
}
