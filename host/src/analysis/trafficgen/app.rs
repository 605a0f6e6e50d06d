//! Application payloads with real wire formats: DNS messages, TLS 1.3-shaped records
//! (ClientHello, ServerHello, application data), HTTP/1.1, and the first messages of SSH,
//! SMB2 and RDP that lateral movement touches.

use super::rng::{Rng, splitmix64};

/// DNS record types used.
pub(crate) mod qtype {
    pub(crate) const A: u16 = 1;
    pub(crate) const CNAME: u16 = 5;
    pub(crate) const TXT: u16 = 16;
    pub(crate) const AAAA: u16 = 28;
    pub(crate) const OPT: u16 = 41;
    pub(crate) const ANY: u16 = 255;
}

fn push_u16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_be_bytes());
}

fn push_u32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_be_bytes());
}

fn push_name(v: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let l = &label.as_bytes()[..label.len().min(63)];
        v.push(l.len() as u8);
        v.extend_from_slice(l);
    }
    v.push(0);
}

/// Answer data of a resource record.
#[derive(Debug, Clone)]
pub(crate) enum RData {
    A([u8; 4]),
    Aaaa([u8; 16]),
    Cname(String),
    /// Character strings of at most 255 bytes each.
    Txt(Vec<Vec<u8>>),
}

impl RData {
    fn rtype(&self) -> u16 {
        match self {
            RData::A(_) => qtype::A,
            RData::Aaaa(_) => qtype::AAAA,
            RData::Cname(_) => qtype::CNAME,
            RData::Txt(_) => qtype::TXT,
        }
    }
}

/// A DNS query (RD set), optionally with an EDNS(0) OPT record.
pub(crate) fn dns_query(id: u16, name: &str, qt: u16, edns: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    push_u16(&mut v, id);
    push_u16(&mut v, 0x0100);
    push_u16(&mut v, 1);
    push_u16(&mut v, 0);
    push_u16(&mut v, 0);
    push_u16(&mut v, u16::from(edns));
    push_name(&mut v, name);
    push_u16(&mut v, qt);
    push_u16(&mut v, 1);
    if edns {
        push_opt(&mut v, 4096);
    }
    v
}

fn push_opt(v: &mut Vec<u8>, udp_size: u16) {
    v.push(0);
    push_u16(v, qtype::OPT);
    push_u16(v, udp_size);
    push_u32(v, 0);
    push_u16(v, 0);
}

/// A response (QR, RD, RA) to a query for `name`; answers owned by the question name use a
/// compression pointer to it, as servers do.
pub(crate) fn dns_response(
    id: u16,
    name: &str,
    qt: u16,
    rcode: u8,
    answers: &[(u32, RData)],
    edns: Option<u16>,
) -> Vec<u8> {
    let mut v = Vec::with_capacity(128);
    push_u16(&mut v, id);
    push_u16(&mut v, 0x8180 | u16::from(rcode & 0x0f));
    push_u16(&mut v, 1);
    push_u16(&mut v, answers.len() as u16);
    push_u16(&mut v, 0);
    push_u16(&mut v, u16::from(edns.is_some()));
    push_name(&mut v, name);
    push_u16(&mut v, qt);
    push_u16(&mut v, 1);
    for (ttl, rd) in answers {
        push_u16(&mut v, 0xc00c);
        push_u16(&mut v, rd.rtype());
        push_u16(&mut v, 1);
        push_u32(&mut v, *ttl);
        let mut data = Vec::new();
        match rd {
            RData::A(a) => data.extend_from_slice(a),
            RData::Aaaa(a) => data.extend_from_slice(a),
            RData::Cname(n) => push_name(&mut data, n),
            RData::Txt(strings) => {
                for s in strings {
                    let s = &s[..s.len().min(255)];
                    data.push(s.len() as u8);
                    data.extend_from_slice(s);
                }
            }
        }
        push_u16(&mut v, data.len() as u16);
        v.extend_from_slice(&data);
    }
    if let Some(size) = edns {
        push_opt(&mut v, size);
    }
    v
}

/// Printable text (base64 alphabet), the look of SPF/DKIM TXT records.
pub(crate) fn printable(rng: &mut Rng, len: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..len)
        .map(|_| ALPHABET[rng.index(ALPHABET.len())])
        .collect()
}

const SUITES: [u16; 13] = [
    0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0x009c, 0x009d, 0x002f,
    0x0035,
];

fn ext(v: &mut Vec<u8>, ty: u16, data: &[u8]) {
    push_u16(v, ty);
    push_u16(v, data.len() as u16);
    v.extend_from_slice(data);
}

fn record(content_type: u8, legacy_version: u16, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 5);
    v.push(content_type);
    push_u16(&mut v, legacy_version);
    push_u16(&mut v, body.len() as u16);
    v.extend_from_slice(body);
    v
}

