//! Video frames from RTP packets: the receive side's reorder window, pure
//! logic without I/O (RFC 3550 sequence numbers and timestamps; the codec's
//! depacketizer, RFC 7741 for VP8 and RFC 6184 for H.264, says where a frame
//! begins and ends). Its input is untrusted network data: it never panics
//! and never holds more than the window (fuzz target `frame_reassembly`).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use rtc_rtp::codec::h264::H264Packet;
use rtc_rtp::packetizer::Depacketizer;
use rtc_shared::error::{Error as RtpError, Result as RtpResult};

/// RFC 6184 §5.7.1: a single-time aggregation packet (STAP-A).
const STAP_A: u8 = 24;

/// The H.264 depacketizer of the `rtc` stack with the aggregation packets it
/// reads checked first: rtc-rtp 0.21.1 indexes past the end of a STAP-A
/// whose last NAL unit size is cut to one byte (found by the
/// `frame_reassembly` fuzz target) and panics. Such a packet is refused as
/// short instead.
#[derive(Default)]
pub struct H264Depacketizer(H264Packet);

impl Depacketizer for H264Depacketizer {
    fn depacketize(&mut self, packet: &Bytes) -> RtpResult<Bytes> {
        if packet.first().is_some_and(|b| b & 0x1f == STAP_A) && !stap_a_is_whole(packet) {
            return Err(RtpError::ErrShortPacket);
        }
        self.0.depacketize(packet)
    }

    fn is_partition_head(&self, payload: &Bytes) -> bool {
        self.0.is_partition_head(payload)
    }

    fn is_partition_tail(&self, marker: bool, payload: &Bytes) -> bool {
        self.0.is_partition_tail(marker, payload)
    }
}

/// Whether every NAL unit of a STAP-A (after its one-byte header: 16-bit
/// size, then that many bytes) lies inside the packet.
fn stap_a_is_whole(packet: &[u8]) -> bool {
    let mut at = 1;
    while at < packet.len() {
        let Some(size) = packet.get(at..at + 2) else { return false };
        at += 2 + ((usize::from(size[0]) << 8) | usize::from(size[1]));
    }
    at == packet.len()
}

/// Video frames from RTP packets (RTP clock 90 kHz): a reorder window of
/// `max_late` packets, pure logic without I/O.
///
/// Used instead of rtc's `SampleBuilder`, which keeps two tables indexed by
/// the whole 16-bit sequence space (about 13 MB per remote video track, all
/// written at creation) and holds every frame back until the next frame's
/// first packet arrives. Here only waiting packets are kept, and a frame
/// leaves as soon as its last packet (the marker) is in and nothing before
/// it is still missing. A missing packet is waited for (NACK may bring it)
/// until `max_late` newer packets have arrived; then what cannot be completed
/// is dropped and counted.
pub struct FrameAssembler<D: Depacketizer> {
    depacketizer: D,
    /// Waiting packets by extended (unwrapped) sequence number.
    waiting: BTreeMap<u64, Piece>,
    /// The highest extended sequence number seen.
    highest: Option<u64>,
    /// The extended sequence number after the last frame handed out or dropped.
    next: Option<u64>,
    max_late: u64,
    /// RTP timestamp of the last frame handed out, for the frame duration.
    last_timestamp: Option<u32>,
    last_duration: Duration,
    /// Packets dropped because their frame could not be completed.
    dropped: u64,
}

struct Piece {
    timestamp: u32,
    marker: bool,
    payload: Bytes,
}

impl<D: Depacketizer> FrameAssembler<D> {
    const CLOCK_RATE: u64 = 90_000;

    /// An empty window that waits for at most `max_late` newer packets.
    pub fn new(depacketizer: D, max_late: u16) -> Self {
        Self {
            depacketizer,
            waiting: BTreeMap::new(),
            highest: None,
            next: None,
            max_late: u64::from(max_late.max(1)),
            last_timestamp: None,
            last_duration: Duration::from_millis(33),
            dropped: 0,
        }
    }

    /// Takes one RTP packet.
    pub fn push(&mut self, seq: u16, timestamp: u32, marker: bool, payload: Bytes) {
        let ext = self.unwrap(seq);
        if self.next.is_some_and(|next| ext < next) {
            // Its frame was handed out or given up already.
            if self.next.is_some_and(|next| next - ext > 4 * self.max_late) {
                // Far behind: the sender started a new sequence; start again with it.
                self.dropped += self.waiting.len() as u64;
                self.waiting.clear();
                self.next = None;
                self.highest = Some(ext);
            } else {
                return;
            }
        }
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        self.waiting.insert(ext, Piece { timestamp, marker, payload });
    }

