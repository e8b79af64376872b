import Foundation
import Kronos
import KronosCheckpoint
import KronosConvert
import KronosEval
import KronosTestSupport
import Testing

private let sample = repositoryRoot.appendingPathComponent("golden/sample_4h.csv")

private let tinyModel = try! KronosModel(contentsOf: tinyQ8Bundle)

/// A geometric random walk: ln price_t = ln price_(t-1) + N(0, sigma²), hourly, from a fixed seed.
private func randomWalk(_ n: Int, sigma: Double, seed: UInt64) -> CandleSeries {
    var state = seed
    func uniform() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
    }
    var p = 100.0
    var candles = [Candle]()
    for t in 0..<n {
        let z = (-2 * log(max(uniform(), 1e-300))).squareRoot() * cos(2 * Double.pi * uniform())
        let next = p * exp(sigma * z)
        candles.append(
            Candle(
                date: Date(timeIntervalSince1970: 1_700_000_000 + 3600 * Double(t)), open: p, high: max(p, next),
                low: min(p, next), close: next, volume: 1))
        p = next
    }
    return try! CandleSeries(candles, name: "walk")
}

@Suite struct BacktestTests {
    @Test func originsByStrideAndEvenlySpaced() {
        // 100 candles, lookback 20, 10 steps: origins 20 ... 90.
        #expect(
            BacktestPlan(lookback: 20, steps: 10, stride: 7).originIndices(count: 100) == [
                20, 27, 34, 41, 48, 55, 62, 69, 76, 83, 90,
            ])
        #expect(BacktestPlan(lookback: 20, steps: 10, origins: 3).originIndices(count: 100) == [20, 55, 90])
        #expect(BacktestPlan(lookback: 20, steps: 10, origins: 1).originIndices(count: 100) == [90])
        #expect(BacktestPlan(lookback: 20, steps: 10).originIndices(count: 29).isEmpty)
        #expect(BacktestPlan(lookback: 20, steps: 10).originIndices(count: 30) == [20])
        // From / to (inclusive) on the origins' dates: one candle per hour, origins 20 ... 90 eligible.
        let dates = (0..<100).map { Date(timeIntervalSince1970: 3600 * Double($0)) }
        var plan = BacktestPlan(lookback: 20, steps: 10, stride: 5, from: dates[33], to: dates[60])
        #expect(plan.originIndices(dates: dates) == [33, 38, 43, 48, 53, 58])
        plan.origins = 2
        #expect(plan.originIndices(dates: dates) == [33, 60])
        plan.from = dates[95]
        #expect(plan.originIndices(dates: dates).isEmpty)
        #expect(Candles.date("1970-01-02 01:00") == Date(timeIntervalSince1970: 90000))
        #expect(Candles.date("1970-01-02T03:00:00+02:00") == Date(timeIntervalSince1970: 90000))
        #expect(Candles.date("yesterday") == nil)
    }

    /// Nothing after an origin's history reaches its forecast: values from the origin on changed, the
    /// forecast is the same bit for bit; the last history candle changed, it is not.
    @Test func nothingAfterTheOriginLeaksIn() throws {
        let series = try CandleSeries(contentsOf: sample).suffix(120)
        let plan = BacktestPlan(lookback: 40, steps: 8)
        let backtest = Backtest(plan: plan, options: ForecastOptions(samples: 3, seed: 11))
        let candles = series.candles
        let o = 70
        let base = try backtest.forecast(tinyModel, series, candles: candles, origin: o)
        var later = candles
        for i in o..<later.count {
            later[i].close *= 1.7; later[i].open *= 0.6; later[i].high *= 1.9; later[i].low *= 0.5
            later[i].volume = (later[i].volume ?? 0) * 9
        }
        let changedLater = try CandleSeries(later, name: series.name)
        let same = try backtest.forecast(tinyModel, changedLater, candles: later, origin: o)
        #expect(same.paths == base.paths && same.mean == base.mean)
        var earlier = candles
        earlier[o - 1].close *= 1.01
        earlier[o - 1].high = max(earlier[o - 1].high, earlier[o - 1].close)
        let changedEarlier = try CandleSeries(earlier, name: series.name)
        let other = try backtest.forecast(tinyModel, changedEarlier, candles: earlier, origin: o)
        #expect(other.paths != base.paths)
    }

    /// On a geometric random walk the baselines score as theory says: persistence's one-step MASE
    /// near 1, the random walk's bands covering their nominal share, its PIT near uniform.
    @Test func baselinesOnARandomWalk() throws {
        let series = randomWalk(4200, sigma: 0.01, seed: 3)
        let plan = BacktestPlan(lookback: 200, steps: 4)
        let report = try Backtest(plan: plan, options: ForecastOptions()).run([], series: [series])
        let persistence = try #require(report.fields[0].forecasters.first { $0.name == "persistence" })
        let walk = try #require(report.fields[0].forecasters.first { $0.name == "random walk" })
        #expect(persistence.horizons[0].count == 3997)
        #expect(abs(persistence.horizons[0].mase - 1) < 0.06, "\(persistence.horizons[0].mase)")
        // MASE grows like sqrt(h) for a random walk: h = 4 about 2.
        #expect(abs(persistence.horizons[3].mase - 2) < 0.15, "\(persistence.horizons[3].mase)")
        for (band, share) in zip(Tally.bands, walk.overall.coverage) {
            #expect(abs(share - band) < 0.03, "\(band): \(share)")
        }
        #expect(walk.overall.pitDistance < 0.04, "\(walk.overall.pitHistogram)")
        // Persistence is a point: its CRPS is its MAE, and the walk's spread beats it.
        #expect(abs(persistence.overall.crps - persistence.overall.mae) < 1e-12)
        #expect(walk.overall.crps < persistence.overall.crps)
        // The point forecasts are the same (the last value): the same errors, no skill either way.
        #expect(walk.overall.mae == persistence.overall.mae)
    }

    /// The same seed gives the same report; the model is scored beside both baselines with the
    /// comparisons a reader needs.
    @Test func sameSeedSameReport() throws {
        let series = try CandleSeries(contentsOf: sample).suffix(160)
        let plan = BacktestPlan(lookback: 48, steps: 6, stride: 10)
        let backtest = Backtest(plan: plan, options: ForecastOptions(samples: 4, seed: 5))
        let a = try backtest.run([("tiny-q8", tinyModel)], series: [series])
        let b = try backtest.run([("tiny-q8", tinyModel)], series: [series])
        #expect(a == b)
        #expect(a.series[0].origins == 11)
        #expect(a.fields[0].forecasters.map(\.name) == ["tiny-q8", "persistence", "random walk"])
        #expect(
            a.fields[0].comparisons.map { "\($0.a) vs \($0.b) \($0.loss)" } == [
                "tiny-q8 vs persistence CRPS", "tiny-q8 vs persistence MAE", "tiny-q8 vs random walk CRPS",
                "tiny-q8 vs random walk MAE",
            ])
        let tiny = a.fields[0].forecasters[0]
        #expect(tiny.horizons.count == 6 && tiny.overall.count == 66)
        // CRPS <= the members' mean absolute error (the spread term is subtracted), within 2x the mean path's.
        #expect(tiny.overall.crps > 0 && tiny.overall.crps <= tiny.overall.mae * 2)
        let other = try Backtest(plan: plan, options: ForecastOptions(samples: 4, seed: 6)).run(
            [("tiny-q8", tinyModel)], series: [series])
        #expect(other.fields[0].forecasters[0].overall.crps != tiny.overall.crps)
    }

    /// Origins forecast as batches of 1, 3 or 16 (across two series, so batches end at a series'
    /// end) give the same report and the same per-origin rows, bit for bit.
    @Test func batchingChangesNothing() throws {
        let all = try CandleSeries(contentsOf: sample)
        let a = all.suffix(150), b = try CandleSeries(Array(all.candles.prefix(120)), name: "early")
        let plan = BacktestPlan(lookback: 40, steps: 6, stride: 9)
        let options = ForecastOptions(samples: 3, seed: 21)
        var reports = [BacktestReport](), rowSets = [[OriginRow]]()
        for perBatch in [1, 3, 16] {
            var rows = [OriginRow]()
            let part = try Backtest(plan: plan, options: options, originsPerBatch: perBatch).runShard(
                [("tiny-q8", tinyModel)], series: [a, b], shard: 1, of: 1, perOrigin: { rows.append($0) })
            reports.append(try BacktestReport(merging: [part]))
            rowSets.append(rows)
        }
        #expect(reports[0].series.map(\.origins) == [12, 9])
        #expect(reports[1] == reports[0] && reports[2] == reports[0])
        #expect(rowSets[1] == rowSets[0] && rowSets[2] == rowSets[0])
        #expect(Backtest.defaultBatch(samples: 20) == 6 && Backtest.defaultBatch(samples: 1) == 16)
    }

    @Test func originSeedsDependOnSeedSeriesAndDateOnly() {
        let d = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(originSeed(1, series: "btc", date: d) == originSeed(1, series: "btc", date: d))
        #expect(originSeed(1, series: "btc", date: d) != originSeed(2, series: "btc", date: d))
        #expect(originSeed(1, series: "btc", date: d) != originSeed(1, series: "eth", date: d))
        #expect(originSeed(1, series: "btc", date: d) != originSeed(1, series: "btc", date: d + 3600))
    }
}

