#!/usr/bin/env bash
# The release binaries on a processor without AVX: every command run on an emulated x86-64 of 2008
# (qemu-user, -cpu Nehalem: SSE4.2, no AVX / AVX2 / FMA / F16C / BMI) must run, and give the bytes
# the same command gives on this machine with the same arithmetic (the engine's two builds agree bit
# for bit). Then tools/check-baseline-isa.py reads the binaries: no instruction a processor may lack
# is reachable without its cpuid check.
#   tools/check-old-cpu.sh            (needs qemu-user: apt-get install -y qemu-user)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release >/dev/null
BIN=.build/release
QEMU="qemu-x86_64 -cpu Nehalem"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail=0

python3 tools/check-baseline-isa.py $BIN/kronos-run $BIN/kronos-convert $BIN/kronos-bench || fail=1

same() {  # same NAME CMD...: CMD under the emulator and natively, outputs compared byte for byte
  local name=$1; shift
  local status=0
  $QEMU "$@" > "$WORK/old.out" 2> "$WORK/old.err" || status=$?
  if [ $status -ne 0 ]; then
    echo "FAIL $name: exit status $status on the emulated processor"; sed 's/^/  /' "$WORK/old.err" | tail -3
    fail=1; return
  fi
  "$@" > "$WORK/new.out" 2>/dev/null
  if cmp -s "$WORK/old.out" "$WORK/new.out"; then echo "ok   $name ($(wc -c < "$WORK/old.out") bytes)"
  else echo "FAIL $name: output differs from this machine's"; fail=1; fi
}

tiny=golden/tiny
for q in f32 q8 q4; do
  convert=($BIN/kronos-convert --tokenizer $tiny/tokenizer --predictor $tiny/predictor --quantize $q --max-context 64 --force)
  if ! $QEMU "${convert[@]}" -o "$WORK/tiny-$q.kq" > /dev/null 2> "$WORK/old.err"; then
    echo "FAIL kronos-convert --quantize $q on the emulated processor"; tail -3 "$WORK/old.err"; fail=1; continue
  fi
  "${convert[@]}" -o "$WORK/native-$q.kq" > /dev/null
  if cmp -s "$WORK/tiny-$q.kq" "$WORK/native-$q.kq"; then echo "ok   kronos-convert --quantize $q (same bundle bytes)"
  else echo "FAIL kronos-convert --quantize $q: the bundle differs from this machine's"; fail=1; fi
done
for q in f32 q8 q4; do
  # --activations f32: the int8 default needs AVX-512 VNNI, which the emulated processor lacks.
  same "kronos-run $q, 2 samples" $BIN/kronos-run "$WORK/tiny-$q.kq" --input golden/sample_4h.csv --lookback 64 \
    --pred-len 12 --samples 2 --activations f32 --format json
  same "kronos-run $q, approx-slide" $BIN/kronos-run "$WORK/tiny-$q.kq" --input golden/sample_4h.csv \
    --lookback 60 --pred-len 12 --cache approx-slide --activations f32 --format json
  same "kronos-run $q, int8 activations (portable kernels)" $BIN/kronos-run "$WORK/tiny-$q.kq" \
    --input golden/sample_4h.csv --lookback 64 --pred-len 6 --activations int8 --format json
done
# verify runs its golden cases through the engine the processor runs (exit status 0: within the gates).
same "kronos-run verify q8" $BIN/kronos-run verify "$WORK/tiny-q8.kq" --golden $tiny --min-context-ids 0.97 --activations f32 --json  # (make verify's tiny gate)
exit $fail
