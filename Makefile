# Kronos toolchain. Two commands on a fresh machine:
#   make demo   converts the golden tiny model and forecasts the sample series
#   make test   runs every test (release build: the numeric tests are model-sized)
SWIFT ?= swift
CONFIG ?= release
BIN = .build/$(CONFIG)
OUT = out

.PHONY: all deps build demo test bench clean

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

clean:
	rm -rf .build $(OUT)
