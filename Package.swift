// swift-tools-version:6.2
// (6.2: SwiftPM accepts a dependency's unsafe build flags, the -target-cpu below, only from packages
// declaring 6.2 or later; tools/consumer-test.sh proves a package depending on this one by version builds.)
// Kronos toolchain: converter (safetensors -> quantized zstd bundle) and runtime.
//
// Layering (each target only depends on the ones above it):
//   CZstd (system libzstd)
//   KronosQuant       quantization codecs: f16/bf16, Q8_0, Q4_1, Q4_K blocks, reference + fast kernels
//                     (KronosWideQuant: the same sources for x86-64-v3, the converter's where cpuid allows)
//   KronosBundle      bundle format (.kq): spec in formats/, writer, validating reader, configs
//   KronosCheckpoint  safetensors reader (single / sharded), config check against the tensor table
//   KronosConvert     conversion pipeline (checkpoint -> bundle)
//   KronosEngineTypes what both builds of the engine share: settings, inputs, results, errors, cpuid
//   KronosWideEngine  the engine: kernels, worker pool, attention and KV cache, model, generation,
//                     compiled for x86-64-v3; KronosEngineBaseline: the same sources without CPU flags
//   KronosWideVNNI    int8 q8_0 / q4_1 / q4_k kernels for AVX-512 VNNI processors
//                     (called by the engine after a cpuid check)
//   KronosWideAVX2    int8 kernels and the prefill's key-lane attention for x86-64-v3 processors
//                     without AVX-512 (called after the x86-64-v3 check; not compiled again for the
//                     baseline)
//   Kronos            the façade (import Kronos): KronosModel, CandleSeries, ForecastOptions, Forecast;
//                     the candle CSV reader and trading calendars
//   KronosIO          outputs of a forecast run: CSV / JSON / paths, SVG charts, the run's orchestration
//   KronosVerify      accuracy drift of a bundle against golden FP32 cases
//   KronosCalibrate   calibration: the f32 model over the user's candles -> importance matrix (--calibrate)
//   KronosEval        walk-forward evaluation (kronos-run backtest): scores, baselines, comparisons
//   kronos-convert, kronos-run: thin executables (argument parsing and printing only)
import PackageDescription

// KronosWideEngine is compiled for x86-64-v3 (AVX2, FMA, F16C: every x86 CPU since 2013-2015) so that
// the SIMD kernels use 256-bit registers and fused multiply-add instructions instead of libm calls;
// KronosWideVNNI (the int8 kernels) for AVX-512 VL / BW / VNNI as well. The engine's users call them
// only on processors that report those (cpuid); everything else carries no CPU flags.
// Every target with CPU flags is named KronosWide*, and no other target may sort after that name:
// a binary keeps one copy of each shared generic specialization (e.g. a Dictionary or a SIMD
// conversion used by several modules), the first the linker meets, and SwiftPM links objects in
// target-name order, so the copy kept is always the one compiled without flags. Else code that runs
// on any x86-64 (the bundle reader, the baseline engine) could call a copy with AVX2 instructions.
// tools/check-baseline-isa.py checks the linked binaries (CI).
#if arch(x86_64)
    let numericSettings: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"])]
    let vnniSettings: [SwiftSetting] = [
        .unsafeFlags([
            "-target-cpu", "haswell", "-Xcc", "-mavx512f", "-Xcc", "-mavx512bw",
            "-Xcc", "-mavx512vl", "-Xcc", "-mavx512vnni",
        ])
    ]
#else
    let numericSettings: [SwiftSetting] = []
    let vnniSettings: [SwiftSetting] = []
#endif

