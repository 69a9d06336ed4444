// Overlay factors as binary32 (spec R-8.3): value e of the overlay section (U then V, 16-bit
// values) for e in [start, start + count), written as raw bits to out[e - start]. bf16: the bit
// pattern shifted left by 16; f16: R-7.5 (exact, subnormals included). No floating-point
// operation touches the values, so the bits are exact on any device. Prepended by common.wgsl.

struct OverlayParams {
    start: u32,
    count: u32,
    // 1 = f16, 2 = bf16 (spec R-4.11).
    dtype: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: OverlayParams;
@group(0) @binding(1) var<storage, read> overlay: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn overlay_f32(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = linear_invocation(wg, nwg, li);
    if (i >= params.count) {
        return;
    }
    let e = params.start + i;
    let h = half_word(overlay[e >> 1u], e);
    if (params.dtype == 2u) {
        out[i] = bf16_bits_to_f32_bits(h);
    } else {
        out[i] = f16_bits_to_f32_bits(h);
    }
}
