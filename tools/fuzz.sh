#!/usr/bin/env bash
# Builds the libFuzzer targets (tools/fuzz, swift build --sanitize fuzzer --sanitize address) and runs
# each for SECONDS (default 60) on a seed corpus made here from the golden tiny model and sample:
#   tools/fuzz.sh [SECONDS] [RUNS]      RUNS: stop after this many executions instead (e.g. 1000000)
#   FUZZ_TARGETS="FuzzBundle" tools/fuzz.sh ...   one target only
# Crashes are written to tools/fuzz/crashes/<target>/ and fail the script; each one found becomes a
# regression test in Tests/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
RUNS=${2:-}
WORK=${FUZZ_WORK:-/tmp/kronos-fuzz}
mkdir -p "$WORK"
swift build -c release --product kronos-convert >/dev/null
# SwiftPM applies --sanitize fuzzer to the fuzz targets only; -Xswiftc instruments the libraries too.
(cd tools/fuzz && swift build --sanitize fuzzer --sanitize address -Xswiftc -sanitize=fuzzer 2>&1 | grep -E "error|Compiling|Build complete" | tail -1)
FUZZ_BIN=tools/fuzz/.build/debug

# Seed corpora.
rm -rf "$WORK/seeds"; mkdir -p "$WORK/seeds/FuzzSafetensors" "$WORK/seeds/FuzzBundle" "$WORK/seeds/FuzzCSV"
python3 - "$WORK/seeds/FuzzSafetensors" <<'PY'
import json, struct, sys, numpy as np
out = sys.argv[1]
def write(name, tensors, meta=None):
    header, blobs, off = {}, [], 0
    for k, (dt, a) in tensors.items():
        b = a.tobytes(); header[k] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}; blobs.append(b); off += len(b)
    if meta: header["__metadata__"] = meta
    h = json.dumps(header).encode(); h += b" " * ((8 - len(h) % 8) % 8)
    open(f"{out}/{name}", "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
write("f32", {"w": ("F32", np.arange(12, dtype=np.float32).reshape(3, 4)), "b": ("F32", np.ones(3, np.float32))}, {"format": "pt"})
write("f16", {"h": ("F16", np.arange(8, dtype=np.float16))})
write("bf16", {"g": ("BF16", (np.arange(6, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16))})
write("i64", {"basis": ("I64", 2 ** np.arange(5, dtype=np.int64)), "e": ("F32", np.zeros((0, 4), np.float32))})
PY
.build/release/kronos-convert --tokenizer golden/tiny/tokenizer --predictor golden/tiny/predictor --quantize q4 \
  --max-context 64 -o "$WORK/seeds/FuzzBundle/tiny-q4.kq" --force >/dev/null
head -6 golden/sample_4h.csv > "$WORK/seeds/FuzzCSV/plain.csv"
printf 'timestamp,open,high,low,close,volume\n1704067200,1,2,0.5,1.5,10\n1704081600,1.5,2.5,1,2,12\n' > "$WORK/seeds/FuzzCSV/unix.csv"
printf 'date,open,high,low,close\n2024-01-01T00:00:00Z,1,2,0.5,1.5\n2024-01-01T04:00:00+02:00,"1.5",2.5,1,2\n' > "$WORK/seeds/FuzzCSV/iso.csv"
printf 'Date;Open;High;Low;Close;Volume\r\n2024-01-05;1,5;2,5;1;2;10\r\n2024-01-08;2;3;1,5;2,5;12\r\n' > "$WORK/seeds/FuzzCSV/semicolon-crlf.csv"
printf '1704067200000,1,2,0.5,1.5,10,1704081599999,15,3,1,2,0\r1704081600000,1.5,2.5,1,2,12,1704095999999,20,4,1,2,0\r' > "$WORK/seeds/FuzzCSV/kline-cr.csv"

mkdir -p "$WORK/seeds/FuzzCase" "$WORK/seeds/FuzzOptions"
for k in 0 1 2; do
  f=(golden/tiny/cases/synth_a.safetensors golden/tiny/cases/synth_a.json golden/tiny/cases/synth_a_input.csv)
  { printf "\\x0$k"; cat "${f[$k]}"; } > "$WORK/seeds/FuzzCase/synth_a-$k"
done
printf '48\n512\n512\n4h\n5\n1.0\n0.9\n0\n0.1,0.5,0.9\n1\n1704067200\n' > "$WORK/seeds/FuzzOptions/typical"
printf '1048576\n2147483647\n1048576\n9223372036854775807s\n4096\nnan\ninf\n-1\n0,1\n64\n9223372036854775807\n' > "$WORK/seeds/FuzzOptions/extremes"

status=0
for target in ${FUZZ_TARGETS:-FuzzSafetensors FuzzBundle FuzzCSV FuzzCase FuzzOptions}; do
  corpus="$WORK/corpus/$target"; crashes="tools/fuzz/crashes/$target"
  mkdir -p "$corpus" "$crashes"
  limit=(-max_total_time="$SECONDS_PER_TARGET")
  [ -n "$RUNS" ] && limit=(-runs="$RUNS")
  log="$WORK/$target.log"
  set +e
  "$FUZZ_BIN/$target" "$corpus" "$WORK/seeds/$target" "${limit[@]}" -rss_limit_mb=2048 -timeout=10 \
    -max_len=131072 -artifact_prefix="$crashes/" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  echo "$target: $execs executions ($speed/s), exit $rc"
  if [ $rc -ne 0 ]; then status=1; tail -30 "$log"; fi
done
exit $status
