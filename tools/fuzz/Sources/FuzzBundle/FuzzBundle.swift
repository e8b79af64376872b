// libFuzzer target: the bundle reader (header, manifest, table, checksums) and frame decoding.
// Half of the inputs get their header and manifest checksums repaired first, so that mutations
// reach the manifest parser and the table checks instead of stopping at a checksum.
import Foundation
import KronosBundle

let path = "/dev/shm/kronos-fuzz-bundle-\(getpid()).kq"

func repairChecksums(_ b: inout [UInt8]) {
    guard b.count >= 64 else { return }
    func u64(_ o: Int) -> UInt64 { b[o..<(o + 8)].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } }
    func put(_ v: UInt64, _ o: Int) { withUnsafeBytes(of: v.littleEndian) { for k in 0..<8 { b[o + k] = $0[k] } } }
    let mOff = u64(32), mSize = u64(40)
    if mOff <= UInt64(b.count), mSize <= UInt64(b.count) - mOff {
        put(XXH64.hash(Array(b[Int(mOff)..<Int(mOff + mSize)])), 48)
    }
    put(XXH64.hash(Array(b[0..<56])), 56)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if size > 0 && data[size - 1] & 1 == 1 { repairChecksums(&bytes) }
    FileManager.default.createFile(atPath: path, contents: Data(bytes))
    if let reader = try? BundleReader(path: path) {
        for t in reader.manifest.tensors { _ = try? reader.load(t) }
    }
    return 0
}
