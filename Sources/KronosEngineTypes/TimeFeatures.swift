// The model's time features (ARCHITECTURE.md §4) and the calendar arithmetic behind them.

/// Calendar features of one timestamp, as the time tables index them.
public struct TimeStamp: Sendable, Equatable {
    public var minute: Int  // 0...59
    public var hour: Int  // 0...23
    public var weekday: Int  // Monday = 0 ... Sunday = 6
    public var day: Int  // 1...31
    public var month: Int  // 1...12
    public init(minute: Int, hour: Int, weekday: Int, day: Int, month: Int) {
        self.minute = minute; self.hour = hour; self.weekday = weekday; self.day = day; self.month = month
    }
    /// The rows of the time tables (minute 60, hour 24, weekday 7, day 32, month 13), in field order.
    public static let ranges: [ClosedRange<Int>] = [0...59, 0...23, 0...6, 0...31, 0...12]
    public static let fieldNames = ["minute", "hour", "weekday", "day", "month"]
    /// Every field indexes a row of its table.
    public var isValid: Bool {
        Self.ranges[0].contains(minute) && Self.ranges[1].contains(hour) && Self.ranges[2].contains(weekday)
            && Self.ranges[3].contains(day) && Self.ranges[4].contains(month)
    }
}

extension TimeStamp {
    /// The time features of wall-clock seconds since 1970-01-01 00:00 (on the series' own clock).
    public init(wallClockSeconds t: Int64) {
        let days = Int((t >= 0 ? t : t - 86399) / 86400)
        let secs = Int(t - Int64(days) * 86400)
        let (_, m, d) = CivilDate.date(days: days)
        let weekday = ((days % 7) + 7 + 3) % 7  // 1970-01-01 was a Thursday (Monday = 0)
        self.init(minute: (secs / 60) % 60, hour: secs / 3600, weekday: weekday, day: d, month: m)
    }
}

/// Proleptic Gregorian dates as day counts since 1970-01-01 (both directions).
public enum CivilDate {
    /// Days since 1970-01-01 of a proleptic Gregorian date.
    public static func days(year y0: Int, month m: Int, day d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (m + 9) % 12
        let doy = (153 * mp + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    /// Date of a day count since 1970-01-01.
    public static func date(days z0: Int) -> (year: Int, month: Int, day: Int) {
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

}
