# Kronos toolchain. Two commands on a fresh machine:
#   make demo   converts the golden tiny model and forecasts the sample series
#   make test   runs every test (release build: the numeric tests are model-sized)
SWIFT ?= swift
CONFIG ?= release
BIN = .build/$(CONFIG)
OUT = out

.PHONY: all deps build demo test verify bench clean consumer-test tsan docs lint old-cpu

all: build

deps:
	@pkg-config --exists libzstd 2>/dev/null || { \
	  echo "installing libzstd-dev (zstd headers and pkg-config file)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libzstd-dev; }

build: deps
	$(SWIFT) build -c $(CONFIG)

demo: build
	@mkdir -p $(OUT)
	$(BIN)/kronos-convert --tokenizer golden/tiny/tokenizer --predictor golden/tiny/predictor \
	  --quantize q8 --max-context 64 --output $(OUT)/tiny-q8.kq --force
	$(BIN)/kronos-run $(OUT)/tiny-q8.kq --input golden/sample_4h.csv --pred-len 12

test: deps
	$(SWIFT) test -c $(CONFIG)

# A package depending on this one by version (a tag on a clone of HEAD) builds and runs the README snippet.
consumer-test: build
	tools/consumer-test.sh

# House style (.swift-format): no finding. The engine's baseline folders are links to the engine's own
# (linted once, as Sources/KronosWideEngine and Tests/KronosEngineTests).
lint:
	$(SWIFT) format lint -r --strict --configuration .swift-format \
	  $$(find Sources Tests -mindepth 1 -maxdepth 1 -type d ! -type l) tools/fuzz/Sources Package.swift
	@# swift format cannot break string literals: the 120-column limit is checked on its own (characters, not bytes).
	@! LC_ALL=C.UTF-8 grep -rnE '^.{121,}' --include='*.swift' Sources Tests tools/fuzz/Sources tools/fuzz/Package.swift \
	  Package.swift || { echo "lines over 120 columns (above)"; exit 1; }

# The release binaries on an emulated x86-64 without AVX (qemu-user) and the instruction-set walk.
old-cpu:
	tools/check-old-cpu.sh

# The façade's DocC documentation (.build/plugins/Swift-DocC/outputs/Kronos.doccarchive).
docs:
	$(SWIFT) package generate-documentation --target Kronos --warnings-as-errors

# The concurrency tests under ThreadSanitizer.
tsan: deps
	$(SWIFT) test --sanitize=thread --scratch-path .build/tsan --filter 'ConcurrencyTests|FacadeTests'

# Accuracy gate: q8 and q4 bundles of the golden tiny model and of ../shared/reference/mini against
# their golden FP32 cases (thresholds: golden/README.md).
SHARED_MINI ?= ../shared/reference/mini
# Calibration candles for the mini bundles: a file the mini cases do not read (they use btcusdt_4h.csv
# and synthetic_4h.csv). The gate is issue 22's goal for a calibrated 4-bit bundle.
SHARED_DATA ?= $(dir $(SHARED_MINI))../data
MINI_Q4_CAL_GATE = --max-s1-kld 0.01 --max-s2-kld 2e-3 --min-top1 0.95 --min-context-ids 0.98 --max-bits-per-weight 5.0
verify: build
	@mkdir -p $(OUT)
	$(BIN)/kronos-convert --tokenizer golden/tiny/tokenizer --predictor golden/tiny/predictor --quantize q8 --max-context 64 -o $(OUT)/tiny-q8.kq --force >/dev/null
	$(BIN)/kronos-convert --tokenizer golden/tiny/tokenizer --predictor golden/tiny/predictor --quantize q4 --max-context 64 -o $(OUT)/tiny-q4.kq --force >/dev/null
	$(BIN)/kronos-convert --tokenizer golden/tiny/tokenizer --predictor golden/tiny/predictor --quantize f16 --max-context 64 -o $(OUT)/tiny-f16.kq --force >/dev/null
	@# calibrated on rows 400-799 of the sample series (the tiny cases use rows 100-159 and 300-395)
	sed -n '1p;402,801p' golden/sample_4h.csv > $(OUT)/tiny-calibration.csv
	$(BIN)/kronos-convert --tokenizer golden/tiny/tokenizer --predictor golden/tiny/predictor --quantize q4 --max-context 64 --calibrate $(OUT)/tiny-calibration.csv -o $(OUT)/tiny-q4-cal.kq --force >/dev/null
	$(BIN)/kronos-convert --tokenizer golden/tiny/tokenizer --predictor golden/tiny/predictor --quantize q8 --max-context 64 --calibrate $(OUT)/tiny-calibration.csv -o $(OUT)/tiny-q8-cal.kq --force >/dev/null
	@# every bundle with the defaults (on this processor), then each arithmetic explicitly
	$(BIN)/kronos-run verify $(OUT)/tiny-q8.kq --golden golden/tiny --min-context-ids 0.97
	$(BIN)/kronos-run verify $(OUT)/tiny-q8.kq --golden golden/tiny --min-context-ids 0.97 --activations f32 --kv-cache f32
	$(BIN)/kronos-run verify $(OUT)/tiny-q8.kq --golden golden/tiny --min-context-ids 0.97 --activations int8 --kv-cache f32
	$(BIN)/kronos-run verify $(OUT)/tiny-q4.kq --golden golden/tiny --min-top1 0.70 --min-context-ids 0.85 --max-bits-per-weight 6.05
	$(BIN)/kronos-run verify $(OUT)/tiny-q4.kq --golden golden/tiny --min-top1 0.70 --min-context-ids 0.85 --max-bits-per-weight 6.05 --activations f32 --kv-cache f32
	$(BIN)/kronos-run verify $(OUT)/tiny-q4.kq --golden golden/tiny --min-top1 0.70 --min-context-ids 0.85 --max-bits-per-weight 6.05 --activations int8 --kv-cache f32
	@# calibrated bundles (golden/README.md, "Calibrated bundles")
	$(BIN)/kronos-run verify $(OUT)/tiny-q4-cal.kq --golden golden/tiny --max-s1-kld 0.01 --max-s2-kld 4e-3 --min-top1 0.85 --min-context-ids 0.95 --max-bits-per-weight 6.05
	$(BIN)/kronos-run verify $(OUT)/tiny-q4-cal.kq --golden golden/tiny --max-s1-kld 0.01 --max-s2-kld 4e-3 --min-top1 0.85 --min-context-ids 0.95 --max-bits-per-weight 6.05 --activations f32 --kv-cache f32
	$(BIN)/kronos-run verify $(OUT)/tiny-q8-cal.kq --golden golden/tiny --max-s1-kld 2e-4 --activations f32 --kv-cache f32
	@# f16 bundles and the approx-slide cache, with drift bounds from their measurements (golden/README.md)
	$(BIN)/kronos-run verify $(OUT)/tiny-f16.kq --golden golden/tiny --max-s1-kld 2e-6 --max-s2-kld 2e-6
	$(BIN)/kronos-run verify $(OUT)/tiny-q8.kq --golden golden/tiny --cache approx-slide --min-context-ids 0.97 --max-s1-kld 1.5e-3 --max-s2-kld 3e-3 --min-top1 0.95
	@# the mini cases: required (an absent golden set is an error, not a skipped gate); SHARED_MINI=none skips them by name
	@if [ "$(SHARED_MINI)" = none ]; then echo "SHARED_MINI=none: mini drift gate not run"; exit 0; fi; \
	if [ ! -d $(SHARED_MINI) ]; then echo "error: $(SHARED_MINI) not found (the mini golden cases; SHARED_MINI=none to skip them)" >&2; exit 1; fi; \
	  $(BIN)/kronos-convert --tokenizer $(SHARED_MINI)/tokenizer --predictor $(SHARED_MINI)/predictor --quantize q8 -o $(OUT)/mini-q8.kq --force >/dev/null && \
	  $(BIN)/kronos-convert --tokenizer $(SHARED_MINI)/tokenizer --predictor $(SHARED_MINI)/predictor --quantize q4 -o $(OUT)/mini-q4.kq --force >/dev/null && \
	  $(BIN)/kronos-convert --tokenizer $(SHARED_MINI)/tokenizer --predictor $(SHARED_MINI)/predictor --quantize f16 -o $(OUT)/mini-f16.kq --force >/dev/null && \
	  $(BIN)/kronos-run verify $(OUT)/mini-f16.kq --golden $(SHARED_MINI) --max-s1-kld 2e-6 --max-s2-kld 2e-6 && \
	  $(BIN)/kronos-run verify $(OUT)/mini-q8.kq --golden $(SHARED_MINI) --cache approx-slide --max-s1-kld 0.05 --max-s2-kld 4e-3 && \
	  $(BIN)/kronos-run verify $(OUT)/mini-q8.kq --golden $(SHARED_MINI) && \
	  $(BIN)/kronos-run verify $(OUT)/mini-q8.kq --golden $(SHARED_MINI) --activations f32 --kv-cache f32 && \
	  $(BIN)/kronos-run verify $(OUT)/mini-q8.kq --golden $(SHARED_MINI) --activations f32 --kv-cache f16 && \
	  $(BIN)/kronos-run verify $(OUT)/mini-q8.kq --golden $(SHARED_MINI) --activations int8 --kv-cache f32 && \
	  $(BIN)/kronos-run verify $(OUT)/mini-q8.kq --golden $(SHARED_MINI) --activations int8 --kv-cache f16 && \
	  $(BIN)/kronos-run verify $(OUT)/mini-q4.kq --golden $(SHARED_MINI) && \
	  $(BIN)/kronos-run verify $(OUT)/mini-q4.kq --golden $(SHARED_MINI) --activations f32 --kv-cache f32 && \
	  $(BIN)/kronos-run verify $(OUT)/mini-q4.kq --golden $(SHARED_MINI) --activations int8 --kv-cache f32 && \
	  $(BIN)/kronos-run verify $(OUT)/mini-q4.kq --golden $(SHARED_MINI) --activations int8 --kv-cache f16 && \
	  $(BIN)/kronos-convert --tokenizer $(SHARED_MINI)/tokenizer --predictor $(SHARED_MINI)/predictor --quantize q4 --calibrate $(SHARED_DATA)/btcusdt_1h.csv -o $(OUT)/mini-q4-cal.kq --force >/dev/null && \
	  $(BIN)/kronos-convert --tokenizer $(SHARED_MINI)/tokenizer --predictor $(SHARED_MINI)/predictor --quantize q8 --calibrate $(SHARED_DATA)/btcusdt_1h.csv -o $(OUT)/mini-q8-cal.kq --force >/dev/null && \
	  $(BIN)/kronos-run verify $(OUT)/mini-q4-cal.kq --golden $(SHARED_MINI) $(MINI_Q4_CAL_GATE) && \
	  $(BIN)/kronos-run verify $(OUT)/mini-q4-cal.kq --golden $(SHARED_MINI) $(MINI_Q4_CAL_GATE) --activations f32 --kv-cache f32 && \
	  $(BIN)/kronos-run verify $(OUT)/mini-q4-cal.kq --golden $(SHARED_MINI) $(MINI_Q4_CAL_GATE) --activations int8 --kv-cache f16 && \
	  $(BIN)/kronos-run verify $(OUT)/mini-q8-cal.kq --golden $(SHARED_MINI) --max-s1-kld 2e-4 --activations f32 --kv-cache f32

clean:
	rm -rf .build $(OUT)
