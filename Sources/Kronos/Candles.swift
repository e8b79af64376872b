// Candle CSV input as exchanges and spreadsheets write it: LF, CRLF or CR line endings, a UTF-8 byte
// order mark, `,` `;` or tab separators (detected; `;` / tab files may use a decimal comma), header
// names in any case and spacing with the usual aliases (Binance's `open_time` / `quote_asset_volume`,
// `datetime`, ...), the headerless 12-column Binance kline layout, and `--time-column` /
// `--column FIELD=NAME` for anything else. Timestamps: ISO-8601, "YYYY-MM-DD[ HH:MM[:SS]]", unix
// seconds, milliseconds or microseconds; strictly increasing.
//
// Hand-written rather than SwiftCSV or yaslab/CSV.swift (both in reach), for error quality and
// strictness: every error here names the file, the physical line and the column and quotes at most
// 200 bytes of the input (those libraries report neither line nor column), an unterminated quote or
// a ragged row is refused instead of silently re-aligned, and the separator is detected. It reads
// bytes, not `Character`s: a Swift `Character` joins "\r\n" into one, which is how CRLF files broke.
import Foundation
import KronosEngineTypes
import KronosBundle

/// How the input wrote its timestamps (the forecast writes future ones the same way).
public enum TimeFormat: Sendable, Equatable {
    case unixSeconds, unixMilliseconds, unixMicroseconds
    /// Calendar text: `offset` seconds east of UTC when the input carried one, `isoT` when it used
    /// 'T', `precision` the smallest field it wrote (date-only input gives date-only output).
    case calendar(offset: Int?, isoT: Bool, precision: TimePrecision)
}

public enum TimePrecision: Int, Sendable, Comparable {
    case day, minute, second
    public static func < (a: TimePrecision, b: TimePrecision) -> Bool { a.rawValue < b.rawValue }
}

/// Which input column holds which field, when the header's names are not the usual ones.
public struct ColumnMapping: Sendable, Equatable {
    /// Header name (case, space and punctuation insensitive) or, without a header, 1-based position.
    public var time: String?
    /// Field (open, high, low, close, volume, amount) -> header name or 1-based position.
    public var fields: [String: String] = [:]
    /// How messages name the mapping: as Swift code's ColumnMapping (the default) or as the
    /// command line's --time-column / --column options (kronos-run).
    public var spelling: Spelling = .swift
    public enum Spelling: Sendable, Equatable { case swift, commandLine }
    public init(time: String? = nil, fields: [String: String] = [:], spelling: Spelling = .swift) {
        self.time = time; self.fields = fields; self.spelling = spelling
    }
    /// "--time-column NAME" / "ColumnMapping(time: NAME)" as this mapping's users write it.
    func timeOption(_ name: String) -> String {
        spelling == .commandLine ? "--time-column \(name)" : "ColumnMapping(time: \"\(name)\")"
    }
    /// "--column FIELD=NAME" / "ColumnMapping fields[FIELD] = NAME".
    func fieldOption(_ field: String, _ name: String) -> String {
        spelling == .commandLine ? "--column \(field)=\(name)" : "ColumnMapping fields[\"\(field)\"] = \"\(name)\""
    }
}

public struct CandleTable: Sendable {
    public let file: String
    /// Wall-clock seconds since 1970-01-01 00:00 (UTC, or local to the input's offset).
    public let times: [Int64]
    public let format: TimeFormat
    /// [rows, 6]: open, high, low, close, volume, amount.
    public let values: [Float]
    /// Line of the file each row came from (for messages).
    public let lines: [Int]
    public var rows: Int { times.count }
    /// What the reader inferred or filled in (the layout it recognised, an estimated amount).
    public let notes: [String]
    /// Suspicious data that does not stop the forecast (OHLC order, prices <= 0, negative volume).
    public let warnings: [String]

    public init(
        file: String, times: [Int64], format: TimeFormat, values: [Float], lines: [Int], notes: [String],
        warnings: [String]
    ) {
        self.file = file; self.times = times; self.format = format; self.values = values; self.lines = lines
        self.notes = notes; self.warnings = warnings
    }

