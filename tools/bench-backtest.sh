#!/usr/bin/env bash
# The cost of a walk-forward study (issue 20's benchmark): a synthesized Kronos-small q8 bundle on the
# BTCUSDT 4-hour candles of ../shared/data (read there, never copied), pred-len 48, stride 6, 20
# samples, lookback 464 (the window never slides) and 512 (every step slides: exact recomputes, or
# approx-slide), with origins per second and total minutes from GNU time.
#   tools/bench-backtest.sh [WORK_DIR] [ORIGINS] [RUN...]
# ORIGINS: evenly spaced instead of every 6th, for a shorter run ("" for every 6th); RUN: "LOOKBACK CACHE"
# (default: "464 exact" "512 exact" "512 approx-slide"), e.g. a full study of the fast two only:
#   tools/bench-backtest.sh /tmp/kronos-bench "" "464 exact" "512 approx-slide"
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/kronos-bench}
ORIGINS=${2:-}
shift $(( $# < 2 ? $# : 2 ))
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=("464 exact" "512 exact" "512 approx-slide")
DATA=../shared/data/btcusdt_4h.csv
[ -f "$DATA" ] || { echo "$DATA not found (../shared beside the repository)" >&2; exit 1; }
swift build -c release >/dev/null
BIN=.build/release
mkdir -p "$WORK"
[ -f "$WORK/small/predictor/model.safetensors" ] || python3 tools/synth_checkpoint.py --preset small --seed 1 "$WORK/small"
[ -f "$WORK/small-q8.kq" ] || $BIN/kronos-convert --tokenizer "$WORK/small/tokenizer" \
  --predictor "$WORK/small/predictor" --quantize q8 -o "$WORK/small-q8.kq" --force >/dev/null
select=(--stride 6)
[ -n "$ORIGINS" ] && select=(--origins "$ORIGINS")
echo "| lookback | cache | origins | seconds | origins / s | minutes |"
echo "|---|---|---|---|---|---|"
for run in "${runs[@]}"; do
  set -- $run
  /usr/bin/time -f "%e" -o "$WORK/time.txt" $BIN/kronos-run backtest "$WORK/small-q8.kq" --input "$DATA" \
    --lookback "$1" --pred-len 48 "${select[@]}" --samples 20 --cache "$2" --format json -q -o "$WORK/bt.json"
  secs=$(tail -1 "$WORK/time.txt")
  n=$(python3 -c "import json; print(sum(s['origins'] for s in json.load(open('$WORK/bt.json'))['series']))")
  python3 -c "print(f'| $1 | $2 | $n | $secs | {$n / $secs:.2f} | {$secs / 60:.1f} |')"
done
