//! Writes the kernels compiled by NVRTC for one architecture as a PTX file for `UC_CUDA_PTX`
//! (machines with the CUDA driver but without NVRTC):
//! `cargo run -p uc-cuda --features cuda --example ptx -- compute_90 gsq-compute_90.ptx`
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [arch, out] = args.as_slice() else {
        eprintln!("usage: ptx ARCH OUT.ptx   (ARCH e.g. compute_90)");
        std::process::exit(2);
    };
    match uc_cuda::cuda::ptx_file(arch) {
        Ok(text) => {
            if let Err(e) = std::fs::write(out, text) {
                eprintln!("error: {out}: {e}");
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
