//! # uc-format: the uc pack record (v0.3, and v0.4's two-level scales), byte for byte
//!
//! Constants, the zerocopy header struct, validation with typed errors (each naming its spec
//! clause and byte offset), and helpers that write a record into a caller's buffer.
//! `#![no_std]`, no allocation, no `unsafe`. The normative text is `spec/uc-pack-v0.4.md`;
//! clause numbers (`R-x.y`) in this crate refer to it.
//!
//! ```
//! use uc_format::{OverlayDtype, RecordParams, validate, write_record};
//! let params = RecordParams::new(2, &[2, 3], 0, OverlayDtype::None).unwrap();
//! let layout = params.layout().unwrap();
//! let mut buf = vec![0u8; layout.record_len as usize];
//! let grid = [-1.0f32, -0.25, 0.25, 1.0];
//! let scales = [0x3c00u16]; // 1.0 in binary16
//! let codes = [0u8, 1, 2, 3, 0, 3];
//! write_record(&params, &grid, &scales, &codes, &[], &[], &mut buf).unwrap();
//! let checked = validate(&buf).unwrap();
//! assert_eq!(checked.n, 6);
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod header;
pub mod num;
mod validate;
mod write;

pub use error::{Error, ErrorKind};
pub use header::{HeaderExtV04, RecordHeader, SectionEntry};
pub use validate::validate;
pub use write::{finalize_crc, pack_codes, record_crc, write_record, write_record_with_subscales};

/// Record magic, bytes 0..8 (R-4.2): `\x89 U C R \r \n \x1a \n`.
pub const MAGIC: [u8; 8] = [0x89, b'U', b'C', b'R', b'\r', b'\n', 0x1a, b'\n'];
/// Major version this crate implements (R-10.1).
pub const VERSION_MAJOR: u16 = 0;
/// Minor version of records without v0.4 features: this crate writes them as v0.3 records, which
/// every v0.3 decoder reads (R-10.1).
pub const VERSION_MINOR: u16 = 3;
/// Minor version of records with two-level scales (R-13.1); also the highest minor version whose
/// every feature this crate implements.
pub const VERSION_MINOR_V04: u16 = 4;
/// Header length of a v0.3 record (R-4.4).
pub const HEADER_LEN_V03: u32 = 192;
/// Header length of a record with two-level scales, as this crate writes it (R-13.2).
pub const HEADER_LEN_V04: u32 = 256;
/// Must-understand flag bit 0: two-level scales (R-13.1).
pub const FLAG_SUBSCALES: u32 = 0x0000_0001;
/// Block size `B` of the binary16 scales in a record with two-level scales (R-13.3).
pub const BLOCK_SIZE_V04: u32 = 256;
/// The sub-block sizes `S` a record with two-level scales may use (R-13.3).
pub const SUB_BLOCKS: [u32; 2] = [16, 32];
/// Largest header length a later minor version may declare (R-4.4).
pub const MAX_HEADER_LEN: u32 = 65536;
/// Block size of a v0.3 record, in elements (R-4.12); codes are packed in groups of this many
/// elements in every record (R-6.2).
pub const BLOCK_SIZE: u32 = 64;
/// Alignment of every section inside a record, in bytes (R-5.2).
pub const SECTION_ALIGN: u64 = 64;
/// Largest number of dimensions (R-11.1).
pub const MAX_NDIM: usize = 8;
/// Largest number of elements of one tensor, 2^48 (R-11.1).
pub const MAX_ELEMENTS: u64 = 1 << 48;
/// Largest overlay rank (R-11.1).
pub const MAX_OVERLAY_RANK: u32 = 4096;
/// Scale dtype code for IEEE binary16 (R-4.10).
pub const SCALE_DTYPE_F16: u8 = 1;
/// Flag bits a decoder must understand to decode correctly (R-10.3). None are defined in v0.3.
pub const FLAGS_MUST_UNDERSTAND: u32 = 0x0000_ffff;
/// Must-understand flags known to this implementation (R-10.3): two-level scales (v0.4).
pub const FLAGS_KNOWN: u32 = FLAG_SUBSCALES;
/// Key and value that mark a safetensors file holding uc records in its `__metadata__` (R-3.2).
pub const SAFETENSORS_METADATA_KEY: &str = "uc.format";
/// See [`SAFETENSORS_METADATA_KEY`]: the value of files whose records are all v0.3 records.
pub const SAFETENSORS_METADATA_VALUE: &str = "0.3";
/// See [`SAFETENSORS_METADATA_KEY`]: the value of files holding a record with v0.4 features (R-13.6).
pub const SAFETENSORS_METADATA_VALUE_V04: &str = "0.4";

