//! C ABI of the decoder (cargo feature `capi`; header `uc-decode/capi/include/uc_decode.h`).
//!
//! Allocation-free and `no_std`: the caller owns every byte of memory. A record is parsed once
//! with [`uc_record_parse`] into a caller-allocated [`uc_record`] handle (2 KiB, 8-byte aligned),
//! which then answers the getters and decodes any part of the tensor into caller buffers.
//!
//! Return values: `0` ([`UC_OK`]) on success; a validation failure of the record is the NEGATED
//! stable code of [`ErrorKind`] (`-1` truncated … `-28` bad_sub_block, spec ); a rejected
//! request of the caller is one of [`UC_ERR_OUTPUT_LENGTH`], [`UC_ERR_OUT_OF_RANGE`],
//! [`UC_ERR_NULL`], [`UC_ERR_BAD_HANDLE`]. [`uc_error_name`] and [`uc_error_clause`] turn any of
//! them into a static string.
//!
//! # Safety contract (what the C caller promises; everything else is checked)
//!
//! * `data`/`len` given to [`uc_record_parse`] describe readable memory that stays valid and
//!   unmodified for as long as the handle is used: the handle borrows the record's bytes, it does
//!   not copy them. `data` may be null only when `len` is 0.
//! * Every `(pointer, length)` pair of an output buffer describes writable memory for `length`
//!   values of its type that does not overlap the record's bytes or the handle.
//! * A handle passed to any function other than [`uc_record_parse`] is either null, or points to a
//!   `uc_record` that is zero-filled (e.g. `uc_record r = {0};`) or that was last written by
//!   [`uc_record_parse`], whatever the result (a failed parse leaves the handle marked invalid).
//!   Handles are plain memory: they may be copied with `memcpy`, never need to be freed, and may be
//!   used from several threads at once (every function but `uc_record_parse` only reads them).
//!
//! Everything else is checked and reported, never undefined: null pointers ([`UC_ERR_NULL`]; the
//! getters return 0), misaligned pointers ([`UC_ERR_NULL`]), handles that hold no parsed record
//! ([`UC_ERR_BAD_HANDLE`]; the getters return 0), wrong output lengths and ranges outside the
//! tensor. No function panics: decoding a validated record cannot fail.

use core::ffi::{CStr, c_char};
use core::mem::{align_of, size_of};
use core::slice;

use crate::{DecodeError, ErrorKind, Record};

/// Number of 64-bit words of a [`uc_record`] handle (2048 bytes).
pub const UC_RECORD_WORDS: usize = 256;
/// Success.
pub const UC_OK: i32 = 0;
/// Caller error: the output buffer does not have the length that the request needs.
pub const UC_ERR_OUTPUT_LENGTH: i32 = -100;
/// Caller error: the element or row range is not inside the tensor.
pub const UC_ERR_OUT_OF_RANGE: i32 = -101;
/// Caller error: a required pointer is null or not aligned for its type.
pub const UC_ERR_NULL: i32 = -102;
/// Caller error: the handle does not hold a parsed record (zero-filled, or its last parse failed).
pub const UC_ERR_BAD_HANDLE: i32 = -103;
/// `0x00MMmmAA`: format major `MM` = 0, minor `mm` = 4, ABI revision `AA` = 0. (`0x000300`, the
/// v0.3 library, lacked [`uc_record_block_size`] and [`uc_record_sub_block`] and the error code
/// `-28`; every other function is unchanged.)
pub const UC_ABI_VERSION: u32 = 0x00_04_00;

/// Caller-allocated storage for a parsed record (an opaque `uc_decode::Record`).
///
/// The last word holds a marker that tells a parsed handle from a zero-filled one or one whose
/// parse failed; the record itself is stored at the start of the storage.
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct uc_record {
    /// Opaque storage; do not read or write it.
    pub opaque: [u64; UC_RECORD_WORDS],
}

impl uc_record {
    /// A zero-filled handle (holds no record).
    pub const fn new() -> Self {
        uc_record {
            opaque: [0; UC_RECORD_WORDS],
        }
    }
}

impl Default for uc_record {
    fn default() -> Self {
        Self::new()
    }
}

