import Foundation
import KronosBundle
import KronosTestSupport
import Testing

/// A crafted-bundle corpus: every case rewrites the manifest (or a frame) of a valid tiny bundle and
/// recomputes every checksum, so that the check under test, not a checksum, has to refuse it.
@Suite struct CraftedBundleTests {
    static let base: [UInt8] = {
        let dir = temporaryDirectory("crafted")
        let r = try! runTool(
            "kronos-convert",
            [
                "--tokenizer", goldenTinyDirectory + "/tokenizer",
                "--predictor", goldenTinyDirectory + "/predictor", "--quantize", "q8", "-o", dir + "/t.kq",
            ])
        precondition(r.status == 0, r.stderr)
        return [UInt8](try! Data(contentsOf: URL(fileURLWithPath: dir + "/t.kq")))
    }()

    static func u64(_ b: [UInt8], _ o: Int) -> Int {
        b[o..<(o + 8)].withUnsafeBytes { Int($0.loadUnaligned(as: UInt64.self)) }
    }

    /// Rebuilds a bundle from frames (data section) and manifest bytes, with a valid header.
    static func assemble(data: [UInt8], manifest: [UInt8]) -> [UInt8] {
        var data = data
        while data.count % 64 != 0 { data.append(0) }
        let h = BundleHeader(
            dataSize: UInt64(data.count), manifestOffset: UInt64(64 + data.count), manifestSize: UInt64(manifest.count),
            manifestXXH64: XXH64.hash(manifest))
        return h.encoded() + data + manifest
    }

    static var parts: (data: [UInt8], manifest: [String: Any]) {
        let b = base
        let mOff = u64(b, 32)
        let json = try! JSONSerialization.jsonObject(with: Data(b[mOff...])) as! [String: Any]
        return (Array(b[64..<mOff]), json)
    }

    /// The bundle with `edit` applied to its manifest object.
    static func edited(_ edit: (inout [String: Any], inout [UInt8]) -> Void) -> [UInt8] {
        var (data, m) = parts
        edit(&m, &data)
        let json = [UInt8](try! JSONSerialization.data(withJSONObject: m, options: [.sortedKeys]))
        return assemble(data: data, manifest: json)
    }

    static func tensors(_ m: [String: Any]) -> [[String: Any]] { m["tensors"] as! [[String: Any]] }

    /// Reopens `bytes` as a bundle: the error message, or nil when accepted.
    func refusal(_ bytes: [UInt8]) -> String? {
        let p = temporaryDirectory("crafted-case") + "/c.kq"
        FileManager.default.createFile(atPath: p, contents: Data(bytes))
        // Opening validates the header, manifest, table and checksums; loading decodes every frame.
        do { _ = try BundleReader(path: p).loadAll(); return nil } catch { return error.errorDescription }
    }

    static func setTensor(_ i: Int, _ key: String, _ value: Any) -> (inout [String: Any], inout [UInt8]) -> Void {
        { m, _ in
            var t = tensors(m); t[i][key] = value; m["tensors"] = t
        }
    }

