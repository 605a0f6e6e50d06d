//! Link-type numbers, names and the conversion of frames to Ethernet.

/// `LINKTYPE_NULL`: BSD loopback, 4-byte address family in the writer's byte order.
pub const LINKTYPE_NULL: u32 = 0;
/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// `LINKTYPE_RAW`: raw IPv4 or IPv6, version from the first nibble.
pub const LINKTYPE_RAW: u32 = 101;
/// `LINKTYPE_LOOP`: OpenBSD loopback, 4-byte address family in network byte order.
pub const LINKTYPE_LOOP: u32 = 108;
/// `LINKTYPE_LINUX_SLL`: Linux cooked capture v1 (16-byte header).
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// `LINKTYPE_IPV4`: raw IPv4.
pub const LINKTYPE_IPV4: u32 = 228;
/// `LINKTYPE_IPV6`: raw IPv6.
pub const LINKTYPE_IPV6: u32 = 229;
/// `LINKTYPE_DBUS`: D-Bus messages (libpcap allows 128 MiB records for it).
const LINKTYPE_DBUS: u32 = 231;
/// `LINKTYPE_LINUX_SLL2`: Linux cooked capture v2 (20-byte header).
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// Source MAC of every Ethernet header this crate synthesises (locally administered).
pub const SYNTH_SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Destination MAC of every Ethernet header this crate synthesises (locally administered).
pub const SYNTH_DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

const ETH_HLEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;

/// Largest captured length accepted before a record is called implausible.
///
/// The same limits libpcap and Wireshark use: 256 KiB, except D-Bus (128 MiB).
pub(crate) fn max_caplen(link_type: u32) -> u32 {
    if link_type == LINKTYPE_DBUS {
        128 * 1024 * 1024
    } else {
        256 * 1024
    }
}

/// Bytes to leave free in front of the frame when reading it, so that the
/// Ethernet header can be written in place without moving the frame.
pub(crate) fn headroom(link_type: u32) -> usize {
    match link_type {
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => ETH_HLEN,
        LINKTYPE_NULL | LINKTYPE_LOOP => ETH_HLEN - 4,
        _ => 0,
    }
}

/// Converts the frame in `buf[headroom(link_type)..]` to Ethernet in place.
///
/// On success `buf` holds the Ethernet frame. On failure `buf` holds the frame's
/// bytes as captured (headroom removed) and the reason is returned.
pub(crate) fn to_ethernet(link_type: u32, buf: &mut Vec<u8>) -> Result<(), &'static str> {
    let room = headroom(link_type);
    let result = convert(link_type, buf, room);
    if result.is_err() && room > 0 {
        buf.drain(..room);
    }
    result
}

fn convert(link_type: u32, buf: &mut Vec<u8>, room: usize) -> Result<(), &'static str> {
    match link_type {
        LINKTYPE_ETHERNET => Ok(()),
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => {
            let first = *buf
                .get(room)
                .ok_or("raw IP frame is empty, no version nibble")?;
            let ethertype = match first >> 4 {
                4 => ETHERTYPE_IPV4,
                6 => ETHERTYPE_IPV6,
                _ => return Err("raw frame is neither IPv4 nor IPv6"),
            };
            write_eth_header(&mut buf[..ETH_HLEN], ethertype);
            Ok(())
        }
        LINKTYPE_NULL | LINKTYPE_LOOP => {
            let af: [u8; 4] = buf
                .get(room..room + 4)
                .and_then(|s| s.try_into().ok())
                .ok_or("frame shorter than the 4-byte loopback header")?;
            let ethertype = if link_type == LINKTYPE_LOOP {
                af_to_ethertype(u32::from_be_bytes(af))
            } else {
                // Host byte order of whoever wrote the file: try both.
                af_to_ethertype(u32::from_le_bytes(af))
                    .or_else(|| af_to_ethertype(u32::from_be_bytes(af)))
            }
            .ok_or("loopback address family is neither AF_INET nor AF_INET6")?;
            write_eth_header(&mut buf[..ETH_HLEN], ethertype);
            Ok(())
        }
        LINKTYPE_LINUX_SLL => cooked(
            buf,
            16,
            14,
            "frame shorter than the 16-byte LINUX_SLL header",
        ),
        LINKTYPE_LINUX_SLL2 => cooked(
            buf,
            20,
            0,
            "frame shorter than the 20-byte LINUX_SLL2 header",
        ),
        _ => Err("link type is not convertible to Ethernet"),
    }
}