/// Index of the marker word.
const TAG_WORD: usize = UC_RECORD_WORDS - 1;
/// Marker of a handle that holds a parsed record: "UCrecord" in ASCII.
const TAG: u64 = u64::from_be_bytes(*b"UCrecord");

// The record, at offset 0, must fit before the marker word and need no more than 8-byte alignment.
const _: () = assert!(size_of::<Record<'static>>() <= 8 * (UC_RECORD_WORDS - 1));
const _: () = assert!(size_of::<Record<'static>>() <= 8 * UC_RECORD_WORDS);
const _: () = assert!(align_of::<Record<'static>>() <= 8);
const _: () = assert!(align_of::<uc_record>() == 8 && size_of::<uc_record>() == 8 * UC_RECORD_WORDS);

/// The record held by `rec`.
///
/// # Safety
/// `rec` is null or points to a readable, initialised `uc_record` (see the module contract); when
/// it holds a parsed record, the record's bytes are valid for `'h`.
unsafe fn handle<'h>(rec: *const uc_record) -> Result<&'h Record<'h>, i32> {
    if rec.is_null() || !rec.is_aligned() {
        return Err(UC_ERR_NULL);
    }
    // SAFETY: `rec` is non-null, aligned and, by the caller's contract, points to an initialised
    // `uc_record`; the marker word lies inside it.
    let tag = unsafe { rec.cast::<u64>().add(TAG_WORD).read() };
    if tag != TAG {
        return Err(UC_ERR_BAD_HANDLE);
    }
    // SAFETY: the marker is only written by `uc_record_parse` right after it wrote a valid
    // `Record` at offset 0 of this storage (size and alignment asserted above), and it is cleared
    // before any other write there. The borrowed bytes are valid for `'h` by the caller's contract.
    Ok(unsafe { &*rec.cast::<Record<'h>>() })
}

/// Applies `f` to the record of a valid handle, or returns `T::default()` (0).
///
/// # Safety
/// As [`handle`].
unsafe fn getter<T: Default>(rec: *const uc_record, f: impl FnOnce(&Record<'_>) -> T) -> T {
    // SAFETY: forwarded contract.
    match unsafe { handle(rec) } {
        Ok(r) => f(r),
        Err(_) => T::default(),
    }
}

/// The caller's output buffer as a slice. A null pointer is accepted with length 0.
///
/// # Safety
/// `out` is null or valid for writes of `len` f32 values, not aliased for `'o`.
unsafe fn out_slice<'o>(out: *mut f32, len: usize) -> Result<&'o mut [f32], i32> {
    if len == 0 {
        return Ok(&mut []);
    }
    if out.is_null() || !out.is_aligned() {
        return Err(UC_ERR_NULL);
    }
    if len > isize::MAX as usize / size_of::<f32>() {
        // No such buffer can exist (slice size limit); reject rather than build an invalid slice.
        return Err(UC_ERR_OUTPUT_LENGTH);
    }
    // SAFETY: non-null, aligned, within the slice size limit, and valid for `len` writes by the
    // caller's contract.
    Ok(unsafe { slice::from_raw_parts_mut(out, len) })
}

fn status(r: Result<(), DecodeError>) -> i32 {
    match r {
        Ok(()) => UC_OK,
        Err(DecodeError::OutputLength { .. }) => UC_ERR_OUTPUT_LENGTH,
        Err(DecodeError::OutOfRange { .. }) => UC_ERR_OUT_OF_RANGE,
    }
}

/// Runs a decode request on a valid handle and an output buffer.
///
/// # Safety
/// As [`handle`] and [`out_slice`].
unsafe fn request(
    rec: *const uc_record,
    out: *mut f32,
    len: usize,
    f: impl FnOnce(&Record<'_>, &mut [f32]) -> Result<(), DecodeError>,
) -> i32 {
    // SAFETY: forwarded contract.
    let r = match unsafe { handle(rec) } {
        Ok(r) => r,
        Err(e) => return e,
    };
    // SAFETY: forwarded contract.
    match unsafe { out_slice(out, len) } {
        Ok(o) => status(f(r, o)),
        Err(e) => e,
    }
}

/// Validates `len` bytes at `data` as a record (spec) and stores the parsed record in `*out`.
///
/// Returns 0, or the negated [`ErrorKind::code`] of the first failed check (then `*err_offset`
/// receives the error's byte offset when `err_offset` is not null; it is left alone otherwise),
/// or [`UC_ERR_NULL`] when `out` is null or misaligned or `data` is null with `len > 0`.
/// Bytes after the record's `record_len` are ignored. On any failure except a null or misaligned
/// `out`, `*out` is marked as holding no record.
///
/// # Safety
/// `data` is valid for reads of `len` bytes (or null with `len == 0`) and stays valid and
/// unmodified while `*out` is used; `out` is null or valid for writes of one `uc_record`;
/// `err_offset` is null or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uc_record_parse(
    data: *const u8,
    len: usize,
    out: *mut uc_record,
    err_offset: *mut u64,
) -> i32 {
    if out.is_null() || !out.is_aligned() {
        return UC_ERR_NULL;
    }
    // SAFETY: `out` is non-null, aligned and writable for a whole `uc_record` (caller contract).
    // Clearing the marker first means the handle is invalid unless the parse below succeeds.
    unsafe { out.cast::<u64>().add(TAG_WORD).write(0) };
    let bytes: &[u8] = if len == 0 {
        &[]
    } else if data.is_null() {
        return UC_ERR_NULL;
    } else {
        // SAFETY: `data` is non-null and valid for `len` reads (caller contract), which implies
        // `len <= isize::MAX`; u8 needs no alignment.
        unsafe { slice::from_raw_parts(data, len) }
    };
    match Record::parse(bytes) {
        Ok(r) => {
            // SAFETY: `out` is aligned to 8 >= align_of::<Record>() and the storage holds
            // size_of::<Record>() bytes before the marker word (const assertions above). The
            // storage holds no live value that needs dropping (Record has no drop glue anyway).
            unsafe {
                out.cast::<Record<'_>>().write(r);
                out.cast::<u64>().add(TAG_WORD).write(TAG);
            }
            UC_OK
        }
        Err(e) => {
            if !err_offset.is_null() {
                // SAFETY: non-null and valid for one write of 8 bytes (caller contract); written
                // unaligned, so a pointer into a packed or byte buffer is honoured as the header
                // promises instead of being skipped.
                unsafe { err_offset.write_unaligned(e.offset) };
            }
            -(e.kind.code() as i32)
        }
    }
}

/// Code width `b` (1..=8); 0 for a null or invalid handle.
///
/// # Safety
/// `rec` is null or points to an initialised `uc_record` (module contract).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uc_record_bits(rec: *const uc_record) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { getter(rec, |r| u32::from(r.bits())) }
}

/// Number of dimensions (1..=8); 0 for a null or invalid handle.
///
/// # Safety
/// `rec` is null or points to an initialised `uc_record` (module contract).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uc_record_ndim(rec: *const uc_record) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { getter(rec, |r| r.shape().len() as u32) }
}

/// Writes the dimensions, outermost first, to `dims[0..ndim]` and returns `ndim`; or
/// [`UC_ERR_OUTPUT_LENGTH`] when `cap < ndim` (nothing written), [`UC_ERR_NULL`] /
/// [`UC_ERR_BAD_HANDLE`] for the handle, [`UC_ERR_NULL`] when `dims` is null.
///
/// # Safety
/// `rec` as in the module contract; `dims` is null or valid for writes of `cap` u64 values.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uc_record_shape(rec: *const uc_record, dims: *mut u64, cap: usize) -> i32 {
    // SAFETY: forwarded contract.
    let r = match unsafe { handle(rec) } {
        Ok(r) => r,
        Err(e) => return e,
    };
    let shape = r.shape();
    if cap < shape.len() {
        return UC_ERR_OUTPUT_LENGTH;
    }
    if dims.is_null() || !dims.is_aligned() {
        return UC_ERR_NULL;
    }
    for (i, &d) in shape.iter().enumerate() {
        // SAFETY: i < ndim <= cap, and `dims` is valid for `cap` writes (caller contract).
        unsafe { dims.add(i).write(d) };
    }
    shape.len() as i32
}

/// Number of elements (product of the dimensions); 0 for a null or invalid handle.
///
/// # Safety
/// `rec` is null or points to an initialised `uc_record` (module contract).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uc_record_numel(rec: *const uc_record) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { getter(rec, |r| r.len()) }
}

/// Rows (dimension 0); 0 for a null or invalid handle.
///
/// # Safety
/// `rec` is null or points to an initialised `uc_record` (module contract).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uc_record_rows(rec: *const uc_record) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { getter(rec, |r| r.rows()) }
}

