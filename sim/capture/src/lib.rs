//! placeholder: the capture helper fills this crate
