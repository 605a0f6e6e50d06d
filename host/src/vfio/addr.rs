//! PCI addresses (`DDDD:BB:DD.F`).

use std::{fmt, str::FromStr};

use super::VfioError;

/// A PCI function's address: domain, bus, device, function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    /// PCI domain (segment).
    pub domain: u16,
    /// Bus number.
    pub bus: u8,
    /// Device number (0-31).
    pub device: u8,
    /// Function number (0-7).
    pub function: u8,
}

impl PciAddress {
    /// An address from its parts; `None` when the device or function number is out of range.
    pub fn new(domain: u16, bus: u8, device: u8, function: u8) -> Option<PciAddress> {
        (device < 32 && function < 8).then_some(PciAddress {
            domain,
            bus,
            device,
            function,
        })
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl FromStr for PciAddress {
    type Err = VfioError;

    /// Parses `DDDD:BB:DD.F` or `BB:DD.F` (domain 0), in hexadecimal as `lspci` prints them.
    fn from_str(s: &str) -> Result<PciAddress, VfioError> {
        let bad = |reason: &str| VfioError::BadAddress {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (head, function) = s
            .rsplit_once('.')
            .ok_or_else(|| bad("no '.' before the function number"))?;
        let parts: Vec<&str> = head.split(':').collect();
        let (domain, bus, device) = match parts.as_slice() {
            [d, b, dev] => (*d, *b, *dev),
            [b, dev] => ("0", *b, *dev),
            _ => return Err(bad("expected DDDD:BB:DD.F or BB:DD.F")),
        };
        let hex = |field: &str, what: &str, digits: usize| {
            if field.is_empty() || field.len() > digits {
                return Err(bad(&format!("{what} must be 1 to {digits} hex digits")));
            }
            u32::from_str_radix(field, 16).map_err(|_| bad(&format!("{what} is not hexadecimal")))
        };
        let domain = hex(domain, "domain", 4)?;
        let bus = hex(bus, "bus", 2)?;
        let device = hex(device, "device", 2)?;
        let function = hex(function, "function", 1)?;
        if device >= 32 {
            return Err(bad("device number must be below 0x20"));
        }
        if function >= 8 {
            return Err(bad("function number must be below 8"));
        }
        // The widths were checked above, so the narrowing conversions cannot lose bits.
        Ok(PciAddress {
            domain: domain as u16,
            bus: bus as u8,
            device: device as u8,
            function: function as u8,
        })
    }
}

impl serde::Serialize for PciAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_like_lspci() {
        let a: PciAddress = "0000:3b:00.1".parse().expect("valid");
        assert_eq!(a, PciAddress::new(0, 0x3b, 0, 1).expect("in range"));
        assert_eq!(a.to_string(), "0000:3b:00.1");
        let short: PciAddress = "3b:1f.7".parse().expect("valid");
        assert_eq!(short.to_string(), "0000:3b:1f.7");
        let upper: PciAddress = "ABCD:FF:1F.7".parse().expect("valid");
        assert_eq!(upper.to_string(), "abcd:ff:1f.7");
    }

    #[test]
    fn rejects_bad_addresses_saying_why() {
        for (input, why) in [
            ("0000:3b:00", "no '.'"),
            ("3b.0", "expected DDDD:BB:DD.F"),
            ("0000:3b:20.0", "below 0x20"),
            ("0000:3b:00.8", "below 8"),
            ("0000:xx:00.0", "bus is not hexadecimal"),
            ("00000:3b:00.0", "domain must be"),
            ("1:2:3:4.0", "expected"),
        ] {
            let err = input.parse::<PciAddress>().expect_err(input).to_string();
            assert!(err.contains(input), "{err}");
            assert!(err.contains(why), "{input}: {err}");
        }
    }
}