    /// The last `n` rows.
    public func suffix(_ n: Int) -> CandleTable { slice(max(0, rows - n)..<rows) }

    /// Rows `range` (a backtest origin's history).
    public func slice(_ range: Range<Int>) -> CandleTable {
        CandleTable(
            file: file, times: Array(times[range]), format: format,
            values: Array(values[(range.lowerBound * 6)..<(range.upperBound * 6)]), lines: Array(lines[range]),
            notes: notes, warnings: warnings)
    }
}

public enum Candles {
    public static let columns = SeriesInput.columns
    /// Accepted header names per field, in order of preference, compared after `normalize`.
    public static let aliases: [String: [String]] = [
        "time": ["timestamps", "timestamp", "datetime", "date", "time", "opentime", "ts", "unix", "t"],
        "open": ["open", "o", "openprice"],
        "high": ["high", "h", "highprice"],
        "low": ["low", "l", "lowprice"],
        "close": ["close", "c", "closeprice"],
        "volume": ["volume", "vol", "v", "baseassetvolume", "basevolume"],
        "amount": ["amount", "quoteassetvolume", "quotevolume", "quoteav", "turnover"],
    ]
    /// Binance's kline files without a header (public data downloads): open time, open, high, low,
    /// close, volume, close time, quote asset volume, trades, taker buy base, taker buy quote, ignore.
    static let binanceKlineColumns = 12
    /// Largest accepted file (bytes): 10 million rows of a wide exchange export.
    public static let maxFileBytes = 2 << 30
    /// Longest accepted line (bytes), against runaway inputs.
    public static let maxLineBytes = 1 << 20
    /// Longest excerpt of the input an error message quotes.
    public static let excerptBytes = 200
    /// Lines looked at to detect the separator.
    static let sniffLines = 20
    /// Lines without a separator skipped before the header.
    static let maxPreambleLines = 5

    public static func read(path: String, mapping: ColumnMapping = ColumnMapping()) throws(RuntimeError) -> CandleTable
    {
        let data: Data
        do { data = try InputFile.read(path, limit: maxFileBytes, allowStandardInput: true) } catch {
            throw .input(file: path == "-" ? "standard input" : path, line: nil, column: nil, message: error.message)
        }
        return try parse(data, file: path == "-" ? "standard input" : path, mapping: mapping)
    }

    /// Header names compare lowercased with everything but letters and digits removed
    /// ("Open time", "open_time" and "<OPEN TIME>" are all "opentime").
    public static func normalize(_ name: String) -> String {
        String(name.lowercased().unicodeScalars.filter { CharacterSet.alphanumerics.contains($0) }.map(Character.init))
    }

    /// At most `excerptBytes` of `s`, quoted, control characters escaped (error messages stay one line).
    public static func excerpt(_ s: some StringProtocol) -> String {
        var out = "", bytes = 0
        for ch in s {
            let piece = Terminal.safe(String(ch))  // control characters escaped (ESC, BEL, CR, LF, ...)
            if bytes + piece.utf8.count > excerptBytes { return "\"" + out + "\"… (\(s.utf8.count) bytes)" }
            out += piece; bytes += piece.utf8.count
        }
        return "\"" + out + "\""
    }

    // MARK: - Bytes to lines and cells

    /// One logical line: bytes [start, end) without its terminator, starting on physical line `line`.
    struct RawLine { var start: Int; var end: Int; var line: Int }

    /// Splits on LF, CRLF and CR outside double quotes (a quoted cell may span lines); skips blank lines.
    static func splitLines(_ b: [UInt8], from first: Int, file: String) throws(RuntimeError) -> [RawLine] {
        var out = [RawLine]()
        var i = first, physical = 1, recordStart = first, recordLine = 1, quoted = false
        func emit(_ end: Int) {
            var blank = true
            for k in recordStart..<end where b[k] != 0x20 && b[k] != 0x09 { blank = false; break }
            if !blank { out.append(RawLine(start: recordStart, end: end, line: recordLine)) }
        }
        while i < b.count {
            let c = b[i]
            if c == 0x22 {
                quoted.toggle()
            } else if c == 0x0A || c == 0x0D {
                let end = i
                if c == 0x0D, i + 1 < b.count, b[i + 1] == 0x0A { i += 1 }
                physical += 1
                if !quoted { emit(end); recordStart = i + 1; recordLine = physical }
            }
            i += 1
            if i - recordStart > maxLineBytes {
                throw .input(
                    file: file, line: recordLine, column: nil, message: "line is longer than \(maxLineBytes) bytes")
            }
        }
        if quoted {
            throw .input(
                file: file, line: recordLine, column: nil, message: "a quoted cell opened on this line is never closed")
        }
        if recordStart < b.count { emit(b.count) }
        return out
    }