/// Columns (product of dimensions 1..; 1 for a 1-D tensor); 0 for a null or invalid handle.
///
/// # Safety
/// `rec` is null or points to an initialised `uc_record` (module contract).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uc_record_cols(rec: *const uc_record) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { getter(rec, |r| r.cols()) }
}

/// Overlay rank `r` (0: no overlay); 0 for a null or invalid handle.
///
/// # Safety
/// `rec` is null or points to an initialised `uc_record` (module contract).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uc_record_overlay_rank(rec: *const uc_record) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { getter(rec, |r| r.overlay_rank()) }
}

/// Overlay dtype: 0 none, 1 f16, 2 bf16; 0 for a null or invalid handle.
///
/// # Safety
/// `rec` is null or points to an initialised `uc_record` (module contract).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uc_record_overlay_dtype(rec: *const uc_record) -> u8 {
    // SAFETY: forwarded contract.
    unsafe { getter(rec, |r| r.overlay_dtype() as u8) }
}

/// The record's stored (and verified) CRC-32; 0 for a null or invalid handle.
///
/// # Safety
/// `rec` is null or points to an initialised `uc_record` (module contract).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uc_record_crc32(rec: *const uc_record) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { getter(rec, |r| r.layout().crc32) }
}

/// Block size `B` of the binary16 scales: 64, or 256 for a record with two-level scales (v0.4,
/// ); 0 for a null or invalid handle.
///
/// # Safety
/// `rec` is null or points to an initialised `uc_record` (module contract).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uc_record_block_size(rec: *const uc_record) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { getter(rec, |r| r.block_size()) }
}

