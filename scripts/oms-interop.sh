#!/usr/bin/env bash
# Interoperability of uc's signed packs with the OpenSSF Model Signing reference implementation
# (PyPI model-signing, sigstore/model-transparency), both ways, key and certificate methods:
#   - a pack signed by `uc sign` verifies with `model_signing verify` and with `uc-verify`;
#   - a pack signed by `model_signing sign` verifies with `uc-verify`;
#   - a changed file, an added file, a removed file and a swapped signature are rejected by both;
#   - a chain that does not lead to the given root, and one whose intermediate had expired when
#     the signing certificate was issued, are rejected by both.
# The test PKI (root, intermediate, signer; P-256) is made here with Python's `cryptography`.
# Usage: scripts/oms-interop.sh UC UC_VERIFY    (the two binaries; run by scripts/test.sh)
# The reference implementation is installed into an ignored venv (.cache/oms-venv) on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
uc=$(realpath "$1")
ucv=$(realpath "$2")
venv=${UC_OMS_VENV:-.cache/oms-venv}
# model-signing 1.1.1 imports pyOpenSSL for the certificate method without declaring it.
if [ ! -x "$venv/bin/model_signing" ] || ! "$venv/bin/python" -c 'import OpenSSL' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "model-signing==1.1.1" "pyopenssl>=24"
fi
ms="$(realpath "$venv")/bin/model_signing"
py="$(realpath "$venv")/bin/python"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
expect() { # $1 = want (ok, fail, or fail:PATTERN: fails and says PATTERN), $2 = description, rest = command
  local want=${1%%:*} pattern="" what=$2
  [ "$1" = "$want" ] || pattern=${1#*:}
  shift 2
  if "$@" >"$work/out.txt" 2>&1; then got=ok; else got=fail; fi
  if [ "$got" = "$want" ] && { [ -z "$pattern" ] || grep -q -- "$pattern" "$work/out.txt"; }; then
    passed=$((passed + 1))
    echo "ok    $what"
  else
    failed=$((failed + 1))
    echo "FAIL  $what: expected $want${pattern:+ saying \"$pattern\"}, got $got"
    sed 's/^/      /' "$work/out.txt" | tail -n 5
  fi
}

# The PKI and the keys.
"$py" - "$work" <<'PY'
import datetime as dt, sys
from pathlib import Path
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID

out = Path(sys.argv[1])
now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
day = dt.timedelta(days=1)

def key(name):
    k = ec.generate_private_key(ec.SECP256R1())
    (out / f"{name}.key").write_bytes(k.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (out / f"{name}.pub").write_bytes(k.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return k

def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "uc interop test")])

def cert(file, subject_key, subject, issuer_key, issuer, ca, start, end):
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
         .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(start).not_valid_after(end))
    if ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        b = b.add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, key_cert_sign=True,
            crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
    else:
        b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        b = b.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    c = b.sign(issuer_key, hashes.SHA256())
    (out / file).write_bytes(c.public_bytes(serialization.Encoding.PEM))

signer = key("signer")
key("plain")
root_k, other_k, inter_k = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
root, other, inter = name("uc test root"), name("uc other root"), name("uc test intermediate")
cert("root.pem", root_k, root, root_k, root, True, now - 30 * day, now + 3650 * day)
cert("other-root.pem", other_k, other, other_k, other, True, now - 30 * day, now + 3650 * day)
cert("inter.pem", inter_k, inter, root_k, root, True, now - 20 * day, now + 1000 * day)
cert("signer.pem", signer, name("uc test signer"), inter_k, inter, False, now - day, now + 365 * day)
# An intermediate that expired before the signing certificate below was issued.
cert("inter-expired.pem", inter_k, inter, root_k, root, True, now - 20 * day, now - 10 * day)
cert("signer-late.pem", signer, name("uc test signer"), inter_k, inter, False, now - 5 * day, now + 365 * day)
PY

# Two packs: the tiny and the sharded conformance packs (any valid pack would do).
cp -r conformance/vectors/packs/tiny "$work/a"
cp -r conformance/vectors/packs/sharded "$work/b"
k=$work
pk() { "$ucv" --quiet "$1" --public-key "$2"; }
msk() { "$ms" verify key "$1" --public_key "$2" --signature "$1/model.sig"; }

# Key method, uc signs.
expect ok "uc sign (key) -> uc-verify" bash -c "'$uc' sign '$work/a' --key '$k/signer.key' >/dev/null && '$ucv' --quiet '$work/a' --public-key '$k/signer.pub'"
expect ok "uc sign (key) -> model_signing verify key" msk "$work/a" "$k/signer.pub"
expect fail:"FAIL signature" "uc sign (key), another key -> uc-verify" pk "$work/a" "$k/plain.pub"
expect fail "uc sign (key), another key -> model_signing" msk "$work/a" "$k/plain.pub"

