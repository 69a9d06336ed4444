//! The inputs on which the kernels are compared with the CPU encoder, shared by the tests (host
//! build) and `scripts/gpu-check.sh` (the `identity` example, on the device): tensors that reach
//! the edge cases of the arithmetic, and the scale layouts.

use uc_encode::gsq::SubScales;

/// A xorshift generator (the tests' inputs are fixed by their seeds).
pub struct Rng(pub u64);

impl Rng {
    /// A uniform value in [0, 1).
    pub fn u(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A roughly Gaussian value (sum of four uniforms, centred).
    pub fn gauss(&mut self) -> f64 {
        (0..4).map(|_| self.u()).sum::<f64>() - 2.0
    }
}

/// Named tensors `(name, data, columns)`: Gaussian, Student-t (heavy tails, outlier blocks), exact
/// ties with a near-`f32::MAX` weight, a subnormal and an all-zero block, all-subnormal, constant,
/// all-zero and single-element tensors; lengths with short last blocks.
pub fn synthetic() -> Vec<(String, Vec<f32>, usize)> {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    let gauss: Vec<f32> = (0..64 * 70 + 37).map(|_| (r.gauss() * 0.05) as f32).collect();
    out.push(("gaussian".into(), gauss, 107));
    let t3: Vec<f32> = (0..256 * 9 + 5)
        .map(|_| {
            let z = r.gauss();
            let chi: f64 = (0..3).map(|_| r.gauss().powi(2)).sum::<f64>() / 3.0;
            (0.02 * z / chi.sqrt().max(1e-3)) as f32
        })
        .collect();
    out.push(("student-t".into(), t3, 256));
    let mut mixed: Vec<f32> = (0..1000).map(|i| ((i % 7) as f32 - 3.0) * 0.25).collect();
    mixed[10] = 3.0e38;
    mixed[500] = -2.5e-39;
    for w in &mut mixed[640..704] {
        *w = 0.0;
    }
    out.push(("ties-huge-zero".into(), mixed, 100));
    let tiny: Vec<f32> = (0..300)
        .map(|i| f32::from_bits(1 + (i * 7919) % 0x7f_ffff) * if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    out.push(("subnormal".into(), tiny, 30));
    out.push(("constant".into(), vec![0.125; 129], 129));
    out.push(("zeros".into(), vec![0.0; 70], 7));
    out.push(("one".into(), vec![-0.75], 1));
    out
}

/// The scale layouts compared: v0.3, uc compress's default two-level scales, and two others.
pub fn layouts() -> [Option<SubScales>; 4] {
    [
        None,
        Some(SubScales::DEFAULT),
        Some(SubScales { block: 32, bits: 4 }),
        Some(SubScales { block: 16, bits: 8 }),
    ]
}

/// A per-column importance for `cols` columns (fixed, uneven weights).
pub fn importance(cols: usize) -> uc_encode::gsq::Importance {
    uc_encode::gsq::Importance {
        w: (0..cols).map(|c| 0.25 + ((c * 37) % 11) as f32 * 0.3).collect(),
    }
}