    /// The next complete frame and its duration, if there is one.
    pub fn pop(&mut self) -> Option<(Bytes, Duration)> {
        loop {
            let (&first, piece) = self.waiting.first_key_value()?;
            // Packets before `first` are missing (they may still come).
            let gap_before = self.next.is_some_and(|next| first != next);
            let late = self.highest.unwrap_or(first) - first >= self.max_late;
            if !self.depacketizer.is_partition_head(&piece.payload) {
                // The rest of a frame whose first packet is missing, or padding.
                if gap_before && !late {
                    return None;
                }
                self.drop_through(first);
                continue;
            }
            let timestamp = piece.timestamp;
            let mut end = None;
            let mut k = first;
            while let Some(p) = self.waiting.get(&k) {
                if p.timestamp != timestamp {
                    // A new frame begins without our marker: the frame ended before it.
                    end = Some(k - 1);
                    break;
                }
                if self.depacketizer.is_partition_tail(p.marker, &p.payload) {
                    end = Some(k);
                    break;
                }
                k += 1;
            }
            match end {
                Some(end) if !gap_before || late => {
                    if let Some(frame) = self.take(first, end, timestamp) {
                        return Some(frame);
                    }
                }
                Some(_) => return None,
                None if late => self.drop_frame(timestamp),
                None => return None,
            }
        }
    }

    /// Depacketizes `first..=end` into one frame (`None` if a payload is bad).
    fn take(&mut self, first: u64, end: u64, timestamp: u32) -> Option<(Bytes, Duration)> {
        let mut data = Vec::new();
        let mut ok = true;
        for k in first..=end {
            if let Some(p) = self.waiting.remove(&k) {
                match self.depacketizer.depacketize(&p.payload) {
                    Ok(part) => data.extend_from_slice(&part),
                    Err(_) => ok = false,
                }
            }
        }
        self.next = Some(end + 1);
        if !ok || data.is_empty() {
            self.dropped += end - first + 1;
            return None;
        }
        if let Some(last) = self.last_timestamp {
            let ticks = u64::from(timestamp.wrapping_sub(last));
            if ticks > 0 && ticks < Self::CLOCK_RATE {
                self.last_duration = Duration::from_micros(ticks * 1_000_000 / Self::CLOCK_RATE);
            }
        }
        self.last_timestamp = Some(timestamp);
        Some((Bytes::from(data), self.last_duration))
    }

    /// Gives up on the oldest frame: drops its packets that are in.
    fn drop_frame(&mut self, timestamp: u32) {
        let end = self.waiting.iter().take_while(|(_, p)| p.timestamp == timestamp).map(|(&k, _)| k).last();
        if let Some(end) = end {
            self.drop_through(end);
        }
    }

    /// Drops every waiting packet up to and including `end`.
    fn drop_through(&mut self, end: u64) {
        let keep = self.waiting.split_off(&(end + 1));
        self.dropped += self.waiting.len() as u64;
        self.waiting = keep;
        self.next = Some(end + 1);
    }

    /// Extends a 16-bit sequence number to the one nearest the highest seen.
    fn unwrap(&self, seq: u16) -> u64 {
        let Some(highest) = self.highest else { return (1 << 20) + u64::from(seq) };
        let base = highest & !0xffff;
        let candidates = [base.wrapping_sub(1 << 16), base, base + (1 << 16)];
        candidates
            .into_iter()
            .map(|b| b.wrapping_add(u64::from(seq)))
            .min_by_key(|c| c.abs_diff(highest))
            .unwrap_or(highest)
    }
}

impl<D: Depacketizer> FrameAssembler<D> {
    /// Packets dropped so far because their frame could not be completed.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Packets waiting for the rest of their frame.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use rtc_rtp::codec::vp8::Vp8Packet;

    use super::*;

    /// A VP8 RTP payload: the one-byte descriptor (S bit on the frame's
    /// first packet) and the frame's bytes.
    fn vp8(start: bool, body: &[u8]) -> Bytes {
        let mut p = vec![if start { 0x10 } else { 0x00 }];
        p.extend_from_slice(body);
        Bytes::from(p)
    }

    /// Frame `n` as three packets (depacketized: `n, 1, 7, n, 2, 7, n, 3, 7`) from sequence number `seq`: (seq, ts, marker, payload).
    fn frame_packets(seq: u16, n: u32) -> Vec<(u16, u32, bool, Bytes)> {
        let ts = n.wrapping_mul(4500);
        let b = n as u8;
        vec![
            (seq, ts, false, vp8(true, &[b, 1, 7])),
            (seq.wrapping_add(1), ts, false, vp8(false, &[b, 2, 7])),
            (seq.wrapping_add(2), ts, true, vp8(false, &[b, 3, 7])),
        ]
    }

    fn frame(n: u8) -> Vec<u8> {
        vec![n, 1, 7, n, 2, 7, n, 3, 7]
    }