fn handshake(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 4);
    v.push(msg_type);
    let n = body.len() as u32;
    v.extend_from_slice(&n.to_be_bytes()[1..]);
    v.extend_from_slice(body);
    v
}

/// A TLS 1.3 ClientHello record with SNI, ALPN, supported versions and an x25519 key
/// share — the shape every modern client's first packet has. Returns the record and the
/// legacy session id the server echoes.
pub(crate) fn tls_client_hello(rng: &mut Rng, sni: &str) -> (Vec<u8>, [u8; 32]) {
    let mut random = [0u8; 32];
    rng.fill(&mut random);
    let mut sid = [0u8; 32];
    rng.fill(&mut sid);
    let mut key = [0u8; 32];
    rng.fill(&mut key);
    let mut b = Vec::with_capacity(512);
    push_u16(&mut b, 0x0303);
    b.extend_from_slice(&random);
    b.push(32);
    b.extend_from_slice(&sid);
    push_u16(&mut b, (SUITES.len() * 2) as u16);
    for s in SUITES {
        push_u16(&mut b, s);
    }
    b.extend_from_slice(&[1, 0]);
    let mut e = Vec::with_capacity(256);
    let mut sn = Vec::new();
    push_u16(&mut sn, (sni.len() + 3) as u16);
    sn.push(0);
    push_u16(&mut sn, sni.len() as u16);
    sn.extend_from_slice(sni.as_bytes());
    ext(&mut e, 0, &sn);
    ext(&mut e, 23, &[]);
    ext(&mut e, 0xff01, &[0]);
    ext(&mut e, 10, &[0, 6, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18]);
    ext(&mut e, 11, &[1, 0]);
    ext(&mut e, 16, b"\x00\x0c\x02h2\x08http/1.1");
    ext(
        &mut e,
        13,
        &[0, 16, 4, 3, 8, 4, 4, 1, 5, 3, 8, 5, 5, 1, 8, 6, 6, 1],
    );
    let mut ks = vec![0, 36, 0x00, 0x1d, 0, 32];
    ks.extend_from_slice(&key);
    ext(&mut e, 51, &ks);
    ext(&mut e, 45, &[1, 1]);
    ext(&mut e, 43, &[4, 3, 4, 3, 3]);
    push_u16(&mut b, e.len() as u16);
    b.extend_from_slice(&e);
    (record(22, 0x0301, &handshake(1, &b)), sid)
}

/// The server's first flight: ServerHello (TLS 1.3 through supported_versions),
/// ChangeCipherSpec, and the encrypted rest of the handshake (certificate and all) as
/// application-data records of `encrypted_len` bytes in total.
pub(crate) fn tls_server_flight(rng: &mut Rng, sid: &[u8; 32], encrypted_len: usize) -> Vec<u8> {
    let mut random = [0u8; 32];
    rng.fill(&mut random);
    let mut key = [0u8; 32];
    rng.fill(&mut key);
    let mut b = Vec::with_capacity(128);
    push_u16(&mut b, 0x0303);
    b.extend_from_slice(&random);
    b.push(32);
    b.extend_from_slice(sid);
    push_u16(&mut b, 0x1301);
    b.push(0);
    let mut e = Vec::new();
    ext(&mut e, 43, &[3, 4]);
    let mut ks = vec![0x00, 0x1d, 0, 32];
    ks.extend_from_slice(&key);
    ext(&mut e, 51, &ks);
    push_u16(&mut b, e.len() as u16);
    b.extend_from_slice(&e);
    let mut v = record(22, 0x0303, &handshake(2, &b));
    v.extend_from_slice(&record(20, 0x0303, &[1]));
    v.extend_from_slice(&tls_app_records(rng.next_u64(), encrypted_len));
    v
}

/// The client's second flight: ChangeCipherSpec and its encrypted Finished.
pub(crate) fn tls_client_finished(rng: &mut Rng) -> Vec<u8> {
    let mut v = record(20, 0x0303, &[1]);
    v.extend_from_slice(&tls_app_records(rng.next_u64(), 53));
    v
}

/// Largest TLS 1.3 ciphertext record body: 2^14 plaintext, the content type byte, a
/// 16-byte AEAD tag.
const TLS_MAX_CIPHERTEXT: usize = 16384 + 17;
const TLS_FULL_RECORD: usize = 5 + TLS_MAX_CIPHERTEXT;

/// Wire bytes of `plaintext` application bytes sent as TLS 1.3 records.
pub(crate) fn tls_wire_len(plaintext: usize) -> usize {
    let plaintext = plaintext.max(1);
    let records = plaintext.div_ceil(16384);
    plaintext + records * (5 + 17)
}

