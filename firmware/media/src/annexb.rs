//! H.264 Annex B byte streams (ITU-T H.264 Annex B, NAL unit header 7.3.1).
//!
//! The send side promises H.264 as Annex B with SPS and PPS before every IDR
//! (the `h264` frame-encryption layout and RTP packetisers depend on it);
//! this module checks that promise without GStreamer. It never panics on
//! bad input: every problem is a [`MediaError::NotAnnexB`].

use crate::MediaError;

/// NAL unit types this crate cares about (Table 7-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NalType {
    /// Coded slice of a non-IDR picture (1).
    Slice,
    /// Coded slice of an IDR picture (5).
    IdrSlice,
    /// Supplemental enhancement information (6).
    Sei,
    /// Sequence parameter set (7).
    Sps,
    /// Picture parameter set (8).
    Pps,
    /// Access unit delimiter (9).
    AccessUnitDelimiter,
    /// Any other type, with its number.
    Other(u8),
}

impl NalType {
    /// The type from the low five bits of a NAL header byte.
    pub const fn from_header(header: u8) -> Self {
        match header & 0x1f {
            1 => Self::Slice,
            5 => Self::IdrSlice,
            6 => Self::Sei,
            7 => Self::Sps,
            8 => Self::Pps,
            9 => Self::AccessUnitDelimiter,
            other => Self::Other(other),
        }
    }

    /// Whether NALs of this type carry a coded slice.
    pub const fn is_slice(self) -> bool {
        matches!(self, Self::Slice | Self::IdrSlice)
    }
}

/// One NAL unit of a byte stream, without its start code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NalUnit<'a> {
    /// The NAL unit type.
    pub nal_type: NalType,
    /// Offset of the NAL header byte in the stream.
    pub offset: usize,
    /// The NAL unit, header byte first, trailing zero bytes removed.
    pub bytes: &'a [u8],
}

/// Splits an Annex B byte stream into NAL units.
///
/// The stream must start with a start code (`00 00 01` or `00 00 00 01`);
/// every NAL unit must be non-empty and have its forbidden zero bit clear.
pub fn nal_units(stream: &[u8]) -> Result<Vec<NalUnit<'_>>, MediaError> {
    let starts = start_codes(stream);
    match starts.first() {
        None => {
            return Err(MediaError::NotAnnexB { offset: 0, reason: "no start code" });
        }
        Some(&(code_at, _)) if stream[..code_at].iter().any(|&b| b != 0) => {
            return Err(MediaError::NotAnnexB { offset: 0, reason: "bytes before the first start code" });
        }
        Some(_) => {}
    }
    let mut units = Vec::with_capacity(starts.len());
    for (i, &(_, begin)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(stream.len(), |&(next, _)| next);
        let mut bytes = &stream[begin..end];
        // Trailing zero bytes belong to the next (four-byte) start code or are
        // trailing_zero_8bits; neither is part of the NAL unit.
        while let [rest @ .., 0] = bytes {
            bytes = rest;
        }
        let Some(&header) = bytes.first() else {
            return Err(MediaError::NotAnnexB { offset: begin, reason: "empty NAL unit" });
        };
        if header & 0x80 != 0 {
            return Err(MediaError::NotAnnexB { offset: begin, reason: "forbidden_zero_bit set" });
        }
        units.push(NalUnit { nal_type: NalType::from_header(header), offset: begin, bytes });
    }
    Ok(units)
}

/// What an access unit (one encoded frame) holds, as far as senders and
/// packetisers care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessUnit {
    /// NAL types in stream order.
    pub nal_types: Vec<NalType>,
}

impl AccessUnit {
    /// Parses one encoded frame.
    pub fn parse(frame: &[u8]) -> Result<Self, MediaError> {
        let nal_types = nal_units(frame)?.iter().map(|n| n.nal_type).collect();
        Ok(Self { nal_types })
    }

    /// Whether the frame holds an IDR slice.
    pub fn is_idr(&self) -> bool {
        self.nal_types.contains(&NalType::IdrSlice)
    }

