//! The kernels' host build against the Rust CPU encoder, byte for byte: every step's output and
//! every record, over synthetic tensors that reach the edge cases of the arithmetic (subnormal
//! and huge magnitudes, zeros, ties, short last blocks, heavy tails) and, when
//! `UC_CUDA_TEST_MODEL` names a model directory (scripts/test.sh sets it to MiniLM's), over its
//! real tensors.

use uc_cuda::host::HostKernels;
use uc_encode::gsq::{
    CpuKernels, GsqKernels, GsqOptions, GsqParts, ScaleSearch, SubScales, quantize_parts_on, quantize_parts_weighted,
};

use uc_cuda::cases::{Rng, layouts, synthetic};

fn same(a: &GsqParts, b: &GsqParts) -> Result<(), String> {
    let bits = |g: &[f32]| g.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    if bits(&a.grid) != bits(&b.grid) {
        return Err("grids differ".into());
    }
    if a.scales != b.scales {
        return Err("scales differ".into());
    }
    if a.subscales != b.subscales {
        return Err("sub-scales differ".into());
    }
    if a.codes != b.codes {
        return Err("codes differ".into());
    }
    if a.iters != b.iters {
        return Err(format!("Lloyd iterations differ: {} vs {}", a.iters, b.iters));
    }
    Ok(())
}

fn check(name: &str, data: &[f32], cols: usize, bits: &[u8]) {
    let mut cases = Vec::new();
    for layout in layouts() {
        for &b in bits {
            for imp in [false, true] {
                cases.push((b, layout, imp));
            }
        }
    }
    check_cases(name, data, cols, &cases);
}

/// (bits, layout, with importance) cases.
fn check_cases(name: &str, data: &[f32], cols: usize, cases: &[(u8, Option<SubScales>, bool)]) {
    let imp_v = uc_cuda::cases::importance(cols);
    {
        for &(b, layout, with_imp) in cases {
            {
                let imp = with_imp.then_some(&imp_v);
                let opts = GsqOptions::new(b).with_subscales(layout);
                let cpu = quantize_parts_weighted(data, &opts, imp);
                let host = quantize_parts_on(&mut HostKernels { data, imp }, data.len(), &opts)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                if let Err(e) = same(&cpu, &host) {
                    panic!("{name}, {b} bits, {layout:?}, importance {}: {e}", imp.is_some());
                }
                let dims = [data.len() as u64];
                let rc = cpu
                    .record(b, &dims, 0, uc_format::OverlayDtype::None, &[], &[])
                    .unwrap();
                let rh = host
                    .record(b, &dims, 0, uc_format::OverlayDtype::None, &[], &[])
                    .unwrap();
                assert!(rc == rh, "{name}, {b} bits, {layout:?}: records differ");
            }
        }
    }
}

#[test]
fn host_build_gives_the_cpu_bytes_on_synthetic_tensors() {
    for (name, data, cols) in synthetic() {
        check(&name, &data, cols, &[1, 2, 3, 4, 5, 6, 7, 8]);
    }
}

/// Each step alone, on inputs the full pipeline does not produce: a scale search from scales that
/// are not the absmax ones, a grid with repeated values, codes against an arbitrary grid.
#[test]
fn host_build_matches_each_step_on_odd_inputs() {
    let mut r = Rng(7);
    let data: Vec<f32> = (0..64 * 13 + 3).map(|_| (r.gauss() * 3.0) as f32).collect();
    let grid = vec![-2.0f32, -0.5, -0.5, 0.0, 0.25, 0.25, 1.0, 4.0];
    let search = ScaleSearch::new(&grid);
    for unit in [16usize, 32, 64] {
        let mut cpu = CpuKernels { data: &data, imp: None };
        let mut host = HostKernels { data: &data, imp: None };
        let am = cpu.absmax(unit).unwrap();
        assert_eq!(
            am.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            host.absmax(unit)
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>()
        );
        let eff: Vec<f32> = (0..am.len())
            .map(|t| if t % 5 == 0 { 0.0 } else { 0.01 * t as f32 })
            .collect();
        for m in [1, 17, data.len()] {
            assert_eq!(
                cpu.train_keys(&eff, unit, m).unwrap(),
                host.train_keys(&eff, unit, m).unwrap(),
                "unit {unit}, m {m}"
            );
        }
        assert_eq!(
            cpu.assign(&eff, unit, &search.mids).unwrap(),
            host.assign(&eff, unit, &search.mids).unwrap()
        );
        if unit == 64 {
            let cur: Vec<u16> = (0..am.len()).map(|t| 0x3c00 + t as u16).collect();
            assert_eq!(
                cpu.refine_v03(&am, &cur, &search).unwrap(),
                host.refine_v03(&am, &cur, &search).unwrap()
            );
        } else {
            let sub = SubScales {
                block: unit as u32,
                bits: 5,
            };
            assert_eq!(
                cpu.refine_two_level(&am, sub, &search).unwrap(),
                host.refine_two_level(&am, sub, &search).unwrap()
            );
        }
    }
}

