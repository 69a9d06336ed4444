/* GSQ encoder kernels of uc compress --device cuda:N (see uc-cuda/src/lib.rs).
 *
 * One source, two builds:
 *  - CUDA: compiled at run time by NVRTC with uc_cuda::NVRTC_OPTIONS (--fmad=false: no multiply
 *    and add is fused, so every product and sum is rounded once, as in Rust; IEEE division and
 *    square root; no flushing of subnormals).
 *  - host: compiled by the C compiler of build.rs (-ffp-contract=off), each kernel a plain loop
 *    over its thread indices; the tests compare it byte for byte with the Rust CPU encoder.
 *
 * Every kernel is a grid-stride loop over independent work items (an element, a block, a
 * sub-block); each item reads only its inputs and writes only its outputs, in a fixed order, with
 * no shared memory, atomics or barriers, so the result of an item does not depend on the launch
 * shape, the device or the thread count. Each function mirrors the Rust function named beside it
 * (uc-encode/src/gsq.rs), operation for operation.
 *
 * Plain C (the subset that CUDA C++ also accepts): no headers under NVRTC. */

#ifdef __CUDACC__
#define UC_KERNEL extern "C" __global__ void
#define UC_FN static __device__ __forceinline__
#define UC_FIRST ((unsigned long long)blockIdx.x * blockDim.x + threadIdx.x)
#define UC_STRIDE ((unsigned long long)gridDim.x * blockDim.x)
#else
#define UC_KERNEL void
#define UC_FN static inline
#define UC_FIRST 0ull
#define UC_STRIDE 1ull
#endif

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef int i32;
typedef unsigned long long u64;

#define UC_FOR_EACH(i, count) for (u64 i = UC_FIRST; i < (u64)(count); i += UC_STRIDE)

#define F16_MAX 65504.0f
#define FINDER_BINS 4096u

/* Bit casts (memcpy-free: unions are defined in C and accepted by CUDA). */
UC_FN u32 f2u(float x) { union { float f; u32 u; } v; v.f = x; return v.u; }
UC_FN float u2f(u32 x) { union { float f; u32 u; } v; v.u = x; return v.f; }

UC_FN double uc_dinf(void) { union { double d; u64 u; } v; v.u = 0x7ff0000000000000ull; return v.d; }

UC_FN float uc_abs(float x) { return u2f(f2u(x) & 0x7fffffffu); }
/* Rust f32::max / f32::min: a NaN operand yields the other operand. */
UC_FN float uc_max(float a, float b) { if (a != a) return b; if (b != b) return a; return a > b ? a : b; }
UC_FN float uc_min(float a, float b) { if (a != a) return b; if (b != b) return a; return a < b ? a : b; }
UC_FN int uc_finite(float x) { return (f2u(x) & 0x7f800000u) != 0x7f800000u; }

UC_FN u32 uc_clz32(u32 x) { u32 n = 0; if (x == 0) return 32; while (!(x & 0x80000000u)) { x <<= 1; n++; } return n; }

/* uc_format::num::f16_bits_to_f32_bits */
UC_FN float f16_to_f32(u16 h) {
    u32 sign = ((u32)h & 0x8000u) << 16;
    u32 exp = ((u32)h >> 10) & 0x1fu;
    u32 mant = (u32)h & 0x3ffu;
    if (exp == 0) {
        if (mant == 0) return u2f(sign);
        u32 shift = uc_clz32(mant) - 21;
        u32 m = (mant << shift) & 0x3ffu;
        u32 e = 127 - 14 - shift;
        return u2f(sign | (e << 23) | (m << 13));
    } else if (exp == 31) {
        return u2f(sign | 0x7f800000u | (mant << 13));
    }
    return u2f(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

/* uc_format::num::f32_to_f16_bits: round to nearest, ties to even. */
UC_FN u16 f32_to_f16(float x) {
    u32 b = f2u(x);
    u16 sign = (u16)((b >> 16) & 0x8000u);
    u32 exp = (b >> 23) & 0xffu;
    u32 mant = b & 0x7fffffu;
    if (exp == 0xff) return (u16)(sign | 0x7c00u | (mant != 0 ? 0x200u : 0u));
    i32 e = (i32)exp - 127 + 15;
    if (e >= 31) return (u16)(sign | 0x7c00u);
    if (e <= 0) {
        if (e < -10) return sign;
        u32 m = mant | 0x800000u;
        u32 shift = (u32)(14 - e);
        u32 q = m >> shift;
        u32 rem = m & ((1u << shift) - 1);
        u32 half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1) == 1)) q++;
        return (u16)(sign | (u16)q);
    }
    u32 q = ((u32)e << 10) | (mant >> 13);
    u32 rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1) == 1)) q++;
    return (u16)(sign | (u16)q);
}

