// kronos-bench: GFLOP/s and weight GB/s of the matmul kernels on Kronos-small / Kronos-base shapes,
// for f32, f16, q8_0, q4_1 and q4_k weights, decode (1 row) and prefill (512 rows), beside numpy's
// matmul (OpenBLAS) on the same f32 shapes. Parses arguments and prints; timing is in KronosRuntime.
import ArgumentParser
import Foundation
import KronosQuant
import KronosRuntime

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kronos-bench",
        abstract: "Benchmark the runtime's matmul kernels (release build).",
        discussion: "Example: swift run -c release kronos-bench --rows 1 --rows 512")

    @Option(help: "Input rows per call (repeatable): 1 = decode step, 512 = prefill of a full window.")
    var rows: [Int] = [1, 512]
    @Option(help: "Seconds of repetitions per measurement.")
    var seconds: Double = 0.3
    @Flag(help: "Skip the numpy comparison.")
    var noNumpy = false

    func run() throws {
        let shapes: [(String, Int, Int)] = [
            ("small attn [512,512]", 512, 512), ("small w1/w3 [1024,512]", 1024, 512), ("small w2 [512,1024]", 512, 1024),
            ("head [1024,512]", 1024, 512), ("base attn [832,832]", 832, 832), ("base w1/w3 [2048,832]", 2048, 832),
            ("base w2 [832,2048]", 832, 2048), ("base head [1024,832]", 1024, 832),
        ]
        print("| shape | rows | numpy f32 GFLOP/s | type | GFLOP/s | % of numpy | weight GB/s |")
        print("|---|---|---|---|---|---|---|")
        for (name, out, inner) in shapes {
            for r in rows {
                let np = noNumpy ? nil : KernelBenchmark.numpyGFLOPs(out: out, inner: inner, rows: r, minSeconds: seconds)
                for type in [TensorType.f32, .f16, .q8_0, .q4_1, .q4_k] where type.canStore(rowLength: inner) {
                    let t = KernelBenchmark.matmul(type: type, out: out, inner: inner, rows: r, minSeconds: seconds)
                    let share = np.map { String(format: "%.0f %%", 100 * t.gflops / $0) } ?? "-"
                    print("| \(name) | \(r) | \(np.map { String(format: "%.1f", $0) } ?? "-") | \(type.rawValue) | "
                          + String(format: "%.1f", t.gflops) + " | \(share) | " + String(format: "%.2f", t.weightGBps) + " |")
                }
            }
        }
    }
}

Bench.main()
