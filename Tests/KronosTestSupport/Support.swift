// Helpers shared by the test targets: temporary directories and running the built executables.
import Foundation
import KronosCheckpoint
import KronosConvert

/// The repository's root (three levels above this file).
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
/// `../shared/reference` beside the repository.
public let sharedReferenceDirectory = repositoryRoot.deletingLastPathComponent().appendingPathComponent(
    "shared/reference"
).path
/// Whether `../shared/reference` is there: tests that need it are skipped, with this reason, when not
/// (`.enabled(if: sharedReferenceAvailable, sharedReferenceMissing)`).
public let sharedReferenceAvailable = FileManager.default.fileExists(atPath: sharedReferenceDirectory + "/mini/cases")
public let sharedReferenceMissing =
    "needs ../shared/reference (the Kronos-mini reference model and cases) beside the repository"
/// The tiny model embedded in the repository (golden/tiny: the same checkpoint as ../shared/reference/tiny).
public let goldenTinyDirectory = repositoryRoot.appendingPathComponent("golden/tiny").path

public func temporaryDirectory(_ tag: String) -> String {
    let p = NSTemporaryDirectory() + "kronos-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try! FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
}

/// The directory holding the built executable `tool` (next to the test bundle, else .build/<config>).
public func productsDirectory(containing tool: String) -> URL {
    var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    while url.path != "/" {
        if FileManager.default.isExecutableFile(atPath: url.appendingPathComponent(tool).path) { return url }
        url = url.deletingLastPathComponent()
    }
    for config in ["release", "debug"] {
        let u = repositoryRoot.appendingPathComponent(".build/\(config)")
        if FileManager.default.isExecutableFile(atPath: u.appendingPathComponent(tool).path) { return u }
    }
    fatalError("\(tool) is not built")
}

public struct ToolResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
    public init(status: Int32, stdout: String, stderr: String) {
        self.status = status; self.stdout = stdout; self.stderr = stderr
    }
}

/// Runs a built executable (with `environment` added to this process's) and collects its exit status
/// and output.
public func runTool(_ tool: String, _ args: [String], environment: [String: String] = [:]) throws -> ToolResult {
    let p = Process()
    p.executableURL = productsDirectory(containing: tool).appendingPathComponent(tool)
    p.arguments = args
    if !environment.isEmpty {
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out; p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return ToolResult(
        status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
        stderr: String(decoding: e, as: UTF8.self))
}

/// The golden tiny model converted to q8 with a 64-row window, once per test process (the façade and
/// backtest tests share it): the bundle's path.
public let tinyQ8Bundle: URL = {
    let dir = temporaryDirectory("tiny-q8")
    var options = ConversionOptions(output: dir + "/tiny-q8.kq")
    options.quantize = .q8
    options.maxContext = 64
    let checkpoint = try! Checkpoint(
        tokenizerDirectory: goldenTinyDirectory + "/tokenizer", predictorDirectory: goldenTinyDirectory + "/predictor")
    _ = try! convert(checkpoint, options: options)
    return URL(fileURLWithPath: options.output)
}()
