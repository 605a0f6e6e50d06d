//! The simulator as a device backend: the BAR is the model's shared memory, and waiting for
//! a command lets the model service its registers.

use std::{
    cell::{RefCell, RefMut},
    sync::Arc,
};

use shadownet_hw::RegisterView;
use shadownet_sim::{NicModel, bar::SharedBar};

use super::Device;

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
}
