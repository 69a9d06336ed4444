// The record's sections and the per-element decode (spec R-6.1, R-7.1), shared by the dequant and
// matvec kernels. Prepended by common.wgsl; bindings 1..=3 of group 0.

// 2^b grid values as binary32 bits.
@group(0) @binding(1) var<storage, read> grid: array<u32>;
// One binary16 scale per block, two per word, zero-padded to a whole word.
@group(0) @binding(2) var<storage, read> scales: array<u32>;
// The codes section as little-endian words (8*b bytes = 2*b words per block).
@group(0) @binding(3) var<storage, read> codes: array<u32>;

// Code of element e (spec R-6.1): bits [e*b, e*b + b) of the little-endian bit stream. A block is
// 2*b whole words, so the position is computed per block (no overflow for any u32 e), and a code
// that straddles two words reads the next word of the same block (always in bounds).
fn code_at(e: u32, b: u32) -> u32 {
    let bit = (e & 63u) * b;
    let w = (e >> 6u) * (2u * b) + (bit >> 5u);
    let s = bit & 31u;
    var v = codes[w] >> s;
    if (s + b > 32u) {
        // Here s >= 25, so the shift 32 - s is in 1..=7 (WGSL shifts use the amount modulo 32).
        v = v | (codes[w + 1u] << (32u - s));
    }
    return v & ((1u << b) - 1u);
}

// W_base[e] as binary32 bits. The scale is never negative (spec R-7.2), so the exact product has
// the sign of the grid value, and RNE is symmetric: |round(s * g)| = round(s * |g|). Computing the
// magnitude with one binary32 multiply and taking the sign from the grid bits gives exactly the
// bits of R-7.1, sign of zero included, even on an implementation that would not honour the sign
// of a zero product. By R-7.4 the magnitude is +0 or normal, so flushing hardware agrees.
fn dequant_bits(e: u32, b: u32) -> u32 {
    let block = e >> 6u;
    let s = f16_bits_to_f32_bits(half_word(scales[block >> 1u], block));
    let g = grid[code_at(e, b)];
    let mag = bitcast<u32>(bitcast<f32>(s) * bitcast<f32>(g & 0x7fffffffu)) & 0x7fffffffu;
    return mag | (g & 0x80000000u);
}
