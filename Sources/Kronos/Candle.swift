// Candles as a Swift program holds them: dates and Doubles, built in code or read from a CSV file.
import Foundation
import KronosEngineTypes

/// One candle: a period's open, high, low and close prices, and what traded in it.
public struct Candle: Sendable, Hashable, Codable {
    /// When the period starts.
    public var date: Date
    /// First price of the period.
    public var open: Double
    /// Highest price of the period.
    public var high: Double
    /// Lowest price of the period.
    public var low: Double
    /// Last price of the period.
    public var close: Double
    /// Quantity traded (nil: unknown; the model then sees 0 for volume and amount, as the
    /// reference implementation does).
    public var volume: Double?
    /// Value traded, in the quote currency (nil: estimated as volume × the mean of the four prices).
    public var amount: Double?

    /// A candle; `volume` and `amount` may be left out.
    public init(
        date: Date, open: Double, high: Double, low: Double, close: Double, volume: Double? = nil, amount: Double? = nil
    ) {
        self.date = date
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume
        self.amount = amount
    }
}

/// Which days future candles fall on.
public enum TradingDays: String, Sendable, Codable, CaseIterable {
    /// Every day, every hour (crypto markets).
    case allDays = "24x7"
    /// Monday to Friday: a future date on a Saturday or Sunday moves to the next Monday.
    case weekdays

    init(_ kind: CalendarKind) { self = kind == .allDays ? .allDays : .weekdays }
    var kind: CalendarKind { self == .allDays ? .allDays : .weekdays }
}

/// A series of candles, oldest first, at a regular spacing: the history a forecast starts from.
///
/// Build one from candles in code, or read one from a CSV file (exchange exports, spreadsheets:
/// see ``init(contentsOf:columns:)``). Dates are instants; the model's time features (minute,
/// hour, weekday, day, month) are read on the clock of ``timeZone``.
public struct CandleSeries: Sendable {
    /// A name for messages and outputs (the file's name for a CSV file).
    public var name: String
    /// The rows: times as wall-clock seconds on the series' clock, values [rows, 6] (open, high,
    /// low, close, volume, amount) in the model's 32-bit floats.
    var table: CandleTable
    /// The clock the time features are read on (UTC unless the input's timestamps carried an offset).
    public var timeZone: TimeZone
    /// What reading the series inferred or filled in (an estimated amount, rows read in reverse).
    public var notes: [String] { table.notes }
    /// Suspicious data that does not stop a forecast (the OHLC order broken, prices <= 0, negative
    /// volume).
    public var warnings: [String] { table.warnings }
    /// Number of candles.
    public var count: Int { table.rows }

    /// The candles, oldest first.
    public var candles: [Candle] {
        let offset = TimeInterval(timeZone.secondsFromGMT())
        return (0..<table.rows).map { r in
            let v = table.values[(r * 6)..<(r * 6 + 6)].map(Double.init)
            return Candle(
                date: Date(timeIntervalSince1970: TimeInterval(table.times[r]) - offset), open: v[0], high: v[1],
                low: v[2],
                close: v[3], volume: v[4], amount: v[5])
        }
    }