tamper_cases() { # $1 = who signed (for the messages); the pack $work/a holds a valid model.sig
  local who=$1
  cp "$work/a/config.json" "$work/config.bak"
  printf '{"tampered": true}\n' >"$work/a/config.json"
  expect fail:"signature.files file config.json" "$who, changed file -> uc-verify" pk "$work/a" "$k/signer.pub"
  expect fail:"Hash mismatch" "$who, changed file -> model_signing" msk "$work/a" "$k/signer.pub"
  cp "$work/config.bak" "$work/a/config.json"
  echo extra >"$work/a/extra.txt"
  expect fail:"signature.files file extra.txt" "$who, added file -> uc-verify" pk "$work/a" "$k/signer.pub"
  expect fail:"Extra files" "$who, added file -> model_signing" msk "$work/a" "$k/signer.pub"
  rm "$work/a/extra.txt"
  mv "$work/a/LICENSE" "$work/LICENSE.bak"
  expect fail:"signature.files file LICENSE" "$who, removed file -> uc-verify" pk "$work/a" "$k/signer.pub"
  expect fail:"Missing files" "$who, removed file -> model_signing" msk "$work/a" "$k/signer.pub"
  mv "$work/LICENSE.bak" "$work/a/LICENSE"
  cp "$work/a/model.sig" "$work/sig.bak"
  cp "$work/b/model.sig" "$work/a/model.sig"
  expect fail:"signature.files" "$who, swapped signature -> uc-verify" pk "$work/a" "$k/signer.pub"
  expect fail "$who, swapped signature -> model_signing" msk "$work/a" "$k/signer.pub"
  cp "$work/sig.bak" "$work/a/model.sig"
  expect ok "$who, restored -> uc-verify" pk "$work/a" "$k/signer.pub"
  expect ok "$who, restored -> model_signing" msk "$work/a" "$k/signer.pub"
}
"$uc" sign "$work/b" --key "$k/signer.key" >/dev/null
tamper_cases "uc sign"

# Key method, model_signing signs.
rm "$work/a/model.sig" "$work/b/model.sig"
expect ok "model_signing sign key -> uc-verify" bash -c "'$ms' sign key '$work/a' --private_key '$k/signer.key' --signature '$work/a/model.sig' >/dev/null && '$ucv' --quiet '$work/a' --public-key '$k/signer.pub'"
"$ms" sign key "$work/b" --private_key "$k/signer.key" --signature "$work/b/model.sig" >/dev/null
tamper_cases "model_signing sign"

# Certificate method, both ways.
rm "$work/a/model.sig"
expect ok "uc sign (certificate) -> uc-verify" bash -c "'$uc' sign '$work/a' --key '$k/signer.key' --certificate-chain '$k/signer.pem' '$k/inter.pem' >/dev/null && '$ucv' --quiet '$work/a' --certificate-chain '$k/root.pem'"
expect ok "uc sign (certificate) -> model_signing verify certificate" "$ms" verify certificate "$work/a" --certificate_chain "$k/root.pem" --signature "$work/a/model.sig"
expect fail:"does not lead to a trusted root" "uc sign (certificate), another root -> uc-verify" "$ucv" --quiet "$work/a" --certificate-chain "$k/other-root.pem"
expect fail "uc sign (certificate), another root -> model_signing" "$ms" verify certificate "$work/a" --certificate_chain "$k/other-root.pem" --signature "$work/a/model.sig"
rm "$work/a/model.sig"
expect ok "model_signing sign certificate -> uc-verify" bash -c "'$ms' sign certificate '$work/a' --private_key '$k/signer.key' --signing_certificate '$k/signer.pem' --certificate_chain '$k/inter.pem' --signature '$work/a/model.sig' >/dev/null && '$ucv' --quiet '$work/a' --certificate-chain '$k/root.pem'"
printf '{"tampered": true}\n' >"$work/a/config.json"
expect fail:"signature.files file config.json" "model_signing sign certificate, changed file -> uc-verify" "$ucv" --quiet "$work/a" --certificate-chain "$k/root.pem"
cp conformance/vectors/packs/tiny/config.json "$work/a/config.json"
# An intermediate that had expired when the signing certificate was issued.
rm "$work/a/model.sig"
"$uc" sign "$work/a" --key "$k/signer.key" --certificate-chain "$k/signer-late.pem" "$k/inter-expired.pem" >/dev/null
expect fail:"expired" "expired intermediate -> uc-verify" "$ucv" --quiet "$work/a" --certificate-chain "$k/root.pem"
expect fail "expired intermediate -> model_signing" "$ms" verify certificate "$work/a" --certificate_chain "$k/root.pem" --signature "$work/a/model.sig"

echo "oms interop: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
