// Validating bundle reader: header -> manifest -> tensor table -> layout -> frame checksums,
// every field checked before it is trusted (formats/kq-bundle.md).
import Foundation
import KronosQuant

public final class BundleReader: @unchecked Sendable {
    public let path: String
    public let header: BundleHeader
    public let manifest: Manifest
    public let fileSize: Int
    private let file: MappedFile
    private let index: [String: Int]

    /// Opens and validates a bundle. With `verifyFrames` every frame's XXH64 is checked now, so a
    /// corrupted bundle is refused before any tensor is used.
    public init(path: String, verifyFrames: Bool = true) throws(BundleError) {
        self.path = path
        file = try MappedFile(path: path)
        fileSize = file.count
        header = try BundleReader.readHeader(file.bytes, path: path)
        let mbytes = UnsafeRawBufferPointer(rebasing: file.bytes[Int(header.manifestOffset)..<fileSize])
        manifest = try BundleReader.readManifest(mbytes, path: path)
        index = try BundleReader.checkTable(manifest, header: header, data: file.bytes, path: path)
        if verifyFrames { try verifyAllFrames() }
    }

    static func readHeader(_ b: UnsafeRawBufferPointer, path: String) throws(BundleError) -> BundleHeader {
        func bad(_ f: String, _ e: String, _ x: String) -> BundleError {
            .header(file: path, field: f, expected: e, found: x)
        }
        guard b.count >= BundleFormat.headerSize else {
            throw bad("size", "at least \(BundleFormat.headerSize) bytes", "\(b.count) bytes (truncated)")
        }
        let magic = Array(b[0..<8])
        guard magic == BundleFormat.magic else {
            let shown = magic.map { ($0 >= 0x20 && $0 < 0x7F) ? String(UnicodeScalar($0)) : "." }.joined()
            throw bad("magic", "\"KRONOSKQ\"", "\"\(shown)\" (not a Kronos bundle)")
        }
        func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
        func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        let stored = u64(56)
        let computed = XXH64.hash(UnsafeRawBufferPointer(rebasing: b[0..<56]))
        guard stored == computed else {
            throw bad("header_xxh64", XXH64.hex(computed), XXH64.hex(stored) + " (header corrupted)")
        }
        let version = u32(8)
        guard version == BundleFormat.version else {
            throw bad(
                "version", "\(BundleFormat.version)",
                "\(version)"
                    + (version > BundleFormat.version ? " (written by a newer converter; upgrade kronos-run)" : ""))
        }
        guard u32(12) == UInt32(BundleFormat.headerSize) else { throw bad("header_size", "64", "\(u32(12))") }
        guard u64(16) == UInt64(BundleFormat.headerSize) else { throw bad("data_offset", "64", "\(u64(16))") }
        let dataSize = u64(24), mOff = u64(32), mSize = u64(40)
        let (end, o1) = UInt64(BundleFormat.headerSize).addingReportingOverflow(dataSize)
        guard !o1, mOff == end else {
            throw bad("manifest_offset", "data_offset + data_size = \(o1 ? "overflow" : "\(end)")", "\(mOff)")
        }
        guard mOff % UInt64(BundleFormat.alignment) == 0 else {
            throw bad("manifest_offset", "a multiple of 64", "\(mOff)")
        }
        guard mSize >= 2, mSize <= UInt64(BundleFormat.maxManifestSize) else {
            throw bad("manifest_size", "2 ... \(BundleFormat.maxManifestSize)", "\(mSize)")
        }
        let (fileEnd, o2) = mOff.addingReportingOverflow(mSize)
        guard !o2, fileEnd == UInt64(b.count) else {
            throw bad(
                "file size", "manifest_offset + manifest_size = \(o2 ? "overflow" : "\(fileEnd)") bytes",
                "\(b.count) bytes" + (fileEnd > UInt64(b.count) ? " (truncated)" : " (trailing bytes)"))
        }
        let h = BundleHeader(dataSize: dataSize, manifestOffset: mOff, manifestSize: mSize, manifestXXH64: u64(48))
        let mh = XXH64.hash(UnsafeRawBufferPointer(rebasing: b[Int(mOff)..<b.count]))
        guard mh == h.manifestXXH64 else {
            throw bad("manifest_xxh64", XXH64.hex(h.manifestXXH64), XXH64.hex(mh) + " (manifest corrupted)")
        }
        return h
    }

