// libFuzzer target: the numbers a user gives on the command line, as kronos-run turns them into a
// forecast's settings: lines of the input are the values of --pred-len, --lookback, --max-context,
// --interval, --samples, --temperature, --top-p, --top-k, --quantiles, the input count and a
// timestamp. Whatever they are, checking them, and (once accepted) the interval and calendar
// arithmetic on a two-row table, must end in a value or an error, never a trap.
import Foundation
import Kronos
import KronosIO

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    var t = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    while t.count < 11 { t.append("") }
    let inputs = max(1, min(64, Int(t[9]) ?? 1))
    var o = RunOptions(inputs: (0..<inputs).map { "in\($0).csv" }, predictionLength: Int(t[0]) ?? 1)
    o.lookback = Int(t[1]); o.maxContext = Int(t[2]); o.interval = t[3].isEmpty ? nil : t[3]
    o.samples = Int(t[4]) ?? 1
    o.sampling = SamplingSettings(temperature: Float(t[5]) ?? 1, topK: Int(t[7]) ?? 0, topP: Float(t[6]) ?? 0.9)
    if !t[8].isEmpty { o.quantiles = t[8].split(separator: ",").map { Double($0) ?? .nan }; o.quantilesGiven = true }
    guard (try? o.check()) != nil else { return 0 }
    _ = ForecastJob.slidingSteps(
        rows: o.lookback ?? 512, predictionLength: o.predictionLength, window: o.maxContext ?? 512)
    // A two-row table (unix times: the given one, then one interval later) and the future after it
    // on both calendars.
    let step = o.interval.flatMap(Candles.parseInterval) ?? 14_400
    let a = max(0, Int64(t[10]) ?? 1_704_067_200)
    let (b, overflow) = a.addingReportingOverflow(step)
    guard !overflow,
        let table = try? Candles.parse(
            Data("timestamps,open,high,low,close\n\(a),1,2,0.5,1.5\n\(b),1,2,0.5,1.5\n".utf8), file: "x")
    else { return 0 }
    for c in CalendarKind.allCases {
        _ = TradingCalendar.gapWarnings(table, step: step, calendar: c)
        if let f = try? TradingCalendar.future(
            after: table, step: step, count: min(o.predictionLength, 256), calendar: c)
        {
            _ = f.map { Candles.format($0, table.format) }
        }
    }
    return 0
}
