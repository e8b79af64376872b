// Runs in KronosEngineTests only: it tests the command line or the bundle reader, not the engine build.
#if !KRONOS_ENGINE_BASELINE
    import Foundation
    import Kronos
    import KronosBundle
    import KronosConvert
    #if KRONOS_ENGINE_BASELINE
        import KronosEngineBaseline
    #else
        import KronosWideEngine
    #endif
    import KronosTestSupport
    import Testing

    /// Every single-byte corruption of a tiny bundle is refused with a clear error, or leaves the
    /// forecast unchanged.
    @Suite struct CorruptionTests {
        @Test func everyByteFlipIsDetectedOrHarmless() throws {
            let path = try BundleCache.shared.bundle(model: goldenDirectory + "/tiny", quantize: .q8, maxContext: 64)
            let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            let table = try Candles.read(path: goldenDirectory + "/sample_4h.csv")
            let T = 32, P = 4
            let input = SeriesInput(
                values: Array(table.values.prefix(T * 6)),
                stamps: table.times.prefix(T).map { TimeStamp(wallClockSeconds: $0) },
                futureStamps: (1...P).map { TimeStamp(wallClockSeconds: table.times[T - 1] + Int64($0) * 14400) })
            let settings = ForecastSettings(
                predictionLength: P, maxContext: 64, sampling: SamplingSettings(temperature: 1, topK: 1, topP: 1))
            let baseline = try ForecastEngine(path: path).forecast([input], settings: settings)[0].mean

            let dir = temporaryDirectory("flip")
            let mutated = dir + "/m.kq"
            var refused = 0, harmless = 0, messages = Set<String>()
            #if DEBUG
                let stride = 13  // debug builds are slow: every 13th byte; release (make test) flips every byte
            #else
                let stride = 1
            #endif
            let positions = Array(Swift.stride(from: 0, to: original.count, by: stride))
            // Every bit of a sample of bytes too.
            var bitFlips = [(Int, UInt8)]()
            for k in 0..<64 {
                let pos = (k * 7919) % original.count; for b in 0..<8 { bitFlips.append((pos, UInt8(1) << UInt8(b))) }
            }
            let flips = positions.map { ($0, UInt8(0xFF)) } + bitFlips
            for (pos, mask) in flips {
                var bytes = original
                bytes[pos] ^= mask
                FileManager.default.createFile(atPath: mutated, contents: Data(bytes))
                do {
                    let model = try ForecastEngine(path: mutated)
                    let f = try model.forecast([input], settings: settings)[0].mean
                    #expect(f == baseline, "byte \(pos) ^ \(mask) accepted and changed the forecast")
                    harmless += 1
                } catch {
                    let m = error.localizedDescription
                    #expect(m.contains(mutated), "message must name the file: \(m)")
                    messages.insert(String(m.replacingOccurrences(of: mutated, with: "F").prefix(60)))
                    refused += 1
                }
            }
            print(
                "corruption: \(flips.count) flips of a \(original.count)-byte bundle: \(refused) refused, \(harmless) "
                    + "accepted with an unchanged forecast"
            )
            #expect(refused > 0)
        }
    }
#endif