let package = Package(
    name: "Kronos",
    // Atomics (Synchronization) need macOS 15 / iOS 18; Linux has no minimum.
    platforms: [.macOS(.v15), .iOS(.v18), .visionOS(.v2), .tvOS(.v18), .watchOS(.v11)],
    products: [
        .executable(name: "kronos-convert", targets: ["KronosConvertCLI"]),
        .executable(name: "kronos-run", targets: ["KronosRunCLI"]),
        .executable(name: "kronos-bench", targets: ["KronosBenchCLI"]),
        .library(name: "Kronos", targets: ["Kronos"]),
        .library(name: "KronosIO", targets: ["KronosIO"]),
        .library(name: "KronosWideEngine", targets: ["KronosWideEngine"]),
        .library(name: "KronosConvert", targets: ["KronosConvert"]),
        .library(name: "KronosVerify", targets: ["KronosVerify"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // `swift package generate-documentation --target Kronos` (the DocC catalog in Sources/Kronos/Kronos.docc)
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        .target(name: "CKronosHints"),
        // No CPU flags: the converter and the bundle reader run on any x86-64 (the kernels inline its
        // codecs into their own builds).
        .target(name: "KronosQuant", dependencies: ["CKronosHints"]),
        // The same codecs compiled for x86-64-v3 (Sources/KronosWideQuant is a link to Sources/KronosQuant):
        // the converter encodes with them where the processor runs them (KronosConvert/Codecs.swift).
        .target(name: "KronosWideQuant", dependencies: ["CKronosHints"], swiftSettings: numericSettings),
        .target(name: "KronosBundle", dependencies: ["KronosQuant", "CZstd"]),
        .target(
            name: "KronosCheckpoint",
            dependencies: ["KronosBundle", "KronosQuant", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(
            name: "KronosConvert",
            dependencies: ["KronosCheckpoint", "KronosBundle", "KronosQuant", "KronosWideQuant", "CKronosHints"]),
        .target(name: "KronosWideVNNI", dependencies: ["CKronosHints", "KronosQuant"], swiftSettings: vnniSettings),
        // Kernels for x86-64-v3 that the x86-64-v3 engine alone calls (not compiled again for the baseline).
        .target(
            name: "KronosWideAVX2", dependencies: ["CKronosHints", "KronosQuant"], swiftSettings: numericSettings),
        .target(name: "KronosEngineTypes", dependencies: ["KronosBundle", "CKronosHints"]),
        // The engine, twice from the same sources (Sources/KronosEngineBaseline is a link to
        // Sources/KronosWideEngine): for x86-64-v3, and without CPU flags for every other x86-64
        // processor; the façade picks one at run time (KronosEngineTypes/Processor.swift).
        .target(
            name: "KronosWideEngine",
            dependencies: [
                "KronosEngineTypes", "KronosBundle", "KronosQuant", "CKronosHints", "KronosWideVNNI", "KronosWideAVX2",
            ],
            swiftSettings: numericSettings),
        .target(
            name: "KronosEngineBaseline",
            dependencies: [
                "KronosEngineTypes", "KronosBundle", "KronosQuant", "CKronosHints", "KronosWideVNNI", "KronosWideAVX2",
            ],
            linkerSettings: [.linkedLibrary("m", .when(platforms: [.linux]))]),
        .executableTarget(
            name: "KronosConvertCLI",
            dependencies: [
                "KronosConvert", "KronosQuant", "KronosCalibrate",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "KronosBenchCLI",
            dependencies: [
                "Kronos", "KronosWideEngine", "KronosWideVNNI", "KronosWideAVX2", "KronosEngineTypes", "KronosBundle",
                "KronosQuant", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(
            name: "Kronos",
            dependencies: ["KronosWideEngine", "KronosEngineBaseline", "KronosEngineTypes", "KronosBundle"]),
        .target(name: "KronosIO", dependencies: ["Kronos", "KronosEngineTypes", "KronosBundle"]),
        // Walk-forward evaluation (kronos-run backtest): origins, scores, baselines, comparisons.
        .target(name: "KronosEval", dependencies: ["Kronos", "KronosEngineTypes"]),
        // Calibration (kronos-convert --calibrate): the f32 model over the user's candles -> importance matrix.
        .target(
            name: "KronosCalibrate",
            dependencies: [
                "Kronos", "KronosConvert", "KronosCheckpoint", "KronosEngineBaseline", "KronosEngineTypes",
                "KronosBundle",
            ]),
        .target(
            name: "KronosVerify",
            dependencies: [
                "Kronos", "KronosIO", "KronosEngineTypes", "KronosCheckpoint", "KronosConvert", "KronosBundle",
            ]),
        .executableTarget(
            name: "KronosRunCLI",
            dependencies: [
                "Kronos", "KronosIO", "KronosVerify", "KronosEval", "KronosBundle",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(
            name: "KronosTestSupport", dependencies: ["KronosConvert", "KronosCheckpoint"],
            path: "Tests/KronosTestSupport"),
        .testTarget(name: "KronosQuantTests", dependencies: ["KronosQuant", "KronosWideQuant", "CKronosHints"]),
        .testTarget(
            name: "KronosEvalTests",
            dependencies: ["KronosEval", "Kronos", "KronosConvert", "KronosCheckpoint", "KronosTestSupport"]),
        .testTarget(name: "KronosBundleTests", dependencies: ["KronosBundle"]),
        .testTarget(name: "KronosCheckpointTests", dependencies: ["KronosCheckpoint", "KronosTestSupport"]),
        .testTarget(
            name: "KronosConvertTests",
            dependencies: [
                "KronosConvert", "KronosCalibrate", "KronosCheckpoint", "KronosBundle", "KronosTestSupport",
            ]),
        .testTarget(
            name: "KronosVerifyTests",
            dependencies: [
                "KronosVerify", "Kronos", "KronosWideEngine", "KronosConvert", "KronosCheckpoint", "KronosTestSupport",
            ]),
        .testTarget(
            name: "KronosTests",
            dependencies: [
                "Kronos", "KronosWideEngine", "KronosEngineBaseline", "KronosEngineTypes", "KronosConvert",
                "KronosCheckpoint", "KronosTestSupport",
            ]),
        .testTarget(
            name: "KronosEngineTests",
            dependencies: [
                "KronosWideEngine", "Kronos", "KronosIO", "KronosCheckpoint", "KronosConvert", "KronosTestSupport",
            ]),
        // The same engine tests against the baseline build
        // (Tests/KronosEngineBaselineTests links to KronosEngineTests).
        .testTarget(
            name: "KronosEngineBaselineTests",
            dependencies: [
                "KronosEngineBaseline", "Kronos", "KronosIO", "KronosCheckpoint", "KronosConvert", "KronosTestSupport",
            ],
            swiftSettings: [.define("KRONOS_ENGINE_BASELINE")]),
    ],
    swiftLanguageModes: [.v6]
)