/// kronos-run backtest as a user runs it: the tiny bundle converted by kronos-convert, the sample series.
@Suite struct BacktestCLITests {
    @Test func reportsAsTableAndJSONTheSameWithTheSameSeed() throws {
        let dir = temporaryDirectory("backtest-cli")
        let bundle = dir + "/tiny.kq"
        let tiny = goldenTinyDirectory
        let converted = try runTool(
            "kronos-convert",
            [
                "--tokenizer", tiny + "/tokenizer", "--predictor", tiny + "/predictor", "--quantize", "q8",
                "--max-context", "64", "-o", bundle,
            ])
        #expect(converted.status == 0, "\(converted.stderr)")
        let args = [
            "backtest", bundle, "--input", sample.path, "--lookback", "48", "--pred-len", "6", "--origins", "8",
            "--samples", "3", "--seed", "9",
        ]
        let table = try runTool("kronos-run", args)
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains("backtest: 8 origins, lookback 48, 6 steps, 3 samples, seed 9, scored on close"))
        for line in [
            "tiny ", "persistence ", "random walk ", "tiny vs persistence: CRPS", "Lowest CRPS: ", "CRPS by step",
            "h=6",
        ] {
            #expect(table.stdout.contains(line), "\(line)")
        }
        // --per-origin: a header and one row per (origin, forecaster, step), the truth and CRPS in each.
        let rows = try runTool("kronos-run", args + ["--per-origin", dir + "/rows.csv", "-q"])
        let lines = try String(contentsOfFile: dir + "/rows.csv", encoding: .utf8).split(separator: "\n")
        #expect(rows.status == 0 && lines.count == 1 + 8 * 3 * 6)
        #expect(lines.first == "series,origin,forecaster,column,step,truth,mean,q10,q50,q90,crps")
        #expect(lines.filter { $0.contains(",persistence,close,1,") }.count == 8)
        let a = try runTool("kronos-run", args + ["--format", "json"])
        let b = try runTool("kronos-run", args + ["--format", "json", "-o", dir + "/report.json"])
        #expect(a.status == 0 && b.status == 0)
        #expect(Data(a.stdout.utf8) == (try Data(contentsOf: URL(fileURLWithPath: dir + "/report.json"))))
        let report = try JSONDecoder.iso8601.decode(BacktestReport.self, from: Data(a.stdout.utf8))
        #expect(report.series.map(\.origins) == [8] && report.fields[0].forecasters.count == 3)
        // Several columns: each scored on its own, close's scores those of the close-only run.
        let two = try runTool("kronos-run", args + ["--columns", "close,volume", "--format", "json"])
        let both = try JSONDecoder.iso8601.decode(BacktestReport.self, from: Data(two.stdout.utf8))
        #expect(both.fields.map(\.field) == ["close", "volume"] && both.fields[0] == report.fields[0])
        #expect(both.fields[1].forecasters[0].overall.crps != report.fields[0].forecasters[0].overall.crps)
        let twoTable = try runTool("kronos-run", args + ["--columns", "close", "--columns", "volume"])
        #expect(twoTable.stdout.contains("== close ==") && twoTable.stdout.contains("== volume =="))
        #expect(twoTable.stdout.contains("scored on close, volume") && twoTable.stdout.contains("On volume: "))
        let mapping = try runTool("kronos-run", args + ["--columns", "close=Last"])
        #expect(mapping.status != 0 && mapping.stderr.contains("to map a CSV header, use --column close=Last"))
        // Too few candles for one origin: an error naming what each origin needs, exit status 1.
        let short = try runTool(
            "kronos-run", ["backtest", bundle, "--input", sample.path, "--lookback", "5000", "--pred-len", "6"])
        #expect(short.status == 1 && short.stderr.contains("each needs 5000 candles before it and 6 after"))
        // Two shards through the binaries, merged in the other order: the unsharded JSON, byte for byte.
        let sharded = [
            "backtest", bundle, "--input", sample.path, "--lookback", "30", "--pred-len", "4", "--stride", "5",
        ]
        for k in 1...2 {
            let part = try runTool("kronos-run", sharded + ["--shard", "\(k)/2", "-o", dir + "/part\(k).json"])
            #expect(part.status == 0, "\(part.stderr)")
        }
        let merged = try runTool(
            "kronos-run",
            [
                "backtest", "merge", dir + "/part2.json", dir + "/part1.json", "--format", "json", "--chart",
                dir + "/m.svg",
            ])
        let unsharded = try runTool("kronos-run", sharded + ["--format", "json", "--chart", dir + "/u.svg"])
        #expect(merged.status == 0 && !merged.stdout.isEmpty && merged.stdout == unsharded.stdout)
        // The chart: three panels, every forecaster in the legend, the same drawing from the merge.
        let svg = try String(contentsOfFile: dir + "/u.svg", encoding: .utf8)
        for text in [
            "CRPS (solid) and MAE (dashed) by step", "Band coverage against nominal", "PIT histogram", ">tiny<",
            ">persistence<", ">random walk<",
        ] {
            #expect(svg.contains(text), "\(text)")
        }
        #expect(svg == (try String(contentsOfFile: dir + "/m.svg", encoding: .utf8)))
        let missing = try runTool("kronos-run", ["backtest", "merge", dir + "/part2.json"])
        #expect(missing.status == 1 && missing.stderr.contains("merge needs all 2 shards (found [2])"))
    }
}

