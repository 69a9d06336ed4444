// Dequantization kernel: W_base[e] = f32(scale[e / 64]) * grid[code(e)] (spec R-7.1), or with
// two-level scales (f32(scale[e / 256]) * f32(sub[e / S])) * grid[code(e)] (spec R-13.4), for the
// elements e in [start, start + count), one invocation per element, written as raw binary32 bits to
// out[e - start]. Prepended by common.wgsl and record.wgsl.

struct DequantParams {
    // First element (flat row-major index) to decode.
    start: u32,
    // Number of elements to decode (invocations at or past it do nothing).
    count: u32,
    // Code width b, 1..=8.
    bits: u32,
    // log2 of the block size of the binary16 scales: 6, or 8 with two-level scales.
    block_shift: u32,
    // log2 of the sub-block size S (4 or 5), or 0 without two-level scales.
    sub_shift: u32,
    // Width q of a sub-scale in bits, 1..=8 (0 without two-level scales).
    sub_bits: u32,
    // Word index in `scales` of the first sub-scale (0 without two-level scales).
    sub_word: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: DequantParams;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn dequant(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = linear_invocation(wg, nwg, li);
    if (i >= params.count) {
        return;
    }
    out[i] = dequant_bits(params.start + i, params.bits, params.block_shift, params.sub_shift, params.sub_bits, params.sub_word);
}
