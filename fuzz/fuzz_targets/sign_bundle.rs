//! `uc_sign::verify` on arbitrary bytes: an OMS signature file is untrusted input. The
//! first byte picks the trust (the conformance vector's public key, or an empty set of roots so that
//! the certificate path parses the bundle's certificates); the rest is the bundle. Verification
//! must return an error, never panic, loop or allocate beyond the input's size; a bundle that
//! verifies must satisfy the clause's invariants (valid, distinct resource names). Seeds: the signed
//! conformance pack's model.sig (fuzz/seed-corpus.sh).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use std::sync::OnceLock;

fn key() -> &'static uc_sign::PublicKey {
    static K: OnceLock<uc_sign::PublicKey> = OnceLock::new();
    K.get_or_init(|| {
        uc_sign::PublicKey::from_pem(include_str!("../../conformance/vectors/packs/signed.pub.pem"))
            .expect("the conformance vector's public key")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((sel, bundle)) = data.split_first() else { return };
    let trust = if sel & 1 == 0 {
        uc_sign::Trust::PublicKey(key().clone())
    } else {
        uc_sign::Trust::Roots(Vec::new())
    };
    if let Ok(v) = uc_sign::verify(bundle, &trust) {
        let mut names = BTreeSet::new();
        for r in &v.resources {
            assert!(uc_sign::check_resource_name(&r.name).is_ok(), "{:?}", r.name);
            assert!(names.insert(r.name.as_str()), "duplicate {:?}", r.name);
        }
    }
});
