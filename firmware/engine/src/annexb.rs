//! H.264 access units as they travel over RTP (RFC 6184), split with the
//! one Annex B splitter of the project (`cloakroom_frame::h264::nal_units`).
//!
//! The encoder's access unit is rewritten before it is sealed the way the
//! receiver's depacketizer will hand it back: 4-byte start codes, no access
//! unit delimiters or filler data (the packetizer drops those, and the
//! `h264` frame format's authenticated clear part must be the same bytes on
//! both sides).

use cloakroom_frame::h264::{NAL_IDR, nal_units, trailing_zeros};

/// NAL unit types that never cross RTP: access unit delimiter, filler data.
const DROPPED: [u8; 2] = [9, 12];

/// The access unit as the far side's depacketizer will produce it.
pub fn normalise(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    for nal in nal_units(data) {
        if DROPPED.contains(&nal.nal_type) {
            continue;
        }
        let end = (nal.offset + nal.len).min(data.len());
        let body = &data[nal.offset..end];
        // Trailing zeros belong to the next start code; a NAL unit keeps at least its header.
        let trimmed = &body[..body.len() - trailing_zeros(body).min(body.len().saturating_sub(1))];
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(trimmed);
    }
    out
}

/// Whether the access unit holds an IDR slice (a decoder can start here).
pub fn is_idr(data: &[u8]) -> bool {
    nal_units(data).iter().any(|nal| nal.nal_type == NAL_IDR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_uses_four_byte_start_codes_and_drops_aud() {
        let au = [0, 0, 1, 9, 0xf0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 7, 8, 9];
        assert_eq!(normalise(&au), vec![0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 7, 8, 9]);
        assert!(is_idr(&au));
        assert!(!is_idr(&[0, 0, 0, 1, 0x41, 0x9a, 1]));
        assert!(normalise(&[1, 2, 3]).is_empty(), "no start code, no NAL unit");
    }
}