/// Linux cooked header of `hlen` bytes with the big-endian protocol at `proto_at`.
fn cooked(
    buf: &mut Vec<u8>,
    hlen: usize,
    proto_at: usize,
    too_short: &'static str,
) -> Result<(), &'static str> {
    if buf.len() < hlen {
        return Err(too_short);
    }
    let proto = u16::from_be_bytes([buf[proto_at], buf[proto_at + 1]]);
    if proto < 0x0600 {
        return Err("cooked-capture protocol is not an EtherType (below 0x0600)");
    }
    let excess = hlen - ETH_HLEN;
    write_eth_header(&mut buf[excess..hlen], proto);
    buf.drain(..excess);
    Ok(())
}

fn af_to_ethertype(af: u32) -> Option<u16> {
    match af {
        2 => Some(ETHERTYPE_IPV4),
        // Linux, NetBSD/OpenBSD, FreeBSD, macOS.
        10 | 24 | 28 | 30 => Some(ETHERTYPE_IPV6),
        _ => None,
    }
}

fn write_eth_header(hdr: &mut [u8], ethertype: u16) {
    hdr[0..6].copy_from_slice(&SYNTH_DST_MAC);
    hdr[6..12].copy_from_slice(&SYNTH_SRC_MAC);
    hdr[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

/// The `LINKTYPE_` name of a link-type number, without the prefix (`1` → `"ETHERNET"`).
///
/// Numbers that are not in the tcpdump.org registry give `"UNKNOWN"`.
pub fn link_type_name(lt: u32) -> &'static str {
    match lt {
        0 => "NULL",
        1 => "ETHERNET",
        2 => "EXP_ETHERNET",
        3 => "AX25",
        4 => "PRONET",
        5 => "CHAOS",
        6 => "IEEE802_5",
        7 => "ARCNET_BSD",
        8 => "SLIP",
        9 => "PPP",
        10 => "FDDI",
        50 => "PPP_HDLC",
        51 => "PPP_ETHER",
        99 => "SYMANTEC_FIREWALL",
        100 => "ATM_RFC1483",
        101 => "RAW",
        102 => "SLIP_BSDOS",
        103 => "PPP_BSDOS",
        104 => "C_HDLC",
        105 => "IEEE802_11",
        106 => "LINUX_ATM_CLIP",
        107 => "FRELAY",
        108 => "LOOP",
        109 => "ENC",
        110 => "LANE8023",
        111 => "HIPPI",
        112 => "NETBSD_HDLC",
        113 => "LINUX_SLL",
        114 => "LTALK",
        115 => "ECONET",
        116 => "IPFILTER",
        117 => "PFLOG",
        118 => "CISCO_IOS",
        119 => "IEEE802_11_PRISM",
        120 => "IEEE802_11_AIRONET",
        121 => "HHDLC",
        122 => "IP_OVER_FC",
        123 => "SUNATM",
        124 => "RIO",
        125 => "PCI_EXP",
        126 => "AURORA",
        127 => "IEEE802_11_RADIOTAP",
        128 => "TZSP",
        129 => "ARCNET_LINUX",
        130 => "JUNIPER_MLPPP",
        131 => "JUNIPER_MLFR",
        132 => "JUNIPER_ES",
        133 => "JUNIPER_GGSN",
        134 => "JUNIPER_MFR",
        135 => "JUNIPER_ATM2",
        136 => "JUNIPER_SERVICES",
        137 => "JUNIPER_ATM1",
        138 => "APPLE_IP_OVER_IEEE1394",
        139 => "MTP2_WITH_PHDR",
        140 => "MTP2",
        141 => "MTP3",
        142 => "SCCP",
        143 => "DOCSIS",
        144 => "LINUX_IRDA",
        145 => "IBM_SP",
        146 => "IBM_SN",
        147 => "USER0",
        148 => "USER1",
        149 => "USER2",
        150 => "USER3",
        151 => "USER4",
        152 => "USER5",
        153 => "USER6",
        154 => "USER7",
        155 => "USER8",
        156 => "USER9",
        157 => "USER10",
        158 => "USER11",
        159 => "USER12",
        160 => "USER13",
        161 => "USER14",
        162 => "USER15",
        163 => "IEEE802_11_AVS",
        164 => "JUNIPER_MONITOR",
        165 => "BACNET_MS_TP",
        166 => "PPP_PPPD",
        167 => "JUNIPER_PPPOE",
        168 => "JUNIPER_PPPOE_ATM",
        169 => "GPRS_LLC",
        170 => "GPF_T",
        171 => "GPF_F",
        172 => "GCOM_T1E1",
        173 => "GCOM_SERIAL",
        174 => "JUNIPER_PIC_PEER",
        175 => "ERF_ETH",
        176 => "ERF_POS",
        177 => "LINUX_LAPD",
        178 => "JUNIPER_ETHER",
        179 => "JUNIPER_PPP",
        180 => "JUNIPER_FRELAY",
        181 => "JUNIPER_CHDLC",
        182 => "MFR",
        183 => "JUNIPER_VP",
        184 => "A429",
        185 => "A653_ICM",
        186 => "USB_FREEBSD",
        187 => "BLUETOOTH_HCI_H4",
        188 => "IEEE802_16_MAC_CPS",
        189 => "USB_LINUX",
        190 => "CAN20B",
        191 => "IEEE802_15_4_LINUX",
        192 => "PPI",
        193 => "IEEE802_16_MAC_CPS_RADIO",
        194 => "JUNIPER_ISM",
        195 => "IEEE802_15_4_WITHFCS",
        196 => "SITA",
        197 => "ERF",
        198 => "RAIF1",
        199 => "IPMB_KONTRON",
        200 => "JUNIPER_ST",
        201 => "BLUETOOTH_HCI_H4_WITH_PHDR",
        202 => "AX25_KISS",
        203 => "LAPD",
        204 => "PPP_WITH_DIR",
        205 => "C_HDLC_WITH_DIR",
        206 => "FRELAY_WITH_DIR",
        207 => "LAPB_WITH_DIR",
        209 => "IPMB_LINUX",
        210 => "FLEXRAY",
        211 => "MOST",
        212 => "LIN",
        213 => "X2E_SERIAL",
        214 => "X2E_XORAYA",
        215 => "IEEE802_15_4_NONASK_PHY",
        216 => "LINUX_EVDEV",
        217 => "GSMTAP_UM",
        218 => "GSMTAP_ABIS",
        219 => "MPLS",
        220 => "USB_LINUX_MMAPPED",
        221 => "DECT",
        222 => "AOS",
        223 => "WIHART",
        224 => "FC_2",
        225 => "FC_2_WITH_FRAME_DELIMS",
        226 => "IPNET",
        227 => "CAN_SOCKETCAN",
        228 => "IPV4",
        229 => "IPV6",
        230 => "IEEE802_15_4_NOFCS",
        231 => "DBUS",
        232 => "JUNIPER_VS",
        233 => "JUNIPER_SRX_E2E",
        234 => "JUNIPER_FIBRECHANNEL",
        235 => "DVB_CI",
        236 => "MUX27010",
        237 => "STANAG_5066_D_PDU",
        238 => "JUNIPER_ATM_CEMIC",
        239 => "NFLOG",
        240 => "NETANALYZER",
        241 => "NETANALYZER_TRANSPARENT",
        242 => "IPOIB",
        243 => "MPEG_2_TS",
        244 => "NG40",
        245 => "NFC_LLCP",
        246 => "PFSYNC",
        247 => "INFINIBAND",
        248 => "SCTP",
        249 => "USBPCAP",
        250 => "RTAC_SERIAL",
        251 => "BLUETOOTH_LE_LL",
        252 => "WIRESHARK_UPPER_PDU",
        253 => "NETLINK",
        254 => "BLUETOOTH_LINUX_MONITOR",
        255 => "BLUETOOTH_BREDR_BB",
        256 => "BLUETOOTH_LE_LL_WITH_PHDR",
        257 => "PROFIBUS_DL",
        258 => "PKTAP",
        259 => "EPON",
        260 => "IPMI_HPM_2",
        261 => "ZWAVE_R1_R2",
        262 => "ZWAVE_R3",
        263 => "WATTSTOPPER_DLM",
        264 => "ISO_14443",
        265 => "RDS",
        266 => "USB_DARWIN",
        267 => "OPENFLOW",
        268 => "SDLC",
        269 => "TI_LLN_SNIFFER",
        270 => "LORATAP",
        271 => "VSOCK",
        272 => "NORDIC_BLE",
        273 => "DOCSIS31_XRA31",
        274 => "ETHERNET_MPACKET",
        275 => "DISPLAYPORT_AUX",
        276 => "LINUX_SLL2",
        277 => "SERCOS_MONITOR",
        278 => "OPENVIZSLA",
        279 => "EBHSCR",
        280 => "VPP_DISPATCH",
        281 => "DSA_TAG_BRCM",
        282 => "DSA_TAG_BRCM_PREPEND",
        283 => "IEEE802_15_4_TAP",
        284 => "DSA_TAG_DSA",
        285 => "DSA_TAG_EDSA",
        286 => "ELEE",
        287 => "Z_WAVE_SERIAL",
        288 => "USB_2_0",
        289 => "ATSC_ALP",
        290 => "ETW",
        291 => "NETANALYZER_NG",
        292 => "ZBOSS_NCP",
        293 => "USB_2_0_LOW_SPEED",
        294 => "USB_2_0_FULL_SPEED",
        295 => "USB_2_0_HIGH_SPEED",
        296 => "AUERSWALD_LOG",
        297 => "ZWAVE_TAP",
        298 => "SILABS_DEBUG_CHANNEL",
        299 => "FIRA_UCI",
        300 => "MDB",
        301 => "DECT_NR",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert_raw(link_type: u32, frame: &[u8]) -> (Result<(), &'static str>, Vec<u8>) {
        let mut buf = vec![0xEE; headroom(link_type)];
        buf.extend_from_slice(frame);
        let r = to_ethernet(link_type, &mut buf);
        (r, buf)
    }

    fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&SYNTH_DST_MAC);
        v.extend_from_slice(&SYNTH_SRC_MAC);
        v.extend_from_slice(&ethertype.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn raw_ip_versions() {
        for lt in [LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6] {
            let (r, b) = convert_raw(lt, &[0x45, 1, 2]);
            assert_eq!(r, Ok(()));
            assert_eq!(b, eth(0x0800, &[0x45, 1, 2]));
            let (r, b) = convert_raw(lt, &[0x60, 9]);
            assert_eq!(r, Ok(()));
            assert_eq!(b, eth(0x86DD, &[0x60, 9]));
            let (r, b) = convert_raw(lt, &[0x55, 9]);
            assert_eq!(r, Err("raw frame is neither IPv4 nor IPv6"));
            assert_eq!(
                b,
                vec![0x55, 9],
                "unsupported frame keeps its captured bytes"
            );
            let (r, b) = convert_raw(lt, &[]);
            assert!(r.is_err());
            assert!(b.is_empty());
        }
    }

    #[test]
    fn null_both_byte_orders_and_loop() {
        let (r, b) = convert_raw(LINKTYPE_NULL, &[2, 0, 0, 0, 0x45]);
        assert_eq!((r, b), (Ok(()), eth(0x0800, &[0x45])));
        let (r, b) = convert_raw(LINKTYPE_NULL, &[0, 0, 0, 2, 0x45]);
        assert_eq!((r, b), (Ok(()), eth(0x0800, &[0x45])));
        for af in [10u32, 24, 28, 30] {
            let (r, b) = convert_raw(LINKTYPE_NULL, &[&af.to_le_bytes()[..], &[0x60]].concat());
            assert_eq!((r, b), (Ok(()), eth(0x86DD, &[0x60])));
            let (r, b) = convert_raw(LINKTYPE_LOOP, &[&af.to_be_bytes()[..], &[0x60]].concat());
            assert_eq!((r, b), (Ok(()), eth(0x86DD, &[0x60])));
        }
        // LOOP is network order only.
        let (r, b) = convert_raw(LINKTYPE_LOOP, &[2, 0, 0, 0, 0x45]);
        assert!(r.is_err());
        assert_eq!(b, vec![2, 0, 0, 0, 0x45]);
        let (r, _) = convert_raw(LINKTYPE_NULL, &[7, 0, 0, 0]);
        assert!(r.is_err());
        let (r, b) = convert_raw(LINKTYPE_NULL, &[2, 0, 0]);
        assert_eq!(r, Err("frame shorter than the 4-byte loopback header"));
        assert_eq!(b, vec![2, 0, 0]);
    }

    #[test]
    fn linux_cooked() {
        let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&[0x45, 7]);
        let (r, b) = convert_raw(LINKTYPE_LINUX_SLL, &sll);
        assert_eq!((r, b), (Ok(()), eth(0x0800, &[0x45, 7])));

        let mut sll2 = vec![
            0x86, 0xDD, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
        ];
        sll2.push(0x60);
        let (r, b) = convert_raw(LINKTYPE_LINUX_SLL2, &sll2);
        assert_eq!((r, b), (Ok(()), eth(0x86DD, &[0x60])));

        sll[14..16].copy_from_slice(&[0x00, 0x04]);
        let (r, b) = convert_raw(LINKTYPE_LINUX_SLL, &sll);
        assert!(r.is_err());
        assert_eq!(b, sll);
        let (r, _) = convert_raw(LINKTYPE_LINUX_SLL2, &sll2[..19]);
        assert!(r.is_err());
    }

    #[test]
    fn others_unsupported_and_named() {
        let (r, b) = convert_raw(105, &[1, 2, 3]);
        assert_eq!(r, Err("link type is not convertible to Ethernet"));
        assert_eq!(b, vec![1, 2, 3]);
        assert_eq!(link_type_name(1), "ETHERNET");
        assert_eq!(link_type_name(276), "LINUX_SLL2");
        assert_eq!(link_type_name(60000), "UNKNOWN");
    }
}
