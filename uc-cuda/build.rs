//! Compiles the host build of the CUDA kernels (`kernels/gsq.cu` as plain C: every kernel becomes
//! a loop over its thread indices) with the system C compiler. Contraction of multiplies and adds
//! into fused operations is off, as `--fmad=false` turns it off for the CUDA build, so that both
//! builds round every product and sum once.
fn main() {
    println!("cargo:rerun-if-changed=kernels/gsq.cu");
    cc::Build::new()
        .file("kernels/gsq.cu")
        .cpp(false)
        .flag("-xc")
        .flag_if_supported("-ffp-contract=off")
        .flag_if_supported("-fno-fast-math")
        .flag_if_supported("-fexcess-precision=standard")
        .flag_if_supported("-std=c99")
        .opt_level(2)
        .warnings(true)
        .compile("uc_gsq_host");
}