/// Number of sections a layout describes: the four of R-5.1 and the sub-scales section of R-13.2
/// (empty, at the end of the record, in a record without two-level scales).
pub const SECTION_COUNT: usize = 5;
/// Number of sections of a v0.3 record, and of entries in the fixed header's section table.
pub const SECTION_COUNT_V03: usize = 4;
/// Index of the grid section.
pub const SECTION_GRID: usize = 0;
/// Index of the scales section.
pub const SECTION_SCALES: usize = 1;
/// Index of the codes section.
pub const SECTION_CODES: usize = 2;
/// Index of the overlay section.
pub const SECTION_OVERLAY: usize = 3;
/// Index of the sub-scales section (v0.4, R-13.2).
pub const SECTION_SUBSCALES: usize = 4;

/// Overlay factor storage type (R-4.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OverlayDtype {
    /// No overlay (rank 0).
    None = 0,
    /// IEEE binary16.
    F16 = 1,
    /// bfloat16.
    Bf16 = 2,
}

impl OverlayDtype {
    /// Decodes the header byte.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(OverlayDtype::None),
            1 => Some(OverlayDtype::F16),
            2 => Some(OverlayDtype::Bf16),
            _ => None,
        }
    }
}

/// Where a section lies in the record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Section {
    /// Offset from the start of the record.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

impl Section {
    /// One past the last byte.
    pub const fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// The shape-defining fields of a record, from which its whole layout follows (R-5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordParams {
    /// Code width `b`, 1..=8.
    pub bits: u8,
    /// Number of dimensions, 1..=8.
    pub ndim: u8,
    /// Dimensions; entries at and after `ndim` are 0.
    pub dims: [u64; MAX_NDIM],
    /// Overlay rank `r`.
    pub overlay_rank: u32,
    /// Overlay dtype (`None` exactly when `overlay_rank` is 0).
    pub overlay_dtype: OverlayDtype,
    /// Header length (192 for v0.3, 256 for records with two-level scales as written here).
    pub header_len: u32,
    /// Sub-block size `S` of two-level scales (R-13.3): 16 or 32; 0 for a record without them.
    pub sub_block: u32,
    /// Width of each sub-scale in bits (1..=8, R-13.3); 0 for a record without two-level scales.
    pub sub_bits: u8,
}

/// Everything a decoder needs to know about a record, as validated (or planned by a writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The shape fields.
    pub params: RecordParams,
    /// Minor version of the record.
    pub version_minor: u16,
    /// Flags word (only ignorable bits can be set in a valid record).
    pub flags: u32,
    /// Number of elements (product of dims).
    pub n: u64,
    /// Number of 64-element code groups, `ceil(n / 64)` (R-6.2); in a v0.3 record also the number
    /// of blocks and scales.
    pub n_blocks: u64,
    /// Block size `B` of the binary16 scales: 64, or 256 with two-level scales.
    pub block_size: u32,
    /// Number of binary16 scales, `ceil(n / B)`.
    pub n_scales: u64,
    /// Number of sub-scales, `ceil(n / S)`; 0 without two-level scales. The section holds them
    /// packed, `ceil(n_subscales * sub_bits / 8)` bytes.
    pub n_subscales: u64,
    /// Overlay rows: dim 0.
    pub rows: u64,
    /// Overlay columns: the product of dims 1.. (1 for a 1-D tensor).
    pub cols: u64,
    /// Sections in order grid, scales, codes, overlay, sub-scales. Without two-level scales the
    /// sub-scales section is empty and starts at `record_len`.
    pub sections: [Section; SECTION_COUNT],
    /// Total record length: the end of the overlay section rounded up to a multiple of 64.
    pub record_len: u64,
    /// Stored CRC-32.
    pub crc32: u32,
}

