#!/usr/bin/env bash
# Uses this package as another package would: clones the committed tree, tags it with the package's
# version, makes a consumer package that depends on it through a file:// URL with `from:`, builds it
# and runs the README's "Use it from Swift" snippet as its main.swift on the tiny golden model.
# Usage: tools/consumer-test.sh   (from a checkout; needs kronos-convert built: make build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/kronos-consumer.XXXXXX")
trap 'rm -rf "$work"' EXIT
version=$(sed -n 's/.*string = "\([0-9.]*\)".*/\1/p' "$root/Sources/KronosBundle/Version.swift")
[ -n "$version" ] || { echo "consumer-test: no version in Sources/KronosBundle/Version.swift" >&2; exit 1; }

git clone -q "$root" "$work/kronos"
git -C "$work/kronos" -c user.name=ci -c user.email=ci@localhost tag "$version"

mkdir -p "$work/consumer/Sources/Consumer"
cat > "$work/consumer/Package.swift" <<MANIFEST
// swift-tools-version:6.0
import PackageDescription
let package = Package(
    name: "Consumer",
    platforms: [.macOS(.v15)],
    dependencies: [.package(url: "file://$work/kronos", from: "$version")],
    targets: [.executableTarget(name: "Consumer", dependencies: [.product(name: "Kronos", package: "kronos")])]
)
MANIFEST
# The snippet: the first swift block after the marker in README.md.
awk '/<!-- snippet: use-from-swift/ { marked = 1; next }
     marked && /^```swift/ { inside = 1; next }
     inside && /^```/ { exit }
     inside { print }' "$root/README.md" > "$work/consumer/Sources/Consumer/main.swift"
[ -s "$work/consumer/Sources/Consumer/main.swift" ] || { echo "consumer-test: no snippet found in README.md" >&2; exit 1; }

swift build -c release --package-path "$work/consumer" 2>&1 | tail -5
convert="$root/.build/release/kronos-convert"
[ -x "$convert" ] || convert="$root/.build/debug/kronos-convert"
mkdir -p "$work/run"
"$convert" --tokenizer "$root/golden/tiny/tokenizer" --predictor "$root/golden/tiny/predictor" --quantize q8 \
  --max-context 64 -o "$work/run/btc-4h.kq" > /dev/null
cp "$root/golden/sample_4h.csv" "$work/run/candles.csv"
out=$(cd "$work/run" && "$work/consumer/.build/release/Consumer")
echo "$out" | tail -3
lines=$(echo "$out" | grep -c "" || true)
[ "$lines" -eq 49 ] || { echo "consumer-test: expected 48 forecast lines and a summary, found $lines lines" >&2; exit 1; }
echo "consumer-test: OK (a package depending on Kronos $version by version built and ran the README snippet)"
