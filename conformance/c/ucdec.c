/*
 * ucdec: an external decoder for the uc pack (v0.3 and v0.4) conformance runner, written against the C ABI
 * (uc-decode/capi/include/uc_decode.h, library libuc_decode_capi.a). It is both a test of that ABI
 * and an example of embedding the decoder in C.
 *
 * Usage: ucdec decode|overlay|merged < record
 *
 * Reads the record's bytes from stdin and parses them.
 *  - invalid record: prints one line "<error_name> <offset>\n" to stdout (e.g. "bad_magic 0") and
 *    exits 1;
 *  - decode:  writes the numel values of W_base as little-endian binary32 to stdout, exits 0;
 *  - merged:  writes W_base + U*V (reference order of spec ), numel values, exits 0;
 *  - overlay: writes U (rows * r values) then V (r * cols values) as little-endian binary32,
 *    nothing when r = 0, exits 0;
 *  - any other failure (usage, memory, I/O): a message on stderr, exit 2.
 *
 * Build: conformance/c/build.sh (cc -std=c99 -Wall -Wextra -Werror -pedantic).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <fcntl.h>
#include <io.h>
#endif

#include "uc_decode.h"

/* The last validation error class of spec R-9.3 (28, bad_sub_block, since v0.4); the caller
 * errors of start at -100. Older headers lack the name. */
#ifdef UC_ERR_BAD_SUB_BLOCK
#define UC_LAST_RECORD_ERROR UC_ERR_BAD_SUB_BLOCK
#else
#define UC_LAST_RECORD_ERROR (-28)
#endif

#define EXIT_INVALID 1
#define EXIT_FAILURE_OTHER 2

static int fail(const char *what) {
    fprintf(stderr, "ucdec: %s\n", what);
    return EXIT_FAILURE_OTHER;
}

/* Reads all of `f` into a malloc'd buffer. Returns 0 on success. */
static int read_all(FILE *f, uint8_t **out, size_t *out_len) {
    size_t cap = 1 << 16;
    size_t len = 0;
    uint8_t *buf = malloc(cap);
    if (buf == NULL) {
        return -1;
    }
    for (;;) {
        size_t got;
        if (len == cap) {
            uint8_t *grown;
            if (cap > SIZE_MAX / 2) {
                free(buf);
                return -1;
            }
            grown = realloc(buf, cap * 2);
            if (grown == NULL) {
                free(buf);
                return -1;
            }
            buf = grown;
            cap *= 2;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                free(buf);
                return -1;
            }
            break; /* end of file */
        }
    }
    *out = buf;
    *out_len = len;
    return 0;
}

static int host_is_little_endian(void) {
    const uint32_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

/* Writes `n` floats to stdout as little-endian binary32 (converting in place on big-endian hosts). */
static int write_f32_le(float *v, size_t n) {
    if (!host_is_little_endian()) {
        size_t i;
        for (i = 0; i < n; i++) {
            uint32_t u;
            unsigned char b[4];
            memcpy(&u, &v[i], 4);
            b[0] = (unsigned char)(u & 0xff);
            b[1] = (unsigned char)((u >> 8) & 0xff);
            b[2] = (unsigned char)((u >> 16) & 0xff);
            b[3] = (unsigned char)((u >> 24) & 0xff);
            memcpy(&v[i], b, 4);
        }
    }
    if (n > 0 && fwrite(v, sizeof *v, n, stdout) != n) {
        return -1;
    }
    return 0;
}

/* n as a size_t count of floats that can be allocated, or 0 when it cannot. */
static int float_count(uint64_t n, size_t *out) {
    if (n > (uint64_t)(SIZE_MAX / sizeof(float))) {
        return -1;
    }
    *out = (size_t)n;
    return 0;
}

/* Fetches n floats with `get` and writes them. Returns 0 on success. */
static int emit(const uc_record *rec, uint64_t n, int32_t (*get)(const uc_record *, float *, size_t)) {
    size_t count;
    float *v;
    int32_t rc;
    if (float_count(n, &count) != 0) {
        return fail("tensor too large for this machine");
    }
    v = malloc(count > 0 ? count * sizeof *v : 1);
    if (v == NULL) {
        return fail("out of memory");
    }
    rc = get(rec, v, count);
    if (rc != UC_OK) {
        fprintf(stderr, "ucdec: decode failed: %s (%d)\n", uc_error_name(rc), (int)rc);
        free(v);
        return EXIT_FAILURE_OTHER;
    }
    if (write_f32_le(v, count) != 0) {
        free(v);
        return fail("cannot write to stdout");
    }
    free(v);
    return 0;
}

/* W_base + U*V in the spec's reference order: the `get` function of the merged mode. */
static int32_t decode_merged(const uc_record *rec, float *out, size_t len) {
    int32_t rc = uc_record_decode(rec, out, len);
    return rc == UC_OK ? uc_record_merge_overlay(rec, out, len) : rc;
}

int main(int argc, char **argv) {
    static uc_record rec; /* 2 KiB; static storage keeps it off small stacks */
    uint8_t *data = NULL;
    size_t len = 0;
    uint64_t err_offset = 0;
    int32_t rc;
    int overlay;
    int merged;
    int status;

    if (argc != 2 || (strcmp(argv[1], "decode") != 0 && strcmp(argv[1], "overlay") != 0 &&
                      strcmp(argv[1], "merged") != 0)) {
        fprintf(stderr, "usage: ucdec decode|overlay|merged < record\n");
        return EXIT_FAILURE_OTHER;
    }
    overlay = strcmp(argv[1], "overlay") == 0;
    merged = strcmp(argv[1], "merged") == 0;
    if (uc_abi_version() != UC_ABI_VERSION) {
        return fail("library ABI version differs from the header's");
    }
#ifdef _WIN32
    if (_setmode(_fileno(stdin), _O_BINARY) == -1 || _setmode(_fileno(stdout), _O_BINARY) == -1) {
        return fail("cannot set binary mode");
    }
#endif
    if (read_all(stdin, &data, &len) != 0) {
        return fail("cannot read stdin (I/O error or out of memory)");
    }

    rc = uc_record_parse(data, len, &rec, &err_offset);
    if (rc < 0 && rc >= UC_LAST_RECORD_ERROR) {
        /* A validation error of the record (spec codes 1..=28). */
        free(data);
        if (printf("%s %llu\n", uc_error_name(rc), (unsigned long long)err_offset) < 0 || fflush(stdout) != 0) {
            return fail("cannot write to stdout");
        }
        return EXIT_INVALID;
    }
    if (rc != UC_OK) {
        fprintf(stderr, "ucdec: parse failed: %s (%d)\n", uc_error_name(rc), (int)rc);
        free(data);
        return EXIT_FAILURE_OTHER;
    }

    if (merged) {
        status = emit(&rec, uc_record_numel(&rec), decode_merged);
    } else if (!overlay) {
        status = emit(&rec, uc_record_numel(&rec), uc_record_decode);
    } else {
        uint64_t r = uc_record_overlay_rank(&rec);
        uint64_t rows = uc_record_rows(&rec);
        uint64_t cols = uc_record_cols(&rec);
        /* r <= min(rows, cols) and rows * cols <= 2^48 in a valid record: no overflow. */
        status = emit(&rec, rows * r, uc_record_overlay_u);
        if (status == 0) {
            status = emit(&rec, r * cols, uc_record_overlay_v);
        }
    }
    free(data);
    if (status == 0 && fflush(stdout) != 0) {
        return fail("cannot write to stdout");
    }
    return status;
}