/// Record offset of the `offset` field of section `k`'s table entry (its `len` is 8 bytes later):
/// `112 + 16k` in the fixed header for k < 4 (R-4.1), 192 for the sub-scales section (R-13.2).
pub const fn section_entry_offset(k: usize) -> u64 {
    if k < SECTION_COUNT_V03 {
        header::offsets::SECTIONS + 16 * k as u64
    } else {
        header::offsets::SUBSCALES
    }
}

const fn align_up(x: u64) -> Option<u64> {
    match x.checked_add(SECTION_ALIGN - 1) {
        Some(v) => Some(v & !(SECTION_ALIGN - 1)),
        None => None,
    }
}

impl RecordParams {
    /// Shape fields for a v0.3 record. Checks the same rules as validation of those fields.
    pub fn new(bits: u8, dims: &[u64], overlay_rank: u32, overlay_dtype: OverlayDtype) -> Result<Self, Error> {
        if dims.is_empty() || dims.len() > MAX_NDIM {
            return Err(Error::new(ErrorKind::BadNdim, header::offsets::NDIM));
        }
        let mut d = [0u64; MAX_NDIM];
        d[..dims.len()].copy_from_slice(dims);
        let p = RecordParams {
            bits,
            ndim: dims.len() as u8,
            dims: d,
            overlay_rank,
            overlay_dtype,
            header_len: HEADER_LEN_V03,
            sub_block: 0,
            sub_bits: 0,
        };
        p.layout()?;
        Ok(p)
    }

    /// Shape fields for a v0.4 record with two-level scales of sub-block `sub_block` (16 or 32,
    /// R-13.3) and 8-bit sub-scales: header length 256, binary16 scales per 256 elements, one
    /// sub-scale per `sub_block` elements. See [`RecordParams::with_subscales_bits`].
    pub fn with_subscales(
        bits: u8,
        dims: &[u64],
        overlay_rank: u32,
        overlay_dtype: OverlayDtype,
        sub_block: u32,
    ) -> Result<Self, Error> {
        Self::with_subscales_bits(bits, dims, overlay_rank, overlay_dtype, sub_block, 8)
    }

    /// As [`RecordParams::with_subscales`] with `sub_bits`-bit sub-scales (1..=8), packed as codes
    /// are (R-13.3).
    pub fn with_subscales_bits(
        bits: u8,
        dims: &[u64],
        overlay_rank: u32,
        overlay_dtype: OverlayDtype,
        sub_block: u32,
        sub_bits: u8,
    ) -> Result<Self, Error> {
        let mut p = Self::new(bits, dims, overlay_rank, overlay_dtype)?;
        // Checked here too: `sub_block` 0 would otherwise read as "no two-level scales".
        if !SUB_BLOCKS.contains(&sub_block) {
            return Err(Error::new(ErrorKind::BadSubBlock, header::offsets::SUB_BLOCK));
        }
        p.header_len = HEADER_LEN_V04;
        p.sub_block = sub_block;
        p.sub_bits = sub_bits;
        p.layout()?;
        Ok(p)
    }

    /// True for a record with two-level scales (flag bit 0, R-13.1).
    pub const fn has_subscales(&self) -> bool {
        self.sub_block != 0
    }

    /// The used dimensions.
    pub fn shape(&self) -> &[u64] {
        &self.dims[..usize::from(self.ndim).min(MAX_NDIM)]
    }