/* Rust `x as u8` (saturating; NaN is 0) of a value in [0, 255] or NaN. */
UC_FN u8 sat_u8(float x) {
    if (!(x > 0.0f)) return 0;
    if (x >= 255.0f) return 255;
    return (u8)x;
}

/* Rust f32::round: half away from zero, for |x| < 2^23 (larger values are integers already). */
UC_FN float uc_round(float x) {
    float a = uc_abs(x);
    if (!(a < 8388608.0f)) return x;
    float t = (float)(u32)a; /* truncation */
    if (a - t >= 0.5f) t = t + 1.0f;
    return u2f(f2u(t) | (f2u(x) & 0x80000000u));
}

/* ---- absmax: the largest |w| of each unit (`quantize_parts_weighted`) ---- */
UC_KERNEL uc_absmax(const float *data, u64 n, u32 unit, float *out) {
    u64 units = (n + unit - 1) / unit;
    UC_FOR_EACH(t, units) {
        u64 lo = t * unit, hi = lo + unit < n ? lo + unit : n;
        float m = 0.0f;
        for (u64 i = lo; i < hi; i++) m = uc_max(m, uc_abs(data[i]));
        out[t] = m;
    }
}

/* ---- training keys of the grid fit (`fit_grid`): element i = t * n / m of unit i / unit ----
 * (value, weight) packed so that integer order is total order on the value then the weight.
 * The caller guarantees m * n < 2^64. imp may be null (no importance). */
UC_KERNEL uc_train_keys(const float *data, u64 n, const float *eff, u32 unit, u64 m,
                        const float *imp, u64 cols, u64 *keys) {
    UC_FOR_EACH(t, m) {
        u64 i = t * n / m;
        float s = eff[i / unit];
        float x = s == 0.0f ? 0.0f : data[i] / s;
        u32 xb = f2u(x);
        xb = (xb & 0x80000000u) ? ~xb : (xb | 0x80000000u);
        float w = s * s;
        if (imp) w = w * imp[i % cols];
        keys[t] = ((u64)xb << 32) | (u64)f2u(w);
    }
}

/* ---- nearest grid value (`assign_codes`): the smallest j with w <= s * mid[j] ---- */
UC_KERNEL uc_assign(const float *data, u64 n, const float *eff, u32 unit, const float *mids,
                    u32 nmids, u8 *codes) {
    UC_FOR_EACH(i, n) {
        float s = eff[i / unit];
        float w = data[i];
        /* partition_point of the predicate w > s * mid[j], which is true on a prefix (s >= 0 and
         * the midpoints ascend, and rounding is monotone). */
        u32 lo = 0, hi = nmids;
        while (lo < hi) {
            u32 mid = lo + (hi - lo) / 2;
            if (w > s * mids[mid]) lo = mid + 1; else hi = mid;
        }
        codes[i] = (u8)lo;
    }
}

/* ---- the scale search (`CodeFinder`, `ls_scale`, `refine_scales`, `refine_two_level`) ---- */
struct finder {
    const float *mids;
    u32 nmids;
    const u16 *table; /* FINDER_BINS entries */
    float lo, inv_width;
    const float *grid;
};

/* CodeFinder::code: a guess from the table, then a walk over the exact thresholds. */
UC_FN u32 finder_code(const struct finder *f, float x, float s, float inv_s) {
    float g = (x * inv_s - f->lo) * f->inv_width;
    g = uc_max(g, 0.0f);
    u32 b = g >= (float)(FINDER_BINS - 1) ? FINDER_BINS - 1 : (u32)g;
    u32 c = f->table[b];
    while (c < f->nmids && x > s * f->mids[c]) c++;
    while (c > 0 && x <= s * f->mids[c - 1]) c--;
    return c;
}

/* CodeFinder::block_error: wt may be null; stops after a 16-element chunk once e >= limit. */
UC_FN double block_error(const struct finder *f, const float *w, const float *wt, u32 len, float s,
                         u8 *codes, double limit) {
    float inv_s = s > 0.0f ? 1.0f / s : 0.0f;
    double e = 0.0;
    for (u32 k0 = 0; k0 < len; k0 += 16) {
        u32 end = k0 + 16 < len ? k0 + 16 : len;
        for (u32 k = k0; k < end; k++) {
            u32 c = finder_code(f, w[k], s, inv_s);
            codes[k] = (u8)c;
            double d = (double)w[k] - (double)(s * f->grid[c]);
            if (wt) e += (double)wt[k] * d * d; else e += d * d;
        }
        if (e >= limit) return e;
    }
    return e;
}

