import Foundation
import KronosBundle
import Testing

@Suite struct XXH64Tests {
    // Expected values from the xxHash reference implementation (python-xxhash 3.x, XXH64 seed 0).
    @Test func knownVectors() {
        #expect(XXH64.hex(XXH64.hash([])) == "ef46db3751d8e999")
        #expect(XXH64.hex(XXH64.hash(Array("a".utf8))) == "d24ec4f1a98c6e5b")
        #expect(XXH64.hex(XXH64.hash(Array("abc".utf8))) == "44bc2cf5ad770999")
        let b768 = (0..<3).flatMap { _ in (0..<256).map { UInt8($0) } }
        #expect(XXH64.hex(XXH64.hash(b768)) == "8e03c838c596036f")
        #expect(XXH64.hex(XXH64.hash(Array("0123456789abcdef0123456789abcdef012".utf8))) == "f674e02f06c14d72")
    }
}

@Suite struct StrictJSONTests {
    func parse(_ s: String) throws(JSONParseError) -> JSONValue { try StrictJSON.parse(Array(s.utf8)) }

    @Test func parsesObjectsInOrderWithExactIntegers() throws {
        let v = try parse(#"{"b": [1, 2.5, -3e2], "a": {"x": "y\u00e9\n"}, "big": 18446744073709551615}"#)
        #expect(v.object?.map(\.key) == ["b", "a", "big"])
        #expect(v["big"]?.uint64 == UInt64.max)
        #expect(v["a"]?["x"]?.string == "yé\n")
        #expect(v["b"]?.array?.count == 3)
    }

    @Test(arguments: [
        (#"{"a":1,"a":2}"#, "duplicate key \"a\""),
        (#"{"a":1"#, "unterminated object"),
        (#"[1,]"#, "unexpected character"),
        (#"{"a":01}"#, "expected ',' or '}'"),
        (#"{"a":1} x"#, "trailing characters"),
        (#""\ud800""#, "unpaired surrogate"),
        (#"{"a":tru}"#, "invalid literal"),
    ])
    func rejects(text: String, reason: String) {
        do { _ = try parse(text); Issue.record("accepted \(text)") } catch {
            #expect(error.reason.contains(reason), "\(text): \(error.reason)")
        }
    }

    @Test func rejectsInvalidUTF8AndDeepNesting() {
        #expect(throws: JSONParseError.self) { _ = try StrictJSON.parse([0x22, 0xFF, 0xFE, 0x22]) }
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        do { _ = try parse(deep); Issue.record("accepted deep nesting") } catch {
            #expect(error.reason.contains("nesting"))
        }
    }
}

@Suite struct ZstdTests {
    @Test func roundTripAndSizeChecks() throws {
        let raw = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31 >> 3) }
        let frame = try raw.withUnsafeBytes { try Zstd.compress($0, level: 3) }
        #expect(frame.count < raw.count)
        try frame.withUnsafeBytes { f in
            #expect(Zstd.declaredContentSize(f) == 10_000)
            let out = AlignedBuffer(byteCount: 10_000)
            try Zstd.decompress(f, into: out.bytes)
            #expect(Array(out.bytes) == raw)
            // A buffer of another size is refused before decompressing (no writes past the record).
            let small = AlignedBuffer(byteCount: 9_999)
            #expect(throws: ZstdError.contentSize(expected: 9_999, found: 10_000)) {
                try Zstd.decompress(f, into: small.bytes)
            }
        }
        var corrupted = frame
        corrupted[corrupted.count / 2] ^= 0x40
        corrupted.withUnsafeBytes { f in
            let out = AlignedBuffer(byteCount: 10_000)
            #expect(throws: ZstdError.self) { try Zstd.decompress(f, into: out.bytes) }
        }
    }
}

@Suite struct HeaderTests {
    @Test func headerLayout() {
        let h = BundleHeader(dataSize: 128, manifestOffset: 192, manifestSize: 10, manifestXXH64: 0x0102_0304_0506_0708)
        let b = h.encoded()
        #expect(b.count == 64)
        #expect(Array(b[0..<8]) == Array("KRONOSKQ".utf8))
        #expect(b[8] == 1 && b[12] == 64 && b[16] == 64 && b[24] == 128 && b[32] == 192 && b[40] == 10 && b[48] == 8)
        #expect(XXH64.hash(Array(b[0..<56])) == b[56..<64].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
    }

    @Test func expectedTableOfReleasedShapes() {
        // Kronos-small: 24.7M predictor parameters (KRONOS.md table).
        let p = PredictorConfig(
            s1Bits: 10, s2Bits: 10, layers: 8, modelDimension: 512, headCount: 8, feedForwardDimension: 1024,
            learnedTimeEmbedding: true)
        let n = TensorLayout.predictor(p).reduce(0) { $0 + $1.shape.reduce(1, *) }
        #expect(abs(Double(n) / 1e6 - 24.7) < 0.05, "\(n)")
        let base = PredictorConfig(
            s1Bits: 10, s2Bits: 10, layers: 12, modelDimension: 832, headCount: 16, feedForwardDimension: 2048,
            learnedTimeEmbedding: true)
        let nb = TensorLayout.predictor(base).reduce(0) { $0 + $1.shape.reduce(1, *) }
        #expect(abs(Double(nb) / 1e6 - 102.3) < 0.05, "\(nb)")
        #expect(
            TensorLayout.predictor(base).contains {
                $0.name == "dep_layer.cross_attn.rotary.inv_freq" && $0.shape == [104]
            })
    }
}
