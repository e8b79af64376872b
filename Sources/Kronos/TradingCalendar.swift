// The calendar future timestamps follow: every day (crypto), weekdays only (stocks, daily or
// intraday), or a file of timestamps for anything else (exchange holidays, sessions). The model sees
// the future rows' minute, hour, weekday, day and month, so a Saturday forecast date for a stock is
// not only a wrong label: it is a wrong input.
import Foundation
import KronosEngineTypes
import KronosBundle

public enum CalendarKind: String, Sendable, Codable, CaseIterable {
    /// Every day of the week, every hour (crypto markets).
    case allDays = "24x7"
    /// Monday to Friday: future rows falling on a Saturday or Sunday move to the next Monday.
    case weekdays
}

/// Future timestamps of one series, and where they came from.
public struct FutureTimes: Sendable {
    public var times: [Int64]
    public var format: TimeFormat
    public init(times: [Int64], format: TimeFormat) { self.times = times; self.format = format }
}

public enum TradingCalendar {
    /// Weekdays when the input spans at least two weeks and has no Saturday or Sunday row; else 24x7.
    /// Returns the calendar and a sentence saying why.
    public static func infer(_ t: CandleTable) -> (calendar: CalendarKind, reason: String) {
        let span = t.times.last! - t.times.first!
        guard span >= 14 * 86400 else { return (.allDays, "the input spans less than two weeks, too short to tell") }
        if let i = t.times.firstIndex(where: { Candles.weekday($0) >= 5 }) {
            return (.allDays, "the input has weekend rows (line \(t.lines[i]))")
        }
        return (.weekdays, "no Saturday or Sunday among the \(t.rows) input rows")
    }

    /// The first time on the calendar after `t` by steps of `step` seconds.
    static func next(after t: Int64, step: Int64, calendar: CalendarKind) -> Int64? {
        var (n, o) = t.addingReportingOverflow(step)
        guard !o else { return nil }
        if calendar == .weekdays, step % (7 * 86400) != 0 {
            // At most 2 days of weekend: a step of a day or less lands on Monday within 2 days' steps.
            var guardSteps = 0
            while Candles.weekday(n) >= 5 {
                (n, o) = n.addingReportingOverflow(step)
                guardSteps += 1
                guard !o, guardSteps <= 2 * 86400 / max(1, min(step, 86400)) + 7 else { return nil }
            }
        }
        return n
    }

    /// Latest time the calendar writes (9999-12-31 23:59:59).
    static let lastTime: Int64 = 253_402_300_799

    /// `count` future times after the table's last row by `step` on `calendar`.
    public static func future(after t: CandleTable, step: Int64, count: Int, calendar: CalendarKind)
        throws(RuntimeError) -> [Int64]
    {
        var out = [Int64](), last = t.times.last!
        out.reserveCapacity(count)
        for _ in 0..<count {
            guard let n = next(after: last, step: step, calendar: calendar), n <= lastTime else {
                throw .input(
                    file: t.file, line: nil, column: nil,
                    message:
                        "future timestamps after \(Candles.format(last, t.format)) by \(describe(interval: step)) pass "
                        + "the year 9999"
                )
            }
            out.append(n); last = n
        }
        return out
    }

    /// "4h", "15m", "1d", "90s".
    public static func describe(interval s: Int64) -> String {
        if s % 604_800 == 0 { return "\(s / 604_800)w" }
        if s % 86400 == 0 { return "\(s / 86400)d" }
        if s % 3600 == 0 { return "\(s / 3600)h" }
        if s % 60 == 0 { return "\(s / 60)m" }
        return "\(s)s"
    }

