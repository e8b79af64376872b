// Candle CSV input: header with open, high, low, close (+ optional volume, amount) and a timestamp
// column (timestamps, timestamp, date or time); ISO-8601, "YYYY-MM-DD HH:MM:SS", unix seconds or
// milliseconds; strictly increasing. Errors name the file, line and column.
import Foundation

/// How the input wrote its timestamps (the forecast writes future ones the same way).
public enum TimeFormat: Sendable, Equatable {
    case unixSeconds, unixMilliseconds
    /// Calendar text; `offset` seconds east of UTC when the input carried one, `isoT` when it used 'T'.
    case calendar(offset: Int?, isoT: Bool)
}

public struct CandleTable: Sendable {
    public let file: String
    /// Wall-clock seconds since 1970-01-01 00:00 (UTC, or local to the input's offset).
    public let times: [Int64]
    public let format: TimeFormat
    /// [rows, 6]: open, high, low, close, volume, amount.
    public let values: [Float]
    public var rows: Int { times.count }
    public let notes: [String]
}

public enum Candles {
    public static let columns = ["open", "high", "low", "close", "volume", "amount"]
    public static let timeColumns = ["timestamps", "timestamp", "date", "time"]
    /// Longest accepted line (bytes), against runaway inputs.
    public static let maxLineBytes = 1 << 20

