// Matrix-vector product straight from the packed record, without materialising W:
//   y = W_base x            (merge off, or no overlay)
//   y = W_base x + U (V x)  (merge on; the overlay is applied at inference order, spec R-8.5 allows it)
// W_base is [rows, cols] (row-major flattening of the tensor, spec R-4.13), x has cols values and
// y has rows values. Entry `overlay_vx` computes t = V x (one workgroup per k < r) and must run
// before `matvec` (one workgroup per row) when the overlay is merged. Every workgroup sums its
// 256 threads' strided partial sums with a binary tree. The sums are binary32 and their order is
// not the CPU's: the result is within the bound documented in the library (matvec_error_bound),
// not bit-exact. Prepended by common.wgsl and record.wgsl.

struct MatvecParams {
    rows: u32,
    cols: u32,
    bits: u32,
    // Overlay rank r, or 0 when the overlay is not merged.
    rank: u32,
    // 1 = f16, 2 = bf16.
    dtype: u32,
    // log2 of the block size of the binary16 scales: 6, or 8 with two-level scales.
    block_shift: u32,
    // log2 of the sub-block size S (4 or 5), or 0 without two-level scales.
    sub_shift: u32,
    // Word index in `scales` of the first sub-scale (0 without two-level scales).
    sub_word: u32,
    // Width q of a sub-scale in bits, 1..=8 (0 without two-level scales).
    sub_bits: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: MatvecParams;
// The overlay section (U then V, 16-bit values, two per word), or one zero word.
@group(0) @binding(4) var<storage, read> overlay: array<u32>;
@group(0) @binding(5) var<storage, read> x: array<f32>;
// t = V x (rank values), written by overlay_vx, read by matvec.
@group(0) @binding(6) var<storage, read_write> t: array<f32>;
@group(0) @binding(7) var<storage, read_write> y: array<f32>;

var<workgroup> partial: array<f32, 256>;

// Overlay value e (U then V) as binary32 (exact, spec R-8.3).
fn overlay_value(e: u32) -> f32 {
    let h = half_word(overlay[e >> 1u], e);
    if (params.dtype == 2u) {
        return bitcast<f32>(bf16_bits_to_f32_bits(h));
    }
    return bitcast<f32>(f16_bits_to_f32_bits(h));
}

// Sum of `v` over the workgroup (binary tree); the result is valid in thread 0 only. Must be called
// in workgroup-uniform control flow.
fn workgroup_sum(li: u32, v: f32) -> f32 {
    partial[li] = v;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride = stride >> 1u) {
        if (li < stride) {
            partial[li] = partial[li] + partial[li + stride];
        }
        workgroupBarrier();
    }
    return partial[0];
}

@compute @workgroup_size(256)
fn overlay_vx(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let k = linear_workgroup(wg, nwg);
    if (k >= params.rank) {
        return;
    }
    let cols = params.cols;
    let v0 = params.rows * params.rank + k * cols;
    var acc = 0.0;
    for (var j = li; j < cols; j = j + 256u) {
        acc = acc + overlay_value(v0 + j) * x[j];
    }
    let sum = workgroup_sum(li, acc);
    if (li == 0u) {
        t[k] = sum;
    }
}

@compute @workgroup_size(256)
fn matvec(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row = linear_workgroup(wg, nwg);
    if (row >= params.rows) {
        return;
    }
    let cols = params.cols;
    let base = row * cols;
    var acc = 0.0;
    for (var c = li; c < cols; c = c + 256u) {
        acc = acc + bitcast<f32>(dequant_bits(base + c, params.bits, params.block_shift, params.sub_shift, params.sub_bits, params.sub_word)) * x[c];
    }
    let wx = workgroup_sum(li, acc);
    var ux = 0.0;
    let r = params.rank;
    if (r > 0u) {
        var accu = 0.0;
        let u0 = row * r;
        for (var k = li; k < r; k = k + 256u) {
            accu = accu + overlay_value(u0 + k) * t[k];
        }
        ux = workgroup_sum(li, accu);
    }
    if (li == 0u) {
        y[row] = wx + ux;
    }
}