    /// One warning for rows missing from the calendar's grid (gaps) and one for rows closer than
    /// the spacing; nil when the input follows the grid. `exactTimes` names, in the caller's terms,
    /// the way to give exact future times (for sessions and holidays).
    public static func gapWarnings(
        _ t: CandleTable, step: Int64, calendar: CalendarKind, exactTimes: String = "ForecastOptions.futureDates"
    ) -> [String] {
        var gaps = 0, missing: Int64 = 0, firstGap: Int?, close = 0, firstClose: Int?
        for i in 1..<t.rows {
            guard let expected = next(after: t.times[i - 1], step: step, calendar: calendar) else { break }
            if t.times[i] > expected {
                gaps += 1
                if firstGap == nil { firstGap = i }
                // Rows the grid expected in between: counted by stepping the calendar (weekends
                // skipped) up to 10 000, estimated beyond (5 of 7 days on weekdays): bounded work
                // whatever the timestamps.
                let span = (t.times[i] - expected) / step
                if span <= 10_000 {
                    var k: Int64 = 0, x = expected
                    while x < t.times[i] {
                        k += 1; guard let n = next(after: x, step: step, calendar: calendar) else { break }; x = n
                    }
                    missing = saturatingAdd(missing, k)
                } else {
                    missing = saturatingAdd(missing, calendar == .weekdays && step < 86400 * 7 ? span / 7 * 5 : span)
                }
            } else if t.times[i] < expected {
                close += 1
                if firstClose == nil { firstClose = i }
            }
        }
        var out = [String]()
        let spacing = "\(describe(interval: step)) on the \(calendar.rawValue) calendar"
        if let i = firstGap {
            out.append(
                "\(gaps) gap\(gaps == 1 ? "" : "s") in the timestamps (expected spacing \(spacing), \(missing) "
                    + "row\(missing == 1 ? "" : "s") missing); "
                    + "first at line \(t.lines[i]): \(Candles.format(t.times[i - 1], t.format)) -> "
                    + "\(Candles.format(t.times[i], t.format))"
                    + (calendar == .allDays
                        ? "" : " (sessions or holidays: \(exactTimes) gives the exact future times)"))
        }
        if let i = firstClose {
            out.append(
                "\(close) row\(close == 1 ? " is" : "s are") closer to the previous than the expected spacing "
                    + "\(spacing); first at line \(t.lines[i])"
            )
        }
        return out
    }

    static func saturatingAdd(_ a: Int64, _ b: Int64) -> Int64 {
        let (v, o) = a.addingReportingOverflow(b)
        return o ? Int64.max : v
    }

    /// Timestamps from a file: one per line, or a CSV whose timestamp column is found as the candle
    /// reader finds it (the first column without a header). Strictly increasing.
    public static func read(path: String) throws(RuntimeError) -> (times: [Int64], format: TimeFormat) {
        func fail(_ line: Int?, _ m: String) -> RuntimeError { .input(file: path, line: line, column: nil, message: m) }
        let data: Data
        do { data = try InputFile.read(path, limit: Candles.maxFileBytes) } catch { throw fail(nil, error.message) }
        let b = [UInt8](data)
        guard String(validating: b, as: UTF8.self) != nil else { throw fail(nil, "not UTF-8 text") }
        let lines = try Candles.splitLines(b, from: b.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0, file: path)
        guard let first = lines.first else { throw fail(nil, "empty file: expected future timestamps, one per line") }
        let separator = [UInt8(0x2C), 0x3B, 0x09].first { s in b[first.start..<first.end].contains(s) } ?? 0x2C
        let head = Candles.cells(b, first, separator)
        var column = 0, body = lines[...]
        if (try? Candles.parseTime(head[0], file: path, line: first.line, column: "")) == nil {
            body = lines.dropFirst()
            let normalized = head.map(Candles.normalize)
            if let c = Candles.aliases["time"]!.lazy.compactMap({ normalized.firstIndex(of: $0) }).first { column = c }
        }
        var times = [Int64](), format: TimeFormat?
        for r in body {
            let cs = Candles.cells(b, r, separator)
            guard column < cs.count else {
                throw fail(r.line, "expected a timestamp in cell \(column + 1), found \(cs.count) cells")
            }
            let (t, f) = try Candles.parseTime(
                cs[column], file: path, line: r.line, column: head.count > 1 ? head[column] : "timestamp")
            if let f0 = format, !Candles.sameFamily(f0, f) {
                throw fail(r.line, "timestamp format differs from the first row's")
            }
            if format == nil { format = f }
            if let last = times.last, t <= last { throw fail(r.line, "timestamps must be strictly increasing") }
            times.append(t)
        }
        guard let format else { throw fail(nil, "no timestamps found") }
        return (times, format)
    }

    /// The first `count` times of `file` after the table's last row.
    public static func future(
        after t: CandleTable, from file: (times: [Int64], format: TimeFormat), path: String, count: Int
    ) throws(RuntimeError) -> FutureTimes {
        guard Candles.sameFamily(file.format, t.format) else {
            throw .input(
                file: path, line: nil, column: nil,
                message:
                    "its timestamps are not written like those of \(t.file) (unix vs calendar text, or another UTC "
                    + "offset)"
            )
        }
        let after = file.times.filter { $0 > t.times.last! }
        guard after.count >= count else {
            throw .input(
                file: path, line: nil, column: nil,
                message:
                    "has \(after.count) timestamp\(after.count == 1 ? "" : "s") after \(t.file)'s last row "
                    + "(\(Candles.format(t.times.last!, t.format))), need \(count) (one per forecast step)"
            )
        }
        return FutureTimes(times: Array(after.prefix(count)), format: file.format)
    }
}