    /// The cells of one line split on `separator`; "..." quotes a cell ("" is a quote inside it);
    /// unquoted cells are trimmed of spaces (and tabs, unless tab is the separator).
    static func cells(_ b: [UInt8], _ r: RawLine, _ separator: UInt8) -> [String] {
        var cells = [String](), cur = [UInt8](), quoted = false, i = r.start
        func finish() {
            var lo = 0, hi = cur.count
            func space(_ c: UInt8) -> Bool { c == 0x20 || (c == 0x09 && separator != 0x09) }
            while lo < hi, space(cur[lo]) { lo += 1 }
            while hi > lo, space(cur[hi - 1]) { hi -= 1 }
            cells.append(String(decoding: cur[lo..<hi], as: UTF8.self))
            cur.removeAll(keepingCapacity: true)
        }
        while i < r.end {
            let c = b[i]
            if quoted {
                if c == 0x22 {
                    if i + 1 < r.end, b[i + 1] == 0x22 { cur.append(0x22); i += 1 } else { quoted = false }
                } else {
                    cur.append(c)
                }
            } else if c == 0x22 {
                quoted = true
            } else if c == separator {
                finish()
            } else {
                cur.append(c)
            }
            i += 1
        }
        finish()
        return cells
    }

    static func lineText(_ b: [UInt8], _ r: RawLine) -> String {
        String(decoding: b[r.start..<min(r.end, r.start + 4 * excerptBytes)], as: UTF8.self)
    }

    /// The separator that splits the first lines into the same number (at least 5) of cells, the
    /// most cells winning; on a tie `;` then tab then `,` (a `;` file with decimal commas splits on
    /// both). Without a consistent one, the one splitting the first line most.
    static func detectSeparator(_ b: [UInt8], _ lines: [RawLine], file: String) throws(RuntimeError) -> UInt8 {
        let candidates: [UInt8] = [0x3B, 0x09, 0x2C]
        let sample = lines.prefix(sniffLines)
        var best: (separator: UInt8, cells: Int)?
        for s in candidates {
            let counts = sample.map { cells(b, $0, s).count }
            if counts[0] >= 5, counts.allSatisfy({ $0 == counts[0] }), counts[0] > (best?.cells ?? 0) {
                best = (s, counts[0])
            }
        }
        if let best { return best.separator }
        let firstCounts = candidates.map { cells(b, lines[0], $0).count }
        let most = firstCounts.max()!
        // Fewer than 5 cells but some separator splits the line: let the header checks say what is missing.
        guard most >= 2 else {
            throw .input(
                file: file, line: lines[0].line, column: nil,
                message: "cannot find the columns: the line has no `,`, `;` or tab separator, "
                    + "need a timestamp and open, high, low, close: \(excerpt(lineText(b, lines[0])))")
        }
        return candidates[firstCounts.firstIndex(of: most)!]
    }

    // MARK: - Table

