// libFuzzer target: the golden case reader of `kronos-run verify`. The first byte chooses which of the
// case's three files the rest of the input replaces (0: the tensors, 1: the settings JSON, 2: the
// input CSV); the other two are golden/tiny's synth_a case (run from the repository root), read once.
import Foundation
import KronosVerify
#if canImport(Glibc)
    import Glibc
#endif

let files = ["synth_a.safetensors", "synth_a.json", "synth_a_input.csv"]
nonisolated(unsafe) var seeds: [[UInt8]] = []
nonisolated(unsafe) var workDirectory = ""
nonisolated(unsafe) var lastChosen = -1

func put(_ bytes: UnsafeRawBufferPointer, _ name: String) {
    let fd = open(workDirectory + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { return }
    if let base = bytes.baseAddress { _ = write(fd, base, bytes.count) }
    close(fd)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    if seeds.isEmpty {
        seeds = files.map { [UInt8](FileManager.default.contents(atPath: "golden/tiny/cases/" + $0) ?? Data()) }
        workDirectory = NSTemporaryDirectory() + "kronos-fuzzcase-\(getpid())"
        try? FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
        for (k, f) in files.enumerated() { seeds[k].withUnsafeBytes { put($0, f) } }
    }
    let chosen = Int(data[0]) % 3
    // Restore the file the previous input replaced, then write this one's.
    if lastChosen >= 0, lastChosen != chosen { seeds[lastChosen].withUnsafeBytes { put($0, files[lastChosen]) } }
    put(UnsafeRawBufferPointer(start: data + 1, count: size - 1), files[chosen])
    lastChosen = chosen
    _ = try? Verify.checkCase(directory: workDirectory, name: "synth_a", s1Vocabulary: 64, s2Vocabulary: 64)
    return 0
}