    public static func read(path: String) throws(RuntimeError) -> CandleTable {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .input(file: path, line: nil, column: nil, message: "cannot read the file")
        }
        return try parse(data, file: path)
    }

    public static func parse(_ data: Data, file: String) throws(RuntimeError) -> CandleTable {
        func fail(_ line: Int?, _ col: String?, _ m: String) -> RuntimeError { .input(file: file, line: line, column: col, message: m) }
        guard let text = String(data: data, encoding: .utf8) else { throw fail(nil, nil, "not UTF-8 text") }
        var lines = [Substring]()
        var lineNumbers = [Int]()
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard raw.utf8.count <= maxLineBytes else { throw fail(i + 1, nil, "line is longer than \(maxLineBytes) bytes") }
            let l = raw.hasSuffix("\r") ? raw.dropLast() : raw
            if l.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
            lines.append(l); lineNumbers.append(i + 1)
        }
        guard let headerLine = lines.first else { throw fail(nil, nil, "empty file: expected a header and at least 2 rows") }
        let header = splitCSV(headerLine).map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        func index(_ name: String) -> Int? { header.firstIndex(of: name) }
        guard let timeIndex = timeColumns.lazy.compactMap(index).first else {
            throw fail(lineNumbers[0], nil, "no timestamp column: expected one named \(timeColumns.joined(separator: ", ")); found \(header.joined(separator: ", "))")
        }
        var colIndex = [Int?]()
        for c in columns {
            let i = index(c)
            if i == nil, c != "volume", c != "amount" {
                throw fail(lineNumbers[0], c, "missing required column \"\(c)\" (required: open, high, low, close; found \(header.joined(separator: ", ")))")
            }
            colIndex.append(i)
        }
        var notes = [String]()
        if colIndex[4] == nil { notes.append("no volume column: volume and amount set to 0") }
        else if colIndex[5] == nil { notes.append("no amount column: amount = volume × mean(open, high, low, close)") }

        var times = [Int64](), values = [Float]()
        var format: TimeFormat?
        times.reserveCapacity(lines.count); values.reserveCapacity(lines.count * 6)
        for (k, line) in lines.dropFirst().enumerated() {
            let ln = lineNumbers[k + 1]
            let cells = splitCSV(line)
            guard cells.count >= header.count else {
                throw fail(ln, nil, "expected \(header.count) cells, found \(cells.count)")
            }
            let (t, f) = try parseTime(cells[timeIndex].trimmingCharacters(in: .whitespaces), file: file, line: ln, column: header[timeIndex])
            if let format, !sameFamily(format, f) {
                throw fail(ln, header[timeIndex], "timestamp format differs from the first row's")
            }
            if format == nil { format = f }
            if let last = times.last, t <= last {
                throw fail(ln, header[timeIndex], t == last ? "duplicate timestamp \(cells[timeIndex])" : "timestamp \(cells[timeIndex]) is earlier than the previous row's: rows must be strictly increasing in time")
            }
            times.append(t)
            var row = [Float](repeating: 0, count: 6)
            for c in 0..<6 {
                guard let i = colIndex[c] else { continue }
                let cell = cells[i].trimmingCharacters(in: .whitespaces)
                guard let v = Double(cell) else {
                    throw fail(ln, columns[c], cell.isEmpty ? "empty cell, expected a number" : "\"\(cell.prefix(40))\" is not a number")
                }
                guard v.isFinite else { throw fail(ln, columns[c], "\(cell) is not a finite number (NaN / Inf are not accepted)") }
                row[c] = Float(v)
            }
            if colIndex[4] == nil { row[4] = 0; row[5] = 0 }
            else if colIndex[5] == nil { row[5] = row[4] * ((row[0] + row[1] + row[2] + row[3]) / 4) }
            values += row
        }
        guard times.count >= 2 else { throw fail(nil, nil, "found \(times.count) data row\(times.count == 1 ? "" : "s"), need at least 2") }
        return CandleTable(file: file, times: times, format: format!, values: values, notes: notes)
    }

    static func sameFamily(_ a: TimeFormat, _ b: TimeFormat) -> Bool {
        switch (a, b) {
        case (.unixSeconds, .unixSeconds), (.unixMilliseconds, .unixMilliseconds): return true
        case let (.calendar(o1, _), .calendar(o2, _)): return o1 == o2
        default: return false
        }
    }

    /// Splits one CSV line on commas; double-quoted cells may contain commas ("" is a quote).
    static func splitCSV(_ line: Substring) -> [String] {
        var cells = [String](), cur = "", quoted = false
        var it = line.makeIterator()
        while let ch = it.next() {
            if quoted {
                if ch == "\"" {
                    if let n = it.next() {
                        if n == "\"" { cur.append("\"") } else { quoted = false; if n == "," { cells.append(cur); cur = "" } else { cur.append(n) } }
                    } else { quoted = false }
                } else { cur.append(ch) }
            } else if ch == "\"" { quoted = true }
            else if ch == "," { cells.append(cur); cur = "" }
            else { cur.append(ch) }
        }
        cells.append(cur)
        return cells
    }

    /// Parses one timestamp into wall-clock seconds and its format.
    static func parseTime(_ s: String, file: String, line: Int, column: String) throws(RuntimeError) -> (Int64, TimeFormat) {
        func fail() -> RuntimeError {
            .input(file: file, line: line, column: column,
                   message: "cannot read timestamp \"\(s.prefix(40))\" (expected YYYY-MM-DD HH:MM:SS, ISO-8601, or unix seconds / milliseconds)")
        }
        if !s.isEmpty, s.allSatisfy({ $0.isASCII && $0.isNumber }) {
            guard let v = Int64(s) else { throw fail() }
            return v >= 100_000_000_000 ? (v / 1000, .unixMilliseconds) : (v, .unixSeconds)
        }
        let b = Array(s.utf8)
        var i = 0
        func num(_ n: Int) -> Int? {
            guard i + n <= b.count else { return nil }
            var v = 0
            for k in 0..<n { let c = b[i + k]; guard c >= 48 && c <= 57 else { return nil }; v = v * 10 + Int(c - 48) }
            i += n
            return v
        }
        func expect(_ c: UInt8) -> Bool { if i < b.count && b[i] == c { i += 1; return true }; return false }
        guard let y = num(4), expect(45), let mo = num(2), expect(45), let d = num(2) else { throw fail() }
        var h = 0, mi = 0, sec = 0, isoT = false
        var offset: Int?
        if i < b.count {
            isoT = b[i] == UInt8(ascii: "T")
            guard b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: " ") else { throw fail() }
            i += 1
            guard let hh = num(2), expect(58), let mm = num(2) else { throw fail() }
            h = hh; mi = mm
            if expect(58) { guard let ss = num(2) else { throw fail() }; sec = ss }
            if expect(46) { while i < b.count && b[i] >= 48 && b[i] <= 57 { i += 1 } }  // fractional seconds dropped
            if expect(UInt8(ascii: "Z")) { offset = 0 }
            else if i < b.count && (b[i] == 43 || b[i] == 45) {
                let sign = b[i] == 45 ? -1 : 1
                i += 1
                guard let oh = num(2) else { throw fail() }
                _ = expect(58)
                guard let om = num(2) else { throw fail() }
                offset = sign * (oh * 3600 + om * 60)
            }
            guard i == b.count else { throw fail() }
        }
        guard (1...12).contains(mo), (1...daysInMonth(y, mo)).contains(d), h < 24, mi < 60, sec < 61 else { throw fail() }
        let days = daysFromCivil(y, mo, d)
        return (Int64(days) * 86400 + Int64(h * 3600 + mi * 60 + sec), .calendar(offset: offset, isoT: isoT))
    }

    static func daysInMonth(_ y: Int, _ m: Int) -> Int {
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date.
    static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (m + 9) % 12
        let doy = (153 * mp + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    /// Date of a day count since 1970-01-01.
    static func civilFromDays(_ z0: Int) -> (year: Int, month: Int, day: Int) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    /// Time features of wall-clock seconds (KRONOS.md §5.2).
    public static func stamp(_ t: Int64) -> TimeStamp {
        let days = Int((t >= 0 ? t : t - 86399) / 86400)
        let secs = Int(t - Int64(days) * 86400)
        let (_, m, d) = civilFromDays(days)
        let weekday = ((days % 7) + 7 + 3) % 7  // 1970-01-01 was a Thursday (Monday = 0)
        return TimeStamp(minute: (secs / 60) % 60, hour: secs / 3600, weekday: weekday, day: d, month: m)
    }

    /// Formats wall-clock seconds in the input's format.
    public static func format(_ t: Int64, _ f: TimeFormat) -> String {
        switch f {
        case .unixSeconds: return "\(t)"
        case .unixMilliseconds: return "\(t * 1000)"
        case let .calendar(offset, isoT):
            let days = Int((t >= 0 ? t : t - 86399) / 86400)
            let secs = Int(t - Int64(days) * 86400)
            let (y, m, d) = civilFromDays(days)
            var s = String(format: "%04d-%02d-%02d%@%02d:%02d:%02d", y, m, d, isoT ? "T" : " ", secs / 3600, (secs / 60) % 60, secs % 60)
            if let o = offset {
                s += o == 0 ? (isoT ? "Z" : "+00:00") : String(format: "%@%02d:%02d", o < 0 ? "-" : "+", abs(o) / 3600, (abs(o) / 60) % 60)
            }
            return s
        }
    }

    /// The most common spacing between consecutive rows (smallest on ties).
    public static func commonInterval(_ times: [Int64]) -> Int64 {
        var counts = [Int64: Int]()
        for i in 1..<times.count { counts[times[i] - times[i - 1], default: 0] += 1 }
        return counts.max { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }!.key
    }

    /// "4h", "15m", "1d", "30s", "1w" -> seconds.
    public static func parseInterval(_ s: String) -> Int64? {
        guard let unit = s.last, let n = Int64(s.dropLast()), n > 0 else { return nil }
        let mult: Int64
        switch unit {
        case "s": mult = 1
        case "m": mult = 60
        case "h": mult = 3600
        case "d": mult = 86400
        case "w": mult = 604_800
        default: return nil
        }
        let (v, o) = n.multipliedReportingOverflow(by: mult)
        return o ? nil : v
    }
}
