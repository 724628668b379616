//! H.264 Annex B helpers for the `h264` frame format.
//!
//! An encrypted H.264 frame must still split into NAL units on start codes,
//! because the RTP packetizer (RFC 6184) and the SFU look at them. So the
//! parameter sets and the slice NAL header stay clear, and the sealed bytes
//! are escaped as in ITU-T H.264 §7.4.1 (emulation prevention): a 0x03 is
//! inserted after two zero bytes whenever the next byte is ≤ 0x03, so no
//! start code (00 00 01) can appear inside them. This is the layout of
//! LiveKit's frame cryptor.

use crate::FrameError;

/// NAL unit type of a coded slice of a non-IDR picture.
pub const NAL_SLICE: u8 = 1;
/// NAL unit type of a coded slice of an IDR picture.
pub const NAL_IDR: u8 = 5;

/// One NAL unit found in an Annex B byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NalUnit {
    /// Offset of the NAL header byte (just after the start code).
    pub offset: usize,
    /// Length up to the next start code (or the end), trailing zeros included.
    pub len: usize,
    /// `nal_unit_type`, the header's low five bits.
    pub nal_type: u8,
}

/// Splits an Annex B stream on its 3- and 4-byte start codes.
pub fn nal_units(data: &[u8]) -> Vec<NalUnit> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::with_capacity(starts.len());
    for (n, &start) in starts.iter().enumerate() {
        // The next unit's start code begins 3 bytes before its header; a
        // 4-byte start code's extra zero is counted with this unit.
        let end = starts.get(n + 1).map_or(data.len(), |&next| next - 3);
        if start < data.len() {
            units.push(NalUnit { offset: start, len: end - start, nal_type: data[start] & 0x1F });
        }
    }
    units
}