extension JSONDecoder {
    fileprivate static var iso8601: JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }
}

@Suite struct ShardTests {
    /// Shards of a study merge to the unsharded report bit for bit (JSON bytes), in any order, after
    /// a round trip through their JSON; a missing or foreign shard is refused.
    @Test func shardsMergeToTheUnshardedReport() throws {
        let series = try CandleSeries(contentsOf: sample).suffix(400)
        let plan = BacktestPlan(lookback: 40, steps: 5, stride: 3)
        let backtest = Backtest(plan: plan, options: ForecastOptions(samples: 2, seed: 4))
        let models = [("tiny", tinyModel)]
        let whole = try backtest.run(models, series: [series])
        #expect(whole.series[0].origins == 119)  // 8 blocks of 16 origins, the last of 7
        for n in [2, 3, 8] {
            let parts = try (1...n).reversed().map { k in
                try BacktestPartial(
                    json: Data(backtest.runShard(models, series: [series], shard: k, of: n).json().utf8), file: "part")
            }
            let merged = try BacktestReport(merging: parts)
            #expect(merged.json() == whole.json(), "\(n) shards")
        }
        let parts = try (1...3).map { try backtest.runShard(models, series: [series], shard: $0, of: 3) }
        #expect(throws: KronosError.self) { try BacktestReport(merging: Array(parts.prefix(2))) }
        #expect(throws: KronosError.self) { try BacktestReport(merging: parts + [parts[0]]) }
        let other = try Backtest(plan: plan, options: ForecastOptions(samples: 2, seed: 5)).runShard(
            models, series: [series], shard: 3, of: 3)
        #expect(throws: KronosError.self) { try BacktestReport(merging: Array(parts.prefix(2)) + [other]) }
    }
}
