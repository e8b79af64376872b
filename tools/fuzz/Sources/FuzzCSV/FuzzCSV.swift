// libFuzzer target: the candle CSV reader.
import Foundation
import KronosRuntime

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if let table = try? Candles.parse(Data(bytes: data, count: size), file: "fuzz.csv"), table.rows >= 2 {
        _ = Candles.commonInterval(table.times)
        _ = table.times.map(Candles.stamp)
        _ = table.times.map { Candles.format($0, table.format) }
    }
    return 0
}
