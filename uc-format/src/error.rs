//! Typed validation errors. Every error names the spec clause that it enforces and the byte offset,
//! relative to the first byte of the record, where the offending field or value sits.

use core::fmt;

macro_rules! error_kinds {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $name:literal, $clause:literal; )*) => {
        /// The class of a validation failure. The names and numeric codes are stable across versions:
        /// conformance vectors and the C ABI report them (spec ).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorKind {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorKind {
            /// Every error class, in numeric-code order.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$variant,)*];

            /// Stable snake_case name (conformance protocol, JSON receipts).
            pub const fn name(self) -> &'static str {
                match self { $(ErrorKind::$variant => $name,)* }
            }

            /// The spec clause (`spec/uc-pack-v0.4.md`) whose rule the input broke.
            pub const fn clause(self) -> &'static str {
                match self { $(ErrorKind::$variant => $clause,)* }
            }

            /// Stable non-zero integer code (C ABI returns its negation).
            pub const fn code(self) -> u32 {
                match self { $(ErrorKind::$variant => $code,)* }
            }

            /// Looks an error class up by its stable name.
            pub fn from_name(name: &str) -> Option<ErrorKind> {
                match name { $($name => Some(ErrorKind::$variant),)* _ => None }
            }
        }
    };
}

error_kinds! {
    /// The buffer ends before a field or section that the record needs.
    Truncated = 1, "truncated", "R-9.2";
    /// The first 8 bytes are not the record magic.
    BadMagic = 2, "bad_magic", "R-4.2";
    /// Major version is not 0, or minor version is below 3.
    UnsupportedVersion = 3, "unsupported_version", "R-10.1";
    /// `header_len` is not 192 (minor 3) or outside [192, 65536] (later minors).
    BadHeaderLength = 4, "bad_header_length", "R-4.4";
    /// `record_len` is smaller than the header or differs from the end of the last section.
    BadRecordLength = 5, "bad_record_length", "R-4.5";
    /// The CRC-32 of the record does not match the stored value.
    CrcMismatch = 6, "crc_mismatch", "R-4.6";
    /// A reserved header byte is not zero.
    ReservedNonZero = 7, "reserved_nonzero", "R-4.15";
    /// A must-understand flag bit that this decoder does not know is set.
    UnsupportedFlags = 8, "unsupported_flags", "R-10.3";
    /// `bits` is outside 1..=8.
    BadBits = 9, "bad_bits", "R-4.8";
    /// `ndim` is outside 1..=8.
    BadNdim = 10, "bad_ndim", "R-4.9";
    /// `scale_dtype` is not 1 (f16).
    BadScaleDtype = 11, "bad_scale_dtype", "R-4.10";
    /// `overlay_dtype` is not 0, 1 or 2.
    BadOverlayDtype = 12, "bad_overlay_dtype", "R-4.11";
    /// `block_size` is not 64 (256 in a record with two-level scales).
    BadBlockSize = 13, "bad_block_size", "R-4.12";
    /// A used dimension is 0, or an unused dimension slot is not 0.
    BadDim = 14, "bad_dim", "R-4.13";
    /// The product of the dimensions overflows u64.
    ShapeOverflow = 15, "shape_overflow", "R-11.2";
    /// A quantity exceeds a limit of R-11.1 (elements, overlay rank).
    LimitExceeded = 16, "limit_exceeded", "R-11.1";
    /// Overlay rank and dtype disagree, or the rank does not fit the shape.
    BadOverlayRank = 17, "bad_overlay_rank", "R-8.2";
    /// A section's length differs from the length that the header's shape fields imply.
    SectionLength = 18, "section_length", "R-5.3";
    /// A section's offset plus its length overflows u64.
    SectionOverflow = 19, "section_overflow", "R-5.4";
    /// A section's offset is not a multiple of 64.
    SectionMisaligned = 20, "section_misaligned", "R-5.5";
    /// A section starts before the end of the header or of the previous section.
    SectionOverlap = 21, "section_overlap", "R-5.6";
    /// A section starts after the first 64-aligned offset following the previous section.
    SectionGap = 22, "section_gap", "R-5.7";
    /// A section ends after `record_len`.
    SectionOutOfBounds = 23, "section_out_of_bounds", "R-5.8";
    /// A padding byte between sections, or an unused code bit of the last block, is not zero.
    NonZeroPadding = 24, "nonzero_padding", "R-5.9";
    /// A grid value is NaN, infinite, or non-zero with magnitude outside [2^-64, 2^64].
    BadGridValue = 25, "bad_grid_value", "R-7.3";
    /// A scale is negative (sign bit set), infinite or NaN.
    BadScaleValue = 26, "bad_scale_value", "R-7.2";
    /// An overlay factor is infinite or NaN.
    BadOverlayValue = 27, "bad_overlay_value", "R-8.4";
    /// `sub_block` of a record with two-level scales is not 16 or 32.
    BadSubBlock = 28, "bad_sub_block", "R-13.3";
}

/// A validation failure: its class and the byte offset (from the start of the record) it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Error {
    /// What rule was broken.
    pub kind: ErrorKind,
    /// Byte offset from the start of the record of the offending field or value; for
    /// [`ErrorKind::Truncated`], the length of the buffer that was given.
    pub offset: u64,
}

impl Error {
    /// Builds an error.
    pub const fn new(kind: ErrorKind, offset: u64) -> Self {
        Error { kind, offset }
    }

    /// The spec clause the input broke.
    pub const fn clause(&self) -> &'static str {
        self.kind.clause()
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid uc record: {} at byte offset {} (spec {})",
            self.kind.name(),
            self.offset,
            self.kind.clause()
        )
    }
}

impl core::error::Error for Error {}
