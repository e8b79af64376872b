import Foundation
import CKronosHints
import KronosQuant
import Testing

import KronosWideQuant

/// KronosWideQuant is KronosQuant's source compiled for x86-64-v3: the converter uses it where the
/// processor runs it, and a bundle must not depend on which build wrote it.
@Suite struct WideQuantTests {
    /// Every type's encoded bytes, decoded floats and error statistics are equal in both builds, bit
    /// for bit, on rows with outliers, tiny and huge scales, constant blocks and f16-range edges.
    @Test func bothBuildsEncodeAndDecodeTheSameBits() throws {
        #if arch(x86_64)
            // KronosWideQuant runs AVX2 / FMA / F16C: on a processor without them there is nothing to
            // compare (KRONOS_KERNELS=portable does not matter here: the test calls both builds itself).
            guard kronos_cpu_has_x86_64_v3() != 0 else { return }
        #endif
        var rng = TestRows(seed: 19)
        let columns = 512, rows = 24
        var x = rng.rows(rows, columns)
        for i in stride(from: 0, to: x.count, by: 97) { x[i] *= 300 }  // outliers
        for i in 0..<columns { x[3 * columns + i] = 0.25 }  // a constant row
        for i in 0..<columns { x[5 * columns + i] *= 1e-6 }  // tiny scale
        for i in 0..<columns { x[7 * columns + i] *= 6e4 }  // near the f16 range
        var compared = 0
        for type in KronosQuant.TensorType.allCases where type != .i64 {
            typealias WideType = KronosWideQuant.TensorType
            guard let wide = WideType(rawValue: type.rawValue), let rowBytes = type.rowBytes(columns: columns) else {
                Issue.record("\(type.rawValue): no such type in KronosWideQuant, or no row size")
                continue
            }
            for steps in [0, 2, 5] {
                var a = [UInt8](repeating: 0, count: rowBytes), b = a
                var da = [Float](repeating: 0, count: columns), db = da
                for r in 0..<rows {
                    let ra: Result<Void, KronosQuant.QuantError> = x.withUnsafeBufferPointer { src in
                        a.withUnsafeMutableBytes { dst in
                            Result { () throws(KronosQuant.QuantError) in
                                try type.encodeRow(
                                    src.baseAddress! + r * columns, columns: columns, into: dst.baseAddress!,
                                    q4SearchSteps: steps)
                            }
                        }
                    }
                    let rb: Result<Void, KronosWideQuant.QuantError> = x.withUnsafeBufferPointer { src in
                        b.withUnsafeMutableBytes { dst in
                            Result { () throws(KronosWideQuant.QuantError) in
                                try wide.encodeRow(
                                    src.baseAddress! + r * columns, columns: columns, into: dst.baseAddress!,
                                    q4SearchSteps: steps)
                            }
                        }
                    }
                    switch (ra, rb) {
                    case (.success, .success):
                        compared += 1
                        #expect(a == b, "\(type.rawValue) row \(r), \(steps) search steps: encoded bytes differ")
                        a.withUnsafeBytes { type.decodeRow($0.baseAddress!, columns: columns, into: &da) }
                        b.withUnsafeBytes { wide.decodeRow($0.baseAddress!, columns: columns, into: &db) }
                        #expect(da.map(\.bitPattern) == db.map(\.bitPattern), "\(type.rawValue) row \(r): decoded")
                        let sa = x.withUnsafeBufferPointer {
                            KronosQuant.QuantErrorStats.measure(
                                source: $0.baseAddress! + r * columns, decoded: da, count: columns)
                        }
                        let sb = x.withUnsafeBufferPointer {
                            KronosWideQuant.QuantErrorStats.measure(
                                source: $0.baseAddress! + r * columns, decoded: db, count: columns)
                        }
                        #expect(sa.rmse.bitPattern == sb.rmse.bitPattern && sa.maxAbs == sb.maxAbs)
                    case (.failure, .failure): break  // both refuse (e.g. f16 beyond ±65504)
                    default: Issue.record("\(type.rawValue) row \(r): one build refused, the other did not")
                    }
                }
            }
        }
        #expect(compared >= 5 * 3 * (rows - 1))  // only the f16 row near the range may be refused, by both
    }

    /// The calibrated encodings (importance-weighted fits, error compensation and its factor) give the
    /// same bytes in both builds: a calibrated bundle must not depend on which build wrote it either.
    @Test func bothBuildsFitCalibratedBlocksTheSame() throws {
        #if arch(x86_64)
            guard kronos_cpu_has_x86_64_v3() != 0 else { return }
        #endif
        let n = 256, rows = 12
        let (_, h) = CompensationTests.correlatedInputs(rows: 300, columns: n, seed: 21)
        var rng = TestRows(seed: 22)
        let w = rng.rows(rows, n)
        let importance = (0..<n).map { h[$0 * n + $0] }
        let u = try #require(
            h.withUnsafeBufferPointer { KronosQuant.TensorType.compensationFactor($0.baseAddress!, n: n) })
        let uWide = h.withUnsafeBufferPointer { KronosWideQuant.TensorType.compensationFactor($0.baseAddress!, n: n) }
        #expect(u.map(\.bitPattern) == uWide?.map(\.bitPattern), "compensation factors differ")
        for type in KronosQuant.TensorType.allCases where type.traits.isQuantized {
            guard let wide = KronosWideQuant.TensorType(rawValue: type.rawValue) else {
                Issue.record("\(type.rawValue): no such type in KronosWideQuant")
                continue
            }
            let rowBytes = type.rowBytes(columns: n)!
            var a = [UInt8](repeating: 0, count: rows * rowBytes), b = a
            var wa = w, wb = w
            try wa.withUnsafeMutableBufferPointer { wp in
                try a.withUnsafeMutableBytes { d in
                    try type.encodeCompensated(
                        wp.baseAddress!, rows: rows, columns: n, factor: u, importance: importance, into: d.baseAddress!
                    )
                }
            }
            try wb.withUnsafeMutableBufferPointer { wp in
                try b.withUnsafeMutableBytes { d in
                    try wide.encodeCompensated(
                        wp.baseAddress!, rows: rows, columns: n, factor: u, importance: importance, into: d.baseAddress!
                    )
                }
            }
            #expect(a == b, "\(type.rawValue): compensated bytes differ")
            var pa = [UInt8](repeating: 0, count: rowBytes), pb = pa
            try pa.withUnsafeMutableBytes { d in
                try type.encodeRow(w, columns: n, into: d.baseAddress!, weights: importance)
            }
            try pb.withUnsafeMutableBytes { d in
                try wide.encodeRow(w, columns: n, into: d.baseAddress!, weights: importance)
            }
            #expect(pa == pb, "\(type.rawValue): weighted bytes differ")
        }
    }
}