/* ls_scale: Σ a·w·g / Σ a·g², or a negative value for "none". */
UC_FN float ls_scale(const float *w, const float *wt, u32 len, const u8 *codes, const float *grid, int *ok) {
    double num = 0.0, den = 0.0;
    for (u32 k = 0; k < len; k++) {
        double g = (double)grid[codes[k]];
        double a = wt ? (double)wt[k] : 1.0;
        num += a * (double)w[k] * g;
        den += a * g * g;
    }
    *ok = den > 0.0 && num > 0.0;
    return *ok ? (float)(num / den) : 0.0f;
}

/* Importance::fill */
UC_FN void imp_fill(const float *imp, u64 cols, u64 start, float *out, u32 len) {
    u64 c = start % cols;
    for (u32 k = 0; k < len; k++) {
        out[k] = imp[c];
        c++;
        if (c == cols) c = 0;
    }
}

UC_FN void copy_codes(u8 *dst, const u8 *src, u32 len) { for (u32 k = 0; k < len; k++) dst[k] = src[k]; }

/* v0.3 scales (`refine_scales`): one binary16 scale per 64-element block. */
UC_KERNEL uc_refine_v03(const float *data, u64 n, const float *absmax, const u16 *cur_scales,
                        const float *grid, const float *mids, u32 nmids, const u16 *table, float lo,
                        float inv_width, float inv_gmax, float gmax, const float *imp, u64 cols,
                        u16 *out) {
    const float mults[17] = {0.6f, 0.65f, 0.7f, 0.75f, 0.8f, 0.85f, 0.9f, 0.95f, 1.0f,
                             1.05f, 1.1f, 1.15f, 1.2f, 1.25f, 1.3f, 1.35f, 1.4f};
    struct finder f;
    f.mids = mids; f.nmids = nmids; f.table = table; f.lo = lo; f.inv_width = inv_width; f.grid = grid;
    u64 blocks = (n + 63) / 64;
    UC_FOR_EACH(j, blocks) {
        u16 cur = cur_scales[j];
        float a = absmax[j];
        if (a == 0.0f || gmax == 0.0f) { out[j] = cur; continue; }
        u64 start = 64 * j;
        u32 len = (u32)(n - start < 64 ? n - start : 64);
        const float *w = data + start;
        float wt_buf[64];
        const float *wt = 0;
        if (imp) { imp_fill(imp, cols, start, wt_buf, len); wt = wt_buf; }
        u8 codes[64], best_codes[64];
        u16 best = cur;
        double best_err = block_error(&f, w, wt, len, f16_to_f32(cur), best_codes, uc_dinf());
        float base = a * inv_gmax;
        for (int q = 0; q < 17; q++) {
            float s = uc_min(base * mults[q], F16_MAX);
            if (!uc_finite(s)) continue;
            u16 h = f32_to_f16(s);
            if (h == best) continue;
            double e = block_error(&f, w, wt, len, f16_to_f32(h), codes, best_err);
            if (e < best_err) { best = h; best_err = e; copy_codes(best_codes, codes, len); }
        }
        for (int step = 0; step < 2; step++) {
            int ok;
            float s = ls_scale(w, wt, len, best_codes, grid, &ok);
            if (!ok) break;
            s = uc_min(s, F16_MAX);
            u16 before = best;
            u16 h = f32_to_f16(s);
            if (h != best) {
                double e = block_error(&f, w, wt, len, f16_to_f32(h), codes, best_err);
                if (e < best_err) { best = h; best_err = e; copy_codes(best_codes, codes, len); }
            }
            if (best == before) break;
        }
        out[j] = best;
    }
}

/* block_scale_for: the least binary16 d with sub_max * d >= want_max. */
UC_FN u16 block_scale_for(float want_max, float sub_max) {
    if (want_max <= 0.0f) return 0;
    float target = uc_min(want_max / sub_max, F16_MAX);
    u16 h = f32_to_f16(target);
    if (h < 1) h = 1;
    while (f16_to_f32(h) * sub_max < want_max && f16_to_f32(h) < F16_MAX) h++;
    return h;
}

