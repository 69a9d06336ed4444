/*
 * uc_decode.h: C interface of the uc pack v0.3/v0.4 record decoder (UltraCompress).
 *
 * Library: libuc_decode_capi.a / libuc_decode_capi.so, built by `cargo build --release -p uc-decode-capi`.
 * The functions are implemented in Rust (crate uc-decode, module capi); this header is written by
 * hand and checked against that module by uc-decode/capi/tests/header_matches.rs.
 *
 * Usage:
 *
 *     uc_record rec;                       // 2 KiB, caller-owned; stack, static or heap
 *     uint64_t off = 0;
 *     int32_t rc = uc_record_parse(bytes, len, &rec, &off);
 *     if (rc != UC_OK) { printf("%s at byte %llu (%s)\n", uc_error_name(rc),
 *                               (unsigned long long)off, uc_error_clause(rc)); return; }
 *     float *w = malloc(uc_record_numel(&rec) * sizeof *w);
 *     rc = uc_record_decode(&rec, w, (size_t)uc_record_numel(&rec));
 *
 * Nothing allocates; nothing needs freeing. All functions are thread-safe: only uc_record_parse
 * writes (to its `out` handle).
 *
 * Return codes: UC_OK (0); a validation error of the record is the NEGATED stable code of spec
 * (UC_ERR_TRUNCATED = -1 ... UC_ERR_BAD_SUB_BLOCK = -28); a rejected request of the caller
 * is one of UC_ERR_OUTPUT_LENGTH, UC_ERR_OUT_OF_RANGE, UC_ERR_NULL, UC_ERR_BAD_HANDLE.
 *
 * Contract (everything else is checked and reported, never undefined behaviour):
 *  - the bytes given to uc_record_parse stay valid and unmodified while the handle is used: the
 *    handle BORROWS them, it does not copy them;
 *  - every (pointer, length) pair describes valid memory of that many elements; output buffers
 *    overlap neither the record's bytes nor the handle;
 *  - a handle passed to the other functions was zero-filled (`uc_record r = {0};`) or last written
 *    by uc_record_parse (a failed parse marks it invalid: UC_ERR_BAD_HANDLE). Handles may be copied
 *    with memcpy.
 * Null pointers give UC_ERR_NULL (getters return 0); a null output pointer is accepted with length 0.
 */
#ifndef UC_DECODE_H
#define UC_DECODE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * 0x00MMmmAA: format major MM = 0, minor mm = 4, ABI revision AA = 0. See uc_abi_version().
 * (0x000300, the v0.3 library, lacked uc_record_block_size, uc_record_sub_block and
 * UC_ERR_BAD_SUB_BLOCK; every other function is unchanged.)
 */
#define UC_ABI_VERSION 0x000400

/* Size of a uc_record handle in 64-bit words (2048 bytes). */
#define UC_RECORD_WORDS 256

/* Success. */
#define UC_OK 0

/* Validation errors (spec ): the negated stable code of each error class. */
#define UC_ERR_TRUNCATED (-1)              /* the buffer ends before a needed field or section */
#define UC_ERR_BAD_MAGIC (-2)              /* */
#define UC_ERR_UNSUPPORTED_VERSION (-3)    /* */
#define UC_ERR_BAD_HEADER_LENGTH (-4)      /* */
#define UC_ERR_BAD_RECORD_LENGTH (-5)      /* */
#define UC_ERR_CRC_MISMATCH (-6)           /* */
#define UC_ERR_RESERVED_NONZERO (-7)       /* */
#define UC_ERR_UNSUPPORTED_FLAGS (-8)      /* */
#define UC_ERR_BAD_BITS (-9)               /* */
#define UC_ERR_BAD_NDIM (-10)              /* */
#define UC_ERR_BAD_SCALE_DTYPE (-11)       /* */
#define UC_ERR_BAD_OVERLAY_DTYPE (-12)     /* */
#define UC_ERR_BAD_BLOCK_SIZE (-13)        /* */
#define UC_ERR_BAD_DIM (-14)               /* */
#define UC_ERR_SHAPE_OVERFLOW (-15)        /* */
#define UC_ERR_LIMIT_EXCEEDED (-16)        /* */
#define UC_ERR_BAD_OVERLAY_RANK (-17)      /* */
#define UC_ERR_SECTION_LENGTH (-18)        /* */
#define UC_ERR_SECTION_OVERFLOW (-19)      /* */
#define UC_ERR_SECTION_MISALIGNED (-20)    /* */
#define UC_ERR_SECTION_OVERLAP (-21)       /* */
#define UC_ERR_SECTION_GAP (-22)           /* */
#define UC_ERR_SECTION_OUT_OF_BOUNDS (-23) /* */
#define UC_ERR_NONZERO_PADDING (-24)       /* */
#define UC_ERR_BAD_GRID_VALUE (-25)        /* */
#define UC_ERR_BAD_SCALE_VALUE (-26)       /* */
#define UC_ERR_BAD_OVERLAY_VALUE (-27)     /* */
#define UC_ERR_BAD_SUB_BLOCK (-28)         /* */

/* Caller errors (spec ): the request, not the record, is wrong. */
#define UC_ERR_OUTPUT_LENGTH (-100) /* the output buffer does not have the length the request needs */
#define UC_ERR_OUT_OF_RANGE (-101)  /* the element or row range is not inside the tensor */
#define UC_ERR_NULL (-102)          /* a required pointer is null or misaligned for its type */
#define UC_ERR_BAD_HANDLE (-103)    /* the handle holds no parsed record (zero-filled, or its parse failed) */

