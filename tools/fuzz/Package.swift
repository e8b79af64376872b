// swift-tools-version:6.0
// libFuzzer targets for the parsers of untrusted input. Built and run by tools/fuzz.sh with
// `swift build --sanitize fuzzer --sanitize address -Xswiftc -sanitize=fuzzer`; not part of the main package's build.
import PackageDescription

let fuzzSettings: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

let package = Package(
    name: "KronosFuzz",
    dependencies: [.package(name: "Kronos", path: "../..")],
    targets: [
        .executableTarget(
            name: "FuzzSafetensors", dependencies: [.product(name: "KronosConvert", package: "Kronos")],
            swiftSettings: fuzzSettings),
        .executableTarget(
            name: "FuzzBundle", dependencies: [.product(name: "KronosWideEngine", package: "Kronos")],
            swiftSettings: fuzzSettings),
        .executableTarget(
            name: "FuzzCSV",
            dependencies: [
                .product(name: "Kronos", package: "Kronos"), .product(name: "KronosWideEngine", package: "Kronos"),
            ],
            swiftSettings: fuzzSettings),
        .executableTarget(
            name: "FuzzCase", dependencies: [.product(name: "KronosVerify", package: "Kronos")],
            swiftSettings: fuzzSettings),
        .executableTarget(
            name: "FuzzOptions",
            dependencies: [.product(name: "Kronos", package: "Kronos"), .product(name: "KronosIO", package: "Kronos")],
            swiftSettings: fuzzSettings),
    ],
    swiftLanguageModes: [.v6]
)
