// libFuzzer target: the bundle reader (header, manifest, table, checksums) and frame decoding.
import Foundation
import KronosBundle

let path = "/dev/shm/kronos-fuzz-bundle-\(getpid()).kq"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FileManager.default.createFile(atPath: path, contents: Data(bytes: data, count: size))
    if let reader = try? BundleReader(path: path) {
        for t in reader.manifest.tensors { _ = try? reader.load(t) }
    }
    return 0
}
