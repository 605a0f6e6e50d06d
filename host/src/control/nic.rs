//! The NIC as the control plane reports it, and traffic fed into the simulated one.

use std::{cell::RefMut, path::PathBuf};

use serde::Serialize;
use shadownet_hw::{Port, table::TableId};
use shadownet_sim::{
    NicModel,
    run::{Input, Pacing, PcapSink},
};
use utoipa::ToSchema;

use super::{ControlError, Controller};
use crate::driver::{Device, sim::SimDevice};

/// A NIC backend the daemon can run on.
pub trait Backend: Device + 'static {
    /// The cycle-accurate model behind the device, when it is simulated.
    fn model(&self) -> Option<RefMut<'_, NicModel>> {
        None
    }
}

impl Backend for SimDevice {
    fn model(&self) -> Option<RefMut<'_, NicModel>> {
        Some(SimDevice::model(self))
    }
}

/// One table's fill.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TableFill {
    /// Table name.
    pub table: String,
    /// Slots.
    pub capacity: u32,
    /// Occupied slots.
    pub occupancy: u32,
}

/// The NIC as the driver reads it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct NicStatus {
    /// Backend (`sim`, a PCI address).
    pub device: String,
    /// Contract version.
    pub version: String,
    /// Build id.
    pub build_id: u32,
    /// Whether it is the simulator.
    pub simulated: bool,
    /// Table generation (bumped by every committed table change).
    pub generation: u32,
    /// Tables.
    pub tables: Vec<TableFill>,
}

/// What a capture fed into the simulated NIC produced.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct InjectReport {
    /// The port fed.
    pub port: String,
    /// Frames fed.
    pub frames: u64,
    /// Directory holding one capture per egress port.
    #[schema(value_type = String)]
    pub out_dir: PathBuf,
    /// Frames transmitted per port, with the capture holding them.
    pub outputs: Vec<PortOutput>,
}

/// One egress port's output.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PortOutput {
    /// Port.
    pub port: String,
    /// Frames transmitted.
    pub frames: u64,
    /// Capture file.
    #[schema(value_type = String)]
    pub path: PathBuf,
}

impl<D: Backend> Controller<D> {
    /// Identity and table fill.
    pub fn nic_status(&mut self) -> Result<NicStatus, ControlError> {
        let id = self.nic.identify();
        let tables = TableId::ALL
            .iter()
            .map(|t| TableFill {
                table: t.name().to_string(),
                capacity: t.capacity(),
                occupancy: self.nic.occupancy(*t),
            })
            .collect();
        Ok(NicStatus {
            device: self.nic.device().name(),
            version: format!("{}.{}.{}", id.version.0, id.version.1, id.version.2),
            build_id: id.build_id,
            simulated: id.simulated(),
            generation: self.nic.generation(),
            tables,
        })
    }

    /// Resolves a port name: `uplink`, `pf`, `vfN`, or the name of a local node or replica
    /// (`node`, `network/node`, `shadow/node`).
    pub fn port_named(&self, name: &str) -> Option<Port> {
        let plan = &self.compiled.as_ref()?.plan;
        plan.port_named(name).or_else(|| {
            plan.local_ports
                .iter()
                .find(|p| p.name.ends_with(&format!("/{name}")))
                .map(|p| p.port)
        })
    }

    /// Feeds a capture into a port of the simulated NIC and writes every egress port's frames
    /// to `<data>/sim-out/<n>/`.
    pub fn inject(
        &mut self,
        port: &str,
        capture: &[u8],
        line_rate: bool,
    ) -> Result<InjectReport, ControlError> {
        let port_id = self.port_named(port).ok_or_else(|| {
            ControlError::field("port", format!("'{port}' is not a port of this NIC"))
        })?;
        let Some(dir) = self.sim_out.clone() else {
            return Err(ControlError::Conflict(
                "this daemon has no directory for simulator output".into(),
            ));
        };
        let n = self.injections;
        self.injections += 1;
        let out = dir.join(format!("{n:04}"));
        std::fs::create_dir_all(&out)
            .map_err(|e| ControlError::Conflict(format!("{}: {e}", out.display())))?;
        let input_path = out.join("input.pcap");
        std::fs::write(&input_path, capture)
            .map_err(|e| ControlError::Conflict(format!("{}: {e}", input_path.display())))?;
        let mut ports: Vec<Port> = vec![Port::Uplink, Port::Pf];
        if let Some(c) = &self.compiled {
            ports.extend(c.plan.local_ports.iter().map(|p| p.port));
        }
        let labels: Vec<(Port, String)> = ports
            .iter()
            .map(|p| {
                (
                    *p,
                    self.compiled
                        .as_ref()
                        .map(|c| c.plan.port_label(*p))
                        .unwrap_or_else(|| p.to_string()),
                )
            })
            .collect();
        let mut sink =
            PcapSink::new(&out, &ports).map_err(|e| ControlError::Conflict(e.to_string()))?;
        let reports = {
            let mut model = self.nic.device().model().ok_or_else(|| {
                ControlError::Conflict("traffic can only be injected into the simulated NIC".into())
            })?;
            let pacing = if line_rate {
                Pacing::LineRate { percent: 100 }
            } else {
                Pacing::Timestamps
            };
            shadownet_sim::run::run(
                &mut model,
                &[Input {
                    port: port_id,
                    path: input_path.clone(),
                }],
                pacing,
                &mut sink,
                &mut |_, _| {},
            )
            .map_err(|e| ControlError::field("body", e.to_string()))?
        };
        let written = sink
            .finish()
            .map_err(|e| ControlError::Conflict(e.to_string()))?;
        let outputs = written
            .into_iter()
            .map(|(p, (path, frames))| PortOutput {
                port: labels
                    .iter()
                    .find(|(q, _)| *q == p)
                    .map(|(_, l)| l.clone())
                    .unwrap_or_else(|| p.to_string()),
                frames,
                path,
            })
            .collect();
        Ok(InjectReport {
            port: port.to_string(),
            frames: reports.iter().map(|r| r.frames).sum(),
            out_dir: out,
            outputs,
        })
    }
}