    public static func parse(_ data: Data, file: String, mapping: ColumnMapping = ColumnMapping()) throws(RuntimeError)
        -> CandleTable
    {
        func fail(_ line: Int?, _ col: String?, _ m: String) -> RuntimeError {
            .input(file: file, line: line, column: col, message: m)
        }
        let b = [UInt8](data)
        if b.starts(with: [0xFF, 0xFE]) || b.starts(with: [0xFE, 0xFF]) {
            throw fail(
                nil, nil, "UTF-16 text (byte order mark \(String(format: "%02X %02X", b[0], b[1]))): save it as UTF-8")
        }
        guard String(validating: b, as: UTF8.self) != nil else { throw fail(nil, nil, "not UTF-8 text") }
        let bom = b.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        var lines = try splitLines(b, from: bom, file: file)
        guard !lines.isEmpty else { throw fail(nil, nil, "empty file: expected a header and at least 2 rows") }
        // A preamble (a title or a URL line before the header, as some data vendors write): up to
        // `maxPreambleLines` leading lines without any separator, when the line after them has one.
        var preamble = 0
        func hasSeparator(_ r: RawLine) -> Bool { [UInt8(0x2C), 0x3B, 0x09].contains { cells(b, r, $0).count > 1 } }
        while preamble < maxPreambleLines, preamble + 1 < lines.count, !hasSeparator(lines[preamble]),
            hasSeparator(lines[preamble + 1])
        {
            preamble += 1
        }
        let skipped = lines.first.map { lineText(b, $0) } ?? ""
        lines.removeFirst(preamble)
        let separator = try detectSeparator(b, lines, file: file)
        let separatorName = separator == 0x2C ? "comma" : separator == 0x3B ? "semicolon" : "tab"

        // Header, or the headerless Binance kline layout (or positions given by the user).
        let first = cells(b, lines[0], separator)
        func isValue(_ c: String) -> Bool {
            Double(c) != nil || (try? parseTime(c, file: file, line: 0, column: "")) != nil
        }
        let hasHeader = !first.contains(where: isValue)
        var notes = [String]()
        if preamble > 0 {
            notes.append(
                "skipped \(preamble) line\(preamble == 1 ? "" : "s") before the header (no separator): first "
                    + "\(excerpt(skipped))"
            )
        }
        let header: [String]
        let width = first.count
        if hasHeader {
            header = first
        } else if mapping.time == nil && mapping.fields.isEmpty {
            let integral = { (c: String) in !c.isEmpty && c.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
            guard width == binanceKlineColumns, integral(first[0]), integral(first[6]) else {
                throw fail(
                    lines[0].line, nil,
                    "no header row: expected one naming the timestamp and open, high, low, close columns "
                        + "(or Binance's headerless 12-column kline layout, or "
                        + "\(mapping.timeOption("1")) / \(mapping.fieldOption("close", "5")) with positions); "
                        + "found \(width) cells: \(excerpt(lineText(b, lines[0])))")
            }
            header = [
                "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_asset_volume",
                "number_of_trades", "taker_buy_base_asset_volume", "taker_buy_quote_asset_volume", "ignore",
            ]
            notes.append(
                "no header: read as Binance's 12-column kline layout (open_time, open, high, low, close, volume, ..., "
                    + "quote_asset_volume as amount)"
            )
        } else {
            header = (1...width).map { "\($0)" }
        }
        let normalized = header.map(normalize)
        let headerList = excerpt(header.joined(separator: ", "))

        /// The column `name` names: a header name, else (for a number) a 1-based position.
        func column(named name: String, option: @autoclosure () -> String) throws(RuntimeError) -> Int {
            let n = normalize(name)
            let hits = normalized.indices.filter { normalized[$0] == n }
            if hits.count == 1 { return hits[0] }
            if hits.count > 1 {
                throw fail(lines[0].line, nil, "\(option()): \(hits.count) columns have that name")
            }
            if let p = Int(name), p >= 1, p <= width { return p - 1 }
            throw fail(lines[0].line, nil, "\(option()): no such column (found \(headerList))")
        }
        /// The column a field's aliases find (first alias present wins); two columns equal under
        /// `normalize` for the winning alias are ambiguous.
        func column(for field: String) throws(RuntimeError) -> Int? {
            for alias in aliases[field]! {
                let hits = normalized.indices.filter { normalized[$0] == alias }
                if hits.count > 1 {
                    throw fail(
                        lines[0].line, nil,
                        "columns \(hits.map { "\"\(header[$0])\"" }.joined(separator: " and ")) both name \(field): "
                            + "rename one or choose with \(mapping.fieldOption(field, "NAME"))")
                }
                if let h = hits.first { return h }
            }
            return nil
        }
        for key in mapping.fields.keys where !columns.contains(key) {
            let fields = columns.joined(separator: ", ")
            throw .options("\(mapping.fieldOption(key, "...")): unknown field \"\(key)\" (fields: \(fields))")
        }
        let timeIndex: Int
        if let t = mapping.time {
            timeIndex = try column(named: t, option: mapping.timeOption(t))
        } else if let t = try column(for: "time") {
            timeIndex = t
        } else {
            throw fail(
                lines[0].line, nil,
                "no timestamp column: expected one named timestamps, timestamp, datetime, date, time "
                    + "or open_time (or \(mapping.timeOption("NAME"))); found \(headerList)")
        }
        var colIndex = [Int?]()
        for c in columns {
            let i: Int?
            if let name = mapping.fields[c] {
                i = try column(named: name, option: mapping.fieldOption(c, name))
            } else {
                i = try column(for: c)
            }
            if i == nil, c != "volume", c != "amount" {
                throw fail(
                    lines[0].line, c,
                    "missing required column \"\(c)\" (required: open, high, low, close; found \(headerList); "
                        + "\(mapping.fieldOption(c, "NAME")) names another)")
            }
            colIndex.append(i)
        }
        if colIndex[4] == nil {
            notes.append("no volume column: volume and amount set to 0")
        } else if colIndex[5] == nil {
            notes.append("no amount column: amount = volume × mean(open, high, low, close)")
        }
        if separator != 0x2C { notes.append("\(separatorName)-separated") }

