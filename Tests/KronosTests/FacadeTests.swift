import Foundation
import Kronos
import KronosCheckpoint
import KronosConvert
import KronosTestSupport
import Testing

private let golden = repositoryRoot.appendingPathComponent("golden")
private let sample = golden.appendingPathComponent("sample_4h.csv")

private let tinyBundle = tinyQ8Bundle

@Suite struct FacadeTests {
    /// The façade's forecast is the command line's: the same file, steps, samples and seed give the
    /// numbers kronos-run writes (an independent path: CSV reading, calendar and output code of the CLI).
    @Test func forecastEqualsTheCommandLine() async throws {
        let model = try KronosModel(contentsOf: tinyBundle)
        let history = try CandleSeries(contentsOf: sample).suffix(60)
        let f = try await model.forecast(history, steps: 12, options: ForecastOptions(samples: 3, seed: 7))
        let r = try runTool(
            "kronos-run",
            [
                tinyBundle.path, "--input", sample.path, "--lookback", "60", "--pred-len", "12", "--samples", "3",
                "--seed", "7", "--format", "json", "-q",
            ])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let series = try #require((json["series"] as? [[String: Any]])?.first)
        let rows = try #require(series["forecast"] as? [[String: Any]])
        #expect(rows.count == 12 && f.mean.count == 12 && f.dates.count == 12)
        for (t, row) in rows.enumerated() {
            for (field, value) in [
                ("open", f.mean[t].open), ("high", f.mean[t].high), ("low", f.mean[t].low), ("close", f.mean[t].close),
            ] {
                let cli = try #require(row[field] as? Double)
                #expect(Float(cli) == Float(value), "step \(t) \(field): CLI \(cli), library \(value)")
            }
        }
        // Future dates: 4-hour steps after the last candle (the sample is a 24x7 series).
        let last = history.candles.last!.date
        #expect(f.dates == (1...12).map { last.addingTimeInterval(Double($0) * 4 * 3600) })
        #expect(f.mean.map(\.date) == f.dates && f.paths.count == 3 && f.paths.allSatisfy { $0.map(\.date) == f.dates })
        #expect(f.tradingDays == .allDays)
    }

    /// Candles built in code give the forecast their CSV file gives.
    @Test func candlesInCodeEqualTheirFile() async throws {
        let model = try KronosModel(contentsOf: tinyBundle)
        let file = try CandleSeries(contentsOf: sample).suffix(50)
        let code = try CandleSeries(file.candles, name: "code")
        #expect(code.candles == file.candles)
        let options = ForecastOptions(samples: 2, seed: 3)
        let a = try await model.forecast(file, steps: 8, options: options)
        let b = try await model.forecast(code, steps: 8, options: options)
        #expect(a.mean == b.mean && a.paths == b.paths)
        // Without volume or amount the model sees zeros, as the reference fills them.
        let bare = try CandleSeries(
            file.candles.map { Candle(date: $0.date, open: $0.open, high: $0.high, low: $0.low, close: $0.close) })
        #expect(bare.candles.allSatisfy { $0.volume == 0 && $0.amount == 0 })
    }

