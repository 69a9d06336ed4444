//! The external-decoder runner: our decoder passes through it on every path, and decoders that
//! misbehave are caught (the runner is not a rubber stamp).

use conformance::runner::{RunOptions, run_vector};
use std::time::Duration;

fn opts(decoder: String) -> RunOptions {
    RunOptions {
        decoder,
        timeout: Duration::from_secs(20),
        check_offsets: true,
        check_merged: true,
        exact_merged: false,
    }
}

fn ref_decoder() -> String {
    env!("CARGO_BIN_EXE_uc-ref-decoder").to_string()
}

#[test]
fn reference_decoder_passes_every_vector_on_every_path() {
    let set = conformance::files::load(&conformance::default_vectors_dir()).unwrap();
    for path in ["scalar", "portable", "avx2", "auto"] {
        // Our merge follows the reference order of, so it must pass the exact comparison.
        let mut o = opts(format!("{} --path {path}", ref_decoder()));
        o.exact_merged = true;
        for v in &set {
            let r = run_vector(v, &o);
            assert!(r.passed, "path {path}, vector {}: {}", r.name, r.detail);
        }
    }
}

#[test]
fn misbehaving_decoders_fail() {
    let set = conformance::files::load(&conformance::default_vectors_dir()).unwrap();
    let pick = |name: &str| set.iter().find(|v| v.name == name).unwrap().clone();
    let positive = pick("bits4_5x100");
    let negative = pick("bad_bits_9");
    let overlay = pick("overlay_r1_f16");
    // Accepts everything and prints nothing.
    let r = run_vector(&positive, &opts("cat >/dev/null; true".into()));
    assert!(!r.passed && r.detail.contains("bytes of output"), "{}", r.detail);
    // Says every record is bad.
    let r = run_vector(&positive, &opts("cat >/dev/null; echo 'bad_magic 0'; exit 1 #".into()));
    assert!(!r.passed, "{}", r.detail);
    // Right class, wrong offset: fails unless offsets are ignored.
    let lie = "cat >/dev/null; echo 'bad_bits 33'; exit 1 #".to_string();
    assert!(!run_vector(&negative, &opts(lie.clone())).passed);
    let mut relaxed = opts(lie);
    relaxed.check_offsets = false;
    assert!(run_vector(&negative, &relaxed).passed);
    // One flipped bit in the output is caught: decode with the reference, then flip the low bit of byte 100.
    let flip = format!(
        "f() {{ {} \"$1\" | python3 -c 'import sys; b=bytearray(sys.stdin.buffer.read()); b[100]^=1; sys.stdout.buffer.write(b)'; }}; f",
        ref_decoder()
    );
    let r = run_vector(&positive, &opts(flip));
    assert!(!r.passed && r.detail.contains("value 25"), "{}", r.detail);
    // Crashes and hangs are failures.
    let r = run_vector(&positive, &opts("kill -SEGV $$ #".into()));
    assert!(!r.passed, "{}", r.detail);
    let mut quick = opts("sleep 5 #".into());
    quick.timeout = Duration::from_millis(200);
    let r = run_vector(&positive, &quick);
    assert!(!r.passed && r.detail.contains("timed out"), "{}", r.detail);
    // A merged output outside the tolerance fails: output W_base instead of W_base + U V.
    let r = run_vector(
        &overlay,
        &opts(format!(
            "f() {{ if [ \"$1\" = merged ]; then {0} decode; else {0} \"$1\"; fi; }}; f",
            ref_decoder()
        )),
    );
    assert!(!r.passed && r.detail.starts_with("merged"), "{}", r.detail);
}

/// The sign-of-zero rules of: with `r = 0` the merged output is `W_base` bit for bit (a -0
/// stays -0), and with an overlay the accumulator starts at +0.0. A decoder that adds +0.0 without an
/// overlay fails; one that outputs `W_base` as the merged weight of the all-zero-products vector is
/// within the tolerance (the values are equal) but fails the exact comparison.
#[test]
fn merged_signs_of_zero_are_checked() {
    let set = conformance::files::load(&conformance::default_vectors_dir()).unwrap();
    let pick = |name: &str| set.iter().find(|v| v.name == name).unwrap().clone();
    let no_overlay = pick("zero_scale_sign_of_zero");
    let acc = pick("overlay_merge_acc_starts_at_plus_zero");
    // merged = decode with every -0.0 turned into +0.0 (what W_base + 0.0 gives).
    let plus_zero = format!(
        "f() {{ if [ \"$1\" = merged ]; then {0} decode | python3 -c 'import sys; b=sys.stdin.buffer.read(); \
         sys.stdout.buffer.write(b\"\".join(b\"\\0\\0\\0\\0\" if b[i:i+4]==b\"\\0\\0\\0\\x80\" else b[i:i+4] \
         for i in range(0, len(b), 4)))'; else {0} \"$1\"; fi; }}; f",
        ref_decoder()
    );
    let r = run_vector(&no_overlay, &opts(plus_zero));
    assert!(!r.passed && r.detail.starts_with("merged: value"), "{}", r.detail);
    let w_base_as_merged = format!(
        "f() {{ if [ \"$1\" = merged ]; then {0} decode; else {0} \"$1\"; fi; }}; f",
        ref_decoder()
    );
    let r = run_vector(&acc, &opts(w_base_as_merged.clone()));
    assert!(r.passed, "within the tolerance: {}", r.detail);
    let mut exact = opts(w_base_as_merged);
    exact.exact_merged = true;
    let r = run_vector(&acc, &exact);
    assert!(!r.passed && r.detail.starts_with("merged: value"), "{}", r.detail);
    let mut exact = opts(ref_decoder());
    exact.exact_merged = true;
    let r = run_vector(&acc, &exact);
    assert!(r.passed && r.detail.contains("merged bit-exact"), "{}", r.detail);
}