/// Length of the clear prefix: every byte up to and including the first
/// slice NAL unit's header and the byte after it.
pub fn clear_prefix_len(data: &[u8]) -> Result<usize, FrameError> {
    let mut zeros = 0usize;
    for (i, &b) in data.iter().enumerate() {
        if zeros >= 2 && b == 1 {
            let header = i + 1;
            if let Some(&h) = data.get(header) {
                let nal_type = h & 0x1F;
                if nal_type == NAL_SLICE || nal_type == NAL_IDR {
                    return if header + 2 <= data.len() {
                        Ok(header + 2)
                    } else {
                        Err(FrameError::Truncated { len: data.len(), needed: header + 2 })
                    };
                }
            }
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    Err(FrameError::NoSliceNal)
}

/// Number of zero bytes `data` ends with (0, 1 or 2+), the escaping state
/// carried from the clear prefix into the sealed part.
pub fn trailing_zeros(data: &[u8]) -> usize {
    data.iter().rev().take(2).take_while(|&&b| b == 0).count()
}

/// Inserts emulation-prevention bytes. `zeros_before` is how many zero
/// bytes directly precede `data` in the frame.
pub fn escape(data: &[u8], zeros_before: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 4);
    out.extend_from_slice(data);
    escape_tail(&mut out, 0, zeros_before);
    out
}

/// Removes emulation-prevention bytes, refusing escaping that [`escape`]
/// cannot have produced. The error is the offset of the offending byte.
pub fn unescape(data: &[u8], zeros_before: usize) -> Result<Vec<u8>, usize> {
    let mut out = data.to_vec();
    unescape_tail(&mut out, 0, zeros_before)?;
    Ok(out)
}

/// [`escape`] in place: escapes `buf[start..]`, with the zero bytes that end
/// `buf[..start]` carried in (they are the frame's bytes just before it).
///
/// Without anything to escape (the common case: ciphertext rarely holds two
/// zero bytes in a row) the buffer is only read. Otherwise it grows by the
/// number of inserted bytes and only the part from the first insertion on
/// moves, once.
pub fn escape_in_place(buf: &mut Vec<u8>, start: usize) {
    let zeros_before = trailing_zeros(&buf[..start]);
    escape_tail(buf, start, zeros_before);
}

/// [`unescape`] in place on `buf[start..]`, with the zero bytes that end
/// `buf[..start]` carried in. The buffer shrinks by the removed bytes; the
/// error is the offending byte's offset from `start` (the buffer's contents
/// are then unspecified).
pub fn unescape_in_place(buf: &mut Vec<u8>, start: usize) -> Result<(), usize> {
    let zeros_before = trailing_zeros(&buf[..start]);
    unescape_tail(buf, start, zeros_before)
}

/// Escapes `buf[start..]` in place, `zeros_before` zero bytes preceding it.
fn escape_tail(buf: &mut Vec<u8>, start: usize, zeros_before: usize) {
    // Pass 1: where the first escape byte goes and how many there are.
    let Some(first) = next_after_two_zeros(buf, start, zeros_before) else { return };
    let mut extra = 0usize;
    let mut next = Some(first);
    while let Some(at) = next {
        extra += 1;
        next = next_after_two_zeros(buf, at + 1, usize::from(buf[at] == 0));
    }
    // Pass 2: move the tail up by `extra`, then copy it back down run by
    // run with an escape byte before each marked byte. The write position
    // trails the read position by the escapes still to come, so nothing
    // unread is overwritten, and the scan only looks ahead of the reads.
    let len = buf.len() + extra;
    buf.resize(len, 0);
    buf.copy_within(first..len - extra, first + extra);
    let mut read = first + extra;
    let mut write = first;
    let mut next = Some(read);
    while let Some(at) = next {
        buf.copy_within(read..at, write);
        write += at - read;
        buf[write] = 3;
        write += 1;
        read = at;
        next = next_after_two_zeros(buf, at + 1, usize::from(buf[at] == 0));
    }
    buf.copy_within(read..len, write);
    debug_assert_eq!(write + (len - read), len);
}

/// Unescapes `buf[start..]` in place, `zeros_before` zero bytes preceding it.
fn unescape_tail(buf: &mut Vec<u8>, start: usize, zeros_before: usize) -> Result<(), usize> {
    let len = buf.len();
    // Bytes before `run` are final; `buf[run..at]` moves down to `write` at the next removal.
    let mut run = start;
    let mut write = start;
    let mut next = next_after_two_zeros(buf, start, zeros_before);
    while let Some(at) = next {
        match buf.get(at + 1) {
            Some(&after) if buf[at] == 3 && after <= 3 => {
                if write != run {
                    buf.copy_within(run..at, write);
                }
                write += at - run;
                run = at + 1;
                next = next_after_two_zeros(buf, at + 1, 0);
            }
            _ => return Err(at - start),
        }
    }
    if write != run {
        buf.copy_within(run..len, write);
        buf.truncate(write + (len - run));
    }
    Ok(())
}

/// From `at`, with `zeros` zero bytes just before it, the first position
/// whose byte follows two or more zero bytes and is at most 3: where
/// escaping inserts a byte and unescaping expects one.
fn next_after_two_zeros(data: &[u8], mut at: usize, mut zeros: usize) -> Option<usize> {
    while at < data.len() {
        if zeros == 0 {
            // Eight bytes with no zero byte among them can neither hold the
            // pattern nor leave a zero before the next: skip them a word at
            // a time (ciphertext has a zero byte once in 256).
            while let Some(word) = data.get(at..at + 8) {
                let Ok(word) = <[u8; 8]>::try_from(word) else { break };
                let x = u64::from_le_bytes(word);
                if x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080 != 0 {
                    break;
                }
                at += 8;
            }
            if at >= data.len() {
                return None;
            }
        }
        let b = data[at];
        if zeros >= 2 && b <= 3 {
            return Some(at);
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        at += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let au = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 9];
        let units = nal_units(&au);
        let types: Vec<u8> = units.iter().map(|u| u.nal_type).collect();
        assert_eq!(types, vec![7, 8, 5]);
        assert_eq!(units[0].offset, 4);
        assert_eq!(units[1].offset, 10);
        assert_eq!(units[2].offset, 16);
    }

    #[test]
    fn clear_prefix_ends_one_byte_after_slice_header() {
        let au = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 0x88, 7, 7];
        assert_eq!(clear_prefix_len(&au), Ok(17));
        assert_eq!(clear_prefix_len(&[0, 0, 1, 0x67, 1]), Err(FrameError::NoSliceNal));
        assert!(matches!(clear_prefix_len(&[0, 0, 1, 0x41]), Err(FrameError::Truncated { .. })));
    }

    #[test]
    fn escaping_round_trips_and_hides_start_codes() {
        let data = [0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0, 0];
        let esc = escape(&data, 0);
        assert_eq!(esc, vec![0, 0, 3, 0, 0, 3, 1, 0, 0, 3, 2, 0, 0, 3, 3, 0, 0, 4, 0, 0]);
        assert!(nal_units(&esc).is_empty());
        assert_eq!(unescape(&esc, 0).unwrap(), data);
        // With two zeros carried in from the clear prefix.
        assert_eq!(escape(&[1], 2), vec![3, 1]);
        assert_eq!(unescape(&[3, 1], 2).unwrap(), vec![1]);
    }

    #[test]
    fn unescape_refuses_garbage() {
        assert_eq!(unescape(&[0, 0, 1], 0), Err(2));
        assert_eq!(unescape(&[0, 0, 3, 9], 0), Err(2));
        assert_eq!(unescape(&[0, 0, 3], 0), Err(2));
        assert_eq!(unescape(&[0, 0, 0], 0), Err(2));
    }

    /// The byte-by-byte definition `escape_in_place` must agree with.
    fn escape_reference(data: &[u8], zeros_before: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut zeros = zeros_before;
        for &b in data {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            out.push(b);
            zeros = if b == 0 { zeros + 1 } else { 0 };
        }
        out
    }

    /// The byte-by-byte definition `unescape_in_place` must agree with.
    fn unescape_reference(data: &[u8], zeros_before: usize) -> Result<Vec<u8>, usize> {
        let mut out = Vec::new();
        let mut zeros = zeros_before;
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            if zeros >= 2 {
                match b {
                    3 => match data.get(i + 1) {
                        Some(&next) if next <= 3 => {
                            zeros = 0;
                            i += 1;
                            continue;
                        }
                        _ => return Err(i),
                    },
                    0..=2 => return Err(i),
                    _ => {}
                }
            }
            out.push(b);
            zeros = if b == 0 { zeros + 1 } else { 0 };
            i += 1;
        }
        Ok(out)
    }

    proptest::proptest! {
        #[test]
        fn long_runs_match_the_reference(
            picks in proptest::collection::vec(0usize..8, 0..400),
            prefix in proptest::collection::vec(0usize..2, 0..3),
        ) {
            let data: Vec<u8> = picks.iter().map(|&i| [0u8, 0, 0, 1, 3, 4, 0x80, 0xff][i]).collect();
            let prefix: Vec<u8> = prefix.iter().map(|&i| [0u8, 9][i]).collect();
            let mut buf = prefix.clone();
            buf.extend_from_slice(&data);
            escape_in_place(&mut buf, prefix.len());
            let expected = escape_reference(&data, trailing_zeros(&prefix));
            proptest::prop_assert_eq!(&buf[prefix.len()..], &expected[..]);
            unescape_in_place(&mut buf, prefix.len()).unwrap();
            proptest::prop_assert_eq!(&buf[prefix.len()..], &data[..]);
            let mut raw = prefix.clone();
            raw.extend_from_slice(&data);
            let got = unescape_in_place(&mut raw, prefix.len()).map(|()| raw[prefix.len()..].to_vec());
            proptest::prop_assert_eq!(got, unescape_reference(&data, trailing_zeros(&prefix)));
        }
    }

    #[test]
    fn in_place_unescaping_matches_the_reference() {
        // Every sequence of up to 7 bytes over {0, 1, 3, 4}, padded to cross the 8-byte word skip.
        for prefix in [&[9u8, 9][..], &[9, 0], &[0, 0], &[]] {
            for pad in [0usize, 9, 13] {
                for n in 0..=7u32 {
                    for code in 0..4u32.pow(n) {
                        let mut data = vec![0x55u8; pad];
                        data.extend((0..n).map(|i| [0u8, 1, 3, 4][(code / 4u32.pow(i) % 4) as usize]));
                        data.extend([0x66u8; 5]);
                        let mut buf = prefix.to_vec();
                        buf.extend_from_slice(&data);
                        let expected = unescape_reference(&data, trailing_zeros(prefix));
                        let got = unescape_in_place(&mut buf, prefix.len()).map(|()| buf[prefix.len()..].to_vec());
                        assert_eq!(got, expected, "{prefix:?} {data:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn in_place_escaping_matches_the_reference() {
        // Every sequence of up to 7 bytes over {0, 1, 3, 4}, after prefixes ending in 0, 1 or 2 zeros.
        for prefix in [&[9u8, 9][..], &[9, 0], &[0, 0], &[]] {
            for n in 0..=7u32 {
                for code in 0..4u32.pow(n) {
                    let mut data: Vec<u8> = (0..n).map(|i| [0u8, 1, 3, 4][(code / 4u32.pow(i) % 4) as usize]).collect();
                    // A second copy after a run of non-zero bytes crosses the 8-byte word skip.
                    let copy = data.clone();
                    data.extend([0x77u8; 11]);
                    data.extend(copy);
                    let mut buf = prefix.to_vec();
                    buf.extend_from_slice(&data);
                    escape_in_place(&mut buf, prefix.len());
                    let expected = escape_reference(&data, trailing_zeros(prefix));
                    assert_eq!(&buf[..prefix.len()], prefix);
                    assert_eq!(&buf[prefix.len()..], &expected[..], "{prefix:?} {data:?}");
                    unescape_in_place(&mut buf, prefix.len()).unwrap();
                    assert_eq!(&buf[prefix.len()..], &data[..]);
                }
            }
        }
    }
}
