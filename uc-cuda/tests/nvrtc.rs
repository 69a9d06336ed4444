//! The CUDA build of the kernels: NVRTC compiles them with the options used at run time, for
//! sm_80 and sm_90, and ptxas (when `UC_PTXAS` names it) assembles the PTX for those GPUs. With
//! `UC_REQUIRE_NVRTC=1` (scripts/test.sh, with NVRTC from PyPI's nvidia-cuda-nvrtc-cu12) a
//! missing NVRTC fails the test; without it the test says it did not run.
#![cfg(feature = "cuda")]

use std::process::Command;

fn nvrtc_wanted() -> bool {
    match uc_cuda::cuda::compile("compute_80") {
        Ok(_) => true,
        Err(e) if std::env::var("UC_REQUIRE_NVRTC").as_deref() == Ok("1") => panic!("NVRTC is required: {e}"),
        Err(e) if e.0.contains("cannot be loaded") => {
            eprintln!("NVRTC not found, the kernels were not compiled: {e}");
            false
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn kernels_compile_with_nvrtc_and_assemble_for_sm80_and_sm90() {
    if !nvrtc_wanted() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("uc-cuda-ptx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (arch, sm) in [("compute_80", "sm_80"), ("compute_90", "sm_90")] {
        let ptx = uc_cuda::cuda::compile(arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
        for k in uc_cuda::KERNELS {
            assert!(ptx.contains(&format!(".entry {k}(")), "{arch}: no entry {k}");
        }
        // --fmad=false: no fused multiply-add anywhere in the kernels.
        assert!(!ptx.contains("fma."), "{arch}: the PTX has a fused multiply-add");
        assert!(
            !ptx.contains("mad.f") && !ptx.contains(".ftz."),
            "{arch}: fused or flushing float arithmetic"
        );
        // Every float multiply, add and subtract carries an explicit rounding mode, which the
        // driver's JIT and ptxas may not contract into a fused operation.
        for op in ["mul.f32", "add.f32", "sub.f32", "mul.f64", "add.f64", "sub.f64"] {
            assert!(!ptx.contains(op), "{arch}: {op} without a rounding mode");
        }
        assert!(
            ptx.contains("mul.rn.f32") && ptx.contains("add.rn.f64"),
            "{arch}: no rounded float ops at all?"
        );
        let Ok(ptxas) = std::env::var("UC_PTXAS") else {
            eprintln!("UC_PTXAS not set: {arch} compiled, not assembled");
            continue;
        };
        let src = dir.join(format!("gsq-{sm}.ptx"));
        std::fs::write(&src, &ptx).unwrap();
        let out = Command::new(&ptxas)
            .arg(format!("-arch={sm}"))
            .arg(&src)
            .arg("-o")
            .arg(dir.join(format!("gsq-{sm}.cubin")))
            .output()
            .unwrap_or_else(|e| panic!("running {ptxas}: {e}"));
        assert!(
            out.status.success(),
            "ptxas {sm}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(std::fs::metadata(dir.join(format!("gsq-{sm}.cubin"))).unwrap().len() > 1000);
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Without a GPU (every CI machine) opening a device is an error that says what is missing.
#[test]
fn opening_a_device_without_one_is_a_clear_error() {
    match uc_cuda::cuda::CudaGsq::open(0) {
        Ok(d) => eprintln!("a CUDA device is present: {}", d.name),
        Err(e) => {
            let m = e.to_string();
            assert!(
                m.contains("CUDA driver library") || m.contains("NVRTC") || m.contains("cuda:0"),
                "{m}"
            );
        }
    }
}
