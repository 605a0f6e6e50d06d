use shadownet_capture::PcapWriter;
use shadownet_hw::Port;
use shadownet_tests::{lab::*, packet::Builder};

#[test]
fn production_packet_leaves_toward_production_and_shadow() {
    let mut lab = Lab::new();
    let f = Builder::tcp(WEB1, DB1, 40000, 5432)
        .payload_len(100)
        .build();
    let sent = lab.send(Port::Vport(0), &f);
    let mut w = PcapWriter::create(std::path::Path::new("/tmp/smoke.pcap"), 65535).unwrap();
    for s in &sent {
        w.write(s.start_ps / 1000, &s.bytes).unwrap();
    }
    w.finish().unwrap();
    assert_eq!(sent.len(), 2);
}
