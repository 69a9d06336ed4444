//! # uc-decode: zero-copy, allocation-free decoder for uc pack v0.3 records
//!
//! [`Record::parse`] validates a record once (every rule of spec R-9.1, see [`uc_format::validate`]);
//! after that, decoding cannot fail on the record's content and never allocates. The record is
//! borrowed from any `&[u8]` (mmap, flash, a network buffer) of any alignment.
//!
//! Reconstruction (spec R-7.1): `W_base[i] = f32(scale[i / 64]) * grid[code[i]]`, one binary32
//! multiply rounded to nearest even. Validation bounds the operands so that every product is zero
//! or a normal number; every decode path (scalar reference, portable fast path, AVX2) therefore
//! returns the same bits, which the tests check for every bit width.
//!
//! ```
//! use uc_format::{OverlayDtype, RecordParams, write_record};
//! let params = RecordParams::new(2, &[3], 0, OverlayDtype::None).unwrap();
//! let mut buf = vec![0u8; params.layout().unwrap().record_len as usize];
//! write_record(&params, &[-1.0, -0.5, 0.5, 1.0], &[0x4000], &[0, 2, 3], &[], &[], &mut buf).unwrap();
//! let rec = uc_decode::Record::parse(&buf).unwrap();
//! let mut w = [0f32; 3];
//! rec.decode_into(&mut w).unwrap();
//! assert_eq!(w, [-2.0, 1.0, 2.0]);
//! ```
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "capi")]
// The C ABI is the only place in this crate with `unsafe`: it turns the caller's raw pointers into
// slices and stores a `Record` in caller-owned memory. Its SAFETY contract is the module's doc.
#[allow(unsafe_code)]
pub mod capi;
pub mod dot;
mod kernels;

use core::fmt;
use core::ops::Range;
use uc_format::num::{bf16_to_f32, f16_to_f32};
pub use uc_format::{Error, ErrorKind, Layout, OverlayDtype};
use uc_format::{SECTION_CODES, SECTION_GRID, SECTION_OVERLAY, SECTION_SCALES, SECTION_SUBSCALES};

/// Number of elements in a block (R-4.12).
pub const BLOCK: usize = 64;

/// Which implementation decodes. Every path returns the same bits (R-7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Path {
    /// The fastest path this CPU supports (AVX2 when detected, else portable).
    Auto,
    /// Element-by-element transcription of the spec: the reference.
    Scalar,
    /// Block-at-a-time path in portable Rust (8 codes per 64-bit load).
    Portable,
    /// x86-64 AVX2 (`vpsrlvd` unpack, `vpermps`/`vgatherdps` lookup, `vmulps`); falls back to
    /// `Portable` where AVX2 is not available.
    Avx2,
}

impl Path {
    /// The path that runs for a record of `bits`-bit codes on this CPU. [`Path::Auto`] picks AVX2
    /// wherever it is available: register-table lookups for `bits <= 4` (4-bit codes unpacked to
    /// bytes a block at a time) and `vgatherdps` for 5..=8, with the codes loaded in place; it
    /// measured faster than the portable path at every width on the 2-core Xeon (BENCHMARKS.md,
    /// "Decode speed"). [`Path::Avx2`] falls back to the portable path where AVX2 is not available.
    pub fn resolve(self, bits: u8) -> Path {
        // Every width takes the same path today; `bits` stays in the signature for paths that
        // depend on it.
        let _ = bits;
        let avx2 = kernels::avx2_available();
        match self {
            Path::Auto if avx2 => Path::Avx2,
            Path::Auto => Path::Portable,
            Path::Avx2 if avx2 => Path::Avx2,
            Path::Avx2 => Path::Portable,
            p => p,
        }
    }

    /// Stable lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Path::Auto => "auto",
            Path::Scalar => "scalar",
            Path::Portable => "portable",
            Path::Avx2 => "avx2",
        }
    }
}