    /// With seriesSeeds, each series of a batch draws from its own stream: its forecast is the one it
    /// gets alone with that seed, bit for bit, whatever else is in the batch (the one shared stream
    /// does not have this: the second series' draws follow the first's).
    @Test func seriesSeedsMakeEachSeriesIndependentOfItsBatch() async throws {
        let model = try KronosModel(contentsOf: tinyBundle)
        let all = try CandleSeries(contentsOf: sample)
        let histories = [0, 7, 19].map { k in
            try! CandleSeries(Array(all.candles[(k + 10)..<(k + 50)]), name: "s\(k)")
        }
        var options = ForecastOptions(samples: 3, seed: 9)
        options.seriesSeeds = [41, 42, 43]
        let batched = try await model.forecast(histories, steps: 6, options: options)
        for (k, h) in histories.enumerated() {
            let alone = try await model.forecast(
                h, steps: 6, options: ForecastOptions(samples: 3, seed: 41 + UInt64(k)))
            #expect(batched[k].paths == alone.paths && batched[k].mean == alone.mean, "series \(k)")
        }
        let shared = try await model.forecast(histories, steps: 6, options: ForecastOptions(samples: 3, seed: 42))
        let second = try await model.forecast(histories[1], steps: 6, options: ForecastOptions(samples: 3, seed: 42))
        #expect(shared[1].paths != second.paths)
        options.seriesSeeds = [1, 2]
        await #expect(throws: KronosError.invalidOptions("seriesSeeds has 2 seeds for 3 series")) {
            try await model.forecast(histories, steps: 6, options: options)
        }
    }

    /// Quantiles and the probability of a rise, from the paths, by an independent computation
    /// (numpy's default, type 7) written here.
    @Test func quantilesAndProbabilityUpComeFromThePaths() async throws {
        let model = try KronosModel(contentsOf: tinyBundle)
        let history = try CandleSeries(contentsOf: sample).suffix(40)
        let f = try await model.forecast(history, steps: 6, options: ForecastOptions(samples: 7, seed: 1))
        for q in [0.1, 0.5, 0.9] {
            let got = f.quantile(q)
            for t in 0..<6 {
                let closes = f.paths.map { Double(Float($0[t].close)) }.sorted()
                let h = q * Double(closes.count - 1), lo = Int(h), hi = min(lo + 1, closes.count - 1)
                let expected = Float(closes[lo] + (h - Double(lo)) * (closes[hi] - closes[lo]))
                #expect(Float(got[t].close) == expected, "q \(q) step \(t)")
            }
        }
        let lastClose = history.candles.last!.close
        for t in 0..<6 {
            #expect(f.probabilityUp[t] == Double(f.paths.filter { $0[t].close > lastClose }.count) / 7)
        }
        #expect(f.median == f.quantile(0.5))
    }

    /// A weekdays-only history gets weekday future dates, inferred and said in a note.
    @Test func weekdayHistoriesForecastWeekdays() async throws {
        let model = try KronosModel(contentsOf: tinyBundle)
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = TimeZone(secondsFromGMT: 0)!
        var day = utc.date(from: DateComponents(year: 2024, month: 1, day: 1))!  // a Monday
        var candles = [Candle]()
        while candles.count < 40 {
            if utc.component(.weekday, from: day) != 1, utc.component(.weekday, from: day) != 7 {
                let p = 100 + Double(candles.count)
                candles.append(Candle(date: day, open: p, high: p + 2, low: p - 2, close: p + 1, volume: 10))
            }
            day = day.addingTimeInterval(86400)
        }
        let f = try await model.forecast(try CandleSeries(candles), steps: 10)
        #expect(f.tradingDays == .weekdays)
        #expect(f.dates.allSatisfy { ![1, 7].contains(utc.component(.weekday, from: $0)) })
        #expect(f.notes.contains { $0.contains("weekdays") })
        var options = ForecastOptions()
        options.tradingDays = .allDays
        let g = try await model.forecast(try CandleSeries(candles), steps: 10, options: options)
        #expect(g.dates.contains { [1, 7].contains(utc.component(.weekday, from: $0)) })
    }

    /// Cancelling the task stops the forecast before its next step; progress is reported per step.
    @Test func cancellationStopsTheForecast() async throws {
        let model = try KronosModel(contentsOf: tinyBundle, threads: 1)
        let history = try CandleSeries(contentsOf: sample).suffix(60)
        let steps = Steps()
        let cancelled = DispatchSemaphore(value: 0)
        let task = Task {
            try await model.forecast(history, steps: 60, options: ForecastOptions(samples: 4)) { p in
                steps.record(p)
                if p.step == 2 { cancelled.wait() }  // hold the forecast until the task is cancelled
            }
        }
        while steps.count < 2 { try await Task.sleep(nanoseconds: 1_000_000) }
        task.cancel()
        cancelled.signal()
        await #expect(throws: KronosError.cancelled) { try await task.value }
        #expect(steps.count == 2)
        // Uncancelled, every step is reported, in order.
        let all = Steps()
        _ = try await model.forecast(history, steps: 5) { all.record($0) }
        #expect(all.seen == (1...5).map { ForecastProgress(step: $0, steps: 5) })
    }

    /// Bad input and options are errors in the library's terms (no command-line flags), naming the value.
    @Test func errorsSpeakTheLibrarysTerms() async throws {
        let model = try KronosModel(contentsOf: tinyBundle)
        let history = try CandleSeries(contentsOf: sample).suffix(30)
        let cases: [(ForecastOptions, Int, String)] = [
            (ForecastOptions(), 0, "steps must be at least 1, found 0"),
            (ForecastOptions(), 65, "65 steps exceed the model's 64-row window"),
            (ForecastOptions(samples: 0), 4, "samples must be at least 1, found 0"),
            (ForecastOptions(topP: 1.5), 4, "topP must be in (0, 1], found 1.5"),
            (ForecastOptions(temperature: 0), 4, "temperature must be a positive number, found 0.0"),
            (ForecastOptions(maxContext: 0), 4, "maxContext must be in 1...1048576, found 0"),
        ]
        for (options, steps, message) in cases {
            do {
                _ = try await model.forecast(history, steps: steps, options: options)
                Issue.record("no error for \(message)")
            } catch {
                #expect(error.errorDescription?.contains(message) == true, "\(error.errorDescription ?? "")")
                #expect(error.errorDescription?.contains("--") == false)
            }
        }
        // The CSV reader names a column mapping as Swift code writes it (kronos-run's reader, the
        // same code, says --column / --time-column: RealWorldInputTests).
        let csv = URL(fileURLWithPath: temporaryDirectory("facade-columns")).appendingPathComponent("odd.csv")
        try Data("when,first,top,bottom,last\n2024-01-01,1,2,0.5,1\n2024-01-02,1,2,0.5,1\n".utf8).write(to: csv)
        let mappings: [(ColumnMapping, String)] = [
            (ColumnMapping(), "(or ColumnMapping(time: \"NAME\")); found \"when, first, top, bottom, last\""),
            (
                ColumnMapping(
                    time: "when", fields: ["open": "first", "high": "top", "low": "bottom", "close": "nope"]),
                "ColumnMapping fields[\"close\"] = \"nope\": no such column"
            ),
            (ColumnMapping(time: "then"), "ColumnMapping(time: \"then\"): no such column"),
        ]
        for (mapping, message) in mappings {
            do {
                _ = try CandleSeries(contentsOf: csv, columns: mapping)
                Issue.record("no error for \(message)")
            } catch {
                #expect(error.errorDescription?.contains(message) == true, "\(error.errorDescription ?? "")")
                #expect(error.errorDescription?.contains("--") == false, "\(error.errorDescription ?? "")")
            }
        }
        let t0 = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(
            throws: KronosError.invalidInput(
                "series, candle 1: date 2023-11-14 22:13:20 +0000 is not later than the previous candle's: "
                    + "candles must be strictly increasing in date (to the second)")
        ) {
            try CandleSeries([
                Candle(date: t0, open: 1, high: 1, low: 1, close: 1),
                Candle(date: t0, open: 1, high: 1, low: 1, close: 1),
            ])
        }
        #expect(throws: KronosError.self) {
            try CandleSeries([Candle(date: t0, open: .nan, high: 1, low: 1, close: 1)])
        }
        let missing = URL(fileURLWithPath: "/nonexistent/model.kq")
        do { _ = try KronosModel(contentsOf: missing); Issue.record("loaded a missing bundle") } catch {
            guard case let .invalidBundle(m) = error else { Issue.record("\(error)"); return }
            #expect(m.contains("/nonexistent/model.kq"))
        }
    }

    /// One model, many tasks: concurrent façade forecasts equal the same forecasts one at a time.
    @Test func concurrentTasksShareOneModel() async throws {
        let model = try KronosModel(contentsOf: tinyBundle)
        let all = try CandleSeries(contentsOf: sample)
        let jobs = (0..<6).map { k in
            (history: all.suffix(30 + 20 * k), options: ForecastOptions(samples: 1 + k % 3, seed: UInt64(k)))
        }
        var alone = [Forecast]()
        for j in jobs { alone.append(try await model.forecast(j.history, steps: 10 + k(j), options: j.options)) }
        let together = try await withThrowingTaskGroup(of: (Int, Forecast).self) { group in
            for (i, j) in jobs.enumerated() {
                group.addTask { (i, try await model.forecast(j.history, steps: 10 + k(j), options: j.options)) }
            }
            var out = [Int: Forecast]()
            for try await (i, f) in group { out[i] = f }
            return out
        }
        for i in jobs.indices { #expect(together[i]!.paths == alone[i].paths && together[i]!.mean == alone[i].mean) }
        func k(_ j: (history: CandleSeries, options: ForecastOptions)) -> Int { Int(j.options.seed) }
    }
}

private final class Steps: @unchecked Sendable {
    private let lock = NSLock()
    private var list = [ForecastProgress]()
    func record(_ p: ForecastProgress) { lock.lock(); list.append(p); lock.unlock() }
    var count: Int { lock.lock(); defer { lock.unlock() }; return list.count }
    var seen: [ForecastProgress] { lock.lock(); defer { lock.unlock() }; return list }
}