        // A decimal comma: `;` or tab files whose numbers use ',' and never '.'.
        let dataLines = hasHeader ? Array(lines.dropFirst()) : lines
        var decimalComma = false
        if separator != 0x2C {
            var comma = false, dot = false
            for r in dataLines.prefix(sniffLines) {
                let cs = cells(b, r, separator)
                for i in colIndex.compactMap({ $0 }) where i < cs.count {
                    comma = comma || cs[i].contains(","); dot = dot || cs[i].contains(".")
                }
            }
            decimalComma = comma && !dot
            if decimalComma { notes.append("decimal comma") }
        }

        var times = [Int64](), values = [Float](), rowLines = [Int]()
        var format: TimeFormat?
        times.reserveCapacity(dataLines.count); values.reserveCapacity(dataLines.count * 6);
        rowLines.reserveCapacity(dataLines.count)
        var newestFirst = false
        var checks = RowChecks()
        let timeName = header[timeIndex]
        for r in dataLines {
            let ln = r.line
            let cs = cells(b, r, separator)
            guard cs.count >= width, cs[width...].allSatisfy(\.isEmpty) else {
                throw fail(ln, nil, "expected \(width) cells, found \(cs.count): \(excerpt(lineText(b, r)))")
            }
            let cell = cs[timeIndex]
            let (t, f) = try parseTime(cell, file: file, line: ln, column: timeName)
            if let format0 = format {
                guard sameFamily(format0, f) else {
                    throw fail(ln, timeName, "timestamp format differs from the first row's: \(excerpt(cell))")
                }
                if case let .calendar(o, i, p0) = format0, case let .calendar(_, _, p1) = f, p1 > p0 {
                    format = .calendar(offset: o, isoT: i, precision: p1)
                }
            } else {
                format = f
            }
            // Oldest first, or newest first throughout (as some exports write; read in reverse).
            if times.count == 1, t < times[0] { newestFirst = true }
            if let last = times.last, newestFirst ? t >= last : t <= last {
                throw fail(
                    ln, timeName,
                    t == last
                        ? "duplicate timestamp \(excerpt(cell))"
                        : newestFirst
                            ? "timestamp \(excerpt(cell)) is later than the previous row's: the rows started newest "
                                + "first, so they must keep decreasing in time"
                            : "timestamp \(excerpt(cell)) is earlier than the previous row's: rows must be strictly "
                                + "increasing in time"
                )
            }
            times.append(t); rowLines.append(ln)
            var row = [Float](repeating: 0, count: 6)
            for c in 0..<6 {
                guard let i = colIndex[c] else { continue }
                let text = cs[i]
                guard let v = Double(decimalComma ? text.replacingOccurrences(of: ",", with: ".") : text),
                    !text.hasPrefix("0x"), !text.hasPrefix("-0x"), !text.hasPrefix("+0x")
                else {
                    throw fail(
                        ln, columns[c],
                        text.isEmpty ? "empty cell, expected a number" : "\(excerpt(text)) is not a number")
                }
                guard v.isFinite else {
                    throw fail(ln, columns[c], "\(text) is not a finite number (NaN / Inf are not accepted)")
                }
                let f = Float(v)
                guard f.isFinite else {
                    throw fail(
                        ln, columns[c],
                        "\(text) is beyond the range of the 32-bit floats the model computes in (±3.4e38)")
                }
                row[c] = f
            }
            if colIndex[4] == nil {
                row[4] = 0; row[5] = 0
            } else if colIndex[5] == nil {
                row[5] = row[4] * ((row[0] + row[1] + row[2] + row[3]) / 4)
                guard row[5].isFinite else {
                    throw fail(
                        ln, "volume", "the estimated amount (volume × mean price) is beyond the range of 32-bit floats")
                }
            }
            checks.check(row, line: ln)
            values += row
        }
        guard times.count >= 2 else {
            throw fail(nil, nil, "found \(times.count) data row\(times.count == 1 ? "" : "s"), need at least 2")
        }
        if newestFirst {
            times.reverse(); rowLines.reverse()
            values = stride(from: values.count - 6, through: 0, by: -6).flatMap { values[$0..<($0 + 6)] }
            notes.append("rows are newest first: read in reverse")
        }
        return CandleTable(
            file: file, times: times, format: format!, values: values, lines: rowLines, notes: notes,
            warnings: checks.warnings(place: "line"))
    }

    /// Suspicious rows that do not stop a forecast: the OHLC order broken, prices <= 0, negative
    /// volume or amount; counted with the first place each occurs.
    public struct RowChecks: Sendable {
        var badOrder = (count: 0, line: 0), nonPositive = (count: 0, line: 0), negativeVolume = (count: 0, line: 0)
        public init() {}

        /// One row [open, high, low, close, volume, amount] at `line` (a file line or a row number).
        public mutating func check(_ row: [Float], line ln: Int) {
            let (o, h, l, c) = (row[0], row[1], row[2], row[3])
            if h < l || h < max(o, c) || l > min(o, c) {
                if badOrder.count == 0 { badOrder.line = ln }; badOrder.count += 1
            }
            if min(o, h, l, c) <= 0 { if nonPositive.count == 0 { nonPositive.line = ln }; nonPositive.count += 1 }
            if row[4] < 0 || row[5] < 0 {
                if negativeVolume.count == 0 { negativeVolume.line = ln }; negativeVolume.count += 1
            }
        }

        /// One sentence per kind found; `place` names what the numbers count ("line", "row").
        public func warnings(place: String) -> [String] {
            var warnings = [String]()
            func rows(_ n: Int, _ one: String, _ many: String) -> String {
                n == 1 ? "1 row \(one)" : "\(n) rows \(many)"
            }
            if badOrder.count > 0 {
                warnings.append(
                    "\(rows(badOrder.count, "breaks", "break")) the OHLC order (low <= open, close <= high), first at "
                        + "\(place) \(badOrder.line)"
                )
            }
            if nonPositive.count > 0 {
                warnings.append(
                    "\(rows(nonPositive.count, "has", "have")) a price <= 0, first at \(place) \(nonPositive.line)")
            }
            if negativeVolume.count > 0 {
                warnings.append(
                    "\(rows(negativeVolume.count, "has", "have")) a negative volume or amount, first at \(place) "
                        + "\(negativeVolume.line)"
                )
            }
            return warnings
        }
    }

    static func sameFamily(_ a: TimeFormat, _ b: TimeFormat) -> Bool {
        switch (a, b) {
        case (.unixSeconds, .unixSeconds), (.unixMilliseconds, .unixMilliseconds),
            (.unixMicroseconds, .unixMicroseconds):
            return true
        case let (.calendar(o1, _, _), .calendar(o2, _, _)): return o1 == o2
        default: return false
        }
    }

    /// A timestamp written as the CSV reader accepts them (YYYY-MM-DD[ HH:MM[:SS]], ISO-8601, unix
    /// seconds / ms / us) as an instant: UTC unless it carries an offset. nil when unreadable.
    public static func date(_ s: String) -> Date? {
        guard let (t, format) = try? parseTime(s, file: "", line: 0, column: "") else { return nil }
        var offset: Int64 = 0
        if case let .calendar(o?, _, _) = format { offset = Int64(o) }
        return Date(timeIntervalSince1970: TimeInterval(t - offset))
    }

    /// Parses one timestamp into wall-clock seconds and its format.
    static func parseTime(_ s: String, file: String, line: Int, column: String) throws(RuntimeError) -> (
        Int64, TimeFormat
    ) {
        func fail() -> RuntimeError {
            .input(
                file: file, line: line, column: column,
                message:
                    "cannot read timestamp \(excerpt(s)) (expected YYYY-MM-DD[ HH:MM[:SS]], ISO-8601, or unix seconds "
                    + "/ milliseconds / microseconds)"
            )
        }
        if !s.isEmpty, s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            guard let v = Int64(s) else { throw fail() }
            if v >= 100_000_000_000_000 { return (v / 1_000_000, .unixMicroseconds) }
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
        var h = 0, mi = 0, sec = 0, isoT = false, precision = TimePrecision.day
        var offset: Int?
        if i < b.count {
            isoT = b[i] == UInt8(ascii: "T")
            guard b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: " ") else { throw fail() }
            i += 1
            guard let hh = num(2), expect(58), let mm = num(2) else { throw fail() }
            h = hh; mi = mm; precision = .minute
            if expect(58) { guard let ss = num(2) else { throw fail() }; sec = ss; precision = .second }
            if expect(46) { while i < b.count && b[i] >= 48 && b[i] <= 57 { i += 1 } }  // fractional seconds dropped
            if expect(UInt8(ascii: "Z")) {
                offset = 0
            } else if i < b.count && (b[i] == 43 || b[i] == 45) {
                let sign = b[i] == 45 ? -1 : 1
                i += 1
                guard let oh = num(2) else { throw fail() }
                _ = expect(58)
                guard let om = num(2) else { throw fail() }
                offset = sign * (oh * 3600 + om * 60)
            }
            guard i == b.count else { throw fail() }
        }
        guard (1...12).contains(mo), (1...daysInMonth(y, mo)).contains(d), h < 24, mi < 60, sec < 61 else {
            throw fail()
        }
        let days = CivilDate.days(year: y, month: mo, day: d)
        return (
            Int64(days) * 86400 + Int64(h * 3600 + mi * 60 + sec),
            .calendar(offset: offset, isoT: isoT, precision: precision)
        )
    }

    static func daysInMonth(_ y: Int, _ m: Int) -> Int {
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]
    }

    /// Formats wall-clock seconds in the input's format (a date-only format writes the time of day
    /// only when it is not midnight, seconds only when they are not zero).
    public static func format(_ t: Int64, _ f: TimeFormat) -> String {
        switch f {
        case .unixSeconds: return "\(t)"
        case .unixMilliseconds: return "\(t * 1000)"
        case .unixMicroseconds: return "\(t * 1_000_000)"
        case let .calendar(offset, isoT, precision):
            let days = Int((t >= 0 ? t : t - 86399) / 86400)
            let secs = Int(t - Int64(days) * 86400)
            let (y, m, d) = CivilDate.date(days: days)
            var s = String(format: "%04d-%02d-%02d", y, m, d)
            let p = max(precision, secs % 60 != 0 ? .second : secs != 0 ? .minute : .day)
            if p >= .minute { s += String(format: "%@%02d:%02d", isoT ? "T" : " ", secs / 3600, (secs / 60) % 60) }
            if p == .second { s += String(format: ":%02d", secs % 60) }
            if let o = offset, p >= .minute {
                s +=
                    o == 0
                    ? (isoT ? "Z" : "+00:00")
                    : String(format: "%@%02d:%02d", o < 0 ? "-" : "+", abs(o) / 3600, (abs(o) / 60) % 60)
            }
            return s
        }
    }

    /// Weekday of wall-clock seconds, Monday = 0 ... Sunday = 6.
    public static func weekday(_ t: Int64) -> Int {
        let days = Int((t >= 0 ? t : t - 86399) / 86400)
        return ((days % 7) + 7 + 3) % 7
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
