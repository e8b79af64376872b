// kronos-convert --calibrate / --imatrix / --imatrix-out, through the built binary.
import Foundation
import KronosBundle
import KronosCheckpoint
import KronosTestSupport
import Testing

/// Rows 400-799 of the sample series (the tiny golden cases read rows 100-159 and 300-395).
func calibrationCSV(_ dir: String, rows: ClosedRange<Int> = 400...799, name: String = "cal.csv") throws -> String {
    let lines = try String(
        contentsOfFile: repositoryRoot.appendingPathComponent("golden/sample_4h.csv").path, encoding: .utf8
    )
    .split(separator: "\n", omittingEmptySubsequences: false)
    let path = dir + "/" + name
    try ([lines[0]] + lines[(rows.lowerBound + 1)...(rows.upperBound + 1)]).joined(separator: "\n")
        .appending("\n").write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

/// SHA-256 of a file by coreutils (independent of the code under test).
func sha256sum(_ path: String) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    p.arguments = [path]
    let pipe = Pipe()
    p.standardOutput = pipe
    try p.run()
    p.waitUntilExit()
    return String(String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).prefix(64))
}

let tinyCheckpoint = [
    "--tokenizer", goldenTinyDirectory + "/tokenizer", "--predictor", goldenTinyDirectory + "/predictor",
    "--max-context", "64",
]

@Suite(.serialized) struct CalibrationCLITests {
    @Test func calibratedBundleRecordsItsCalibrationAndTheMatrixReproducesIt() throws {
        let dir = temporaryDirectory("calibrate")
        let csv = try calibrationCSV(dir)
        let a = try run(
            "kronos-convert",
            tinyCheckpoint + [
                "--quantize", "q4", "--calibrate", csv, "--calibration-windows", "8", "--imatrix-out",
                dir + "/m.imatrix", "-o", dir + "/a.kq",
            ])
        #expect(a.status == 0, "\(a.stderr)")
        #expect(a.stdout.contains("calibration: 8 windows of 48 + 16 rows"), "\(a.stdout)")
        let bundle = try BundleReader(path: dir + "/a.kq")
        let record = try #require(bundle.manifest.settings.calibration)
        let sha = try sha256sum(csv)
        #expect(record.files == [CalibrationFile(file: "cal.csv", rows: 400, sha256: sha)])
        #expect(record.windows == 8 && record.lookback == 48 && record.steps == 16 && record.imatrixSHA256 == nil)
        // per window a prefill of 48 rows, then 16 teacher-forced steps, the first on the prefill's last row
        #expect(record.rows == 8 * (48 + 16 - 1))

        let inspect = try run("kronos-convert", ["inspect", dir + "/a.kq"])
        #expect(inspect.stdout.contains("calibrated  cal.csv 400 candles sha256 \(sha)"), "\(inspect.stdout)")
        #expect(inspect.stdout.contains("calibration 8 windows of 48 context rows + 16 steps"))

        // Calibration changed the quantized tensors, not the layout.
        let plain = try run("kronos-convert", tinyCheckpoint + ["--quantize", "q4", "-o", dir + "/plain.kq"])
        #expect(plain.status == 0)
        let p = try BundleReader(path: dir + "/plain.kq")
        #expect(p.manifest.settings.calibration == nil)
        #expect(p.manifest.tensors.map(\.type) == bundle.manifest.tensors.map(\.type))
        let changed = zip(p.manifest.tensors, bundle.manifest.tensors).filter { $0.xxh64 != $1.xxh64 }
        #expect(changed.count >= 20, "calibration changed \(changed.count) tensors")
        #expect(changed.allSatisfy { $0.0.type.traits.isQuantized })

        // The saved matrix gives the same bundle, and the record names it.
        let b = try run(
            "kronos-convert",
            tinyCheckpoint + ["--quantize", "q4", "--imatrix", dir + "/m.imatrix", "-o", dir + "/b.kq"])
        #expect(b.status == 0, "\(b.stderr)")
        let again = try BundleReader(path: dir + "/b.kq")
        #expect(again.manifest.tensors.map(\.xxh64) == bundle.manifest.tensors.map(\.xxh64))
        var expected = record
        expected.imatrixSHA256 = try sha256sum(dir + "/m.imatrix")
        #expect(again.manifest.settings.calibration == expected)
    }