    fn drain(a: &mut FrameAssembler<Vp8Packet>) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| a.pop()).map(|(d, _)| d.to_vec()).collect()
    }

    #[test]
    fn assembler_hands_out_a_frame_as_soon_as_its_marker_is_in() {
        let mut a = FrameAssembler::new(Vp8Packet::default(), 128);
        let mut out = Vec::new();
        for n in 0..3u32 {
            for (seq, ts, marker, payload) in frame_packets(100 + 3 * n as u16, n) {
                a.push(seq, ts, marker, payload);
                out.extend(drain(&mut a));
            }
            // Out with its last packet, not one frame later.
            assert_eq!(out.len(), n as usize + 1);
        }
        assert_eq!(out[1], frame(1));
        let mut b = FrameAssembler::new(Vp8Packet::default(), 128);
        for (seq, ts, marker, payload) in frame_packets(7, 0).into_iter().chain(frame_packets(10, 1)) {
            b.push(seq, ts, marker, payload);
        }
        let durations: Vec<Duration> = std::iter::from_fn(|| b.pop()).map(|(_, d)| d).collect();
        assert_eq!(durations.last(), Some(&Duration::from_millis(50)), "4500 ticks at 90 kHz");
    }

    #[test]
    fn assembler_puts_reordered_packets_back_in_order_across_the_sequence_wrap() {
        let mut a = FrameAssembler::new(Vp8Packet::default(), 128);
        let mut packets = frame_packets(65534, 0);
        packets.extend(frame_packets(1, 1));
        // 65534, 0, 65535 | 2, 3, 1
        packets.swap(1, 2);
        packets.swap(3, 5);
        let mut out = Vec::new();
        for (seq, ts, marker, payload) in packets {
            a.push(seq, ts, marker, payload);
            out.extend(drain(&mut a));
        }
        assert_eq!(out, vec![frame(0), frame(1)]);
    }

    #[test]
    fn assembler_waits_for_a_missing_packet_then_gives_up_on_its_frame() {
        let mut a = FrameAssembler::new(Vp8Packet::default(), 8);
        let mut lost = frame_packets(0, 0);
        let late = lost.remove(1);
        let mut out = Vec::new();
        for (seq, ts, marker, payload) in lost.into_iter().chain(frame_packets(3, 1)) {
            a.push(seq, ts, marker, payload);
            out.extend(drain(&mut a));
        }
        assert!(out.is_empty(), "frame 1 waits while frame 0 may still be completed");
        // The retransmission arrives: both frames, in order.
        a.push(late.0, late.1, late.2, late.3);
        assert_eq!(drain(&mut a), vec![frame(0), frame(1)]);

        // Lost for good: after 8 newer packets frame 2 is dropped and the rest go on.
        let mut lost = frame_packets(6, 2);
        lost.remove(1);
        for (seq, ts, marker, payload) in lost {
            a.push(seq, ts, marker, payload);
        }
        let mut out = Vec::new();
        for n in 3..7u32 {
            for (seq, ts, marker, payload) in frame_packets(6 + 3 * (n - 2) as u16, n) {
                a.push(seq, ts, marker, payload);
                out.extend(drain(&mut a));
            }
        }
        let firsts: Vec<u8> = out.iter().map(|f| f[0]).collect();
        assert_eq!(firsts, vec![3, 4, 5, 6]);
        assert_eq!(a.dropped, 2);
        assert!(a.waiting.is_empty());
    }

    #[test]
    fn assembler_skips_a_frame_tail_without_its_head() {
        let mut a = FrameAssembler::new(Vp8Packet::default(), 128);
        // Joined mid-frame: the first two packets are the end of a frame.
        let mut packets = frame_packets(10, 0);
        packets.remove(0);
        packets.extend(frame_packets(13, 1));
        for (seq, ts, marker, payload) in packets {
            a.push(seq, ts, marker, payload);
        }
        assert_eq!(drain(&mut a), vec![frame(1)]);
        // A duplicate of a packet already handed out is ignored.
        a.push(14, 4500, false, vp8(false, &[9]));
        assert!(drain(&mut a).is_empty());
        assert!(a.waiting.is_empty());
    }

    #[test]
    fn a_cut_h264_aggregation_packet_is_dropped_not_a_panic() {
        // STAP-A: one NAL unit of 2 bytes, then one byte of a size: the
        // bytes the fuzzer found to panic rtc-rtp's own depacketizer.
        let mut a = FrameAssembler::new(H264Depacketizer::default(), 128);
        a.push(1, 0, true, Bytes::from_static(&[0x18, 0x00, 0x02, 0x65, 0x88, 0x00]));
        assert!(a.pop().is_none());
        assert_eq!(a.dropped(), 1);
        // A whole one goes through: both NAL units, each with a start code.
        a.push(2, 3000, true, Bytes::from_static(&[0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x65, 0x88]));
        let (data, _) = a.pop().expect("a frame");
        assert_eq!(data.as_ref(), &[0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x65, 0x88]);
        assert!(!stap_a_is_whole(&[0x18, 0x00, 0x05, 1]));
    }

    #[test]
    fn assembler_depacketizes_h264_fragments_into_annex_b() {
        let mut a = FrameAssembler::new(H264Depacketizer::default(), 128);
        // One IDR NAL (type 5) in two FU-A fragments.
        a.push(1, 0, false, Bytes::from_static(&[0x7c, 0x85, 0xaa, 0xbb]));
        assert!(a.pop().is_none());
        a.push(2, 0, true, Bytes::from_static(&[0x7c, 0x45, 0xcc]));
        let (data, _) = a.pop().expect("a frame");
        assert_eq!(data.as_ref(), &[0, 0, 0, 1, 0x65, 0xaa, 0xbb, 0xcc]);
    }
}
