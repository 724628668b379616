//! The receive side's reorder window fed untrusted RTP packets (sequence
//! number, timestamp, marker, payload) for VP8 and H.264: never panics,
//! never holds more packets than it was given, and every frame it hands out
//! is made only of payload bytes it was given (depacketized).
#![no_main]

use bytes::Bytes;
use cloakroom_engine::reassembly::{FrameAssembler, H264Depacketizer};
use libfuzzer_sys::fuzz_target;
use rtc_rtp::codec::vp8::Vp8Packet;

fuzz_target!(|input: (bool, u8, Vec<(u16, u32, bool, Vec<u8>)>)| {
    let (h264, window, packets) = input;
    let window = u16::from(window.max(1));
    if h264 {
        run(FrameAssembler::new(H264Depacketizer::default(), window), &packets);
    } else {
        run(FrameAssembler::new(Vp8Packet::default(), window), &packets);
    }
});

fn run<D: rtc_rtp::packetizer::Depacketizer>(mut a: FrameAssembler<D>, packets: &[(u16, u32, bool, Vec<u8>)]) {
    let total: usize = packets.iter().map(|p| p.3.len()).sum();
    let mut out = 0usize;
    for (i, (seq, ts, marker, payload)) in packets.iter().enumerate() {
        a.push(*seq, *ts, *marker, Bytes::copy_from_slice(payload));
        assert!(a.waiting() <= i + 1);
        while let Some((frame, _duration)) = a.pop() {
            out += frame.len();
        }
    }
    // H.264 adds a 4-byte start code per NAL unit; VP8 only removes descriptors.
    assert!(out <= total * 4 + 4 * packets.len(), "{out} bytes out of {total} in");
}