/// Sub-block size `S` of two-level scales (16 or 32, R-13.3); 0 for a record without two-level
/// scales and for a null or invalid handle.
///
/// # Safety
/// `rec` is null or points to an initialised `uc_record` (module contract).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uc_record_sub_block(rec: *const uc_record) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { getter(rec, |r| r.sub_block().unwrap_or(0)) }
}

/// Decodes the whole tensor (`W_base`, R-7.1, or with two-level scales) into `out`; `out_len` must equal the number of
/// elements ([`UC_ERR_OUTPUT_LENGTH`] otherwise).
///
/// # Safety
/// `rec` as in the module contract; `out` is valid for writes of `out_len` floats (may be null
/// when `out_len` is 0) and overlaps neither the handle nor the record's bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uc_record_decode(rec: *const uc_record, out: *mut f32, out_len: usize) -> i32 {
    // SAFETY: forwarded contract.
    unsafe {
        request(rec, out, out_len, |r, o| {
            if o.len() as u64 != r.len() {
                return Err(DecodeError::OutputLength {
                    expected: r.len(),
                    got: o.len(),
                });
            }
            r.decode_into(o)
        })
    }
}

/// Decodes elements `[start, start + out_len)` of the row-major flattening into `out`
/// ([`UC_ERR_OUT_OF_RANGE`] when the range is not inside the tensor).
///
/// # Safety
/// As [`uc_record_decode`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uc_record_decode_range(
    rec: *const uc_record,
    start: u64,
    out: *mut f32,
    out_len: usize,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { request(rec, out, out_len, |r, o| r.decode_range_into(start, o)) }
}

/// Decodes rows `[row_start, row_end)` (along dimension 0) into `out`, which must hold
/// `(row_end - row_start) * cols` values ([`UC_ERR_OUT_OF_RANGE`] when the rows are not inside the
/// tensor or `row_start > row_end`, then [`UC_ERR_OUTPUT_LENGTH`]).
///
/// # Safety
/// As [`uc_record_decode`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uc_record_decode_rows(
    rec: *const uc_record,
    row_start: u64,
    row_end: u64,
    out: *mut f32,
    out_len: usize,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { request(rec, out, out_len, |r, o| r.decode_rows_into(row_start..row_end, o)) }
}

