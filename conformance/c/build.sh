#!/usr/bin/env bash
# Builds ucdec, the conformance runner's external decoder written in C against the decoder's C ABI:
# the static library (cargo, release profile) and then ucdec.c compiled and linked against it.
# Prints the path of the binary: target/ucdec (under CARGO_TARGET_DIR when that is set).
# Environment: CC (default cc), CFLAGS (added after the strict defaults).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
case "$target" in /*) ;; *) target=$root/$target ;; esac

cargo build --release --locked -p uc-decode-capi >&2

# Native libraries the Rust standard library needs (rustc --print native-static-libs on Linux).
case "$(uname -s)" in
  Darwin) libs=(-lSystem -lc -lm) ;;
  *) libs=(-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc) ;;
esac

# shellcheck disable=SC2086 # CFLAGS is a list of flags
"${CC:-cc}" -std=c99 -Wall -Wextra -Werror -pedantic -O2 ${CFLAGS:-} \
  -I "$root/uc-decode/capi/include" \
  -o "$target/ucdec" "$root/conformance/c/ucdec.c" \
  "$target/release/libuc_decode_capi.a" "${libs[@]}"
echo "$target/ucdec"
