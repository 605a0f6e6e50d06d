//! Driver errors.

use shadownet_hw::{layout::LayoutError, table::TableId};

/// What went wrong talking to the NIC.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The BAR does not start with the shadownet ID block.
    #[error("{device}: not a shadownet NIC (ID.MAGIC is {magic:#010x}, expected {expected:#010x})")]
    NotOurDevice {
        /// Device name.
        device: String,
        /// Magic found.
        magic: u32,
        /// Magic expected.
        expected: u32,
    },
    /// The device implements another major version of the contract.
    #[error(
        "{device}: device contract version {found}.x is not supported (driver speaks {supported}.x)"
    )]
    UnsupportedVersion {
        /// Device name.
        device: String,
        /// Major version found.
        found: u16,
        /// Major version supported.
        supported: u16,
    },
    /// The register-block chain is broken.
    #[error("{device}: register block chain is broken: {detail}")]
    BadChain {
        /// Device name.
        device: String,
        /// What is wrong.
        detail: String,
    },
    /// The device is not ready.
    #[error("{device}: device is not ready (CTRL.STATUS.READY is 0)")]
    NotReady {
        /// Device name.
        device: String,
    },
    /// A command did not complete.
    #[error("{device}: {block} command {op} did not complete within {millis} ms")]
    Timeout {
        /// Device name.
        device: String,
        /// Register block.
        block: &'static str,
        /// Operation.
        op: &'static str,
        /// How long we waited.
        millis: u128,
    },
    /// The device refused a command.
    #[error("{device}: {what} refused: {result}")]
    Refused {
        /// Device name.
        device: String,
        /// What was asked (table and operation, or block and operation).
        what: String,
        /// The device's result code, in words.
        result: &'static str,
    },
    /// A table has no room for the entry.
    #[error("{device}: table {table} is full")]
    TableFull {
        /// Device name.
        device: String,
        /// The table.
        table: TableId,
    },
    /// An index beyond a table's capacity.
    #[error("{device}: slot {index} is beyond table {table}'s {capacity} slots")]
    IndexOutOfRange {
        /// Device name.
        device: String,
        /// The table.
        table: TableId,
        /// The index.
        index: u32,
        /// The capacity.
        capacity: u32,
    },
    /// An entry the driver will not send because it breaks the layout rules.
    #[error("invalid {what}: {source}")]
    InvalidEntry {
        /// What kind of entry.
        what: &'static str,
        /// The rule it breaks.
        source: LayoutError,
    },
    /// A mirror session number beyond the device's sessions.
    #[error("{device}: mirror session {session} does not exist (the device has {count})")]
    NoSuchSession {
        /// Device name.
        device: String,
        /// Session asked for.
        session: u16,
        /// Sessions the device has.
        count: u16,
    },
    /// The device backend cannot give the device host memory.
    #[error("{device}: the device backend has no DMA memory")]
    DmaUnsupported {
        /// Device name.
        device: String,
    },
    /// DMA memory could not be allocated or mapped.
    #[error("{device}: allocating DMA memory: {source}")]
    Dma {
        /// Device name.
        device: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// An access past the end of a DMA buffer (a driver bug).
    #[error("DMA buffer access at byte {offset} is out of range")]
    DmaOutOfRange {
        /// Byte offset.
        offset: usize,
    },
    /// The device lacks a feature (its `ID.CAPS` bit is clear).
    #[error("{device}: the device has no {feature}")]
    Unsupported {
        /// Device name.
        device: String,
        /// The feature.
        feature: &'static str,
    },
    /// A ring size beyond the contract's limit.
    #[error("ring of 2^{size_log2} entries is too large (at most 2^16)")]
    RingSize {
        /// log2 of the entries asked for.
        size_log2: u32,
    },
    /// A ring operation before the ring was enabled.
    #[error("{device}: the command ring is not enabled")]
    RingNotEnabled {
        /// Device name.
        device: String,
    },
    /// The device stopped the ring.
    #[error("{device}: command ring stopped at slot {slot}: {reason}")]
    RingStopped {
        /// Device name.
        device: String,
        /// Why (CMD_RING.ERROR.CODE in words).
        reason: &'static str,
        /// Ring slot at fault.
        slot: u16,
    },
    /// A telemetry operation before the telemetry ring was enabled.
    #[error("{device}: the telemetry ring is not enabled")]
    TelemetryNotEnabled {
        /// Device name.
        device: String,
    },
    /// The device stopped writing telemetry (bad ring address or size, or a DMA fault).
    #[error("{device}: telemetry ring stopped: {reason}")]
    TelemetryStopped {
        /// Device name.
        device: String,
        /// Why.
        reason: &'static str,
    },
    /// The device wrote a telemetry record the driver cannot decode (it was skipped).
    #[error("{device}: telemetry record {index} is invalid: {detail}")]
    BadTelemetryRecord {
        /// Device name.
        device: String,
        /// Its ring index (free-running).
        index: u32,
        /// What is wrong.
        detail: String,
    },
    /// DMA memory could not be mapped for the device through VFIO.
    #[error("{device}: mapping DMA memory through VFIO: {source}")]
    VfioDma {
        /// Device name.
        device: String,
        /// What VFIO said.
        source: Box<crate::vfio::VfioError>,
    },
}