/// A caller error in a decode request (never a property of the record, which was validated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The output slice does not have the length the request needs.
    OutputLength {
        /// Required number of f32 values.
        expected: u64,
        /// Length of the slice given.
        got: usize,
    },
    /// The requested element or row range is not inside the tensor.
    OutOfRange {
        /// First requested index.
        start: u64,
        /// One past the last requested index.
        end: u64,
        /// Number of elements (or rows) the tensor has.
        len: u64,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::OutputLength { expected, got } => {
                write!(f, "output buffer holds {got} values, the request needs {expected}")
            }
            DecodeError::OutOfRange { start, end, len } => {
                write!(f, "range {start}..{end} is outside 0..{len}")
            }
        }
    }
}

impl core::error::Error for DecodeError {}

/// A validated record, borrowing its bytes.
#[derive(Clone)]
pub struct Record<'a> {
    layout: Layout,
    /// The grid, converted once from its little-endian bytes; entries past `2^bits` are 0.
    grid: [f32; 256],
    scales: &'a [u8],
    codes: &'a [u8],
    overlay: &'a [u8],
    /// The sub-scales section (R-13.2); empty without two-level scales.
    subscales: &'a [u8],
    /// `log2(B)`: 6, or 8 with two-level scales.
    block_shift: u32,
    /// `log2(S)` with two-level scales (4 or 5); 0 without.
    sub_shift: u32,
}

impl fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl<'a> Record<'a> {
    /// Validates `bytes` as a record (spec R-9.1) and borrows it. Bytes after the record's
    /// `record_len` are ignored.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let layout = uc_format::validate(bytes)?;
        let sec = |k: usize| {
            let s = layout.sections[k];
            &bytes[s.offset as usize..s.end() as usize]
        };
        let mut grid = [0f32; 256];
        for (g, c) in grid.iter_mut().zip(sec(SECTION_GRID).chunks_exact(4)) {
            *g = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Ok(Record {
            layout,
            grid,
            scales: sec(SECTION_SCALES),
            codes: sec(SECTION_CODES),
            overlay: sec(SECTION_OVERLAY),
            subscales: sec(SECTION_SUBSCALES),
            block_shift: layout.block_size.trailing_zeros(),
            sub_shift: if layout.has_subscales() {
                layout.params.sub_block.trailing_zeros()
            } else {
                0
            },
        })
    }

    /// The validated layout (shape, sections, version, CRC).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Tensor dimensions, outermost first.
    pub fn shape(&self) -> &[u64] {
        self.layout.params.shape()
    }

    /// Number of elements.
    pub fn len(&self) -> u64 {
        self.layout.n
    }

    /// Always false: a valid record has at least one element (R-4.13).
    pub fn is_empty(&self) -> bool {
        self.layout.n == 0
    }

    /// Code width `b`.
    pub fn bits(&self) -> u8 {
        self.layout.params.bits
    }

    /// Number of rows (dim 0).
    pub fn rows(&self) -> u64 {
        self.layout.rows
    }

    /// Number of columns (product of dims 1..; 1 for a 1-D tensor).
    pub fn cols(&self) -> u64 {
        self.layout.cols
    }

    /// Overlay rank `r` (0 when there is no overlay).
    pub fn overlay_rank(&self) -> u32 {
        self.layout.params.overlay_rank
    }

    /// Overlay dtype.
    pub fn overlay_dtype(&self) -> OverlayDtype {
        self.layout.params.overlay_dtype
    }

    /// The `2^bits` grid values.
    pub fn grid(&self) -> &[f32] {
        &self.grid[..1usize << self.bits()]
    }

    /// Block size `B` of the binary16 scales: 64, or 256 with two-level scales (R-13.3).
    pub fn block_size(&self) -> u32 {
        self.layout.block_size
    }

    /// Sub-block size `S` of two-level scales (16 or 32, R-13.3), or `None` for a record without.
    pub fn sub_block(&self) -> Option<u32> {
        self.layout.has_subscales().then_some(self.layout.params.sub_block)
    }

