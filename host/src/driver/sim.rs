//! The simulator as a device backend: the BAR is the model's shared memory, and waiting for
//! a command lets the model service its registers.

use std::{
    cell::{RefCell, RefMut},
    sync::Arc,
};

use shadownet_hw::RegisterView;
use shadownet_sim::{
    NicModel,
    bar::SharedBar,
    dma::{DmaRegion, DmaSpace},
};

use super::{Device, DmaBuffer, DriverError};

/// A simulated NIC driven through its BAR.
pub struct SimDevice {
    bar: Arc<SharedBar>,
    model: RefCell<NicModel>,
}

impl SimDevice {
    /// Wraps a powered-on model.
    pub fn new(model: NicModel) -> SimDevice {
        SimDevice {
            bar: model.bar(),
            model: RefCell::new(model),
        }
    }

    /// The model, for feeding its ports.
    pub fn model(&self) -> RefMut<'_, NicModel> {
        self.model.borrow_mut()
    }

    /// Takes the model back.
    pub fn into_model(self) -> NicModel {
        self.model.into_inner()
    }
}

impl Device for SimDevice {
    fn regs(&self) -> RegisterView<'_> {
        self.bar.host_view()
    }

    fn relax(&self) {
        self.model.borrow_mut().service();
    }

    fn name(&self) -> String {
        "sim".to_string()
    }

    fn alloc_dma(&self, len: usize) -> Result<Box<dyn DmaBuffer>, DriverError> {
        let region = Arc::new(DmaRegion::new(len).map_err(|source| DriverError::Dma {
            device: self.name(),
            source,
        })?);
        let space = self.model.borrow().dma_space().clone();
        let iova = space.map(region.clone());
        Ok(Box::new(SimDma {
            region,
            iova,
            space,
        }))
    }
}

/// Host memory shared with the model, mapped in its DMA space until dropped.
struct SimDma {
    region: Arc<DmaRegion>,
    iova: u64,
    space: DmaSpace,
}

impl DmaBuffer for SimDma {
    fn iova(&self) -> u64 {
        self.iova
    }

    fn len(&self) -> usize {
        self.region.len()
    }

    fn read_u32(&self, offset: usize) -> Option<u32> {
        self.region.read_u32(offset)
    }

    fn write_u32(&self, offset: usize, value: u32) -> Option<()> {
        self.region.write_u32(offset, value)
    }

    fn write_words(&self, offset: usize, words: &[u32]) -> Option<()> {
        self.region.write_words(offset, words)
    }
}

impl Drop for SimDma {
    fn drop(&mut self) {
        self.space.unmap(self.iova);
    }
}
