// Runs in KronosEngineTests only: it tests the command line or the bundle reader, not the engine build.
#if !KRONOS_ENGINE_BASELINE
    import Foundation
    import KronosIO
    import KronosConvert
    #if KRONOS_ENGINE_BASELINE
        import KronosEngineBaseline
    #else
        import KronosWideEngine
    #endif
    import KronosTestSupport
    import Testing

    func run(_ args: [String]) throws -> ToolResult { try runTool("kronos-run", args) }

    func tinyBundle() throws -> String {
        try BundleCache.shared.bundle(model: goldenDirectory + "/tiny", quantize: .q8, maxContext: 64)
    }

    /// A CSV in a temporary directory.
    func csvFile(_ text: String) -> String {
        let p = temporaryDirectory("csv") + "/in.csv"
        FileManager.default.createFile(atPath: p, contents: Data(text.utf8))
        return p
    }

    let sample = goldenDirectory + "/sample_4h.csv"

    @Suite struct RunCLITests {
        @Test func greedyCSVMatchesTheReferenceForecastFile() throws {
            // The golden tiny case through the CLI: top-k 1, same window as the reference.
            let f32 = try BundleCache.shared.bundle(model: goldenDirectory + "/tiny", quantize: .f32)
            let c = goldenDirectory + "/tiny/cases/synth_a"
            let r = try run([
                f32, "--input", c + "_input.csv", "--pred-len", "12", "--max-context", "64", "--top-k", "1",
            ])
            #expect(r.status == 0, "\(r.stderr)")
            let ours = r.stdout.split(separator: "\n"),
                ref = try String(contentsOfFile: c + "_forecast.csv", encoding: .utf8).split(separator: "\n")
            #expect(ours.count == ref.count && ours[0] == ref[0])
            for (a, b) in zip(ours.dropFirst(), ref.dropFirst()) {
                let x = a.split(separator: ","), y = b.split(separator: ",")
                #expect(x[0] == y[0], "timestamps \(x[0]) vs \(y[0])")
                for k in 1..<7 {
                    let u = Double(x[k])!, v = Double(y[k])!
                    #expect(abs(u - v) <= 1e-4 * max(abs(v), 1e-3), "\(a) vs \(b)")
                }
            }
        }

        @Test func sameSeedSameBytesDifferentSeedsDiffer() throws {
            let b = try tinyBundle()
            let args = [b, "--input", sample, "--pred-len", "8", "--samples", "4", "--top-p", "0.9"]
            let r1 = try run(args + ["--seed", "7", "--format", "json"]),
                r2 = try run(args + ["--seed", "7", "--format", "json"])
            let r3 = try run(args + ["--seed", "8", "--format", "json"])
            #expect(r1.status == 0 && r1.stdout == r2.stdout)
            #expect(r1.stdout != r3.stdout)
            let json = try JSONSerialization.jsonObject(with: Data(r1.stdout.utf8)) as! [String: Any]
            let series = (json["series"] as! [[String: Any]])[0]
            let q = series["quantiles"] as! [String: Any]
            #expect(Set(q.keys) == ["p10", "p50", "p90"])
            let p10 = (q["p10"] as! [[String: Any]])[0]["close"] as! Double,
                p90 = (q["p90"] as! [[String: Any]])[0]["close"] as! Double
            #expect(p10 <= p90)
            #expect((series["forecast"] as! [Any]).count == 8)
        }

        /// The cache mode, activation arithmetic and cache precision a forecast ran with are in its JSON
        /// settings, the defaults resolved (a q8 bundle: int8 activations on an x86-64-v3 processor (AVX-512
        /// VNNI or AVX2 kernels), f32 elsewhere; an f16 cache); a precision that does not exist is a usage
        /// error naming the valid ones.
        @Test func executionChoicesAreReportedAndChecked() throws {
            let args = [try tinyBundle(), "--input", sample, "--pred-len", "4", "--format", "json"]
            let machineDefault = [.vnni, .avx2].contains(Kernels.IntegerKernels.native) ? "int8" : "f32"
            var outputs = [String: String]()
            for (extra, cache, activations, kv) in [
                ([String](), "exact", machineDefault, "f16"),
                (["--activations", machineDefault, "--kv-cache", "f16"], "exact", machineDefault, "f16"),
                (["--activations", "f32", "--kv-cache", "f32"], "exact", "f32", "f32"),
                (["--activations", "int8", "--kv-cache", "f32"], "exact", "int8", "f32"),
                (
                    ["--kv-cache", "f16", "--cache", "approx-slide", "--activations", "int8"], "approx-slide", "int8",
                    "f16"
                ),
            ] {
                let r = try run(args + extra)
                #expect(r.status == 0, "\(r.stderr)")
                let settings =
                    (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any])["settings"]
                    as! [String: Any]
                #expect(settings["cache"] as? String == cache && settings["kv_cache"] as? String == kv, "\(settings)")
                #expect(settings["activations"] as? String == activations, "\(settings)")
                outputs[extra.joined(separator: " ")] = r.stdout
            }
            // The default is the explicit choice it resolves to, forecast for forecast; the choices differ.
            #expect(outputs[""] == outputs["--activations \(machineDefault) --kv-cache f16"])
            #expect(outputs["--activations f32 --kv-cache f32"] != outputs["--activations int8 --kv-cache f32"])
            let bad = try run(args + ["--kv-cache", "f8"])
            #expect(bad.status == 2 && bad.stderr.contains("'f8'") && bad.stderr.contains("'f16'"), "\(bad.stderr)")
            let badActivations = try run(args + ["--activations", "int4"])
            #expect(
                badActivations.status == 2 && badActivations.stderr.contains("'int4'")
                    && badActivations.stderr.contains("'int8'"),
                "\(badActivations.stderr)")
        }

        @Test func batchOfInputsAndChart() throws {
            let b = try tinyBundle()
            let dir = temporaryDirectory("chart")
            let other = dir + "/other.csv"
            try FileManager.default.copyItem(atPath: sample, toPath: other)
            let r = try run([
                b, "--input", sample, "--input", other, "--pred-len", "6", "--samples", "3", "--lookback", "100",
                "--chart", dir + "/charts/", "--output", dir + "/f.csv",
            ])
            // A directory that does not exist is refused before the forecast: nothing is written.
            #expect(
                r.status == 1
                    && r.stderr.contains("--chart \(dir)/charts/sample_4h.svg: directory \(dir)/charts does not exist"),
                "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/f.csv"))
            try FileManager.default.createDirectory(atPath: dir + "/charts", withIntermediateDirectories: false)
            let ok = try run([
                b, "--input", sample, "--input", other, "--pred-len", "6", "--samples", "3", "--lookback", "100",
                "--chart", dir + "/charts", "--output", dir + "/f.csv",
            ])
            #expect(ok.status == 0, "\(ok.stderr)")
            let csv = try String(contentsOfFile: dir + "/f.csv", encoding: .utf8)
            #expect(csv.hasPrefix("series,timestamps,open,high,low,close,volume,amount\n"))
            #expect(csv.split(separator: "\n").count == 13)
            for name in ["sample_4h", "other"] {
                let svg = try String(contentsOfFile: dir + "/charts/\(name).svg", encoding: .utf8)
                #expect(
                    svg.hasPrefix("<svg") && svg.contains("<polygon") && svg.hasSuffix("</svg>\n")
                        && svg.contains(name + ".csv"))
            }
            // A pattern names one chart per series; one plain file for two inputs is a usage error.
            let pattern = try run([
                b, "--input", sample, "--input", other, "--pred-len", "2", "--lookback", "100", "--chart",
                dir + "/fc-{series}.svg",
            ])
            #expect(
                pattern.status == 0 && FileManager.default.fileExists(atPath: dir + "/fc-other.svg"),
                "\(pattern.stderr)")
            let refused = try run([
                b, "--input", sample, "--input", other, "--pred-len", "2", "--chart", dir + "/one.svg",
            ])
            #expect(refused.status == 2 && refused.stderr.contains("2 inputs make 2 charts"), "\(refused.stderr)")
        }

        @Test func intervalOverride() throws {
            let r = try run([
                try tinyBundle(), "--input", sample, "--pred-len", "2", "--interval", "1d", "--top-k", "1",
            ])
            let lines = r.stdout.split(separator: "\n")
            #expect(lines[1].hasPrefix("2024-05-14 04:00:00") && lines[2].hasPrefix("2024-05-15 04:00:00"), "\(lines)")
        }

        @Test(arguments: [
            (
                "timestamps,open,high,low\n2024-01-01 00:00:00,1,2,0.5\n2024-01-01 04:00:00,1,2,0.5\n",
                "missing required column \"close\""
            ),
            (
                "timestamps,open,high,low,close\n2024-01-01 00:00:00,1,2,0.5,1\n2024-01-01 04:00:00,1,nan,0.5,1\n",
                ":3 (column high): nan is not a finite number"
            ),
            (
                "timestamps,open,high,low,close\n2024-01-01 00:00:00,1,2,0.5,1\n2024-01-01 04:00:00,1,2,abc,1\n",
                ":3 (column low): \"abc\" is not a number"
            ),
            (
                "timestamps,open,high,low,close\n2024-01-01 00:00:00,1,2,0.5,1\n2024-01-01 04:00:00,1,2,0.5,1\n"
                    + "2024-01-01 02:00:00,1,2,0.5,1\n",
                "strictly increasing"
            ),
            (
                "timestamps,open,high,low,close\n2024-01-01 04:00:00,1,2,0.5,1\n2024-01-01 00:00:00,1,2,0.5,1\n"
                    + "2024-01-01 02:00:00,1,2,0.5,1\n",
                "must keep decreasing"
            ),
            (
                "timestamps,open,high,low,close\n2024-01-01 04:00:00,1,2,0.5,1\n2024-01-01 04:00:00,1,2,0.5,1\n",
                "duplicate timestamp"
            ),
            ("timestamps,open,high,low,close\n2024-01-01 04:00:00,1,2,0.5,1\n", "need at least 2"),
            ("", "empty file"),
            ("open,high,low,close\n1,2,0.5,1\n1,2,0.5,1\n", "no timestamp column"),
            (
                "timestamps,open,high,low,close\n01/02/2024,1,2,0.5,1\n01/03/2024,1,2,0.5,1\n",
                "cannot read timestamp \"01/02/2024\""
            ),
            (
                "timestamps,open,high,low,close\n2024-01-01 00:00:00,1,2,0.5,1\n2024-01-01 04:00:00,1,2\n",
                ":3: expected 5 cells, found 3"
            ),
            (
                "timestamps,open,high,low,close\n2024-01-01 00:00:00,1,2,0.5,1\n2024-01-01 04:00:00,1,2,0.5,\n",
                "(column close): empty cell"
            ),
            (
                "timestamps,open,high,low,close\n2024-01-01 00:00:00,1,2,0.5,1\n1704096000,1,2,0.5,1\n",
                "timestamp format differs"
            ),
            (
                "timestamps,open,high,low,close\n2024-02-30 00:00:00,1,2,0.5,1\n2024-03-01 00:00:00,1,2,0.5,1\n",
                "cannot read timestamp \"2024-02-30 00:00:00\""
            ),
            (
                "timestamps,open,high,low,close\n2024-01-01 00:00:00,1,2,0.5,1\n2024-01-01 04:00:00,1,2,0.5,inf\n",
                "not a finite number"
            ),
        ])
        func badCSVExitsOneWithOneLine(text: String, expected: String) throws {
            let r = try run([try tinyBundle(), "--input", csvFile(text), "--pred-len", "4"])
            #expect(r.status == 1)
            #expect(r.stderr.contains(expected), "\(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1)
        }

        @Test(arguments: [
            (["--pred-len", "0"], "--pred-len must be in 1...1048576, found 0"),
            (["--pred-len", "4", "--top-p", "1.5"], "--top-p must be in (0, 1], found 1.5"),
            (["--pred-len", "4", "--top-p", "0"], "--top-p must be in (0, 1]"),
            (["--pred-len", "4", "--temperature=-1"], "--temperature must be greater than 0"),
            (["--pred-len", "4", "--interval", "4x"], "--interval \"4x\""),
        ])
        func badValuesExitOne(args: [String], expected: String) throws {
            let r = try run([try tinyBundle(), "--input", sample] + args)
            #expect(r.status == 1 && r.stderr.contains(expected), "\(r.status) \(r.stderr)")
        }

        @Test func unreadableBundleAndUsage() throws {
            let bogus = csvFile(
                "not a bundle at all, but long enough to have a header of 64 bytes ........................")
            let r = try run([bogus, "--input", sample, "--pred-len", "4"])
            #expect(r.status == 1 && r.stderr.contains("magic: expected \"KRONOSKQ\""), "\(r.stderr)")
            #expect(try run(["/nonexistent.kq", "--input", sample, "--pred-len", "4"]).status == 1)
            #expect(try run([try tinyBundle(), "--input", sample, "--pred-len", "4", "--bogus"]).status == 2)
            #expect(try run([try tinyBundle(), "--input", sample]).status == 2)
        }

        @Test func hugeLineAndBinaryInputAreRefusedQuickly() throws {
            let big =
                "timestamps,open,high,low,close\n2024-01-01 00:00:00,1,2,0.5," + String(repeating: "9", count: 10 << 20)
                + "\n"
            let start = Date()
            let r = try run([try tinyBundle(), "--input", csvFile(big), "--pred-len", "4"])
            #expect(r.status == 1 && r.stderr.contains(":2: line is longer than 1048576 bytes"), "\(r.stderr)")
            #expect(Date().timeIntervalSince(start) < 30)
            let p = temporaryDirectory("bin") + "/x.csv"
            FileManager.default.createFile(atPath: p, contents: Data([0x00, 0x80, 0x81, 0xFF, 0xFE]))
            let b = try run([try tinyBundle(), "--input", p, "--pred-len", "4"])
            #expect(b.status == 1 && b.stderr.contains("not UTF-8 text"), "\(b.stderr)")
            // UTF-16 (as some spreadsheets save "Unicode text") is named as such.
            FileManager.default.createFile(atPath: p, contents: Data([0xFF, 0xFE, 0x74, 0x00]))
            let u = try run([try tinyBundle(), "--input", p, "--pred-len", "4"])
            #expect(
                u.status == 1 && u.stderr.contains("UTF-16 text") && u.stderr.contains("save it as UTF-8"),
                "\(u.stderr)")
        }

        @Test func differingLengthsNameTheFile() throws {
            let short = csvFile(
                "timestamps,open,high,low,close\n2024-01-01 00:00:00,1,2,0.5,1\n2024-01-01 04:00:00,1,2,0.5,1.5\n"
                    + "2024-01-01 08:00:00,1,2,0.5,1.2\n"
            )
            let r = try run([try tinyBundle(), "--input", sample, "--input", short, "--pred-len", "4"])
            #expect(r.status == 1 && r.stderr.contains(short) && r.stderr.contains("same length"), "\(r.stderr)")
        }
    }
#endif
