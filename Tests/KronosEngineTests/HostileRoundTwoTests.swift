// Runs in KronosEngineTests only: it tests the command line or the bundle reader, not the engine build.
#if !KRONOS_ENGINE_BASELINE
    // Hostile input, round two: crafted golden cases, bundles, options, timestamps and special files.
    // Every case has its expected exit status and message, runs the built binary with a time bound,
    // and none may crash (a signal), hang or pass garbage.
    import Foundation
    import KronosIO
    import KronosBundle
    import KronosCheckpoint
    import KronosQuant
    #if KRONOS_ENGINE_BASELINE
        import KronosEngineBaseline
    #else
        import KronosWideEngine
    #endif
    import KronosTestSupport
    import Testing
    #if canImport(Glibc)
        import Glibc
    #endif

    /// Runs `argv` under `timeout -s KILL seconds`, reading both output streams at once (a full stderr
    /// pipe cannot stall the tool). A kill by the timeout is status -1, a failure of the case.
    func runUnderTimeout(_ argv: [String], seconds: Int) throws -> ToolResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        p.arguments = ["-s", "KILL", "\(seconds)"] + argv
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        let o = LockedBox<Data>(Data())
        let reader = Thread { o.set(out.fileHandleForReading.readDataToEndOfFile()) }
        reader.start()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        while !reader.isFinished { usleep(1000) }
        let status = p.terminationStatus == 137 ? -1 : p.terminationStatus
        return ToolResult(
            status: status, stdout: String(decoding: o.get(), as: UTF8.self), stderr: String(decoding: e, as: UTF8.self)
        )
    }

    /// Runs a built tool with a time bound (seconds) and an address-space limit (KiB, default 4 GB), through
    /// /bin/sh so the limit applies to the tool alone.
    func runBounded(
        _ tool: String, _ args: [String], seconds: Int = 60, memoryKiB: Int? = 4_000_000, stdin: String? = nil
    ) throws -> ToolResult {
        let path = productsDirectory(containing: tool).appendingPathComponent(tool).path
        let quoted = ([path] + args).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(
            separator: " ")
        let limit = memoryKiB.map { "ulimit -v \($0); " } ?? ""
        return try runUnderTimeout(
            ["/bin/sh", "-c", limit + "exec " + quoted + (stdin.map { " < '\($0)'" } ?? " < /dev/null")],
            seconds: seconds)
    }

    /// Writes a safetensors file of raw tensors (name, dtype, shape, bytes).
    func writeSafetensors(_ tensors: [(String, SafetensorsDType, [Int], [UInt8])], to path: String) throws {
        let bytes = SafetensorsWriter.encode(
            tensors.map { (name: $0.0, shape: $0.2, payload: .raw(dtype: $0.1.rawValue, bytes: $0.3)) })
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw CocoaError(.fileWriteUnknown)
        }
    }

    /// A copy of golden/tiny's synth_a case with its tensors or settings edited.
    struct CraftedCase {
        static let source = goldenDirectory + "/tiny/cases"
        let dir: String

        init(
            json: String? = nil, edit: (inout [String: (SafetensorsDType, [Int], [UInt8])]) -> Void = { _ in },
            csv: String? = nil
        ) throws {
            dir = temporaryDirectory("case")
            let f = try SafetensorsFile(path: Self.source + "/synth_a.safetensors")
            var tensors = [String: (SafetensorsDType, [Int], [UInt8])]()
            for t in f.tensors { tensors[t.name] = (t.dtype, t.shape, [UInt8](t.data)) }
            edit(&tensors)
            try writeSafetensors(
                tensors.map { ($0.key, $0.value.0, $0.value.1, $0.value.2) }, to: dir + "/synth_a.safetensors")
            let settings = try json ?? String(contentsOfFile: Self.source + "/synth_a.json", encoding: .utf8)
            try settings.write(toFile: dir + "/synth_a.json", atomically: true, encoding: .utf8)
            let input = try csv ?? String(contentsOfFile: Self.source + "/synth_a_input.csv", encoding: .utf8)
            try input.write(toFile: dir + "/synth_a_input.csv", atomically: true, encoding: .utf8)
        }
        var path: String { dir + "/synth_a.json" }

        static func setInt64(_ name: String, _ index: Int, _ value: Int64) -> (
            inout [String: (SafetensorsDType, [Int], [UInt8])]
        ) -> Void {
            { t in
                var b = t[name]!.2;
                withUnsafeBytes(of: value.littleEndian) { for k in 0..<8 { b[index * 8 + k] = $0[k] } }; t[name]!.2 = b
            }
        }
        static func setFloat(_ name: String, _ index: Int, _ value: Float) -> (
            inout [String: (SafetensorsDType, [Int], [UInt8])]
        ) -> Void {
            { t in
                var b = t[name]!.2;
                withUnsafeBytes(of: value.bitPattern.littleEndian) { for k in 0..<4 { b[index * 4 + k] = $0[k] } };
                t[name]!.2 = b
            }
        }
        static func drop(_ name: String) -> (inout [String: (SafetensorsDType, [Int], [UInt8])]) -> Void {
            { t in t[name] = nil }
        }
        static func truncate(_ name: String, by bytes: Int) -> (inout [String: (SafetensorsDType, [Int], [UInt8])]) ->
            Void
        {
            { t in
                var (d, s, b) = t[name]!; b.removeLast(bytes); s = [b.count / d.size]; t[name] = (d, s, b)
            }
        }
    }

    /// A tiny q8 bundle re-encoded with `mutate` applied to the named tensor's raw bytes (checksums valid).
    func rewrittenBundle(_ tensor: String, _ mutate: (inout [UInt8]) -> Void) throws -> String {
        let source = try tinyBundle()
        let reader = try BundleReader(path: source)
        let all = try reader.loadAll()
        let out = temporaryDirectory("rewritten") + "/r.kq"
        let w = try BundleWriter(destination: out, force: false)
        for r in reader.manifest.tensors {
            let key = "\(r.part.rawValue)/\(r.name)"
            var bytes = [UInt8](UnsafeRawBufferPointer(all[key]!.buffer.bytes))
            if key == tensor { mutate(&bytes) }
            let frame = try bytes.withUnsafeBytes { try Zstd.compress($0, level: 3) }
            try w.append(
                name: r.name, part: r.part, type: r.type, shape: r.shape, frame: frame, rawSize: bytes.count, error: nil
            )
        }
        try w.finish(reader.manifest)
        return out
    }

    @Suite struct HostileRoundTwoTests {
        // MARK: golden case reader (kronos-run verify)

        static let caseCases: [(String, @Sendable () throws -> CraftedCase, String)] = [
            (
                "context id 2^40", { try CraftedCase(edit: CraftedCase.setInt64("context_s1", 0, 1 << 40)) },
                "context_s1): id 0 is 1099511627776, expected 0..<"
            ),
            (
                "negative context s2 id", { try CraftedCase(edit: CraftedCase.setInt64("context_s2", 3, -1)) },
                "context_s2): id 3 is -1, expected 0..<"
            ),
            (
                "generated id beyond the vocabulary",
                { try CraftedCase(edit: CraftedCase.setInt64("gen_s1", 1, 1 << 20)) }, "gen_s1): id 1 is 1048576"
            ),
            (
                "generated s2 id beyond the vocabulary",
                { try CraftedCase(edit: CraftedCase.setInt64("gen_s2", 0, Int64.max)) },
                "gen_s2): id 0 is 9223372036854775807"
            ),
            (
                "time stamp 1e9", { try CraftedCase(edit: CraftedCase.setFloat("x_stamp", 1, 1e9)) },
                "x_stamp): row 0 hour is 1e+09, expected an integer in 0...23"
            ),
            (
                "NaN time stamp", { try CraftedCase(edit: CraftedCase.setFloat("x_stamp", 0, .nan)) },
                "x_stamp): value 0 is nan, expected a finite number"
            ),
            (
                "future minute 60", { try CraftedCase(edit: CraftedCase.setFloat("y_stamp", 0, 60)) },
                "y_stamp): row 0 minute is 60.0, expected an integer in 0...59"
            ),
            (
                "fractional weekday", { try CraftedCase(edit: CraftedCase.setFloat("x_stamp", 2, 2.5)) },
                "x_stamp): row 0 weekday is 2.5"
            ),
            (
                "NaN golden logit", { try CraftedCase(edit: CraftedCase.setFloat("step_s1_logits", 5, .nan)) },
                "step_s1_logits): value 5 is nan"
            ),
            (
                "infinite std", { try CraftedCase(edit: CraftedCase.setFloat("std", 3, .infinity)) },
                "std): value 3 is inf"
            ),
            (
                "logits of another vocabulary",
                { try CraftedCase(edit: CraftedCase.truncate("step_s2_logits", by: 4 * 12)) },
                "step_s2_logits): expected"
            ),
            ("x_norm short", { try CraftedCase(edit: CraftedCase.truncate("x_norm", by: 24)) }, "x_norm): expected"),
            (
                "context recon short", { try CraftedCase(edit: CraftedCase.truncate("context_recon", by: 4)) },
                "context_recon): expected"
            ),
            (
                "context_s2 shorter than context_s1",
                { try CraftedCase(edit: CraftedCase.truncate("context_s2", by: 8)) }, "context_s2): expected"
            ),
            (
                "missing forecast tensor", { try CraftedCase(edit: CraftedCase.drop("forecast")) },
                "missing tensor forecast"
            ),
            (
                "gen_s1 as floats",
                {
                    try CraftedCase(edit: { t in
                        let (_, s, b) = t["gen_s1"]!; t["gen_s1"] = (.f32, [s[0] * 2], b)
                    })
                }, "missing int64 tensor gen_s1"
            ),
            (
                "pred_len 0", { try CraftedCase(json: "{\"pred_len\": 0, \"max_context\": 64}") },
                "(column pred_len): expected an integer in 1...1048576, found 0"
            ),
            (
                "pred_len 1e12", { try CraftedCase(json: "{\"pred_len\": 1000000000000, \"max_context\": 64}") },
                "(column pred_len): expected an integer in 1...1048576"
            ),
            (
                "pred_len 2.5", { try CraftedCase(json: "{\"pred_len\": 2.5, \"max_context\": 64}") },
                "(column pred_len): expected an integer"
            ),
            (
                "max_context 0", { try CraftedCase(json: "{\"pred_len\": 12, \"max_context\": 0}") },
                "(column max_context): expected an integer in 1...1048576, found 0"
            ),
            (
                "pred_len beyond max_context", { try CraftedCase(json: "{\"pred_len\": 12, \"max_context\": 8}") },
                "(column pred_len): 12 exceeds max_context 8"
            ),
            (
                "pred_len as text", { try CraftedCase(json: "{\"pred_len\": \"12\", \"max_context\": 64}") },
                "expected a case object with integer pred_len and max_context"
            ),
            ("settings not an object", { try CraftedCase(json: "[1, 2]") }, "expected a case object"),
            (
                "pred_len disagreeing with the tensors",
                { try CraftedCase(json: "{\"pred_len\": 11, \"max_context\": 64}") },
                "gen_s1): expected 11 ids, found 12"
            ),
            (
                "input rows disagreeing",
                {
                    try CraftedCase(
                        csv:
                            "timestamps,open,high,low,close\n2024-01-01 00:00:00,1,2,0.5,1\n2024-01-01 "
                            + "04:00:00,1,2,0.5,1\n"
                    )
                }, "has 2 rows, the case's context has"
            ),
        ]

        @Test(arguments: caseCases.indices)
        func craftedGoldenCaseIsRefused(index: Int) throws {
            let (name, make, expected) = Self.caseCases[index]
            let c = try make()
            let r = try runBounded(
                "kronos-run", ["verify", try tinyBundle(), "--golden", c.path, "--no-ensemble"], seconds: 60)
            #expect(r.status == 1, "\(name): status \(r.status) \(r.stderr)")
            #expect(r.stderr.contains(expected), "\(name): \(r.stderr)")
        }

        // MARK: bundles that pass every checksum

        @Test func nonFiniteWeightsAreRefusedAtLoad() throws {
            // A q8_0 block scale set to NaN (f16 0x7E00), an f32 norm weight set to +Inf.
            let scale = try rewrittenBundle("predictor/transformer.0.self_attn.q_proj.weight") { b in
                b[0] = 0x00; b[1] = 0x7E
            }
            let r = try runBounded("kronos-run", [scale, "--input", sample, "--pred-len", "2"])
            #expect(
                r.status == 1
                    && r.stderr.contains(
                        "transformer.0.self_attn.q_proj.weight: block 0 has a non-finite scale or minimum"),
                "\(r.stderr)")
            let norm = try rewrittenBundle("predictor/norm.weight") { b in
                withUnsafeBytes(of: Float.infinity.bitPattern) { for k in 0..<4 { b[8 + k] = $0[k] } }
            }
            let n = try runBounded("kronos-run", [norm, "--input", sample, "--pred-len", "2"])
            #expect(n.status == 1 && n.stderr.contains("predictor/norm.weight: element 2 is not finite"), "\(n.stderr)")
            // verify refuses it too (it loads the same way).
            let v = try runBounded(
                "kronos-run", ["verify", scale, "--golden", goldenDirectory + "/tiny", "--no-ensemble"])
            #expect(v.status == 1 && v.stderr.contains("non-finite scale"), "\(v.stderr)")
        }

        @Test func hugeClaimedContextCostsOnlyWhatIsUsed() throws {
            // max_context 1048576 (the converter's bound): rotary tables and key / value caches are sized
            // to the rows used, so the forecast's peak memory is that of the same model with a 64-row
            // window (tables of a million positions, or a cache of a million rows, would add 32-256 MB).
            let dir = temporaryDirectory("huge-context")
            for (name, context) in [("h.kq", "1048576"), ("n.kq", "2048")] {
                let c = try runTool(
                    "kronos-convert",
                    [
                        "--tokenizer", goldenDirectory + "/tiny/tokenizer", "--predictor",
                        goldenDirectory + "/tiny/predictor",
                        "--quantize", "q8", "--max-context", context, "-o", dir + "/" + name,
                    ])
                #expect(c.status == 0, "\(c.stderr)")
            }
            func peakKiB(_ bundle: String) throws -> Int {
                // The child's own peak resident set, from the kernel (getrusage of the one child python waited for).
                let script =
                    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
                    + "stderr=subprocess.DEVNULL); "
                    + "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
                let tool = productsDirectory(containing: "kronos-run").appendingPathComponent("kronos-run").path
                let r = try runUnderTimeout(
                    [
                        "/usr/bin/env", "python3", "-c", script, tool, bundle, "--input", sample, "--pred-len", "4",
                        "--lookback", "100", "-q",
                    ], seconds: 120)
                let parts = r.stdout.split(separator: " ").map {
                    Int($0.trimmingCharacters(in: .whitespacesAndNewlines))!
                }
                #expect(parts[0] == 0, "\(bundle): exit \(parts[0])")
                return parts[1]
            }
            let huge = try peakKiB(dir + "/h.kq"), normal = try peakKiB(dir + "/n.kq")
            #expect(
                huge <= normal + 8 * 1024, "peak RSS \(huge) KiB with max_context 1048576 vs \(normal) KiB with 2048")
        }

        // MARK: numbers from options and files

        static let optionCases: [([String], Int32, String)] = [
            (["--threads", "0"], 1, "--threads must be in 1..."),
            (["--threads", "5000"], 1, "--threads must be in 1..."),
            (["--pred-len", "9999999999"], 1, "--pred-len must be in 1...1048576, found 9999999999"),
            (["--max-context", "0"], 1, "--max-context must be in 1...1048576, found 0"),
            (["--max-context", "99999999999"], 1, "--max-context must be in 1...1048576"),
            (["--lookback", "9223372036854775807"], 1, "--lookback must be in 2...2147483647"),
            (["--samples", "5000"], 1, "--samples must be in 1...4096, found 5000"),
            (
                ["--samples", "4096", "--input", "$SAMPLE"], 1,
                "2 inputs × --samples 4096 = 8192 sequences; at most 4096"
            ),
            (["--interval", "99999999999999w"], 1, "--interval \"99999999999999w\": expected a positive number"),
            (["--interval", "9223372036854775807s"], 1, "pass the year 9999"),
            (["--top-k=-1"], 1, "--top-k must be 0 (off) or positive, found -1"),
            (["--temperature", "nan"], 1, "--temperature must be greater than 0"),
            (["--top-p", "inf"], 1, "--top-p must be in (0, 1]"),
            (["--quantiles", "0,0.5"], 2, "--quantiles \"0,0.5\": expected levels in (0, 1)"),
            (["--quantiles", "nan"], 2, "expected levels in (0, 1)"),
            (["--seed", "18446744073709551616"], 2, "--seed"),
            (["--pred-len=-9223372036854775808"], 1, "--pred-len must be in 1...1048576, found -9223372036854775808"),
        ]

        @Test(arguments: optionCases.indices)
        func extremeOptionIsRefused(index: Int) throws {
            let (extra, status, expected) = Self.optionCases[index]
            var args = [try tinyBundle(), "--input", sample]
            args += extra.contains { $0.hasPrefix("--pred-len") } ? [] : ["--pred-len", "4"]
            args += extra.map { $0 == "$SAMPLE" ? sample : $0 }
            let r = try runBounded("kronos-run", args, seconds: 60)
            #expect(r.status == status && r.stderr.contains(expected), "\(extra): \(r.status) \(r.stderr)")
        }

        static let timestampCases: [(String, String)] = [
            (
                "timestamps,open,high,low,close\n99999999999999999999,1,2,0.5,1\n99999999999999999999,1,2,0.5,1\n",
                "cannot read timestamp \"99999999999999999999\""
            ),
            (
                "timestamps,open,high,low,close\n9999-12-31 16:00:00,1,2,0.5,1\n9999-12-31 20:00:00,1,2,0.5,1\n",
                "pass the year 9999"
            ),
            (
                "timestamps,open,high,low,close\n9223372036000000000,1,2,0.5,1\n9223372036854775807,1,2,0.5,1\n",
                "pass the year 9999"
            ),
            (
                "timestamps,open,high,low,close\n0000-01-01 00:00:00,1,2,0.5,1\n9999-12-31 00:00:00,1,2,0.5,1\n",
                "pass the year 9999"
            ),
            (
                "timestamps,open,high,low,close,volume\n2024-01-01,1,2,0.5,1,1e38\n"
                    + "2024-01-02,1e10,2e10,0.5,1e10,1e38\n",
                "the estimated amount (volume × mean price) is beyond the range"
            ),
            (
                "timestamps,open,high,low,close\n2024-01-01,1,2,0.5,1\n2024-01-02,1,2,0.5,-1e39\n",
                "-1e39 is beyond the range of the 32-bit floats"
            ),
            (
                "timestamps,open,high,low,close\n2024-01-01,1,2,0.5,1\n2024-01-02,1,2,0.5,0x1p3\n",
                "\"0x1p3\" is not a number"
            ),
        ]

        @Test(arguments: timestampCases.indices)
        func extremeFileNumberIsRefused(index: Int) throws {
            let (text, expected) = Self.timestampCases[index]
            let r = try runBounded(
                "kronos-run", [try tinyBundle(), "--input", csvFile(text), "--pred-len", "4"], seconds: 60)
            #expect(r.status == 1 && r.stderr.contains(expected), "\(r.status) \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1)
        }

        // MARK: special files as inputs

        @Test func specialFilesAreRefusedWithoutBlocking() throws {
            let dir = temporaryDirectory("special")
            #expect(mkfifo(dir + "/fifo", 0o644) == 0)
            let cases: [([String], String)] = [
                (
                    [try tinyBundle(), "--input", dir + "/fifo", "--pred-len", "2"],
                    "\(dir)/fifo: is a FIFO, not a regular file"
                ),
                (
                    [try tinyBundle(), "--input", "/dev/zero", "--pred-len", "2"],
                    "/dev/zero: is a character device, not a regular file"
                ),
                ([try tinyBundle(), "--input", dir, "--pred-len", "2"], "is a directory"),
                ([dir + "/fifo", "--input", sample, "--pred-len", "2"], "not a regular file"),
                (
                    [try tinyBundle(), "--input", sample, "--pred-len", "2", "--future-timestamps", dir + "/fifo"],
                    "is a FIFO"
                ),
                (["verify", try tinyBundle(), "--golden", dir + "/fifo"], "expected a case object"),
            ]
            for (args, expected) in cases {
                let r = try runBounded("kronos-run", args, seconds: 20)
                #expect(r.status == 1 && r.stderr.contains(expected), "\(args): \(r.status) \(r.stderr)")
            }
            // A checkpoint whose config.json is a FIFO.
            try FileManager.default.createDirectory(atPath: dir + "/tok", withIntermediateDirectories: true)
            #expect(mkfifo(dir + "/tok/config.json", 0o644) == 0)
            let c = try runBounded(
                "kronos-convert",
                [
                    "--tokenizer", dir + "/tok", "--predictor", goldenDirectory + "/tiny/predictor",
                    "-o", dir + "/x.kq",
                ], seconds: 20)
            #expect(c.status == 1 && c.stderr.contains("is a FIFO"), "\(c.stderr)")
            // Standard input is read when asked for with -.
            let stdinCSV = csvFile(try String(contentsOfFile: sample, encoding: .utf8))
            let s = try runBounded(
                "kronos-run", [try tinyBundle(), "--input", "-", "--pred-len", "2", "--lookback", "60", "-q"],
                seconds: 20, stdin: stdinCSV)
            #expect(s.status == 0 && s.stdout.hasPrefix("timestamps,"), "\(s.stderr)")
        }

        // MARK: terminal safety

        @Test func controlCharactersFromFilesAreEscaped() throws {
            let text =
                "timestamps,open,\u{1B}[2J\u{1B}]0;owned\u{07},low,close\n2024-01-01 00:00:00,1,2,0.5,1\n2024-01-01 "
                + "04:00:00,1,2,0.5,1\n"
            let r = try runBounded("kronos-run", [try tinyBundle(), "--input", csvFile(text), "--pred-len", "2"])
            #expect(r.status == 1 && r.stderr.contains("\\e[2J\\e]0;owned\\u{7}"), "\(r.stderr)")
            #expect(!r.stderr.utf8.contains(0x1B) && !r.stderr.utf8.contains(0x07))
        }

        // MARK: writers

        @Test func liveWritersTemporaryFilesAreKeptDeadOnesRemoved() throws {
            let dir = temporaryDirectory("stale")
            let live = dir + "/.t.kq.tmp-1-1", dead = dir + "/.t.kq.tmp-999999-2"
            FileManager.default.createFile(atPath: live, contents: Data([1]))
            FileManager.default.createFile(atPath: dead, contents: Data([2]))
            let fd = open(live, O_RDONLY)
            #expect(flock(fd, LOCK_EX) == 0)  // a writer alive (its pid in the name is not what counts)
            defer { close(fd) }
            let c = try runTool(
                "kronos-convert",
                [
                    "--tokenizer", goldenDirectory + "/tiny/tokenizer", "--predictor",
                    goldenDirectory + "/tiny/predictor",
                    "--quantize", "q8", "--max-context", "64", "-o", dir + "/t.kq",
                ])
            #expect(c.status == 0, "\(c.stderr)")
            #expect(FileManager.default.fileExists(atPath: live) && !FileManager.default.fileExists(atPath: dead))
        }

        @Test(.enabled(if: sharedReferenceAvailable, Comment(rawValue: sharedReferenceMissing)))
        func aTargetCreatedDuringConversionIsNotReplaced() throws {
            // Without --force, a file another process creates at the target while the conversion runs
            // survives it (the bundle is linked into place, which refuses an existing name).
            let dir = temporaryDirectory("race")
            let target = dir + "/m.kq"
            let p = Process()
            p.executableURL = productsDirectory(containing: "kronos-convert").appendingPathComponent("kronos-convert")
            p.arguments = [
                "--tokenizer", sharedReferenceDirectory + "/mini/tokenizer", "--predictor",
                sharedReferenceDirectory + "/mini/predictor",
                "--quantize", "q4", "--q4-search-steps", "16", "--threads", "1", "-o", target,
            ]
            let err = Pipe()
            p.standardOutput = FileHandle.nullDevice; p.standardError = err
            try p.run()
            // Once the conversion has started writing, another writer puts its file at the target.
            let deadline = Date().addingTimeInterval(30)
            var created = false
            while Date() < deadline, p.isRunning {
                if (try? FileManager.default.contentsOfDirectory(atPath: dir))?.contains(where: { $0.contains(".tmp-") }
                ) == true {
                    created = FileManager.default.createFile(atPath: target, contents: Data("someone else's".utf8))
                    break
                }
                usleep(500)
            }
            let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            try #require(created, "the conversion ended before the other file could be created")
            #expect(
                p.terminationStatus == 1 && e.contains("already exists (use --force to overwrite it)"),
                "\(p.terminationStatus) \(e)")
            #expect(try String(contentsOfFile: target, encoding: .utf8) == "someone else's")
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }.isEmpty)
        }

        @Test func fileSizeLimitLeavesNoTemporaryFile() throws {
            let dir = temporaryDirectory("fsize")
            let args = [
                "--tokenizer", goldenDirectory + "/tiny/tokenizer", "--predictor", goldenDirectory + "/tiny/predictor",
                "--quantize", "f32", "--max-context", "64", "-o", dir + "/t.kq",
            ]
            let path = productsDirectory(containing: "kronos-convert").appendingPathComponent("kronos-convert").path
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", "ulimit -f 40; exec '\(path)' " + args.map { "'\($0)'" }.joined(separator: " ")]
            let err = Pipe()
            p.standardError = err; p.standardOutput = FileHandle.nullDevice
            try p.run()
            let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            #expect(p.terminationStatus == 1 && e.contains("File too large"), "\(p.terminationStatus) \(e)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
        }

        // MARK: conversion

        @Test func errorReportsAreBounded() throws {
            // A config claiming 200 layers: 2600+ missing tensors, reported as the first 64 and a count.
            let dir = temporaryDirectory("many-problems")
            try FileManager.default.copyItem(atPath: goldenDirectory + "/tiny/predictor", toPath: dir + "/pred")
            let config = try String(contentsOfFile: dir + "/pred/config.json", encoding: .utf8).replacingOccurrences(
                of: "\"n_layers\": 2", with: "\"n_layers\": 200")
            try FileManager.default.removeItem(atPath: dir + "/pred/config.json")
            try config.write(toFile: dir + "/pred/config.json", atomically: true, encoding: .utf8)
            let r = try runBounded(
                "kronos-convert",
                ["--tokenizer", goldenDirectory + "/tiny/tokenizer", "--predictor", dir + "/pred", "-o", dir + "/x.kq"])
            #expect(
                r.status == 1 && r.stderr.contains("problems)") && r.stderr.contains("... and "),
                "\(r.stderr.prefix(500))")
            #expect(r.stderr.split(separator: "\n").count <= 66, "\(r.stderr.split(separator: "\n").count) lines")
        }

        @Test func valuesBeyondF16AreKeptInF32WithANote() throws {
            let dir = temporaryDirectory("f16-overflow")
            let tiny = goldenDirectory + "/tiny"
            try FileManager.default.copyItem(atPath: tiny + "/tokenizer", toPath: dir + "/tok")
            try FileManager.default.copyItem(atPath: tiny + "/predictor", toPath: dir + "/pred")
            let f = try SafetensorsFile(path: dir + "/pred/model.safetensors")
            var tensors = f.tensors.map { ($0.name, $0.dtype, $0.shape, [UInt8]($0.data)) }
            let i = tensors.firstIndex { $0.0.hasSuffix("q_proj.weight") }!
            let name = tensors[i].0
            withUnsafeBytes(of: Float(1e6).bitPattern) { for k in 0..<4 { tensors[i].3[k] = $0[k] } }
            try FileManager.default.removeItem(atPath: dir + "/pred/model.safetensors")
            try writeSafetensors(tensors, to: dir + "/pred/model.safetensors")
            let r = try runTool(
                "kronos-convert",
                [
                    "--tokenizer", dir + "/tok", "--predictor", dir + "/pred", "--quantize", "f16", "--max-context",
                    "64",
                    "-o", dir + "/x.kq",
                ])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(
                (r.stdout + r.stderr).contains(
                    "predictor/\(name): value 0 exceeds the f16 range (±65504); stored as f32"), "\(r.stdout)")
            let reader = try BundleReader(path: dir + "/x.kq")
            #expect(reader.manifest.tensors.first { $0.name == name && $0.part == .predictor }!.type == .f32)
            #expect(reader.manifest.tensors.filter { $0.type == .f16 }.count > 5)
        }
    }
#endif