    @Test func badImportanceMatricesAreRefusedByName() throws {
        let dir = temporaryDirectory("imatrix-bad")
        func convert(_ matrix: String) throws -> ToolResult {
            try run("kronos-convert", tinyCheckpoint + ["--quantize", "q4", "--imatrix", matrix, "-o", dir + "/x.kq"])
        }
        // not safetensors at all
        try Data("not a matrix".utf8).write(to: URL(fileURLWithPath: dir + "/text.imatrix"))
        var r = try convert(dir + "/text.imatrix")
        #expect(r.status == 1 && r.stderr.contains("--imatrix \(dir)/text.imatrix"), "\(r.stderr)")
        // safetensors, but not an importance matrix
        try Data(SafetensorsWriter.encode([(name: "x", shape: [2, 2], payload: .f32([1, 0, 0, 1]))]))
            .write(to: URL(fileURLWithPath: dir + "/other.safetensors"))
        r = try convert(dir + "/other.safetensors")
        #expect(r.status == 1 && r.stderr.contains("not an importance matrix"), "\(r.stderr)")
        // an importance matrix of another shape: named tensor, expected and found columns
        let record = #"{"files":[],"lookback":48,"rows":1,"steps":16,"windows":1}"#
        let weight = "predictor/transformer.0.self_attn.q_proj.weight"
        func matrix(_ n: Int, _ values: [Float], inputs: String) throws -> String {
            let path = dir + "/m\(n)-\(values.first ?? 0).imatrix"
            try Data(
                SafetensorsWriter.encode(
                    [(name: weight, shape: [n, n], payload: .f32(values))],
                    metadata: [
                        "format": "kronos-imatrix", "version": "1", "calibration": record,
                        "rows": #"{"\#(weight)":10}"#, "inputs": inputs,
                    ])
            ).write(to: URL(fileURLWithPath: path))
            return path
        }
        let identity7 = (0..<49).map { $0 % 8 == 0 ? Float(1) : 0 }
        r = try convert(try matrix(7, identity7, inputs: #"{"\#(weight)":"\#(weight)"}"#))
        #expect(r.status == 1 && r.stderr.contains("\(weight) has 7 input columns"), "\(r.stderr)")
        r = try convert(try matrix(7, identity7, inputs: #"{"predictor/nope.weight":"\#(weight)"}"#))
        #expect(r.status == 1 && r.stderr.contains("predictor/nope.weight is not a matmul weight"), "\(r.stderr)")
        var nan = identity7
        nan[3] = .nan
        r = try convert(try matrix(7, nan, inputs: "{}"))
        #expect(r.status == 1 && r.stderr.contains("element [0, 3] is nan"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/x.kq"))
    }

    @Test func calibrationOptionsAreChecked() throws {
        let dir = temporaryDirectory("calibrate-options")
        let csv = try calibrationCSV(dir)
        let out = ["-o", dir + "/x.kq"]
        for (args, message) in [
            (["--quantize", "q4", "--calibrate", csv, "--imatrix", csv], "--calibrate and --imatrix"),
            (["--quantize", "q4", "--imatrix-out", dir + "/m"], "add --calibrate"),
            (["--quantize", "f16", "--calibrate", csv], "--quantize f16 has none"),
            (["--quantize", "q4", "--calibrate", csv, "--calibration-windows", "0"], "--calibration-windows"),
            (["--quantize", "q4", "--calibrate", csv, "--calibration-lookback", "0"], "--calibration-lookback"),
        ] {
            let r = try run("kronos-convert", tinyCheckpoint + args + out)
            #expect(r.status == 2 && r.stderr.contains(message), "\(args): \(r.status) \(r.stderr)")
        }
        for (args, message) in [
            (["--calibrate", dir + "/missing.csv"], "missing.csv"),
            (
                ["--calibrate", try calibrationCSV(dir, rows: 400...420, name: "short.csv")],
                "21 candles; a calibration window needs at least 32"
            ),
            (["--calibrate", csv, "--calibration-lookback", "60"], "--calibration-lookback must be in 1...48"),
        ] {
            let r = try run("kronos-convert", tinyCheckpoint + ["--quantize", "q4"] + args + out)
            #expect(r.status == 1 && r.stderr.contains(message), "\(args): \(r.status) \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/x.kq"))
        }
    }
}
