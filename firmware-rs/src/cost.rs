//! The cycle cost model of the embedded cores: what each step of the firmware costs on an
//! in-order 32-bit core clocked with the pipeline, with table memory and DMA behind a bus.
//!
//! The simulator cannot time the firmware's instructions (it runs them natively), so the
//! firmware charges itself from this table as it works, and the simulator accounts the sum
//! (`FW_MAILBOX.CYCLES`, the completion records' `cycles`). The figures are estimates of such
//! a core, chosen once and pinned by tests; they let a change to the algorithms show up as a
//! change in cycles per operation, which is what the benchmarks report.

/// Decoding a command and dispatching it.
pub const COMMAND: u32 = 20;
/// Checking a key and value against the table's layout.
pub const VALIDATE: u32 = 12;
/// Reading one bucket of exact-table memory (tags and the slot compared): one table-memory
/// latency.
pub const BUCKET_READ: u32 = 8;
/// Writing one exact-table slot (a 64-byte line) or its tag.
pub const SLOT_WRITE: u32 = 4;
/// Writing one rule or port slot (the TCAM entry and its action).
pub const RULE_WRITE: u32 = 16;
/// Reading or writing one register word over the core's bus.
pub const REGISTER: u32 = 2;
/// Setting up one DMA transfer.
pub const DMA_SETUP: u32 = 10;
/// Each 32-bit word a DMA transfer moves.
pub const DMA_WORD: u32 = 1;
/// One service slice's bookkeeping (heartbeat, doorbell and interrupt checks).
pub const SLICE: u32 = 16;

/// Taking one flow sample from the data path's sample buffer and starting its update.
pub const SKETCH_UPDATE: u32 = 4;
/// One count-min row: the multiply-shift hash and the read-modify-write of a packet and a
/// byte counter in core-local memory.
pub const SKETCH_ROW: u32 = 4;
/// One top-K entry compared (or scanned for the minimum).
pub const SKETCH_TOPK: u32 = 1;
/// Building one telemetry record (reading its counters, filling the fields), before its DMA.
pub const RECORD: u32 = 8;
/// One port's or session's counters compared with the last export.
pub const COUNTER_CHECK: u32 = 2;

/// Cost of a DMA transfer of `bytes`.
pub const fn dma(bytes: usize) -> u32 {
    DMA_SETUP + DMA_WORD * (bytes as u32).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_round_trip_costs_what_the_readme_assumes() {
        // Fetching a 128-byte descriptor and writing a 16-byte completion.
        assert_eq!(dma(128) + dma(16), 56);
    }

    #[test]
    fn a_telemetry_record_costs_what_the_readme_assumes() {
        // Building the record and writing it (two transfers: the body, then the word with
        // the phase).
        assert_eq!(RECORD + dma(28) + dma(4), 36);
        // A mouse: the count-min update only.
        assert_eq!(SKETCH_UPDATE + 4 * SKETCH_ROW, 20);
    }
}