    /// A series of `candles`, strictly increasing in date, at least 2.
    ///
    /// - Parameters:
    ///   - candles: the history, oldest first.
    ///   - name: a name for messages.
    ///   - timeZone: the clock the model reads hours and weekdays on (fixed offsets only; default UTC).
    /// - Throws: ``KronosError/invalidInput(_:)`` naming the candle and what is wrong with it.
    public init(_ candles: [Candle], name: String = "series", timeZone: TimeZone = TimeZone(secondsFromGMT: 0)!)
        throws(KronosError)
    {
        guard candles.count >= 2 else {
            throw .invalidInput("\(name): \(candles.count) candle\(candles.count == 1 ? "" : "s"), need at least 2")
        }
        let offset = timeZone.secondsFromGMT()
        var times = [Int64](), values = [Float](), checks = Candles.RowChecks()
        times.reserveCapacity(candles.count)
        values.reserveCapacity(candles.count * 6)
        for (i, c) in candles.enumerated() {
            let seconds = c.date.timeIntervalSince1970.rounded(.down) + Double(offset)
            guard seconds.isFinite, abs(seconds) < 253_402_300_800 else {
                throw .invalidInput("\(name), candle \(i): date \(c.date) out of range")
            }
            let t = Int64(seconds)
            if let last = times.last, t <= last {
                throw .invalidInput(
                    "\(name), candle \(i): date \(c.date) is not later than the previous candle's: candles must be "
                        + "strictly increasing in date (to the second)"
                )
            }
            var row = [Float](repeating: 0, count: 6)
            for (k, (field, v)) in [
                ("open", c.open), ("high", c.high), ("low", c.low), ("close", c.close), ("volume", c.volume ?? 0),
            ].enumerated() {
                guard v.isFinite, Float(v).isFinite else {
                    throw .invalidInput("\(name), candle \(i): \(field) \(v) is not a finite 32-bit number")
                }
                row[k] = Float(v)
            }
            if let a = c.amount {
                guard a.isFinite, Float(a).isFinite else {
                    throw .invalidInput("\(name), candle \(i): amount \(a) is not a finite 32-bit number")
                }
                row[5] = Float(a)
            } else if c.volume != nil {
                row[5] = row[4] * ((row[0] + row[1] + row[2] + row[3]) / 4)
                guard row[5].isFinite else {
                    throw .invalidInput(
                        "\(name), candle \(i): the estimated amount (volume × mean price) overflows 32-bit floats")
                }
            }
            checks.check(row, line: i)
            times.append(t)
            values += row
        }
        self.name = name
        self.timeZone = timeZone
        table = CandleTable(
            file: name, times: times,
            format: .calendar(offset: offset == 0 ? nil : offset, isoT: true, precision: .second),
            values: values, lines: Array(candles.indices), notes: [], warnings: checks.warnings(place: "candle"))
    }

    /// Reads a CSV file of candles: a header naming the columns (any case; `open_time`, `Open time`,
    /// `timestamps`, `date`, ...), or Binance's headerless kline layout; `,` `;` or tab separated;
    /// LF or CRLF; dates as text (`2024-01-31 16:00`, ISO 8601 with an offset) or unix seconds,
    /// milliseconds or microseconds. Rows may be newest first.
    ///
    /// - Parameters:
    ///   - url: a local file.
    ///   - columns: which column holds which field, when the header's names are not the usual ones.
    /// - Throws: ``KronosError/invalidInput(_:)`` naming the file, the line and the column.
    public init(contentsOf url: URL, columns: ColumnMapping = ColumnMapping()) throws(KronosError) {
        let table: CandleTable
        do {
            table = try Candles.read(path: url.path, mapping: columns)
        } catch { throw KronosError(error) }
        self.init(table: table, name: url.deletingPathExtension().lastPathComponent)
    }

    /// A series of rows already read and checked (the CSV reader's table); its clock is the
    /// table's offset, UTC without one.
    package init(table: CandleTable, name: String) {
        self.table = table
        self.name = name
        if case let .calendar(offset?, _, _) = table.format, let zone = TimeZone(secondsFromGMT: offset) {
            timeZone = zone
        } else {
            timeZone = TimeZone(secondsFromGMT: 0)!
        }
    }

    /// The last `count` candles (a forecast's lookback).
    public func suffix(_ count: Int) -> CandleSeries {
        var s = self
        s.table = table.suffix(count)
        return s
    }

    /// Candles `range` (0-based, oldest first): e.g. the history of a backtest origin.
    public func candles(_ range: Range<Int>) -> CandleSeries {
        precondition(range.lowerBound >= 0 && range.upperBound <= count)
        var s = self
        s.table = table.slice(range)
        return s
    }

    /// The spacing of the candles: the most common difference between consecutive dates.
    public var interval: TimeInterval { TimeInterval(Candles.commonInterval(table.times)) }
}
