// libFuzzer target: the safetensors reader on arbitrary bytes (written to a file, then mapped).
import Foundation
import KronosCheckpoint

let path = "/dev/shm/kronos-fuzz-safetensors-\(getpid()).safetensors"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FileManager.default.createFile(atPath: path, contents: Data(bytes: data, count: size))
    if let file = try? SafetensorsFile(path: path) {
        for t in file.tensors {
            _ = t.firstNonFinite()
            if t.elementCount < 1 << 16 { _ = t.floats() }
        }
    }
    return 0
}