    /// Whether a decoder can start here: SPS and PPS both come before the
    /// first IDR slice. False for frames without an IDR slice.
    pub fn has_parameter_sets_before_idr(&self) -> bool {
        let Some(idr) = self.nal_types.iter().position(|&t| t == NalType::IdrSlice) else {
            return false;
        };
        let before = &self.nal_types[..idr];
        before.contains(&NalType::Sps) && before.contains(&NalType::Pps)
    }

    /// Whether the frame holds at least one coded slice.
    pub fn has_slice(&self) -> bool {
        self.nal_types.iter().any(|t| t.is_slice())
    }
}

/// Positions of `00 00 01` start codes: (where the code starts, where the NAL
/// begins). A preceding zero byte of a four-byte code is left to the previous
/// NAL's trailing zeros.
fn start_codes(stream: &[u8]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            found.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x33];
    const SLICE: &[u8] = &[0x41, 0x9a, 0x02];

    fn stream(parts: &[(&[u8], bool)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (nal, long) in parts {
            if *long {
                out.push(0);
            }
            out.extend_from_slice(&[0, 0, 1]);
            out.extend_from_slice(nal);
        }
        out
    }

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let s = stream(&[(SPS, true), (PPS, false), (IDR, true)]);
        let units = nal_units(&s).expect("valid stream");
        let types: Vec<_> = units.iter().map(|u| u.nal_type).collect();
        assert_eq!(types, [NalType::Sps, NalType::Pps, NalType::IdrSlice]);
        assert_eq!(units[0].bytes, SPS);
        assert_eq!(units[1].bytes, PPS);
        // The IDR's payload ends in 0x33; the 0x00 before it is kept.
        assert_eq!(units[2].bytes, IDR);
    }

    #[test]
    fn idr_with_parameter_sets_is_a_starting_point() {
        let au = AccessUnit::parse(&stream(&[(SPS, true), (PPS, true), (IDR, true)])).expect("valid");
        assert!(au.is_idr());
        assert!(au.has_parameter_sets_before_idr());
    }

    #[test]
    fn idr_without_pps_is_not() {
        let au = AccessUnit::parse(&stream(&[(SPS, true), (IDR, true)])).expect("valid");
        assert!(au.is_idr());
        assert!(!au.has_parameter_sets_before_idr());
    }

    #[test]
    fn parameter_sets_after_the_idr_do_not_count() {
        let au = AccessUnit::parse(&stream(&[(IDR, true), (SPS, true), (PPS, true)])).expect("valid");
        assert!(!au.has_parameter_sets_before_idr());
    }

    #[test]
    fn delta_frame_is_not_idr() {
        let au = AccessUnit::parse(&stream(&[(SLICE, true)])).expect("valid");
        assert!(!au.is_idr());
        assert!(au.has_slice());
        assert!(!au.has_parameter_sets_before_idr());
    }

    #[test]
    fn rejects_bad_input_without_panicking() {
        for (bad, why) in [
            (&[][..], "no start code"),
            (&[0x65, 0x88][..], "no start code"),
            (&[0, 0, 1][..], "empty NAL unit"),
            (&[0, 0, 1, 0, 0][..], "empty NAL unit"),
            (&[0, 0, 1, 0xe5, 1][..], "forbidden_zero_bit set"),
            (&[7, 0, 0, 1, 0x65][..], "bytes before the first start code"),
        ] {
            match nal_units(bad) {
                Err(MediaError::NotAnnexB { reason, .. }) => assert_eq!(reason, why, "{bad:?}"),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn every_prefix_of_a_valid_stream_is_handled() {
        let s = stream(&[(SPS, true), (PPS, false), (IDR, true), (SLICE, false)]);
        for len in 0..=s.len() {
            // Must not panic; short prefixes are errors, longer ones parse.
            let _ = nal_units(&s[..len]);
        }
        assert_eq!(nal_units(&s).map(|u| u.len()).ok(), Some(4));
    }
}
