// Shared helpers of every uc-decode-wgpu kernel (spec uc-pack-v0.4 sections 6 and 7).
// The library prepends this file to each kernel file before it creates a shader module.
//
// Arithmetic rules (spec R-7.1, R-7.5, DESIGN.md section 4):
// * binary16 -> binary32 uses integer operations only (never unpack2x16float or f16 types):
//   WGSL lets implementations flush subnormal inputs, and a subnormal binary16 scale must become
//   its exact, normal binary32 value;
// * buffers hold raw bits (array<u32>); values are produced with bitcast, never converted.

// Exact binary32 bits of the binary16 pattern `h` (low 16 bits), spec R-7.5.
// E = 31 (infinity, NaN) never reaches this function for a validated record.
fn f16_bits_to_f32_bits(h: u32) -> u32 {
    let s = (h >> 15u) & 1u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if (e == 0u) {
        if (m == 0u) {
            return s << 31u;
        }
        // Subnormal: p = index of the highest set bit of m (0..9), q = 10 - p.
        let q = 10u - firstLeadingBit(m);
        return (s << 31u) | ((127u - 14u - q) << 23u) | (((m << q) & 0x3ffu) << 13u);
    }
    return (s << 31u) | ((e - 15u + 127u) << 23u) | (m << 13u);
}

// Exact binary32 bits of the bfloat16 pattern `h` (low 16 bits), spec R-8.3.
fn bf16_bits_to_f32_bits(h: u32) -> u32 {
    return h << 16u;
}

// The 16-bit value with index `i` of an array of little-endian 16-bit values packed in u32 words
// (value 2k in the low half of word k, value 2k+1 in the high half).
fn half_word(w: u32, i: u32) -> u32 {
    return (w >> ((i & 1u) * 16u)) & 0xffffu;
}

// Linear index of this invocation in a 1-D or 2-D grid of 256-wide workgroups (2-D when the
// workgroup count exceeds max_compute_workgroups_per_dimension).
fn linear_invocation(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + li;
}

// Linear index of this workgroup in a 1-D or 2-D grid.
fn linear_workgroup(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.y * nwg.x + wg.x;
}