fn tls_app_records(key: u64, wire_len: usize) -> Vec<u8> {
    let mut v = vec![0u8; wire_len];
    fill_tls(key, 0, wire_len, &mut v);
    v
}

/// Bytes `[off, off + out.len())` of a run of application-data records whose total wire
/// length is `total` (records of the largest size, then one with the rest; `total` comes
/// from [`tls_wire_len`], so the last record has at least 18 bytes of body).
fn fill_tls(key: u64, off: usize, total: usize, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        let pos = off + i;
        let rec_start = pos / TLS_FULL_RECORD * TLS_FULL_RECORD;
        let in_rec = pos - rec_start;
        let body = (total - rec_start).min(TLS_FULL_RECORD) - 5;
        *b = match in_rec {
            0 => 23,
            1 => 3,
            2 => 3,
            3 => (body >> 8) as u8,
            4 => body as u8,
            _ => random_byte(key, pos),
        };
    }
}

fn random_byte(key: u64, pos: usize) -> u8 {
    (splitmix64(key ^ (pos as u64 >> 3)) >> ((pos & 7) * 8)) as u8
}

const LOREM: &[u8] =
    b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor \
incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation \
ullamco laboris nisi ut aliquip ex ea commodo consequat.\n";

/// How the bytes of a message after its explicit head are made.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fill {
    /// Readable text (HTTP bodies).
    Text,
    /// TLS application-data records from the end of the head to the end of the message.
    Tls(u64),
}

/// One application message on a TCP connection: `total` bytes, the first ones given.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) head: Vec<u8>,
    pub(crate) total: usize,
    pub(crate) fill: Fill,
}

impl Message {
    pub(crate) fn bytes(head: Vec<u8>) -> Message {
        let total = head.len();
        Message {
            head,
            total,
            fill: Fill::Text,
        }
    }

    /// `plaintext` bytes of application data over TLS.
    pub(crate) fn tls(key: u64, plaintext: usize) -> Message {
        Message {
            head: Vec::new(),
            total: tls_wire_len(plaintext),
            fill: Fill::Tls(key),
        }
    }

    /// Writes bytes `[off, off + out.len())` of the message.
    pub(crate) fn read(&self, off: usize, out: &mut [u8]) {
        let h = self.head.len();
        for (i, b) in out.iter_mut().enumerate() {
            let pos = off + i;
            if pos < h {
                *b = self.head[pos];
            } else {
                *b = match self.fill {
                    Fill::Text => LOREM[(pos - h) % LOREM.len()],
                    Fill::Tls(_) => 0,
                };
            }
        }
        if let Fill::Tls(key) = self.fill {
            let start = off.max(h);
            let end = off + out.len();
            if start < end {
                fill_tls(key, start - h, self.total - h, &mut out[start - off..]);
            }
        }
    }
}

/// An HTTP/1.1 response header for a body of `body` bytes.
pub(crate) fn http_response_head(status: &str, content_type: &str, body: usize) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nServer: nginx/1.24.0\r\nContent-Type: {content_type}\r\nContent-Length: {body}\r\nConnection: keep-alive\r\n\r\n"
    )
    .into_bytes()
}

/// SSH identification string.
pub(crate) fn ssh_banner(server: bool) -> Vec<u8> {
    if server {
        b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n".to_vec()
    } else {
        b"SSH-2.0-paramiko_3.4.0\r\n".to_vec()
    }
}

/// An RDP X.224 Connection Request in TPKT with a mstshash cookie and a negotiation
/// request for TLS/CredSSP.
pub(crate) fn rdp_connection_request(user: &str) -> Vec<u8> {
    let cookie = format!("Cookie: mstshash={user}\r\n");
    let neg = [1u8, 0, 8, 0, 3, 0, 0, 0];
    let li = 6 + cookie.len() + neg.len();
    let mut v = vec![3, 0];
    push_u16(&mut v, (4 + 1 + li) as u16);
    v.push(li as u8);
    v.extend_from_slice(&[0xe0, 0, 0, 0, 0, 0]);
    v.extend_from_slice(cookie.as_bytes());
    v.extend_from_slice(&neg);
    v
}

/// The X.224 Connection Confirm choosing TLS.
pub(crate) fn rdp_connection_confirm() -> Vec<u8> {
    vec![
        3, 0, 0, 19, 14, 0xd0, 0, 0, 0x12, 0x34, 0, 2, 0, 8, 0, 1, 0, 0, 0,
    ]
}

fn smb2_header(command: u16, response: bool, message_id: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(&[0xfe, b'S', b'M', b'B']);
    v.extend_from_slice(&64u16.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&command.to_le_bytes());
    v.extend_from_slice(&(if response { 1u16 } else { 0 }).to_le_bytes());
    v.extend_from_slice(&(if response { 1u32 } else { 0 }).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&message_id.to_le_bytes());
    v.extend_from_slice(&0xfeffu32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    v.extend_from_slice(&[0u8; 16]);
    v
}

fn nbss(body: Vec<u8>) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    v.extend_from_slice(&body);
    v
}

