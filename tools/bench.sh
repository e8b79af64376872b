#!/usr/bin/env bash
# Benchmarks of the converter and the runtime (release build), printed as Markdown tables.
#   tools/bench.sh [WORK_DIR]        (default WORK_DIR: /tmp/kronos-bench)
# Synthesizes Kronos-small and Kronos-base checkpoints (tools/synth_checkpoint.py), then measures:
#   - conversion of Kronos-base to q8 and q4: seconds and peak RSS (GNU time), against the source size;
#   - forecast with Kronos-small f32 / q8 bundles, lookback 512, pred-len 48, 1 and 5 samples
#     (input: golden/sample_4h.csv, synthetic candles): load and forecast seconds, peak RSS;
#   - the same with lookback 256 (the window grows, so the KV cache applies).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/kronos-bench}
mkdir -p "$WORK"
swift build -c release >/dev/null
BIN=.build/release
TIME=/usr/bin/time
[ -x $TIME ] || { echo "GNU time (/usr/bin/time) is required: apt-get install -y time" >&2; exit 1; }

for preset in small base; do
  [ -f "$WORK/$preset/predictor/model.safetensors" ] || python3 tools/synth_checkpoint.py --preset $preset --seed 1 "$WORK/$preset"
done

echo "## Conversion (synthesized Kronos-base, $(nproc) cores)"
echo
echo "| type | parameters | source bytes | bundle bytes | ratio | seconds (wall) | peak RSS | RSS / source |"
echo "|---|---|---|---|---|---|---|---|"
for q in q8 q4; do
  out=$($TIME -f "%e %M" $BIN/kronos-convert --tokenizer "$WORK/base/tokenizer" --predictor "$WORK/base/predictor" \
        --quantize $q -o "$WORK/base-$q.kq" --force --json 2>"$WORK/time.txt")
  read -r secs kb < <(tail -1 "$WORK/time.txt")
  python3 - "$out" "$q" "$secs" "$kb" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); q, secs, kb = sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
rss = kb * 1024
print(f"| {q} | {r['parameters']/1e6:.1f}M | {r['source_bytes']/2**20:.1f} MiB | {r['bundle_bytes']/2**20:.1f} MiB | "
      f"{r['ratio']:.4f} | {secs:.2f} | {rss/2**20:.0f} MiB | {rss/r['source_bytes']:.2f} |")
PY
done

echo
echo "## Forecast (synthesized Kronos-small, lookback 512, pred-len 48, max context 512)"
echo
echo "| bundle | samples | load s | forecast s | total wall s | peak RSS | reference (PyTorch) s |"
echo "|---|---|---|---|---|---|---|"
for q in f32 q8; do
  $BIN/kronos-convert --tokenizer "$WORK/small/tokenizer" --predictor "$WORK/small/predictor" --quantize $q \
    -o "$WORK/small-$q.kq" --force >/dev/null
  for s in 1 5; do
    $TIME -f "%e %M" $BIN/kronos-run "$WORK/small-$q.kq" --input golden/sample_4h.csv --lookback 512 --pred-len 48 \
      --samples $s --seed 1 --timings >/dev/null 2>"$WORK/run.txt"
    load=$(grep -o 'load [0-9.]*' "$WORK/run.txt" | cut -d' ' -f2)
    fc=$(grep -o 'forecast [0-9.]*' "$WORK/run.txt" | cut -d' ' -f2)
    read -r wall kb < <(tail -1 "$WORK/run.txt")
    ref=$([ $s = 1 ] && echo 6.98 || echo 33.2)
    echo "| small $q | $s | $load | $fc | $wall | $((kb / 1024)) MiB | $ref |"
  done
done

echo
echo "## Forecast with a growing window (Kronos-small, lookback 256, pred-len 48: the KV cache is exact)"
echo
echo "| bundle | load s | forecast s | reference (PyTorch) s |"
echo "|---|---|---|---|"
for q in f32 q8; do
  $BIN/kronos-run "$WORK/small-$q.kq" --input golden/sample_4h.csv --lookback 256 --pred-len 48 --timings >/dev/null 2>"$WORK/run.txt"
  load=$(grep -o 'load [0-9.]*' "$WORK/run.txt" | cut -d' ' -f2)
  fc=$(grep -o 'forecast [0-9.]*' "$WORK/run.txt" | cut -d' ' -f2)
  echo "| small $q | $load | $fc | 3.58 |"
done