    static let cases: [(String, [UInt8], String)] = [
        ("untouched manifest re-encoded", edited { _, _ in }, ""),
        (
            "duplicate tensor",
            edited { m, _ in
                var t = tensors(m); t[1]["name"] = t[0]["name"]; t[1]["part"] = t[0]["part"]; m["tensors"] = t
            }, "duplicate tensor name"
        ),
        ("unknown type", edited(setTensor(0, "type", "q3_x")), "tensors"),
        ("shape overflow", edited(setTensor(3, "shape", [4_294_967_296, 4_294_967_296, 4_294_967_296])), "overflows"),
        ("zero dimension", edited(setTensor(3, "shape", [0, 32])), "every dimension must be at least 1"),
        ("too many dimensions", edited(setTensor(3, "shape", [1, 1, 1, 1, 1, 1, 1, 1, 32])), "at most 8 dimensions"),
        ("negative offset", edited(setTensor(2, "offset", -64)), "found -64"),
        ("offset gap", edited(setTensor(2, "offset", 1 << 20)), "offset: expected"),
        ("raw size lie", edited(setTensor(4, "raw_size", 999)), "raw_size: expected"),
        (
            "stored size beyond data",
            edited { m, _ in
                var t = tensors(m); t[t.count - 1]["stored_size"] = 1 << 30; m["tensors"] = t
            }, "does not fit"
        ),
        ("bad checksum text", edited(setTensor(0, "xxh64", "XYZ")), "xxh64: expected 16 lowercase hex digits"),
        (
            "missing field",
            edited { m, _ in
                var t = tensors(m); t[0].removeValue(forKey: "raw_size"); m["tensors"] = t
            }, "missing field tensors"
        ),
        ("max_context 0", edited { m, _ in m["max_context"] = 0 }, "max_context"),
        ("format version mismatch", edited { m, _ in m["format_version"] = 2 }, "format_version"),
        ("wrong format name", edited { m, _ in m["format"] = "gguf" }, "format: expected"),
        (
            "impossible config",
            edited { m, _ in
                var c = m["predictor_config"] as! [String: Any]; c["n_heads"] = 3; m["predictor_config"] = c
            }, "not divisible by n_heads"
        ),
        (
            "huge config",
            edited { m, _ in
                var c = m["predictor_config"] as! [String: Any]; c["ff_dim"] = 1 << 40; m["predictor_config"] = c
            }, "ff_dim must be in"
        ),
        (
            "renamed tensor",
            edited { m, _ in
                var t = tensors(m); t[5]["name"] = "bogus.weight"; m["tensors"] = t
            }, "unexpected tensor"
        ),
        (
            "transposed shape",
            edited { m, _ in
                var t = tensors(m)
                let i = t.firstIndex { ($0["name"] as! String) == "embed.weight" }!
                t[i]["shape"] = [6, 32]; m["tensors"] = t
            }, "transposed?"
        ),
        (
            "frame shorter than its record, checksum recomputed",
            edited { m, data in
                var t = tensors(m)
                let off = t[0]["offset"] as! Int, size = t[0]["stored_size"] as! Int
                t[0]["xxh64"] = XXH64.hex(XXH64.hash(Array(data[off..<(off + size - 1)])))
                t[0]["stored_size"] = size - 1; m["tensors"] = t
            }, "padding byte at file offset"
        ),
        (
            "frame garbage, checksum recomputed",
            edited { m, data in
                var t = tensors(m)
                let off = t[2]["offset"] as! Int, size = t[2]["stored_size"] as! Int
                for k in off..<(off + size) { data[k] = UInt8(truncatingIfNeeded: k &* 37) }
                t[2]["xxh64"] = XXH64.hex(XXH64.hash(Array(data[off..<(off + size)]))); m["tensors"] = t
            }, "(frame at byte"
        ),
        (
            "manifest not an object", assemble(data: parts.data, manifest: Array("[1,2,3]".utf8)),
            "expected a JSON object"
        ),
        (
            "manifest not UTF-8", assemble(data: parts.data, manifest: [0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D]),
            "not valid UTF-8"
        ),
        (
            "manifest duplicate key",
            assemble(data: parts.data, manifest: Array(#"{"format":"kronos-bundle","format":"x"}"#.utf8)),
            "duplicate key"
        ),
    ]

    @Test(arguments: 0..<cases.count)
    func craftedBundleIsRefused(index: Int) {
        let (label, bytes, expected) = Self.cases[index]
        let message = refusal(bytes)
        if expected.isEmpty {
            #expect(message == nil, "\(label): \(message ?? "")")
        } else {
            #expect(message?.contains(expected) == true, "\(label): \(message ?? "accepted")")
        }
    }

    @Test func frameThatDecodesToAnotherSizeIsRefusedBeforeWriting() throws {
        // A valid zstd frame of 16 bytes where the table says raw_size 4096: the declared content
        // size is checked before any decompression (no decompression bomb).
        let bytes = Self.edited { m, data in
            var t = Self.tensors(m)
            let i = t.firstIndex { ($0["name"] as! String) == "embed.bias" }!
            let off = t[i]["offset"] as! Int, size = t[i]["stored_size"] as! Int
            let bomb = try! [UInt8](repeating: 0, count: 1 << 20).withUnsafeBytes { try Zstd.compress($0, level: 19) }
            precondition(bomb.count <= size, "\(bomb.count) > \(size)")
            for k in 0..<size { data[off + k] = k < bomb.count ? bomb[k] : 0 }
            t[i]["xxh64"] = XXH64.hex(XXH64.hash(Array(data[off..<(off + size)]))); m["tensors"] = t
        }
        let p = temporaryDirectory("bomb") + "/b.kq"
        FileManager.default.createFile(atPath: p, contents: Data(bytes))
        let reader = try BundleReader(path: p)
        let rec = reader.record(.tokenizer, "embed.bias")!
        #expect(throws: BundleError.self) { _ = try reader.load(rec) }
        do { _ = try reader.load(rec) } catch {
            #expect(error.errorDescription!.contains("contentSize(expected: 128, found: Optional(1048576))"))
        }
    }
}
