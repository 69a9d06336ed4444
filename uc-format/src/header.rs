//! The fixed 192-byte record header (spec clause ), as a zerocopy struct of unaligned
//! little-endian integers: it can be viewed in place in a buffer of any alignment.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Location of one section inside the record, relative to the record's first byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SectionEntry {
    /// Offset of the section's first byte.
    pub offset: U64,
    /// Length of the section in bytes.
    pub len: U64,
}

/// The v0.3 record header, bytes 0..192 of every record. See the field table of spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RecordHeader {
    /// `89 55 43 52 0D 0A 1A 0A`.
    pub magic: [u8; 8],
    /// 0.
    pub version_major: U16,
    /// 3 for records written to this spec.
    pub version_minor: U16,
    /// Header length in bytes: 192 in v0.3.
    pub header_len: U32,
    /// Total record length in bytes.
    pub record_len: U64,
    /// CRC-32/ISO-HDLC of bytes [0, record_len) with this field read as zero.
    pub crc32: U32,
    /// Feature flags: bits 0..15 must-understand, bits 16..31 ignorable.
    pub flags: U32,
    /// Code width `b`, 1..=8.
    pub bits: u8,
    /// Number of used entries of `dims`, 1..=8.
    pub ndim: u8,
    /// Scale dtype: 1 = IEEE binary16.
    pub scale_dtype: u8,
    /// Overlay dtype: 0 = no overlay, 1 = binary16, 2 = bfloat16.
    pub overlay_dtype: u8,
    /// Block size `B`: 64.
    pub block_size: U32,
    /// Overlay rank `r`.
    pub overlay_rank: U32,
    /// Zero.
    pub reserved0: [u8; 4],
    /// Tensor dimensions, outermost first; entries at and after `ndim` are 0.
    pub dims: [U64; 8],
    /// Sections in order: grid, scales, codes, overlay.
    pub sections: [SectionEntry; 4],
    /// Zero.
    pub reserved1: [u8; 16],
}

/// The v0.4 header extension, bytes 192..256 of a record with two-level scales (spec ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct HeaderExtV04 {
    /// `sections[4]`: the sub-scales section.
    pub subscales: SectionEntry,
    /// Sub-block size `S`: 16 or 32.
    pub sub_block: U32,
    /// Width of a sub-scale in bits, 1..=8.
    pub sub_bits: u8,
    /// Zero.
    pub reserved2: [u8; 43],
}

const _: () = assert!(core::mem::size_of::<RecordHeader>() == crate::HEADER_LEN_V03 as usize);
const _: () = assert!(core::mem::size_of::<HeaderExtV04>() == (crate::HEADER_LEN_V04 - crate::HEADER_LEN_V03) as usize);
const _: () = assert!(core::mem::size_of::<SectionEntry>() == 16);

/// Byte offsets of header fields, as the spec's table gives them (used in error offsets).
pub mod offsets {
    /// `magic`.
    pub const MAGIC: u64 = 0;
    /// `version_major`.
    pub const VERSION_MAJOR: u64 = 8;
    /// `version_minor`.
    pub const VERSION_MINOR: u64 = 10;
    /// `header_len`.
    pub const HEADER_LEN: u64 = 12;
    /// `record_len`.
    pub const RECORD_LEN: u64 = 16;
    /// `crc32`.
    pub const CRC32: u64 = 24;
    /// `flags`.
    pub const FLAGS: u64 = 28;
    /// `bits`.
    pub const BITS: u64 = 32;
    /// `ndim`.
    pub const NDIM: u64 = 33;
    /// `scale_dtype`.
    pub const SCALE_DTYPE: u64 = 34;
    /// `overlay_dtype`.
    pub const OVERLAY_DTYPE: u64 = 35;
    /// `block_size`.
    pub const BLOCK_SIZE: u64 = 36;
    /// `overlay_rank`.
    pub const OVERLAY_RANK: u64 = 40;
    /// `reserved0`.
    pub const RESERVED0: u64 = 44;
    /// `dims[0]`; `dims[i]` is at `DIMS + 8 * i`.
    pub const DIMS: u64 = 48;
    /// `sections[0].offset`; `sections[k].offset` is at `SECTIONS + 16 * k`, its `len` 8 bytes later.
    pub const SECTIONS: u64 = 112;
    /// `reserved1`.
    pub const RESERVED1: u64 = 176;
    /// `sections[4].offset` (the sub-scales section of a v0.4 record, R-13.2); its `len` follows.
    pub const SUBSCALES: u64 = 192;
    /// `sub_block`.
    pub const SUB_BLOCK: u64 = 208;
    /// `sub_bits`.
    pub const SUB_BITS: u64 = 212;
    /// `reserved2`.
    pub const RESERVED2: u64 = 213;
}