    static func readManifest(_ b: UnsafeRawBufferPointer, path: String) throws(BundleError) -> Manifest {
        let json: JSONValue
        do { json = try StrictJSON.parse(b) } catch { throw .manifest(file: path, message: "\(error)") }
        guard case .object = json else {
            throw .manifest(file: path, message: "expected a JSON object, found \(json.kindName)")
        }
        let m: Manifest
        do {
            m = try JSONDecoder().decode(Manifest.self, from: Data(b))
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw .manifest(
                file: path,
                message:
                    "missing field \((ctx.codingPath.map(\.stringValue) + [key.stringValue]).joined(separator: "."))")
        } catch let DecodingError.typeMismatch(t, ctx) {
            throw .manifest(
                file: path, message: "field \(ctx.codingPath.map(\.stringValue).joined(separator: ".")): expected \(t)")
        } catch let DecodingError.valueNotFound(t, ctx) {
            throw .manifest(
                file: path,
                message: "field \(ctx.codingPath.map(\.stringValue).joined(separator: ".")): expected \(t), found null")
        } catch let DecodingError.dataCorrupted(ctx) {
            throw .manifest(
                file: path,
                message: "field \(ctx.codingPath.map(\.stringValue).joined(separator: ".")): \(ctx.debugDescription)")
        } catch {
            throw .manifest(file: path, message: "\(error)")
        }
        guard m.format == BundleFormat.formatName else {
            throw .manifest(
                file: path, message: "format: expected \"\(BundleFormat.formatName)\", found \"\(m.format)\"")
        }
        guard m.formatVersion == Int(BundleFormat.version) else {
            throw .manifest(
                file: path,
                message: "format_version: expected \(BundleFormat.version) (as the header), found \(m.formatVersion)")
        }
        guard (1...(1 << 20)).contains(m.maxContext) else {
            throw .manifest(file: path, message: "max_context: expected 1 ... \(1 << 20), found \(m.maxContext)")
        }
        do {
            try m.modelConfig.validate(
                tokenizerFile: "\(path) (tokenizer_config)", predictorFile: "\(path) (predictor_config)")
        } catch {
            throw .manifest(file: path, message: error.message + " [\(error.file)]")
        }
        return m
    }

