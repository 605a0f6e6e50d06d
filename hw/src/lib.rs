#![no_std]
pub mod regs;