    /// Checks the shape fields (R-4.8, R-4.9, R-4.13, R-11.1, R-11.2, R-8.2) and computes the
    /// canonical layout (R-5.2, R-5.3): each section starts at the first multiple of 64 at or
    /// after the end of the previous one (the header for the grid).
    pub fn layout(&self) -> Result<Layout, Error> {
        use header::offsets as o;
        if !(1..=8).contains(&self.bits) {
            return Err(Error::new(ErrorKind::BadBits, o::BITS));
        }
        let ndim = usize::from(self.ndim);
        if !(1..=MAX_NDIM).contains(&ndim) {
            return Err(Error::new(ErrorKind::BadNdim, o::NDIM));
        }
        for (i, &d) in self.dims.iter().enumerate() {
            if (i < ndim) != (d != 0) {
                return Err(Error::new(ErrorKind::BadDim, o::DIMS + 8 * i as u64));
            }
        }
        let mut n: u64 = 1;
        for &d in &self.dims[..ndim] {
            n = n.checked_mul(d).ok_or(Error::new(ErrorKind::ShapeOverflow, o::DIMS))?;
        }
        if n > MAX_ELEMENTS {
            return Err(Error::new(ErrorKind::LimitExceeded, o::DIMS));
        }
        let rows = self.dims[0];
        let cols = n / rows;
        let r = self.overlay_rank;
        if r > MAX_OVERLAY_RANK {
            return Err(Error::new(ErrorKind::LimitExceeded, o::OVERLAY_RANK));
        }
        if (r == 0) != (self.overlay_dtype == OverlayDtype::None)
            || (r > 0 && (ndim < 2 || u64::from(r) > rows.min(cols)))
        {
            return Err(Error::new(ErrorKind::BadOverlayRank, o::OVERLAY_RANK));
        }
        let (block_size, n_subscales) = if self.has_subscales() {
            if !SUB_BLOCKS.contains(&self.sub_block) {
                return Err(Error::new(ErrorKind::BadSubBlock, o::SUB_BLOCK));
            }
            if !(1..=8).contains(&self.sub_bits) {
                return Err(Error::new(ErrorKind::BadSubBlock, o::SUB_BITS));
            }
            if self.header_len < HEADER_LEN_V04 {
                return Err(Error::new(ErrorKind::BadHeaderLength, o::HEADER_LEN));
            }
            (BLOCK_SIZE_V04, n.div_ceil(u64::from(self.sub_block)))
        } else {
            (BLOCK_SIZE, 0)
        };
        // With n <= 2^48 and r <= 4096 none of the following can overflow u64.
        let n_blocks = n.div_ceil(u64::from(BLOCK_SIZE));
        let n_scales = n.div_ceil(u64::from(block_size));
        let lens = [
            4u64 << self.bits,
            2 * n_scales,
            n_blocks * 8 * u64::from(self.bits),
            2 * u64::from(r) * (rows + cols),
            (n_subscales * u64::from(self.sub_bits)).div_ceil(8),
        ];
        let mut sections = [Section::default(); SECTION_COUNT];
        let mut end = u64::from(self.header_len);
        for (k, s) in sections.iter_mut().enumerate() {
            let offset = align_up(end).ok_or(Error::new(ErrorKind::SectionOverflow, section_entry_offset(k)))?;
            *s = Section { offset, len: lens[k] };
            end = offset + lens[k];
        }
        // The record ends at the next multiple of 64 (R-5.2), so that records laid end to end in
        // a file stay 64-byte aligned; the trailing padding is zero (R-5.9).
        let last = if self.has_subscales() {
            SECTION_SUBSCALES
        } else {
            SECTION_OVERLAY
        };
        let end = align_up(end).ok_or(Error::new(ErrorKind::SectionOverflow, section_entry_offset(last)))?;
        Ok(Layout {
            params: *self,
            version_minor: if self.has_subscales() {
                VERSION_MINOR_V04
            } else {
                VERSION_MINOR
            },
            flags: if self.has_subscales() { FLAG_SUBSCALES } else { 0 },
            n,
            n_blocks,
            block_size,
            n_scales,
            n_subscales,
            rows,
            cols,
            sections,
            record_len: end,
            crc32: 0,
        })
    }
}

impl Layout {
    /// True for a record with two-level scales (R-13.1).
    pub const fn has_subscales(&self) -> bool {
        self.params.has_subscales()
    }

    /// The sections the record's tables describe: four for a v0.3 record, five with two-level
    /// scales.
    pub fn used_sections(&self) -> &[Section] {
        if self.has_subscales() {
            &self.sections
        } else {
            &self.sections[..SECTION_COUNT_V03]
        }
    }
}