    /// The sub-scales section as stored: one `sub_bits`-bit integer per sub-block, packed as codes
    /// are (R-13.2; empty without two-level scales).
    pub fn subscales_bytes(&self) -> &'a [u8] {
        self.subscales
    }

    /// The effective scale of element `i`: `f32(scale)` of its block, times its sub-scale with
    /// two-level scales (exact, R-13.4). `W_base[i]` is this times `grid[code(i)]`, one rounded
    /// multiply. Returns `None` past the last element.
    pub fn effective_scale(&self, i: u64) -> Option<f32> {
        (i < self.layout.n).then(|| kernels::scale_at(self, i))
    }

    /// The binary16 scale of block `j` (of [`Record::block_size`] elements) as binary32 (exact
    /// conversion, R-7.1). Returns `None` past the last block.
    pub fn scale(&self, block: u64) -> Option<f32> {
        let at = usize::try_from(block).ok()?.checked_mul(2)?;
        let c = self.scales.get(at..at.checked_add(2)?)?;
        Some(f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
    }

    /// The scales section as stored: one little-endian binary16 per block (`2 * n_scales` bytes).
    /// For decoders that upload the record elsewhere (a GPU) and convert there.
    pub fn scales_bytes(&self) -> &'a [u8] {
        self.scales
    }

    /// The codes section as stored: the little-endian bit stream of R-6.1 (`8 * bits * n_blocks`
    /// bytes).
    pub fn codes_bytes(&self) -> &'a [u8] {
        self.codes
    }

    /// The overlay section as stored: `U` then `V`, little-endian 16-bit values (empty when `r = 0`).
    pub fn overlay_bytes(&self) -> &'a [u8] {
        self.overlay
    }

    /// The code of element `i` (R-6.1). Returns `None` past the last element.
    pub fn code(&self, i: u64) -> Option<u8> {
        (i < self.layout.n).then(|| kernels::code_at(self.codes, self.bits(), i))
    }

    /// Decodes the whole tensor into `out` (length = [`Record::len`]) with the fastest path.
    pub fn decode_into(&self, out: &mut [f32]) -> Result<(), DecodeError> {
        self.decode_with(Path::Auto, out)
    }

    /// Decodes the whole tensor with a chosen path.
    pub fn decode_with(&self, path: Path, out: &mut [f32]) -> Result<(), DecodeError> {
        if out.len() as u64 != self.layout.n {
            return Err(DecodeError::OutputLength {
                expected: self.layout.n,
                got: out.len(),
            });
        }
        self.decode_range_with(path, 0, out)
    }

    /// Decodes elements `[start, start + out.len())` (row-major flattening) into `out`.
    pub fn decode_range_into(&self, start: u64, out: &mut [f32]) -> Result<(), DecodeError> {
        self.decode_range_with(Path::Auto, start, out)
    }

    /// Decodes rows `rows` (along dim 0) into `out`, which must hold `rows.len() * cols` values.
    pub fn decode_rows_into(&self, rows: Range<u64>, out: &mut [f32]) -> Result<(), DecodeError> {
        if rows.start > rows.end || rows.end > self.layout.rows {
            return Err(DecodeError::OutOfRange {
                start: rows.start,
                end: rows.end,
                len: self.layout.rows,
            });
        }
        let cols = self.layout.cols;
        let expected = (rows.end - rows.start) * cols;
        if out.len() as u64 != expected {
            return Err(DecodeError::OutputLength {
                expected,
                got: out.len(),
            });
        }
        self.decode_range_with(Path::Auto, rows.start * cols, out)
    }

    /// Decodes elements `[start, start + out.len())` with a chosen path.
    pub fn decode_range_with(&self, path: Path, start: u64, out: &mut [f32]) -> Result<(), DecodeError> {
        let n = self.layout.n;
        if start.checked_add(out.len() as u64).is_none_or(|end| end > n) {
            return Err(DecodeError::OutOfRange {
                start,
                end: start.saturating_add(out.len() as u64),
                len: n,
            });
        }
        match path.resolve(self.bits()) {
            Path::Scalar => kernels::decode_scalar(self, start, out),
            Path::Avx2 => kernels::decode_blocks(self, start, out, true),
            Path::Portable | Path::Auto => kernels::decode_blocks(self, start, out, false),
        }
        Ok(())
    }

    /// Streams the tensor block by block without any buffer from the caller.
    pub fn blocks(&self) -> Blocks<'_, 'a> {
        Blocks { rec: self, next: 0 }
    }

    /// Writes the overlay factor `U` (`[rows, r]`, row-major) as f32 (exact conversion, R-8.3).
    pub fn overlay_u_into(&self, out: &mut [f32]) -> Result<(), DecodeError> {
        let n = self.layout.rows * u64::from(self.overlay_rank());
        self.overlay_part(0, n, out)
    }

    /// Writes the overlay factor `V` (`[r, cols]`, row-major) as f32 (exact conversion, R-8.3).
    pub fn overlay_v_into(&self, out: &mut [f32]) -> Result<(), DecodeError> {
        let r = u64::from(self.overlay_rank());
        self.overlay_part(self.layout.rows * r, r * self.layout.cols, out)
    }

    fn overlay_value(&self, idx: u64) -> f32 {
        let at = (idx * 2) as usize;
        let h = u16::from_le_bytes([self.overlay[at], self.overlay[at + 1]]);
        match self.overlay_dtype() {
            OverlayDtype::Bf16 => bf16_to_f32(h),
            _ => f16_to_f32(h),
        }
    }

    fn overlay_part(&self, first: u64, n: u64, out: &mut [f32]) -> Result<(), DecodeError> {
        if out.len() as u64 != n {
            return Err(DecodeError::OutputLength {
                expected: n,
                got: out.len(),
            });
        }
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.overlay_value(first + i as u64);
        }
        Ok(())
    }

    /// Adds the overlay product to a decoded `W_base` in place, in the reference order of spec
    /// R-8.5: for each `(i, j)`, `acc = 0; for k in 0..r { acc = acc + U[i,k] * V[k,j] }` with
    /// every operation a separately rounded binary32 operation (no fused multiply-add), then
    /// `W[i,j] = W_base[i,j] + acc`. With `r = 0`, `W = W_base` exactly: nothing is added (a −0
    /// stays −0). `out` must hold the whole tensor.
    pub fn merge_overlay_into(&self, out: &mut [f32]) -> Result<(), DecodeError> {
        if out.len() as u64 != self.layout.n {
            return Err(DecodeError::OutputLength {
                expected: self.layout.n,
                got: out.len(),
            });
        }
        if self.overlay_rank() == 0 {
            // R-8.5: with r = 0, W = W_base exactly (nothing is added, a −0 stays −0).
            return Ok(());
        }
        let (rows, cols) = (self.layout.rows as usize, self.layout.cols as usize);
        let r = u64::from(self.overlay_rank());
        let v0 = self.layout.rows * r;
        // Blocks of ROWS_AT_ONCE rows x SEGMENT columns: each V segment is converted once per k and
        // used for every row of the block; each element keeps its own accumulator, so it sees
        // exactly the reference sequence (see add_overlay_segment).
        let mut acc = [[0f32; SEGMENT]; ROWS_AT_ONCE];
        let mut vbuf = [0f32; SEGMENT];
        for i0 in (0..rows).step_by(ROWS_AT_ONCE) {
            let nr = ROWS_AT_ONCE.min(rows - i0);
            for j0 in (0..cols).step_by(SEGMENT) {
                let nc = SEGMENT.min(cols - j0);
                for a in acc[..nr].iter_mut() {
                    a[..nc].fill(0.0);
                }
                for k in 0..r {
                    self.factor_values(v0 + k * cols as u64 + j0 as u64, &mut vbuf[..nc]);
                    for (ii, a) in acc[..nr].iter_mut().enumerate() {
                        let u = self.overlay_value((i0 + ii) as u64 * r + k);
                        for (x, v) in a[..nc].iter_mut().zip(&vbuf[..nc]) {
                            *x += u * *v;
                        }
                    }
                }
                for (ii, a) in acc[..nr].iter().enumerate() {
                    let row = &mut out[(i0 + ii) * cols + j0..(i0 + ii) * cols + j0 + nc];
                    for (o, x) in row.iter_mut().zip(&a[..nc]) {
                        *o += *x;
                    }
                }
            }
        }
        Ok(())
    }

    /// Converts `out.len()` consecutive overlay factor values starting at factor index `first`
    /// (exact, R-8.3), with the dtype decided once.
    fn factor_values(&self, first: u64, out: &mut [f32]) {
        let at = (first * 2) as usize;
        let bytes = &self.overlay[at..at + 2 * out.len()];
        let halves = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
        match self.overlay_dtype() {
            OverlayDtype::Bf16 => out.iter_mut().zip(halves).for_each(|(o, h)| *o = bf16_to_f32(h)),
            _ => out.iter_mut().zip(halves).for_each(|(o, h)| *o = f16_to_f32(h)),
        }
    }

    /// Adds the overlay product to `out`, the elements `(i, j0..j0 + out.len())` of one row, in the
    /// reference order of R-8.5. The loops run `k` outside and `j` inside with one accumulator per
    /// element (on the stack, `out.len() ≤ SEGMENT`), so every element sees exactly the reference
    /// sequence `acc = +0.0; acc = acc + U[i,k] * V[k,j]` for `k = 0..r`, then `W = W_base + acc`:
    /// the same bits as [`Record::overlay_term`], at the speed of a row-by-row matrix product.
    fn add_overlay_segment(&self, i: u64, j0: u64, out: &mut [f32]) {
        let r = u64::from(self.overlay_rank());
        let (rows, cols) = (self.layout.rows, self.layout.cols);
        let v0 = rows * r;
        let mut acc = [0f32; SEGMENT];
        let mut vbuf = [0f32; SEGMENT];
        for (c, seg) in out.chunks_mut(SEGMENT).enumerate() {
            let j = j0 + (c * SEGMENT) as u64;
            let acc = &mut acc[..seg.len()];
            acc.fill(0.0);
            for k in 0..r {
                let u = self.overlay_value(i * r + k);
                self.factor_values(v0 + k * cols + j, &mut vbuf[..seg.len()]);
                for (a, v) in acc.iter_mut().zip(vbuf.iter()) {
                    *a += u * *v;
                }
            }
            for (o, a) in seg.iter_mut().zip(acc.iter()) {
                *o += *a;
            }
        }
    }

    /// Adds the overlay product to `out`, which holds `W_base` elements `[start, start +
    /// out.len())` in row-major order, in the reference order of R-8.5 (with `r = 0`, nothing): the
    /// same bits as [`Record::merge_overlay_into`] on those elements, for a caller that streams the
    /// tensor in chunks.
    pub fn merge_overlay_range_into(&self, start: u64, out: &mut [f32]) -> Result<(), DecodeError> {
        match start.checked_add(out.len() as u64) {
            Some(end) if end <= self.layout.n => {}
            end => {
                return Err(DecodeError::OutOfRange {
                    start,
                    end: end.unwrap_or(u64::MAX),
                    len: self.layout.n,
                });
            }
        }
        if self.overlay_rank() == 0 {
            return Ok(());
        }
        let cols = self.layout.cols;
        let mut idx = start;
        let mut done = 0usize;
        while done < out.len() {
            let (i, j) = (idx / cols, idx % cols);
            let run = ((cols - j) as usize).min(out.len() - done);
            self.add_overlay_segment(i, j, &mut out[done..done + run]);
            done += run;
            idx += run as u64;
        }
        Ok(())
    }

    /// The overlay product at flat element `idx` (row `i = idx / cols`, column `j = idx % cols`)
    /// in the reference order of spec R-8.5: `acc = +0.0; for k in 0..r { acc = acc + U[i,k] *
    /// V[k,j] }`, each operation a separately rounded binary32 operation. The one home of that
    /// arithmetic: [`Record::merge_overlay_into`] and [`Record::merged_blocks`] use it. `idx` must
    /// be below [`Record::len`]; 0 when `r = 0`.
    pub fn overlay_term(&self, idx: u64) -> f32 {
        let r = u64::from(self.overlay_rank());
        let (rows, cols) = (self.layout.rows, self.layout.cols);
        let (i, j) = (idx / cols, idx % cols);
        let v0 = rows * r;
        let mut acc = 0f32;
        for k in 0..r {
            acc += self.overlay_value(i * r + k) * self.overlay_value(v0 + k * cols + j);
        }
        acc
    }

    /// Streams the reconstruction a runtime uses, block by block: `W_base` (R-7.1) plus, when the
    /// record has an overlay, `U·V` merged in the reference order of R-8.5
    /// ([`Record::overlay_term`]). No buffer and no allocation: the factors are read from the
    /// record as each term needs them.
    pub fn merged_blocks(&self) -> MergedBlocks<'_, 'a> {
        MergedBlocks { inner: self.blocks() }
    }
}