    static func checkTable(_ m: Manifest, header: BundleHeader, data: UnsafeRawBufferPointer, path: String)
        throws(BundleError) -> [String: Int]
    {
        var index = [String: Int]()
        var expectedOffset = 0
        let dataSize = Int(header.dataSize)
        for (i, t) in m.tensors.enumerated() {
            let key = "\(t.part.rawValue)/\(t.name)"
            func bad(_ msg: String) -> BundleError { .tensor(file: path, tensor: key, message: msg) }
            guard index.updateValue(i, forKey: key) == nil else { throw bad("duplicate tensor name") }
            guard t.shape.count <= BundleFormat.maxDimensions else {
                throw bad("expected at most \(BundleFormat.maxDimensions) dimensions, found \(t.shape.count)")
            }
            guard t.shape.allSatisfy({ $0 >= 1 }) else {
                throw bad("every dimension must be at least 1, found shape \(t.shape)")
            }
            guard elementCount(t.shape) != nil else { throw bad("element count of shape \(t.shape) overflows") }
            guard let raw = t.type.byteCount(shape: t.shape) else {
                throw bad(
                    "shape \(t.shape) cannot be stored as \(t.type.rawValue) (row length must be a multiple of "
                        + "\(t.type.traits.blockSize))"
                )
            }
            guard raw == t.rawSize else {
                throw bad("raw_size: expected \(raw) for \(t.type.rawValue) \(t.shape), found \(t.rawSize)")
            }
            guard t.offset == expectedOffset else {
                throw bad(
                    "offset: expected \(expectedOffset) (frames are contiguous, 64-byte aligned, in table order), "
                        + "found \(t.offset)"
                )
            }
            guard t.storedSize >= 1, t.storedSize <= dataSize - t.offset else {
                throw bad(
                    "stored_size \(t.storedSize) at offset \(t.offset) does not fit the \(dataSize)-byte data section")
            }
            guard t.xxh64.count == 16, t.xxh64.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
                throw bad("xxh64: expected 16 lowercase hex digits, found \"\(t.xxh64)\"")
            }
            let end = t.offset + t.storedSize
            guard let next = BundleFormat.align(end) else { throw bad("offset overflow") }
            // Padding after the frame must be zero bytes.
            let padStart = BundleFormat.headerSize + end
            for p in padStart..<min(BundleFormat.headerSize + next, BundleFormat.headerSize + dataSize)
            where data[p] != 0 {
                throw bad("padding byte at file offset \(p) after the frame is \(data[p]), expected 0")
            }
            expectedOffset = next
        }
        guard expectedOffset == dataSize else {
            throw .manifest(
                file: path, message: "tensor frames end at data offset \(expectedOffset) but data_size is \(dataSize)")
        }
        let found = m.tensors.map {
            FoundTensor(
                part: $0.part, name: $0.name, shape: $0.shape, isFloat: $0.type != .i64, typeName: $0.type.rawValue)
        }
        let problems = TensorLayout.compare(expected: TensorLayout.expected(m.modelConfig), found: found)
        guard problems.isEmpty else { throw .layout(file: path, problems: problems) }
        return index
    }

    /// Checks every frame's XXH64 against the table.
    public func verifyAllFrames() throws(BundleError) {
        for t in manifest.tensors {
            let h = XXH64.hash(frame(t))
            releaseFrame(t)
            guard XXH64.hex(h) == t.xxh64 else {
                throw .frame(
                    file: path, tensor: "\(t.part.rawValue)/\(t.name)", offset: BundleFormat.headerSize + t.offset,
                    message: "xxh64 mismatch: expected \(t.xxh64), found \(XXH64.hex(h)) (bundle corrupted)")
            }
        }
    }

    public func record(_ part: ModelPart, _ name: String) -> TensorRecord? {
        index["\(part.rawValue)/\(name)"].map { manifest.tensors[$0] }
    }

    /// The stored (compressed) bytes of a tensor.
    public func frame(_ t: TensorRecord) -> UnsafeRawBufferPointer {
        let start = BundleFormat.headerSize + t.offset
        return UnsafeRawBufferPointer(rebasing: file.bytes[start..<(start + t.storedSize)])
    }

    /// Decompresses a tensor into a new 64-byte aligned buffer of exactly `raw_size` bytes.
    public func load(_ t: TensorRecord) throws(BundleError) -> TensorData {
        let buffer = AlignedBuffer(byteCount: t.rawSize)
        do { try Zstd.decompress(frame(t), into: buffer.bytes) } catch {
            throw .frame(
                file: path, tensor: "\(t.part.rawValue)/\(t.name)", offset: BundleFormat.headerSize + t.offset,
                message: "\(error)")
        }
        releaseFrame(t)
        if t.rawSize > 0,
            let i = t.type.firstNonFinite(UnsafeRawPointer(buffer.bytes.baseAddress!), byteCount: t.rawSize)
        {
            throw .tensor(
                file: path, tensor: "\(t.part.rawValue)/\(t.name)",
                message: t.type.traits.isQuantized
                    ? "block \(i) has a non-finite scale or minimum" : "element \(i) is not finite")
        }
        return TensorData(record: t, buffer: buffer)
    }

    /// The frame's pages leave memory once it has been read (they are read again from the file if needed).
    private func releaseFrame(_ t: TensorRecord) {
        let start = BundleFormat.headerSize + t.offset
        file.release(start..<(start + t.storedSize))
    }

    /// Loads every tensor, frames decoded in parallel.
    public func loadAll() throws(BundleError) -> [String: TensorData] {
        let tensors = manifest.tensors
        let results = ResultSlots<TensorData, BundleError>(count: tensors.count)
        BoundedParallel.forEach(tensors.count, threads: ProcessInfo.processInfo.activeProcessorCount) { i in
            results[i] = Result { () throws(BundleError) in try self.load(tensors[i]) }
        }
        var out = [String: TensorData]()
        for (i, t) in tensors.enumerated() { out["\(t.part.rawValue)/\(t.name)"] = try results.get(i) }
        return out
    }
}

/// A decoded tensor: its record and its raw bytes in the record's type.
public final class TensorData: @unchecked Sendable {
    public let record: TensorRecord
    public let buffer: AlignedBuffer
    public init(record: TensorRecord, buffer: AlignedBuffer) { self.record = record; self.buffer = buffer }
    public var raw: UnsafeRawPointer { UnsafeRawPointer(buffer.bytes.baseAddress!) }
    public var rows: Int { record.shape.dropLast().reduce(1, *) }
    public var columns: Int { record.shape.last ?? 1 }
    public var rowBytes: Int { record.type.rowBytes(columns: columns)! }

    /// All values dequantized to f32 (reference path).
    public func floats() -> [Float] {
        var out = [Float](repeating: 0, count: rows * columns)
        out.withUnsafeMutableBufferPointer { o in
            for r in 0..<rows {
                record.type.decodeRow(raw + r * rowBytes, columns: columns, into: o.baseAddress! + r * columns)
            }
        }
        return out
    }

    /// int64 values (for i64 tensors).
    public func int64s() -> [Int64] {
        (0..<(rows * columns)).map { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }
    }
}

/// Per-index results filled by concurrent iterations (each index written once).
public final class ResultSlots<T: Sendable, E: Error>: @unchecked Sendable {
    private var slots: [Result<T, E>?]
    private let lock = NSLock()
    public init(count: Int) { slots = Array(repeating: nil, count: count) }
    public subscript(i: Int) -> Result<T, E> {
        get { lock.lock(); defer { lock.unlock() }; return slots[i]! }
        set { lock.lock(); slots[i] = newValue; lock.unlock() }
    }
    public func get(_ i: Int) throws(E) -> T { try self[i].get() }
}