/* sub_for: nearest sub-scale to `want` under block scale d. */
UC_FN u8 sub_for(float want, float d, float sub_max) {
    if (d <= 0.0f) return 0;
    float r = uc_round(want / d);
    /* f32::clamp(0, sub_max); NaN stays NaN and `as u8` makes it 0. */
    if (r < 0.0f) r = 0.0f;
    if (r > sub_max) r = sub_max;
    return sat_u8(r);
}

/* Two-level scales (`refine_two_level`): one work item per sub-block; each recomputes its
 * 256-element block's binary16 scale from that block's absmax values (the same for every
 * sub-block of the block), and the sub-block's own sub-scale. block_scales gets the binary16 scale
 * from the first sub-block of each block. */
UC_KERNEL uc_refine_two_level(const float *data, u64 n, const float *absmax, u32 unit, float sub_max,
                              const float *grid, const float *mids, u32 nmids, const u16 *table,
                              float lo, float inv_width, float inv_gmax, const float *imp, u64 cols,
                              u16 *block_scales, u8 *subs) {
    const float mults[17] = {0.6f, 0.65f, 0.7f, 0.75f, 0.8f, 0.85f, 0.9f, 0.95f, 1.0f,
                             1.05f, 1.1f, 1.15f, 1.2f, 1.25f, 1.3f, 1.35f, 1.4f};
    struct finder f;
    f.mids = mids; f.nmids = nmids; f.table = table; f.lo = lo; f.inv_width = inv_width; f.grid = grid;
    u64 units = (n + unit - 1) / unit;
    u32 per = 256 / unit;
    UC_FOR_EACH(t, units) {
        u64 j = t / per;
        u64 a0 = j * per, a1 = a0 + per < units ? a0 + per : units;
        float want_max = 0.0f;
        for (u64 q = a0; q < a1; q++) want_max = uc_max(want_max, absmax[q] * inv_gmax);
        u16 h = block_scale_for(want_max, sub_max);
        if (t == a0) block_scales[j] = h;
        float d = f16_to_f32(h);
        float base = absmax[t] * inv_gmax;
        if (base == 0.0f || d == 0.0f) { subs[t] = 0; continue; }
        u64 start = t * unit;
        u32 len = (u32)(n - start < unit ? n - start : unit);
        const float *w = data + start;
        float wt_buf[32];
        const float *wt = 0;
        if (imp) { imp_fill(imp, cols, start, wt_buf, len); wt = wt_buf; }
        u8 codes[32], best_codes[32];
        u8 best = sub_for(base, d, sub_max);
        double best_err = block_error(&f, w, wt, len, d * (float)best, best_codes, uc_dinf());
        for (int q = 0; q < 17; q++) {
            u8 c = sub_for(base * mults[q], d, sub_max);
            if (c == best) continue;
            double e = block_error(&f, w, wt, len, d * (float)c, codes, best_err);
            if (e < best_err) { best = c; best_err = e; copy_codes(best_codes, codes, len); }
        }
        for (int step = 0; step < 2; step++) {
            int ok;
            float ls = ls_scale(w, wt, len, best_codes, grid, &ok);
            if (!ok) break;
            u8 before = best;
            u8 c = sub_for(ls, d, sub_max);
            if (c != best) {
                double e = block_error(&f, w, wt, len, d * (float)c, codes, best_err);
                if (e < best_err) { best = c; best_err = e; copy_codes(best_codes, codes, len); }
            }
            if (best == before) break;
        }
        subs[t] = best;
    }
}

/* ---- the overlay's randomized SVD (uc-encode/src/svd.rs) ----
 * Y = R X (`r_times`): y[i][t] = sum over j = 0..n-1, in order, of f64(r[i][j]) * x[j][t]. */
UC_KERNEL uc_r_times(const float *r, u64 m, u64 n, const double *x, u64 k, double *y) {
    UC_FOR_EACH(o, m * k) {
        u64 i = o / k, t = o % k;
        const float *row = r + i * n;
        double a = 0.0;
        for (u64 j = 0; j < n; j++) a += (double)row[j] * x[j * k + t];
        y[o] = a;
    }
}

/* Z = R^T Q (`rt_times`): z[j][t] = sum over i = 0..m-1, in order, of f64(r[i][j]) * q[i][t]. */
UC_KERNEL uc_rt_times(const float *r, u64 m, u64 n, const double *q, u64 k, double *z) {
    UC_FOR_EACH(o, n * k) {
        u64 j = o / k, t = o % k;
        double a = 0.0;
        for (u64 i = 0; i < m; i++) a += (double)r[i * n + j] * q[i * k + t];
        z[o] = a;
    }
}
