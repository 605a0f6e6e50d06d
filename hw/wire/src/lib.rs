//! placeholder: the wire helper fills this crate
