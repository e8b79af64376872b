// libFuzzer target: the candle CSV reader, and what runs on its tables before a forecast (calendar
// inference, gap checks, future timestamps on both calendars, formatting).
import Foundation
import Kronos
import KronosWideEngine

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    // The first byte picks a column mapping, so that the option paths are reached too.
    let mapping =
        size > 0 && data[0] % 4 == 1
        ? ColumnMapping(time: "1", fields: ["open": "2", "high": "3", "low": "4", "close": "5"]) : ColumnMapping()
    if let table = try? Candles.parse(bytes, file: "fuzz.csv", mapping: mapping), table.rows >= 2 {
        let step = Candles.commonInterval(table.times)
        _ = table.times.map { TimeStamp(wallClockSeconds: $0) }
        _ = table.times.map { Candles.format($0, table.format) }
        let calendar = TradingCalendar.infer(table).calendar
        _ = TradingCalendar.gapWarnings(table, step: step, calendar: calendar)
        for c in CalendarKind.allCases {
            if let future = try? TradingCalendar.future(after: table, step: step, count: 16, calendar: c) {
                _ = future.map { Candles.format($0, table.format) }
            }
        }
    }
    return 0
}
