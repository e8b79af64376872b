// The int8 GEMM for x86-64-v3 processors without AVX-512 VNNI: q8_0, q4_1 and q4_k weights times
// int8-quantized activations with vpmaddubsw + vpmaddwd (kronos_avx2_tile), the integer path's
// arithmetic bit for bit (KronosWideVNNI's header states it), so a forecast with int8 activations is
// the same on processors with and without VNNI. Every row count goes through the repacked groups
// (a decode step's few rows too: one repack per call, the price of one kernel).
import CKronosHints
import KronosQuant

extension AVX2 {
    /// Y [inputs, ldy]: y[t·ldy + j] = row j of W . input t (+ bias[j]) for the weight rows j of
    /// 16-row groups `groups` (the last may be partial: rows < `rows` only). W: rows of x.columns
    /// values of `type` (q8_0, q4_1, q4_k), `rowBytes` apart. Each group is repacked once into
    /// `scratch` (repackedGroupBytes), then multiplied with each input row.
    @inline(never)
    public static func gemm(
        _ type: TensorType, weights w: UnsafeRawPointer, rowBytes: Int, rows: Int, groups: Range<Int>,
        x: Int8Activations, inputs: Int, y: UnsafeMutablePointer<Float>, ldy: Int, bias: UnsafePointer<Float>?,
        scratch: UnsafeMutableRawPointer
    ) {
        struct Gemm: IntegerCodesTask {
            let w: UnsafeRawPointer, rowBytes: Int, rows: Int, groups: Range<Int>, x: Int8Activations
            let inputs: Int, y: UnsafeMutablePointer<Float>, ldy: Int, bias: UnsafePointer<Float>?
            let scratch: UnsafeMutableRawPointer
            @inline(__always) func run<C: IntegerCodes>(_: C.Type) {
                let blocks = x.columns / 32, minimum: Int32 = C.hasMinimum ? 1 : 0
                let group = UnsafePointer<UInt8>(scratch.assumingMemoryBound(to: UInt8.self))
                for g in groups {
                    let j0 = g * repackedGroupRows, count = min(repackedGroupRows, rows - j0)
                    repackGroup(
                        C.self, w + j0 * rowBytes, rowBytes: rowBytes, count: count, blocks: blocks, biased: false,
                        into: scratch)
                    var t = 0
                    func tile(_ r: Int32) {
                        kronos_avx2_tile(
                            r, group, blocks, x.codes + t * x.columns, x.columns, x.scales + t * blocks,
                            x.sums + t * blocks, minimum, y + t * ldy + j0, ldy, count, bias.map { $0 + j0 })
                        t += Int(r)
                    }
                    // One input row per tile: two would need more than AVX2's 16 vector registers
                    // (the compiler spilled, measured 2x slower).
                    while t < inputs { tile(1) }
                }
            }
        }
        let task = Gemm(
            w: w, rowBytes: rowBytes, rows: rows, groups: groups, x: x, inputs: inputs, y: y, ldy: ldy, bias: bias,
            scratch: scratch)
        guard type.withIntegerCodes(task) != nil else {
            preconditionFailure("the integer path takes q8_0, q4_1 and q4_k weights, not \(type)")
        }
    }
}