/// SMB2 NEGOTIATE request (dialects 2.0.2 to 3.0.2) over the NetBIOS session service.
pub(crate) fn smb2_negotiate_request(rng: &mut Rng) -> Vec<u8> {
    let mut v = smb2_header(0, false, 0);
    let dialects = [0x0202u16, 0x0210, 0x0300, 0x0302];
    v.extend_from_slice(&36u16.to_le_bytes());
    v.extend_from_slice(&(dialects.len() as u16).to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(&0x7fu32.to_le_bytes());
    let mut guid = [0u8; 16];
    rng.fill(&mut guid);
    v.extend_from_slice(&guid);
    v.extend_from_slice(&0u64.to_le_bytes());
    for d in dialects {
        v.extend_from_slice(&d.to_le_bytes());
    }
    nbss(v)
}

/// SMB2 NEGOTIATE response choosing 3.0.2, without a security blob.
pub(crate) fn smb2_negotiate_response(rng: &mut Rng) -> Vec<u8> {
    let mut v = smb2_header(0, true, 0);
    v.extend_from_slice(&65u16.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&0x0302u16.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    let mut guid = [0u8; 16];
    rng.fill(&mut guid);
    v.extend_from_slice(&guid);
    v.extend_from_slice(&0x2fu32.to_le_bytes());
    for _ in 0..3 {
        v.extend_from_slice(&8_388_608u32.to_le_bytes());
    }
    v.extend_from_slice(&133_500_000_000_000_000u64.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    v.extend_from_slice(&128u16.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    nbss(v)
}

const SYLLABLES: [&str; 24] = [
    "ka", "lo", "mi", "ra", "to", "ne", "vi", "so", "da", "pe", "lu", "zo", "ba", "ri", "ga", "fe",
    "mo", "ti", "xa", "qu", "ce", "ho", "ny", "we",
];
const TLDS: [&str; 6] = ["com", "net", "org", "io", "de", "co.uk"];
const SUBS: [&str; 10] = [
    "www", "api", "cdn", "static", "img", "login", "mail", "assets", "edge", "app",
];

/// A plausible DNS name (`api.koramito.net`).
pub(crate) fn domain_name(rng: &mut Rng) -> String {
    let mut base = String::new();
    for _ in 0..rng.range(2, 4) {
        base.push_str(SYLLABLES[rng.index(SYLLABLES.len())]);
    }
    format!(
        "{}.{}.{}",
        SUBS[rng.index(SUBS.len())],
        base,
        TLDS[rng.index(TLDS.len())]
    )
}

/// A URL path.
pub(crate) fn url_path(rng: &mut Rng) -> String {
    const PARTS: [&str; 10] = [
        "index.html",
        "assets/app.js",
        "img/logo.png",
        "api/v2/items",
        "css/site.css",
        "search",
        "static/bundle.js",
        "products",
        "news/latest",
        "favicon.ico",
    ];
    let p = PARTS[rng.index(PARTS.len())];
    if rng.chance(0.3) {
        format!("/{p}?id={}", rng.range(1, 99_999))
    } else {
        format!("/{p}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_records_have_consistent_lengths() {
        for plaintext in [1, 100, 16384, 16385, 40000] {
            let m = Message::tls(5, plaintext);
            let mut buf = vec![0u8; m.total];
            // Read in uneven pieces, as segmentation does.
            let mut off = 0;
            while off < m.total {
                let n = (m.total - off).min(1448);
                m.read(off, &mut buf[off..off + n]);
                off += n;
            }
            let mut pos = 0;
            let mut carried = 0;
            while pos < buf.len() {
                assert_eq!(&buf[pos..pos + 3], &[23, 3, 3]);
                let len = usize::from(u16::from_be_bytes([buf[pos + 3], buf[pos + 4]]));
                assert!((18..=TLS_MAX_CIPHERTEXT).contains(&len));
                carried += len - 17;
                pos += 5 + len;
            }
            assert_eq!(pos, buf.len());
            assert_eq!(carried, plaintext);
        }
    }

    #[test]
    fn dns_response_counts_match() {
        let r = dns_response(
            7,
            "www.example.com",
            qtype::A,
            0,
            &[
                (60, RData::A([1, 2, 3, 4])),
                (60, RData::Cname("x.example.net".into())),
            ],
            Some(1232),
        );
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 2);
        assert_eq!(u16::from_be_bytes([r[10], r[11]]), 1);
        // header 12 + question 17+4 + A 16 + CNAME 12+15 + OPT 11
        assert_eq!(r.len(), 12 + 21 + 16 + 27 + 11);
    }
}