/// The iterator of [`Record::merged_blocks`].
pub struct MergedBlocks<'r, 'a> {
    inner: Blocks<'r, 'a>,
}

impl Iterator for MergedBlocks<'_, '_> {
    type Item = Block;

    fn next(&mut self) -> Option<Block> {
        let mut b = self.inner.next()?;
        // In range by construction; with r = 0 nothing is added (R-8.5).
        let _ = self
            .inner
            .rec
            .merge_overlay_range_into(b.index * BLOCK as u64, &mut b.values[..b.len]);
        Some(b)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// Elements of one row whose overlay terms are accumulated together (a stack buffer).
const SEGMENT: usize = 128;
/// Rows merged together, so that each converted V segment serves several rows (2 KiB of stack
/// accumulators with [`SEGMENT`]).
const ROWS_AT_ONCE: usize = 4;

/// One element of `W_base` by spec R-7.1: the binary16 block scale (as its bit pattern) times the
/// grid value, one binary32 multiply. The decoder's reference path and the encoder's
/// reconstruction both compute it here.
#[inline]
pub fn w_base_value(scale_bits: u16, grid_value: f32) -> f32 {
    f16_to_f32(scale_bits) * grid_value
}

/// One element of `W_base` of a record with two-level scales (R-13.4): the binary16 block scale
/// times the sub-scale, an exact product (at most 19 significant bits), times the grid value, the
/// one rounded binary32 multiply.
#[inline]
pub fn w_base_value_subscaled(scale_bits: u16, sub: u8, grid_value: f32) -> f32 {
    (f16_to_f32(scale_bits) * f32::from(sub)) * grid_value
}

/// One decoded block of a [`Blocks`] stream.
#[derive(Clone, Copy)]
pub struct Block {
    /// Block index: the block covers elements `[64 * index, 64 * index + len)`.
    pub index: u64,
    /// Number of valid values (64 except possibly for the last block).
    pub len: usize,
    /// Decoded values; entries at and after `len` are 0.
    pub values: [f32; BLOCK],
}

impl Block {
    /// The valid values.
    pub fn as_slice(&self) -> &[f32] {
        &self.values[..self.len]
    }
}

/// Iterator over the decoded blocks of a record, created by [`Record::blocks`].
pub struct Blocks<'r, 'a> {
    rec: &'r Record<'a>,
    next: u64,
}

impl Iterator for Blocks<'_, '_> {
    type Item = Block;

    fn next(&mut self) -> Option<Block> {
        if self.next >= self.rec.layout.n_blocks {
            return None;
        }
        let index = self.next;
        self.next += 1;
        let start = index * BLOCK as u64;
        let len = (self.rec.layout.n - start).min(BLOCK as u64) as usize;
        let mut values = [0f32; BLOCK];
        // In range by construction: start + len <= n.
        let _ = self.rec.decode_range_with(Path::Auto, start, &mut values[..len]);
        Some(Block { index, len, values })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.rec.layout.n_blocks - self.next;
        let l = usize::try_from(left).unwrap_or(usize::MAX);
        (l, usize::try_from(left).ok())
    }
}