/* Caller-allocated storage for one parsed record. Opaque: do not read or write `opaque`. */
typedef struct uc_record {
    uint64_t opaque[UC_RECORD_WORDS];
} uc_record;

/*
 * Validates the `len` bytes at `data` as a uc record (every check of spec, in order) and
 * stores the parsed record in `*out`. Bytes after the record's record_len are ignored.
 * Returns UC_OK, or the negated code of the first failed check; then, when `err_offset` is not
 * null, `*err_offset` receives the byte offset of the error (for UC_ERR_TRUNCATED: `len`).
 * Returns UC_ERR_NULL when `out` is null or misaligned, or `data` is null while `len > 0`
 * (`data` may be null when `len` is 0: that is a truncated record). On any failure other than a
 * null `out`, `*out` is marked invalid. `data[0..len)` must outlive every use of `*out`.
 */
int32_t uc_record_parse(const uint8_t *data, size_t len, uc_record *out, uint64_t *err_offset);

/* Code width b (1..=8). Getters return 0 for a null or invalid handle. */
uint32_t uc_record_bits(const uc_record *rec);

/* Number of dimensions (1..=8). */
uint32_t uc_record_ndim(const uc_record *rec);

/*
 * Writes the dimensions, outermost first, to dims[0..ndim) and returns ndim; returns
 * UC_ERR_OUTPUT_LENGTH (writing nothing) when cap < ndim, UC_ERR_NULL when `dims` is null.
 * A capacity of 8 always suffices.
 */
int32_t uc_record_shape(const uc_record *rec, uint64_t *dims, size_t cap);

/* Number of elements: the product of the dimensions (at most 2^48). */
uint64_t uc_record_numel(const uc_record *rec);

/* Rows: dimension 0. */
uint64_t uc_record_rows(const uc_record *rec);

/* Columns: the product of dimensions 1.. (1 for a 1-D tensor). */
uint64_t uc_record_cols(const uc_record *rec);

/* Overlay rank r (0: no overlay). */
uint32_t uc_record_overlay_rank(const uc_record *rec);

/* Overlay dtype: 0 none, 1 IEEE binary16, 2 bfloat16. */
uint8_t uc_record_overlay_dtype(const uc_record *rec);

/* The record's CRC-32 (stored and verified by uc_record_parse). */
uint32_t uc_record_crc32(const uc_record *rec);

/* Block size B of the binary16 scales: 64, or 256 with two-level scales (v0.4, spec ). */
uint32_t uc_record_block_size(const uc_record *rec);

/* Sub-block size S of two-level scales (16 or 32, spec ); 0 for a record without them. */
uint32_t uc_record_sub_block(const uc_record *rec);

/*
 * Decodes the whole tensor W_base (spec with two-level scales; bit-exact) into
 * out[0..out_len), row-major.
 * out_len must equal uc_record_numel(rec), else UC_ERR_OUTPUT_LENGTH. Returns UC_OK or a caller error.
 */
int32_t uc_record_decode(const uc_record *rec, float *out, size_t out_len);

/*
 * Decodes elements [start, start + out_len) of the row-major flattening into `out`.
 * UC_ERR_OUT_OF_RANGE when the range is not inside the tensor.
 */
int32_t uc_record_decode_range(const uc_record *rec, uint64_t start, float *out, size_t out_len);

/*
 * Decodes rows [row_start, row_end) (along dimension 0) into `out`, which must hold exactly
 * (row_end - row_start) * cols values. UC_ERR_OUT_OF_RANGE when row_start > row_end or
 * row_end > rows (checked first), then UC_ERR_OUTPUT_LENGTH.
 */
int32_t uc_record_decode_rows(const uc_record *rec, uint64_t row_start, uint64_t row_end, float *out,
                              size_t out_len);

/*
 * Writes the overlay factor U ([rows, r], row-major) as exact f32 values (spec ).
 * out_len must equal rows * r (0 without an overlay; `out` may then be null).
 */
int32_t uc_record_overlay_u(const uc_record *rec, float *out, size_t out_len);

/*
 * Writes the overlay factor V ([r, cols], row-major) as exact f32 values (spec ).
 * out_len must equal r * cols (0 without an overlay; `out` may then be null).
 */
int32_t uc_record_overlay_v(const uc_record *rec, float *out, size_t out_len);

/*
 * Adds U * V in place to the decoded W_base held in w[0..len) (len = numel), in the reference
 * order of spec R-8.5 (f32, no fused multiply-add). Does nothing when r = 0.
 */
int32_t uc_record_merge_overlay(const uc_record *rec, float *w, size_t len);

/*
 * Stable name of a return code, as a static NUL-terminated string: the snake_case class name for
 * validation errors (e.g. "bad_magic" for -2; the positive code 2 is accepted too), "ok" for 0,
 * "output_length", "out_of_range", "null_pointer", "bad_handle" for the caller errors, and
 * "unknown" for any other value.
 */
const char *uc_error_name(int32_t code);

/*
 * Spec clause of a return code (e.g. "R-4.2" for UC_ERR_BAD_MAGIC), static and NUL-terminated:
 * "R-9.4" for the caller errors, "" for UC_OK, "unknown" for any other value.
 */
const char *uc_error_clause(int32_t code);

/* UC_ABI_VERSION of the library: 0x000400 (format 0.4, ABI revision 0). */
uint32_t uc_abi_version(void);

#ifdef __cplusplus
}
#endif

#endif /* UC_DECODE_H */
