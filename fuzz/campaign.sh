#!/usr/bin/env bash
# Long fuzzing campaign: runs the targets one after another, SECONDS each (default 1200), round
# after round, for as long as the process lives. One libFuzzer process at a time, at nice 19.
# Run n of target T logs libFuzzer's output to fuzz/campaign/T-n.log; crash reproducers go to
# fuzz/artifacts/T/ and the grown corpora to fuzz/corpus/T/. The summary fuzz/campaign/status
# gets one line per finished run. Stop it with: kill -- -<pid>   (the process group it prints).
#
# Usage: nohup bash fuzz/campaign.sh [SECONDS] > /dev/null 2>&1 &
#    or: nohup bash fuzz/campaign.sh --once TARGET=SECONDS [TARGET=SECONDS ...] > /dev/null 2>&1 &
#        (one pass over the listed targets, each for its own time: how the remaining hours of a
#        campaign are split over two processes, "lanes", when two cores are free)
set -uo pipefail
# Linux groups a session's processes for scheduling ("autogroup"): nice alone does not keep a
# campaign started with setsid from taking its fair half of the CPU from interactive builds.
echo 19 >/proc/self/autogroup 2>/dev/null || true
once=0
plan=()
if [ "${1:-}" = "--once" ]; then
  once=1
  shift
  plan=("$@")
else
  secs=${1:-1200}
  for t in record_parse record_structured differential pack_read encode_roundtrip; do plan+=("$t=$secs"); done
fi
fuzz="$(cd "$(dirname "$0")" && pwd)"
cd "$fuzz"
mkdir -p campaign
bash seed-corpus.sh >/dev/null
(
  flock 9
  nice -n 19 cargo +nightly fuzz build >campaign/build.log 2>&1
) 9>campaign/.build.lock || { echo "build failed: campaign/build.log" >&2; exit 1; }
bin="$fuzz/target/x86_64-unknown-linux-gnu/release"
n=1
while :; do
  for item in "${plan[@]}"; do
    t=${item%%=*}
    secs=${item#*=}
    args=(-max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1)
    case $t in
      record_parse | record_structured | differential) args+=(-dict="$fuzz/dict/record.dict") ;;
      pack_read) args+=(-dict="$fuzz/dict/safetensors.dict") ;;
      encode_roundtrip) args+=(-max_len=16384) ;;
    esac
    mkdir -p "artifacts/$t" "corpus/$t"
    log="campaign/$t-$(date -u +%Y%m%dT%H%M%S).log"
    nice -n 19 "$bin/$t" "corpus/$t" -artifact_prefix="artifacts/$t/" "${args[@]}" >"$log" 2>&1
    rc=$?
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
    echo "$(date -u +%FT%TZ) $t ${secs}s rc=$rc ${done_line}" >>campaign/status
  done
  [ "$once" = 1 ] && break
  n=$((n + 1))
done
