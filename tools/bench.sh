#!/usr/bin/env bash
# Benchmarks of the converter and the runtime (release build), printed as Markdown tables.
#   tools/bench.sh [WORK_DIR]        (default WORK_DIR: /tmp/kronos-bench)
# Synthesizes Kronos-small and Kronos-base checkpoints (tools/synth_checkpoint.py), then measures:
#   - conversion of Kronos-base to q8 and q4: seconds and peak RSS (GNU time), against the source size;
#   - kronos-bench kernels: matmul GFLOP/s and weight GB/s per type and shape beside numpy;
#   - kronos-bench forecast: prefill tokens/s, decode steps/s, whole-forecast seconds (exact and
#     approx-slide caching) and peak RSS of small / base bundles (f32, q8, q4), 1 and 5 samples.
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

for preset in small base; do
  for q in f32 q8 q4; do
    [ -f "$WORK/$preset-$q.kq" ] || $BIN/kronos-convert --tokenizer "$WORK/$preset/tokenizer" --predictor "$WORK/$preset/predictor" \
      --quantize $q -o "$WORK/$preset-$q.kq" --force >/dev/null
  done
done

echo
echo "## This machine's limit ($(nproc) cores)"
echo
$BIN/kronos-bench peak

echo
echo "## Matmul kernels ($(nproc) cores; numpy/OpenBLAS f32 in the same run)"
echo
$BIN/kronos-bench kernels --seconds 0.2

echo
echo "## Forecast end to end (synthetic 512-row series, pred-len 48, window 512; reference PyTorch: small 6.98 s / 33.2 s for 1 / 5 samples)"
echo
$BIN/kronos-bench forecast "$WORK"/small-{f32,q8,q4}.kq --samples 1 --samples 5 --cache exact --cache approx-slide --seconds 0
echo
$BIN/kronos-bench forecast "$WORK"/base-{f32,q8,q4}.kq --samples 1 --samples 5 --cache approx-slide --seconds 0
echo
echo "Each arithmetic explicitly (the tables above ran the defaults: the activations and KV cache columns):"
echo
for a in f32 int8; do
  $BIN/kronos-bench forecast "$WORK"/{small,base}-{q8,q4}.kq --samples 1 --samples 5 --cache approx-slide --activations $a --kv-cache f32 --seconds 0
  echo
done

echo
echo "## Causal attention of a prefill (one sequence, every head)"
echo
$BIN/kronos-bench attention

echo
echo "## Calibration's Gram matrices (XᵀX of 512 activation rows, upper triangle)"
echo
$BIN/kronos-bench gram

echo
echo "## Peak RSS of a forecast (kronos-run on golden/sample_4h.csv, lookback 512, pred-len 48, approx-slide)"
echo
echo "| bundle | decoded MiB | samples | KV cache | peak RSS MiB | over decoded MiB |"
echo "|---|---|---|---|---|---|"
for preset in small base; do
  for q in f32 q8 q4; do
    b="$WORK/$preset-$q.kq"
    decoded=$($BIN/kronos-convert inspect --json "$b" | python3 -c "import json,sys; print(sum(t['raw_size'] for t in json.load(sys.stdin)['manifest']['tensors']))")
    for s in 1 5; do
      for kv in f32 f16; do
        $TIME -f "%M" -o "$WORK/time.txt" $BIN/kronos-run "$b" --input golden/sample_4h.csv --lookback 512 --pred-len 48 \
          --samples $s --cache approx-slide --kv-cache $kv >/dev/null
        python3 -c "import sys; d, kb = int(sys.argv[1]), int(sys.argv[2]); print(f'| $preset-$q | {d/2**20:.1f} | $s | $kv | {kb/1024:.1f} | {kb/1024 - d/2**20:+.1f} |')" \
          "$decoded" "$(tail -1 "$WORK/time.txt")"
      done
    done
  done
done

echo
echo "## Whole forecasts (kronos-run, one process each: load, read, forecast, write; GNU time)"
echo
echo "Series: golden/sample_4h.csv (its last L rows)."
echo
echo "| bundle | lookback / steps / samples | cache | seconds (wall) | peak RSS MiB |"
echo "|---|---|---|---|---|"
run() {  # run BUNDLE L P S CACHE
  $TIME -f "%e %M" -o "$WORK/time.txt" $BIN/kronos-run "$WORK/$1.kq" --input golden/sample_4h.csv --lookback $2 \
    --pred-len $3 --samples $4 --cache $5 -q >/dev/null
  read -r secs kb < <(tail -1 "$WORK/time.txt")
  echo "| $1 | $2 / $3 / $4 | $5 | $secs | $((kb / 1024)) |"
}
for b in small-q8 small-q4; do
  run $b 512 48 1 exact; run $b 512 48 5 exact; run $b 464 48 5 exact; run $b 512 48 5 approx-slide
done
for b in base-q8 base-q4; do
  run $b 512 48 5 exact; run $b 512 48 5 approx-slide
done
