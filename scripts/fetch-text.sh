#!/usr/bin/env bash
# Fetches real English text for evaluation and calibration into an ignored cache (.cache/text):
# the Jargon File 4.4.7 (public domain, see the package's copyright file) from the Debian package
# `jargon-text`, downloaded with `apt-get download` (the package is not installed).
# Idempotent: files already present and intact are not fetched or cut again.
#
# jargon.txt (1,681,817 bytes, SHA-256 pinned below) is cut into deterministic byte ranges of the
# lexicon body (the entries; not the front-matter glossary index nor the per-letter headword lists).
# Each range starts at an entry's first line and ends just before a later entry's first line, so
# every slice holds whole entries and ends with a newline:
#   jargon-eval.txt        bytes [1251075, 1351950)  100,875 B  letter S, from `:S/N ratio:` (held out)
#   jargon-calib.txt       bytes [ 232101,  332151)  100,050 B  letter B, from `:B1FF:`
#   jargon-tiny-calib.txt  bytes [ 232101,  235991)    3,890 B  the first entries of jargon-calib.txt (CI)
# The evaluation slice overlaps neither calibration slice.
# Usage: scripts/fetch-text.sh   Prints the absolute paths of the three slices on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${UC_TEXT_CACHE:-.cache/text}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

JARGON_SHA256=40dfb4b98191a670a09a183d5798d50f243d23fdbd1495dcc0aca2ce5895ba97
# name start length sha256
SLICES=(
  "jargon-eval.txt 1251075 100875 b618ee2b92c372fcfa1461dd52fcd8d7c5a89bc7429e4cc286a208363d83a70d"
  "jargon-calib.txt 232101 100050 4e1c66cc17ff9c3778cd15363c101526753837f15eb9f96636a6fd2a3a983f3c"
  "jargon-tiny-calib.txt 232101 3890 c45503a1dc8ebd8cda7bf56959088025710bae7863e340f0c528ba0fc9ba338c"
)

sha() { sha256sum "$1" | cut -d' ' -f1; }

fetch_jargon() { # writes $CACHE/jargon.txt, checked against the pin
  local tmp deb
  tmp=$(mktemp -d "$CACHE/.fetch-XXXXXX")
  # apt-get download writes into the current directory; an out-of-date package list is refreshed
  # once and the download retried.
  if ! (cd "$tmp" && apt-get download jargon-text >&2); then
    echo "apt-get download jargon-text failed; running apt-get update and retrying" >&2
    apt-get update >&2
    (cd "$tmp" && apt-get download jargon-text >&2)
  fi
  deb=$(ls "$tmp"/jargon-text_*.deb 2>/dev/null | head -n1 || true)
  if [ -z "$deb" ]; then
    echo "error: apt-get download jargon-text produced no .deb" >&2
    rm -rf "$tmp"
    exit 2
  fi
  dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/share/doc/jargon-text/jargon.txt.gz | gzip -dc >"$tmp/jargon.txt"
  local got
  got=$(sha "$tmp/jargon.txt")
  if [ "$got" != "$JARGON_SHA256" ]; then
    echo "error: jargon.txt from $(basename "$deb") has SHA-256 $got, expected $JARGON_SHA256" >&2
    rm -rf "$tmp"
    exit 2
  fi
  mv "$tmp/jargon.txt" "$CACHE/jargon.txt"
  rm -rf "$tmp"
}

if [ ! -f "$CACHE/jargon.txt" ] || [ "$(sha "$CACHE/jargon.txt")" != "$JARGON_SHA256" ]; then
  fetch_jargon
fi

for s in "${SLICES[@]}"; do
  read -r name start len want <<<"$s"
  out="$CACHE/$name"
  if [ ! -f "$out" ] || [ "$(sha "$out")" != "$want" ]; then
    dd if="$CACHE/jargon.txt" of="$out.tmp" bs=64K iflag=skip_bytes,count_bytes skip="$start" count="$len" \
      status=none
    got=$(sha "$out.tmp")
    if [ "$got" != "$want" ]; then
      echo "error: $name has SHA-256 $got, expected $want" >&2
      rm -f "$out.tmp"
      exit 2
    fi
    mv "$out.tmp" "$out"
  fi
  echo "$out"
done
