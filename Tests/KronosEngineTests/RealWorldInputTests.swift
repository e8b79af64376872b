// Runs in KronosEngineTests only: it tests the command line or the bundle reader, not the engine build.
#if !KRONOS_ENGINE_BASELINE
    // Files as exchanges and spreadsheets write them, outputs that never destroy anything, and the
    // forecast distribution in the open: through the built binaries, as a user runs them.
    import Foundation
    import Kronos
    import KronosIO
    import KronosBundle
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

    /// The sample series' header and rows as text cells.
    let sampleRows: [[String]] = {
        let text = try! String(contentsOfFile: sample, encoding: .utf8)
        return text.split(separator: "\n").map {
            $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        }
    }()

    /// Unix milliseconds of "YYYY-MM-DD HH:MM:SS" (UTC), by Foundation's formatter (not the reader under test).
    func unixMilliseconds(_ text: String) -> Int64 {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX"); f.timeZone = TimeZone(identifier: "UTC");
        f.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return Int64(f.date(from: text)!.timeIntervalSince1970) * 1000
    }

    func writeFile(_ dir: String, _ name: String, _ bytes: Data) -> String {
        let p = dir + "/" + name
        FileManager.default.createFile(atPath: p, contents: bytes)
        return p
    }

    func fileType(_ path: String) -> FileAttributeType? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.type] as? FileAttributeType
    }

    @Suite struct RealWorldInputTests {
        /// Forecast arguments small enough for the tiny model's 64-row window.
        let forecastArgs = ["--pred-len", "4", "--lookback", "60", "--samples", "3", "--seed", "5", "--quiet"]

        @Test func everyLayoutGivesTheSameForecast() throws {
            let b = try tinyBundle(), dir = temporaryDirectory("layouts")
            let lf = sampleRows.map { $0.joined(separator: ",") }.joined(separator: "\n") + "\n"
            let reference = try run([b, "--input", writeFile(dir, "lf.csv", Data(lf.utf8))] + forecastArgs)
            #expect(reference.status == 0, "\(reference.stderr)")
            let data = Array(sampleRows.dropFirst())
            func joined(_ sep: String, _ rows: [[String]]) -> String {
                rows.map { $0.joined(separator: sep) }.joined(separator: "\n") + "\n"
            }
            let variants: [(String, String)] = [
                ("crlf", lf.replacingOccurrences(of: "\n", with: "\r\n")),
                ("cr", lf.replacingOccurrences(of: "\n", with: "\r")),
                ("bom-crlf", "\u{FEFF}" + lf.replacingOccurrences(of: "\n", with: "\r\n")),
                (
                    "semicolon-decimal-comma",
                    joined(";", sampleRows.map { $0.map { $0.replacingOccurrences(of: ".", with: ",") } })
                ),
                ("semicolon", joined(";", sampleRows)),
                ("tab", joined("\t", sampleRows)),
                (
                    "quoted-capitalized",
                    joined(
                        ",",
                        [["\"Timestamps\"", " Open ", "HIGH", "Low", "Close", "Volume", "Amount"]]
                            + data.map { ["\"" + $0[0] + "\""] + $0.dropFirst() })
                ),
                ("no-final-newline-blank-lines", "\n" + lf.replacingOccurrences(of: "\n", with: "\n \n").dropLast(3)),
                // Newest first (as some vendors export), and a title line before the header.
                ("newest-first", joined(",", [sampleRows[0]] + data.reversed())),
                ("preamble", "https://example.com/data export\n" + lf),
            ]
            for (name, text) in variants {
                let r = try run([b, "--input", writeFile(dir, name + ".csv", Data(text.utf8))] + forecastArgs)
                #expect(r.status == 0 && r.stdout == reference.stdout, "\(name): \(r.stderr)")
            }
            // Binance: the kline columns with a capitalized header, and the headerless download; the
            // forecast values are the same, the timestamps come back in milliseconds as they went in.
            func kline(_ r: [String]) -> [String] {
                let ms = unixMilliseconds(r[0])
                return ["\(ms)", r[1], r[2], r[3], r[4], r[5], "\(ms + 14_399_999)", r[6], "1234", "1.5", "2.5", "0"]
            }
            let binanceHeader = [
                "Open time", "Open", "High", "Low", "Close", "Volume", "Close time", "Quote asset volume",
                "Number of trades",
                "Taker buy base asset volume", "Taker buy quote asset volume", "Ignore",
            ]
            let snake = binanceHeader.map { $0.lowercased().replacingOccurrences(of: " ", with: "_") }
            let expected = reference.stdout.split(separator: "\n").dropFirst().map { line -> String in
                let cells = line.split(separator: ",", maxSplits: 1)
                return "\(unixMilliseconds(String(cells[0])))," + cells[1]
            }
            for (name, text) in [
                ("binance-header", joined(",", [binanceHeader] + data.map(kline))),
                ("binance-snake", joined(",", [snake] + data.map(kline))),
                ("binance-headerless", joined(",", data.map(kline))),
            ] {
                let r = try run([b, "--input", writeFile(dir, name + ".csv", Data(text.utf8))] + forecastArgs)
                #expect(r.status == 0, "\(name): \(r.stderr)")
                #expect(Array(r.stdout.split(separator: "\n").dropFirst().map(String.init)) == expected, "\(name)")
            }
        }

        /// CRLF files beyond 1 MiB (the old reader saw one line longer than its limit).
        @Test func largeCRLFFile() throws {
            let dir = temporaryDirectory("large")
            let data = sampleRows.dropFirst()
            var lines = [sampleRows[0].joined(separator: ",")]
            let start = unixMilliseconds("2020-01-01 00:00:00") / 1000
            for i in 0..<20_000 {
                let r = data[data.startIndex + i % data.count]
                lines.append(["\(start + Int64(i) * 14400)"].joined() + "," + r.dropFirst().joined(separator: ","))
            }
            let lf = lines.joined(separator: "\n") + "\n"
            #expect(lf.utf8.count > 1 << 20)
            let a = try run([try tinyBundle(), "--input", writeFile(dir, "lf.csv", Data(lf.utf8))] + forecastArgs)
            let c = try run(
                [
                    try tinyBundle(), "--input",
                    writeFile(dir, "crlf.csv", Data(lf.replacingOccurrences(of: "\n", with: "\r\n").utf8)),
                ] + forecastArgs)
            #expect(a.status == 0 && c.status == 0 && a.stdout == c.stdout, "\(c.stderr)")
        }

        @Test func columnOptionsNameAnyHeader() throws {
            let dir = temporaryDirectory("mapping")
            let reference = try run([try tinyBundle(), "--input", sample] + forecastArgs)
            let renamed =
                [["when", "first", "top", "bottom", "last", "Volume BTC", "Volume USDT"]] + sampleRows.dropFirst()
            let p = writeFile(
                dir, "renamed.csv",
                Data((renamed.map { $0.joined(separator: ",") }.joined(separator: "\n") + "\n").utf8))
            let refused = try run([try tinyBundle(), "--input", p] + forecastArgs)
            #expect(
                refused.status == 1 && refused.stderr.contains("no timestamp column")
                    && refused.stderr.contains("--time-column"), "\(refused.stderr)")
            let mapped = try run(
                [
                    try tinyBundle(), "--input", p, "--time-column", "WHEN", "--column", "open=first", "--column",
                    "high=top",
                    "--column", "low=bottom", "--column", "close=last", "--column", "volume=volume btc",
                    "--column", "amount=Volume_USDT",
                ] + forecastArgs)
            #expect(mapped.status == 0 && mapped.stdout == reference.stdout, "\(mapped.stderr)")
            let positions = try run(
                [
                    try tinyBundle(), "--input", p, "--time-column", "1", "--column", "open=2", "--column", "high=3",
                    "--column", "low=4", "--column", "close=5", "--column", "volume=6", "--column", "amount=7",
                ] + forecastArgs)
            #expect(positions.status == 0 && positions.stdout == reference.stdout, "\(positions.stderr)")
            let unknown = try run(
                [
                    try tinyBundle(), "--input", p, "--time-column", "when", "--column", "open=first", "--column",
                    "high=top",
                    "--column", "low=bottom", "--column", "close=nope",
                ] + forecastArgs)
            #expect(
                unknown.status == 1 && unknown.stderr.contains("--column close=nope: no such column"),
                "\(unknown.stderr)")
        }

        @Test func errorsAreOneShortLine() throws {
            let dir = temporaryDirectory("errors")
            // A 67 KB file with no separator, and one with a 60 KB ragged row: one line, a short quote.
            let blob = String(repeating: "x", count: 67_000)
            let ragged =
                "timestamps,open,high,low,close\n2024-01-01 00:00:00,1,2,0.5,1\n2024-01-01 04:00:00 "
                + String(repeating: "y", count: 60_000) + "\n"
            for (name, text, expected) in [
                ("blob", blob + "\n" + blob + "\n", "cannot find the columns"),
                ("ragged", ragged, ":3: expected 5 cells, found 1"),
            ] {
                let r = try run([
                    try tinyBundle(), "--input", writeFile(dir, name + ".csv", Data(text.utf8)), "--pred-len", "4",
                ])
                #expect(r.status == 1 && r.stderr.contains(expected), "\(name): \(r.stderr.prefix(300))")
                #expect(
                    r.stderr.split(separator: "\n").count == 1 && r.stderr.utf8.count < 500,
                    "\(name): \(r.stderr.utf8.count) bytes")
            }
        }

        @Test func dataChecksSpeak() throws {
            let dir = temporaryDirectory("checks")
            var rows = Array(sampleRows.prefix(70))
            rows.remove(at: 30); rows.remove(at: 30)  // a gap of 3 x 4 h (2 rows missing)
            rows[40][2] = String(Double(rows[40][3])! - 1)  // high below low
            rows[50][4] = "-5"  // a negative close
            let p = writeFile(
                dir, "gappy.csv", Data((rows.map { $0.joined(separator: ",") }.joined(separator: "\n") + "\n").utf8))
            let r = try run([try tinyBundle(), "--input", p, "--pred-len", "4", "--format", "json"])
            #expect(r.status == 0, "\(r.stderr)")
            // Warnings reach stderr without a terminal (the test's pipe), and the JSON.
            #expect(
                r.stderr.contains(
                    "warning: \(p): 1 gap in the timestamps (expected spacing 4h on the 24x7 calendar, 2 rows "
                        + "missing); first at line 31: "
                        + "\(rows[29][0]) -> \(rows[30][0])"), "\(r.stderr)")
            #expect(
                r.stderr.contains("1 row breaks the OHLC order") || r.stderr.contains("rows break the OHLC order"),
                "\(r.stderr)")
            #expect(r.stderr.contains("1 row has a price <= 0, first at line 51"), "\(r.stderr)")
            let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            let warnings = json["warnings"] as! [String]
            #expect(
                warnings.contains { $0.contains("1 gap in the timestamps") }
                    && warnings.contains { $0.contains("price <= 0") }, "\(warnings)")
            let quiet = try run([try tinyBundle(), "--input", p, "--pred-len", "4", "--quiet"])
            #expect(quiet.status == 0 && quiet.stderr.isEmpty, "\(quiet.stderr)")
            // A price that is finite as a Double but not as the model's Float is an error.
            rows[20][4] = "1e39"
            let huge = writeFile(
                dir, "huge.csv", Data((rows.map { $0.joined(separator: ",") }.joined(separator: "\n") + "\n").utf8))
            let e = try run([try tinyBundle(), "--input", huge, "--pred-len", "4"])
            #expect(
                e.status == 1 && e.stderr.contains(":21 (column close): 1e39 is beyond the range of the 32-bit floats"),
                "\(e.stderr)")
        }

        /// Daily stock data (weekdays only): forecast dates skip weekends, date-only in gives date-only
        /// out, and the model sees those dates (the same forecast as with the dates given in a file; a
        /// different one with the 24x7 calendar).
        @Test func weekdaySeriesGetWeekdayDates() throws {
            let dir = temporaryDirectory("calendar")
            var utc = Calendar(identifier: .gregorian)
            utc.timeZone = TimeZone(identifier: "UTC")!
            var day = DateComponents(calendar: utc, year: 2024, month: 1, day: 1).date!  // a Monday
            var rows = [["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"]]
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX"); f.timeZone = utc.timeZone; f.dateFormat = "yyyy-MM-dd"
            for r in sampleRows.dropFirst().prefix(58) {
                while utc.isDateInWeekend(day) { day = utc.date(byAdding: .day, value: 1, to: day)! }
                rows.append([f.string(from: day), r[1], r[2], r[3], r[4], r[4], r[5]])
                day = utc.date(byAdding: .day, value: 1, to: day)!
            }
            let p = writeFile(
                dir, "stock.csv", Data((rows.map { $0.joined(separator: ",") }.joined(separator: "\n") + "\n").utf8))
            let args = ["--pred-len", "6", "--samples", "2", "--seed", "3", "--format", "json"]
            let r = try run([try tinyBundle(), "--input", p] + args)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(
                r.stderr.contains("weekdays calendar (inferred: no Saturday or Sunday among the 58 input rows)"),
                "\(r.stderr)")
            func forecast(_ out: String) -> [[String: Any]] {
                let json = try! JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: Any]
                return (json["series"] as! [[String: Any]])[0]["forecast"] as! [[String: Any]]
            }
            let dates = forecast(r.stdout).map { $0["timestamp"] as! String }
            var expected = [String]()
            while expected.count < 6 {
                if !utc.isDateInWeekend(day) { expected.append(f.string(from: day)) }
                day = utc.date(byAdding: .day, value: 1, to: day)!
            }
            #expect(dates == expected, "\(dates)")
            // The same dates from a file give the same forecast; the 24x7 calendar's dates do not.
            let file = writeFile(dir, "future.txt", Data((["date"] + expected).joined(separator: "\n").utf8))
            let fromFile = try run([try tinyBundle(), "--input", p, "--future-timestamps", file] + args)
            #expect(fromFile.status == 0, "\(fromFile.stderr)")
            #expect(
                (try JSONSerialization.data(withJSONObject: forecast(fromFile.stdout), options: .sortedKeys))
                    == (try JSONSerialization.data(withJSONObject: forecast(r.stdout), options: .sortedKeys)))
            let allDays = try run([try tinyBundle(), "--input", p, "--calendar", "24x7"] + args)
            let allDates = forecast(allDays.stdout).map { $0["timestamp"] as! String }
            #expect(allDates.contains { utc.isDateInWeekend(f.date(from: $0)!) }, "\(allDates)")
            #expect(
                forecast(allDays.stdout).map { $0["close"] as! Double }
                    != forecast(r.stdout).map { $0["close"] as! Double })
            // Too few future timestamps in the file is named.
            let short = writeFile(dir, "short.txt", Data(expected.prefix(3).joined(separator: "\n").utf8))
            let e = try run([try tinyBundle(), "--input", p, "--future-timestamps", short] + args)
            #expect(
                e.status == 1 && e.stderr.contains("has 3 timestamps after") && e.stderr.contains("need 6"),
                "\(e.stderr)")
        }

        @Test func outputsNeverDestroyAnything() throws {
            let b = try tinyBundle(), dir = temporaryDirectory("outputs")
            let args = [b, "--input", sample, "--pred-len", "3", "--lookback", "60", "-q"]
            let expected = try run(args).stdout
            // A symlink: its target is written, the link stays (relative link, and a dangling one).
            _ = writeFile(dir, "real.csv", Data("old".utf8))
            try FileManager.default.createSymbolicLink(atPath: dir + "/link.csv", withDestinationPath: "real.csv")
            #expect(try run(args + ["-o", dir + "/link.csv"]).status == 0)
            #expect(fileType(dir + "/link.csv") == .typeSymbolicLink)
            #expect(try String(contentsOfFile: dir + "/real.csv", encoding: .utf8) == expected)
            try FileManager.default.createSymbolicLink(
                atPath: dir + "/dangling.csv", withDestinationPath: dir + "/new.csv")
            #expect(try run(args + ["-o", dir + "/dangling.csv"]).status == 0)
            #expect(
                fileType(dir + "/dangling.csv") == .typeSymbolicLink
                    && (try? String(contentsOfFile: dir + "/new.csv", encoding: .utf8)) == expected)
            // A FIFO is written in place (a reader gets the forecast), never replaced.
            #expect(mkfifo(dir + "/fifo", 0o644) == 0)
            let received = LockedBox<Data>(Data())
            let reader = Thread { received.set(FileHandle(forReadingAtPath: dir + "/fifo")!.readDataToEndOfFile()) }
            reader.start()
            #expect(try run(args + ["-o", dir + "/fifo"]).status == 0)
            while !reader.isFinished { usleep(10_000) }
            #expect(String(decoding: received.get(), as: UTF8.self) == expected)
            #expect(isFIFO(dir + "/fifo"))
            // A character device (made here when running as root) is written in place.
            if getuid() == 0 {
                #expect(mknod(dir + "/null", S_IFCHR | 0o666, dev_t((1 << 8) | 3)) == 0)  // major 1, minor 3: /dev/null
                let r = try run(args + ["-o", dir + "/null", "--paths", dir + "/null-paths.csv"])
                #expect(r.status == 0, "\(r.stderr)")
                #expect(fileType(dir + "/null") == .typeCharacterSpecial)
            } else {
                print("outputsNeverDestroyAnything: not root, the character-device case is skipped (mknod needs root)")
            }
            // - is standard output.
            #expect(try run(args + ["-o", "-"]).stdout == expected)
            // Every output is checked before the forecast: a bad one leaves no other behind.
            let missing = try run(args + ["-o", dir + "/first.csv", "--paths", dir + "/nodir/p.csv"])
            #expect(
                missing.status == 1
                    && missing.stderr.contains("--paths \(dir)/nodir/p.csv: directory \(dir)/nodir does not exist"),
                "\(missing.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/first.csv"))
            let same = try run(args + ["-o", dir + "/x.csv", "--paths", dir + "/./x.csv"])
            #expect(
                same.status == 1 && same.stderr.contains("--output \(dir)/x.csv writes the same file"), "\(same.stderr)"
            )
            let directory = try run(args + ["-o", dir])
            #expect(directory.status == 1 && directory.stderr.contains("is a directory"), "\(directory.stderr)")
            // Nothing but the outputs is left in the directory (no temporary files).
            let left = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }
            #expect(left.isEmpty, "\(left)")
        }

        @Test func convertKeepsLinksAndNodes() throws {
            let dir = temporaryDirectory("convert-outputs")
            let tiny = goldenDirectory + "/tiny"
            let base = [
                "--tokenizer", tiny + "/tokenizer", "--predictor", tiny + "/predictor", "--quantize", "q8",
                "--max-context", "64",
            ]
            try FileManager.default.createSymbolicLink(atPath: dir + "/link.kq", withDestinationPath: "real.kq")
            let r = try runTool("kronos-convert", base + ["-o", dir + "/link.kq"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(fileType(dir + "/link.kq") == .typeSymbolicLink && fileType(dir + "/real.kq") == .typeRegular)
            #expect(try runTool("kronos-convert", base + ["-o", dir + "/link.kq"]).status == 1)  // exists, no --force
            #expect(try runTool("kronos-convert", base + ["-o", dir + "/link.kq", "--force"]).status == 0)
            #expect(fileType(dir + "/link.kq") == .typeSymbolicLink)
            #expect(mkfifo(dir + "/fifo.kq", 0o644) == 0)
            let fifo = try runTool("kronos-convert", base + ["-o", dir + "/fifo.kq", "--force"])
            #expect(
                fifo.status == 1 && fifo.stderr.contains("is a FIFO, not a regular file: it is never replaced"),
                "\(fifo.stderr)")
            #expect(isFIFO(dir + "/fifo.kq"))
        }

        @Test func distributionInTheOpen() throws {
            let dir = temporaryDirectory("distribution")
            let S = 20, P = 5
            let levels = [0.05, 0.25, 0.5, 0.75, 0.95]
            let args = [
                try tinyBundle(), "--input", sample, "--input", sample, "--lookback", "59", "--pred-len", "\(P)",
                "--samples", "\(S)",
                "--seed", "11", "--quantiles", levels.map { "\($0)" }.joined(separator: ","), "--paths",
                dir + "/paths.csv",
            ]
            let r = try run(args + ["--format", "json"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stderr.contains("--samples 20 leaves 1 paths beyond the"), "\(r.stderr)")
            let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            let series = json["series"] as! [[String: Any]]
            let paths = try String(contentsOfFile: dir + "/paths.csv", encoding: .utf8).split(separator: "\n").map {
                $0.split(separator: ",").map(String.init)
            }
            #expect(paths[0] == ["series", "sample", "timestamps", "open", "high", "low", "close", "volume", "amount"])
            #expect(paths.count == 1 + 2 * S * P)
            let lastClose = Float(sampleRows.last![4])!
            for (k, s) in series.enumerated() {
                let name = "sample_4h.csv#\(k + 1)"
                let mine = paths.dropFirst().filter { $0[0] == name }
                #expect(mine.count == S * P && Set(mine.map { $0[1] }) == Set((1...S).map { "\($0)" }))
                let forecast = s["forecast"] as! [[String: Any]]
                let quantiles = s["quantiles"] as! [String: [[String: Any]]]
                #expect(Set(quantiles.keys) == ["p5", "p25", "p50", "p75", "p95"])
                for t in 0..<P {
                    let ts = forecast[t]["timestamp"] as! String
                    let rows = mine.filter { $0[2] == ts }
                    #expect(rows.count == S)
                    for (c, column) in Candles.columns.enumerated() {
                        let v = rows.map { Float($0[3 + c])! }
                        // The mean of the paths is the forecast (summed in another order: a few ulps).
                        let mean = v.reduce(0.0) { $0 + Double($1) } / Double(S), f = forecast[t][column] as! Double
                        #expect(abs(mean - f) <= 1e-5 * max(abs(f), 1), "\(column) step \(t): \(mean) vs \(f)")
                        // Each quantile is numpy's linear (type 7) quantile of the written paths, exactly.
                        let sorted = v.sorted()
                        for q in levels {
                            let h = q * Double(S - 1), lo = Int(h.rounded(.down)), hi = min(lo + 1, S - 1)
                            let want = Float(
                                Double(sorted[lo]) + (h - Double(lo)) * (Double(sorted[hi]) - Double(sorted[lo])))
                            let got = Float(quantiles[NumberText.percentKey(q)]![t][column] as! Double)
                            #expect(got == want, "\(column) step \(t) q \(q): \(got) vs \(want)")
                        }
                    }
                    // prob_up is the share of written paths closing above the last input close.
                    let up = Double(rows.filter { Float($0[6])! > lastClose }.count) / Double(S)
                    #expect(forecast[t]["prob_up"] as! Double == up)
                }
            }
            // The CSV output carries the asked quantiles as columns, the same values as the JSON.
            let csv = try run(args)
            let lines = csv.stdout.split(separator: "\n").map { $0.split(separator: ",").map(String.init) }
            #expect(
                lines[0].contains("close_p5") && lines[0].contains("amount_p95")
                    && lines[0].count == 2 + 6 * (1 + levels.count))
            let col = lines[0].firstIndex(of: "close_p25")!
            let p25 = ((series[0]["quantiles"] as! [String: [[String: Any]]])["p25"]!)[0]["close"] as! Double
            #expect(Float(lines[1][col])! == Float(p25))
        }

        @Test func numbersAndSettingsAsGiven() throws {
            let r = try run([
                try tinyBundle(), "--input", sample, "--pred-len", "3", "--lookback", "60", "--top-p", "0.9",
                "--temperature", "0.7",
                "--format", "json", "-q",
            ])
            // (keys sorted: top_p ends the settings object)
            #expect(
                r.stdout.contains("\"top_p\" : 0.9\n") && r.stdout.contains("\"temperature\" : 0.7,"),
                "\(r.stdout.prefix(2000))")
            let csv = try run([try tinyBundle(), "--input", sample, "--pred-len", "6", "--lookback", "60", "-q"])
            for line in csv.stdout.split(separator: "\n").dropFirst() {
                for cell in line.split(separator: ",").dropFirst() {
                    #expect(!cell.contains("e") && !cell.hasSuffix(".0") && Float(cell) != nil, "\(cell)")
                }
            }
        }

        /// The shortest round-trip digits, positional: every Float reads back to itself, no exponent.
        @Test func decimalTextRoundTrips() {
            var g = SystemRandomNumberGenerator()
            var values: [Float] = [
                0, -0.0, 1, 0.9, 2.3106645e+08, 11891512, 1e-7, 3.4e38, -1.17549435e-38, 1.4e-45, 123456.79,
            ]
            for _ in 0..<100_000 {
                let v = Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &g))
                if v.isFinite { values.append(v) }
            }
            for v in values {
                let s = NumberText.decimal(v)
                #expect(Float(s) == v && !s.contains("e") && !s.hasSuffix(".0"), "\(v): \(s)")
            }
            #expect(NumberText.decimal(2.3106645e+08) == "231066450" && NumberText.decimal(11891512) == "11891512")
            #expect(NumberText.decimal(0.000123) == "0.000123" && NumberText.decimal(-2.5) == "-2.5")
        }

        @Test func versionsAgree() throws {
            for tool in ["kronos-run", "kronos-convert", "kronos-bench"] {
                let r = try runTool(tool, ["--version"])
                #expect(r.status == 0 && r.stdout == KronosVersion.string + "\n", "\(tool): \(r.stdout)")
            }
            #expect(try BundleReader(path: try tinyBundle()).manifest.converter.version == KronosVersion.string)
        }

        @Test func benchRunsByNameFromPath() throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = [
                "kronos-bench", "forecast", try tinyBundle(), "--samples", "1", "--lookback", "16", "--pred-len", "2",
                "--seconds", "0.01", "--cache", "exact",
            ]
            p.environment = ["PATH": productsDirectory(containing: "kronos-bench").path + ":/usr/bin:/bin"]
            p.currentDirectoryURL = URL(fileURLWithPath: temporaryDirectory("bench-path"))
            let out = Pipe(), err = Pipe()
            p.standardOutput = out; p.standardError = err
            try p.run()
            let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            let name = (try tinyBundle() as NSString).lastPathComponent
            #expect(
                p.terminationStatus == 0 && String(decoding: o, as: UTF8.self).contains("| \(name) |"),
                "\(String(decoding: e, as: UTF8.self))")
        }

        @Test func slidingWindowHint() throws {
            // 64 rows + 4 steps in the tiny model's 64-row window: step i sees rows i + 1 - 4 ... (64 + i), so
            // steps 1, 2, 3 slide (the first step's window is the 64 input rows).
            let slow = try run([try tinyBundle(), "--input", sample, "--lookback", "64", "--pred-len", "4"])
            #expect(slow.status == 0)
            #expect(
                slow.stderr.contains(
                    "note: 64 input rows + 4 steps exceed the 64-row window: 3 of 4 steps recompute the whole window")
                    && slow.stderr.contains("--lookback 61") && slow.stderr.contains("--cache approx-slide"),
                "\(slow.stderr)")
            let fits = try run([try tinyBundle(), "--input", sample, "--lookback", "61", "--pred-len", "4"])
            #expect(fits.status == 0 && !fits.stderr.contains("recompute"), "\(fits.stderr)")
            let approx = try run([
                try tinyBundle(), "--input", sample, "--lookback", "64", "--pred-len", "4", "--cache", "approx-slide",
            ])
            #expect(approx.status == 0 && !approx.stderr.contains("recompute"), "\(approx.stderr)")
            #expect(ForecastJob.slidingSteps(rows: 512, predictionLength: 48, window: 512) == (47, 465))
            #expect(ForecastJob.slidingSteps(rows: 800, predictionLength: 48, window: 512) == (48, 465))
            #expect(ForecastJob.slidingSteps(rows: 465, predictionLength: 48, window: 512) == (0, 465))
            #expect(ForecastJob.slidingSteps(rows: 466, predictionLength: 48, window: 512) == (1, 465))
        }

        @Test func chartReadsAtAGlance() throws {
            let dir = temporaryDirectory("chart-look")
            let r = try run([
                try tinyBundle(), "--input", sample, "--lookback", "60", "--pred-len", "4", "--samples", "12", "--seed",
                "2",
                "--chart", dir + "/c.svg", "-q",
            ])
            #expect(r.status == 0, "\(r.stderr)")
            let svg = try String(contentsOfFile: dir + "/c.svg", encoding: .utf8)
            let bundleName = (try tinyBundle() as NSString).lastPathComponent
            #expect(
                svg.contains("sample_4h.csv: 4 steps forecast by \(bundleName) (q8)")
                    && svg.contains("12 samples, seed 2, cache exact"))
            for key in [
                "history", "forecast mean", "12 sample paths (close)", "close p10–p90 band", "median close",
                "last close", "volume",
            ] {
                #expect(svg.contains(">\(key)<"), "legend key \(key)")
            }
            #expect(svg.components(separatedBy: "stroke-opacity=\"0.16\"").count - 1 == 12)  // one faint line per path
            // Price ticks are round: one step between consecutive labels, a 1, 2, 2.5 or 5 times a power of ten.
            let ticks = ForecastChart.niceTicks(100_790, 106_114, count: 7)
            let step = ticks[1] - ticks[0]
            #expect(ticks.first! <= 100_790 && ticks.last! >= 106_114 && step == 1000, "\(ticks)")
        }
    }

    /// A value shared with a thread.
    final class LockedBox<T>: @unchecked Sendable {
        private var value: T
        private let lock = NSLock()
        init(_ v: T) { value = v }
        func set(_ v: T) { lock.lock(); value = v; lock.unlock() }
        func get() -> T { lock.lock(); defer { lock.unlock() }; return value }
    }

    func isFIFO(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFIFO
    }
#endif