/// Writes the overlay factor `U` (`[rows, r]`, row-major) as exact f32 values; `out_len`
/// must equal `rows * r` (0 when there is no overlay; `out` may then be null).
///
/// # Safety
/// As [`uc_record_decode`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uc_record_overlay_u(rec: *const uc_record, out: *mut f32, out_len: usize) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { request(rec, out, out_len, |r, o| r.overlay_u_into(o)) }
}

/// Writes the overlay factor `V` (`[r, cols]`, row-major) as exact f32 values; `out_len`
/// must equal `r * cols` (0 when there is no overlay; `out` may then be null).
///
/// # Safety
/// As [`uc_record_decode`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uc_record_overlay_v(rec: *const uc_record, out: *mut f32, out_len: usize) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { request(rec, out, out_len, |r, o| r.overlay_v_into(o)) }
}

/// Adds `U · V` to the decoded `W_base` held in `w` (the whole tensor, `len` = number of elements),
/// in the reference order of spec. Does nothing when `r = 0`.
///
/// # Safety
/// As [`uc_record_decode`] (`w` is read and written).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uc_record_merge_overlay(rec: *const uc_record, w: *mut f32, len: usize) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { request(rec, w, len, |r, o| r.merge_overlay_into(o)) }
}

/// Longest name or clause plus its NUL terminator.
const STR_CAP: usize = 32;
/// Largest validation error code + 1 that the tables can hold.
const TABLE_LEN: usize = 64;
type CStrTable = [[u8; STR_CAP]; TABLE_LEN];

/// NUL-terminated names (`clause == false`) or clauses of every [`ErrorKind`], indexed by code,
/// built at compile time from uc-format so that they cannot drift.
const fn build_table(clause: bool) -> CStrTable {
    let mut t = [[0u8; STR_CAP]; TABLE_LEN];
    let all = ErrorKind::ALL;
    let mut i = 0;
    while i < all.len() {
        let k = all[i];
        let code = k.code() as usize;
        assert!(code > 0 && code < TABLE_LEN && t[code][0] == 0);
        let s = if clause { k.clause() } else { k.name() }.as_bytes();
        assert!(!s.is_empty() && s.len() < STR_CAP);
        let mut j = 0;
        while j < s.len() {
            t[code][j] = s[j];
            j += 1;
        }
        i += 1;
    }
    t
}

static NAMES: CStrTable = build_table(false);
static CLAUSES: CStrTable = build_table(true);

fn error_str(code: i32, table: &'static CStrTable, ok: &'static CStr, caller: [&'static CStr; 4]) -> *const c_char {
    let s: &'static CStr = match code {
        UC_OK => ok,
        UC_ERR_OUTPUT_LENGTH => caller[0],
        UC_ERR_OUT_OF_RANGE => caller[1],
        UC_ERR_NULL => caller[2],
        UC_ERR_BAD_HANDLE => caller[3],
        _ => {
            let c = code.unsigned_abs() as usize;
            return match table.get(c) {
                Some(entry) if entry[0] != 0 => entry.as_ptr().cast(),
                _ => c"unknown".as_ptr(),
            };
        }
    };
    s.as_ptr()
}

/// Stable name of a return code: the snake_case [`ErrorKind::name`] for validation errors (the
/// negative return value or the positive code), `"ok"` for 0, `"output_length"`, `"out_of_range"`,
/// `"null_pointer"`, `"bad_handle"` for the caller errors, `"unknown"` otherwise. The string is
/// static and NUL-terminated.
#[unsafe(no_mangle)]
pub extern "C" fn uc_error_name(code: i32) -> *const c_char {
    error_str(
        code,
        &NAMES,
        c"ok",
        [c"output_length", c"out_of_range", c"null_pointer", c"bad_handle"],
    )
}

/// Spec clause of a return code (e.g. `"R-4.2"` for bad_magic); `"R-9.4"` for the caller errors,
/// `""` for 0, `"unknown"` otherwise. Accepts the same codes as [`uc_error_name`]. The string is
/// static and NUL-terminated.
#[unsafe(no_mangle)]
pub extern "C" fn uc_error_clause(code: i32) -> *const c_char {
    error_str(code, &CLAUSES, c"", [c"R-9.4"; 4])
}

/// [`UC_ABI_VERSION`]: `0x000400` (format 0.4, ABI revision 0).
#[unsafe(no_mangle)]
pub extern "C" fn uc_abi_version() -> u32 {
    UC_ABI_VERSION
}