#[test]
fn host_build_rejects_inconsistent_shapes() {
    let data = vec![0.5f32; 100];
    let mut host = HostKernels { data: &data, imp: None };
    assert!(host.absmax(48).unwrap_err().contains("unit of 48"));
    assert!(host.train_keys(&[1.0; 3], 64, 10).unwrap_err().contains("3 scales"));
    assert!(
        host.train_keys(&[1.0; 2], 64, 101)
            .unwrap_err()
            .contains("101 training values")
    );
    let search = ScaleSearch::new(&[0.0, 1.0]);
    assert!(
        host.refine_v03(&[1.0; 3], &[0; 2], &search)
            .unwrap_err()
            .contains("3 block maxima")
    );
}

/// Real weights: every fourth 2-D tensor of at least 4096 weights of the model named by
/// `UC_CUDA_TEST_MODEL`, and its embeddings, at 3 bits with two-level scales and importance, 4
/// bits with v0.3 scales and 6 bits with two-level scales.
#[test]
fn host_build_gives_the_cpu_bytes_on_real_weights() {
    let Ok(dir) = std::env::var("UC_CUDA_TEST_MODEL") else {
        eprintln!("UC_CUDA_TEST_MODEL not set: the real-weights comparison is not run");
        return;
    };
    let src = uc_encode::source::SourceModel::open(std::path::Path::new(&dir)).expect("the model opens");
    let mut compared = 0;
    for t in src.tensors.iter().filter(|t| t.shape.len() == 2 && t.numel() >= 4096) {
        let data = src.read_f32(t).expect("tensor reads");
        if compared % 4 == 0 || t.name.contains("embed") {
            let cases = [
                (3, Some(SubScales::DEFAULT), true),
                (4, None, false),
                (6, Some(SubScales::DEFAULT), false),
            ];
            check_cases(&t.name, &data, t.shape[1] as usize, &cases);
        }
        compared += 1;
    }
    assert!(compared > 10, "only {compared} tensors in {dir}");
}

/// The overlay's randomized SVD through the kernels' products: the CPU's factors and singular
/// values, bit for bit, for wide, tall and square residuals and ranks up to beyond min(m, n).
#[test]
fn host_build_gives_the_cpu_low_rank_factors() {
    use uc_encode::svd::{low_rank, low_rank_on};
    let mut r = Rng(11);
    for (m, n, rank) in [(40, 130, 8), (150, 33, 16), (64, 64, 64), (7, 5, 9), (1, 300, 1)] {
        let x: Vec<f32> = (0..m * n).map(|_| (r.gauss() * 0.01) as f32).collect();
        for seed in [1u64, 0xdead_beef] {
            let a = low_rank(&x, m, n, rank, seed);
            let b = low_rank_on(&mut uc_cuda::host::HostSvd { r: &x, m, n }, m, n, rank, seed).unwrap();
            let f = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let d = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(a.rank, b.rank);
            assert_eq!(f(&a.u), f(&b.u), "{m}x{n} rank {rank}: U differs");
            assert_eq!(f(&a.v), f(&b.v), "{m}x{n} rank {rank}: V differs");
            assert_eq!(d(&a.sigma), d(&b.sigma), "{m}x{n} rank {rank}: singular values differ");
        }
    }
    let mut h = uc_cuda::host::HostSvd {
        r: &[0.0; 6],
        m: 2,
        n: 3,
    };
    use uc_encode::svd::SvdKernels;
    assert!(
        h.r_times(&[0.0; 5], 2)
            .unwrap_err()
            .contains("5 values for 3 rows of 2")
    );
}
