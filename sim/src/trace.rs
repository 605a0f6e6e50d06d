//! Per-packet trace: one JSON line per packet event (packet id, copy id, stage, table hit or
//! miss, action, drop reason, cycle) — the view into the pipeline a P4/BMv2 user wishes for.
//!
//! The data path records what each stage decided as [`Event`]s; the model stamps them with
//! the packet id and the cycle the stage runs in, and writes them in the order they happen
//! for each packet.

use std::io::Write;

use shadownet_hw::{Port, drop::DropReason, table::TableId};

/// A pipeline stage (or queue/wire event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The frame arrived at the port (last byte received).
    Rx,
    /// The pipeline admitted the frame from the receive FIFO.
    Admit,
    /// Parser.
    Parse,
    /// Port or tunnel to VNI.
    Classify,
    /// ACL.
    Acl,
    /// Overlay to substrate map.
    Map,
    /// Mirror filter.
    MirrorFilter,
    /// Production to shadow map.
    ShadowMap,
    /// Encapsulation of a copy or redirected frame.
    MirrorEncap,
    /// Encapsulation, decapsulation or delivery decision.
    Encap,
    /// The frame is in its egress queue.
    Queue,
    /// Transmission starts on the egress port.
    Tx,
    /// Dropped.
    Drop,
}

impl Stage {
    /// snake_case name.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Rx => "rx",
            Stage::Admit => "admit",
            Stage::Parse => "parse",
            Stage::Classify => "classify",
            Stage::Acl => "acl",
            Stage::Map => "map",
            Stage::MirrorFilter => "mirror_filter",
            Stage::ShadowMap => "shadow_map",
            Stage::MirrorEncap => "mirror_encap",
            Stage::Encap => "encap",
            Stage::Queue => "queue",
            Stage::Tx => "tx",
            Stage::Drop => "drop",
        }
    }
}

/// What a stage did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The stage.
    pub stage: Stage,
    /// 0: the production frame; 1..: the mirror copy the event concerns.
    pub copy: u8,
    /// Table looked up.
    pub table: Option<TableId>,
    /// Whether the lookup hit.
    pub hit: Option<bool>,
    /// Slot of the matching entry or rule.
    pub slot: Option<u32>,
    /// Rule id of the matching rule.
    pub rule_id: Option<u32>,
    /// What the stage decided, in words.
    pub note: Option<&'static str>,
}

impl Event {
    /// A stage with nothing more to say.
    pub const fn stage(stage: Stage) -> Event {
        Event {
            stage,
            copy: 0,
            table: None,
            hit: None,
            slot: None,
            rule_id: None,
            note: None,
        }
    }

    /// A table lookup.
    pub const fn lookup(stage: Stage, table: TableId, hit: bool) -> Event {
        Event {
            table: Some(table),
            hit: Some(hit),
            ..Event::stage(stage)
        }
    }

    /// A rule that matched.
    pub const fn rule(
        stage: Stage,
        table: TableId,
        slot: u32,
        rule_id: u32,
        action: &'static str,
    ) -> Event {
        Event {
            table: Some(table),
            hit: Some(true),
            slot: Some(slot),
            rule_id: Some(rule_id),
            note: Some(action),
            ..Event::stage(stage)
        }
    }

    /// Marks the event as concerning mirror copy `copy`.
    pub const fn for_copy(mut self, copy: u8) -> Event {
        self.copy = copy;
        self
    }

    /// Adds a note.
    pub const fn note(mut self, note: &'static str) -> Event {
        self.note = Some(note);
        self
    }
}

/// One line of the trace.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// Packet id (order of arrival).
    pub packet: u64,
    /// 0 for the production frame, 1.. for mirror copies.
    pub copy: u8,
    /// Cycle of the pipeline clock.
    pub cycle: u64,
    /// Port the event concerns (ingress for rx/admit, egress for queue/tx).
    pub port: Option<Port>,
    /// The event.
    pub event: &'a Event,
    /// Drop reason, for drop events.
    pub reason: Option<DropReason>,
    /// Frame length, for rx/queue/tx events.
    pub len: Option<usize>,
    /// Mirror session, for copies.
    pub session: Option<u16>,
}

/// Writes trace records as JSON lines.
pub struct TraceWriter<W: Write> {
    out: W,
    line: String,
}

impl<W: Write> TraceWriter<W> {
    /// A writer over `out`.
    pub fn new(out: W) -> TraceWriter<W> {
        TraceWriter {
            out,
            line: String::with_capacity(256),
        }
    }

    /// Writes one record.
    pub fn write(&mut self, r: &Record<'_>) -> std::io::Result<()> {
        use std::fmt::Write as _;
        let l = &mut self.line;
        l.clear();
        let e = r.event;
        // Field order is fixed so that two runs give byte-identical traces.
        let _ = write!(
            l,
            "{{\"pkt\":{},\"copy\":{},\"cycle\":{},\"stage\":\"{}\"",
            r.packet,
            r.copy,
            r.cycle,
            e.stage.name()
        );
        if let Some(p) = r.port {
            let _ = write!(l, ",\"port\":\"{p}\"");
        }
        if let Some(t) = e.table {
            let _ = write!(l, ",\"table\":\"{}\"", t.name());
        }
        if let Some(h) = e.hit {
            let _ = write!(l, ",\"hit\":{h}");
        }
        if let Some(s) = e.slot {
            let _ = write!(l, ",\"slot\":{s}");
        }
        if let Some(id) = e.rule_id {
            let _ = write!(l, ",\"rule_id\":{id}");
        }
        if let Some(n) = e.note {
            let _ = write!(l, ",\"action\":\"{n}\"");
        }
        if let Some(reason) = r.reason {
            let _ = write!(l, ",\"reason\":\"{}\"", reason.name());
        }
        if let Some(len) = r.len {
            let _ = write!(l, ",\"len\":{len}");
        }
        if let Some(s) = r.session {
            let _ = write!(l, ",\"session\":{s}");
        }
        l.push_str("}\n");
        self.out.write_all(l.as_bytes())
    }

    /// Flushes and returns the writer.
    pub fn into_inner(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_json_object_per_line() {
        let mut w = TraceWriter::new(Vec::new());
        let e = Event::rule(Stage::Acl, TableId::Acl, 3, 77, "deny");
        w.write(&Record {
            packet: 5,
            copy: 0,
            cycle: 1234,
            port: Some(Port::Vport(2)),
            event: &e,
            reason: None,
            len: None,
            session: None,
        })
        .expect("vec write");
        let drop = Event::stage(Stage::Drop);
        w.write(&Record {
            packet: 5,
            copy: 0,
            cycle: 1240,
            port: None,
            event: &drop,
            reason: Some(DropReason::AclDeny),
            len: None,
            session: None,
        })
        .expect("vec write");
        let out = String::from_utf8(w.into_inner().expect("flush")).expect("utf8");
        let lines: Vec<_> = out.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"pkt":5,"copy":0,"cycle":1234,"stage":"acl","port":"vf2","table":"acl","hit":true,"slot":3,"rule_id":77,"action":"deny"}"#
        );
        for l in lines {
            let v: serde_json::Value = serde_json::from_str(l).expect("valid JSON");
            assert!(v.is_object());
        }
        assert!(out.contains(r#""reason":"acl_deny""#));
    }
}
