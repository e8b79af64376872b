// Read-only memory mapping of a whole file.
import Foundation
#if canImport(Glibc)
    import Glibc
#endif

public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let bytes: UnsafeRawBufferPointer
    private let length: Int

    /// Maps `path` read-only. `describe` turns an errno-style message into the caller's error.
    public init(path: String) throws(BundleError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)  // a FIFO must not block the open
        guard fd >= 0 else { throw .io(file: path, message: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw .io(file: path, message: "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .io(file: path, message: "not a regular file") }
        length = Int(st.st_size)
        if length == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let p = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw .io(file: path, message: "cannot map \(length) bytes: \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawBufferPointer(start: p, count: length)
    }

    public var count: Int { length }

    /// Gives back the resident pages that lie wholly inside `range` (file offsets): the bytes stay
    /// readable (a later read faults them in from the file again), but a loader that has consumed a
    /// frame stops holding it in memory, so its peak is not the file plus everything decoded.
    public func release(_ range: Range<Int>) {
        #if canImport(Glibc)
            guard let base = bytes.baseAddress, range.lowerBound >= 0, range.upperBound <= length else { return }
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            let start = (range.lowerBound + page - 1) / page * page, end = range.upperBound / page * page
            guard start < end else { return }
            _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
        #endif
    }

    deinit {
        if let b = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: b), length) }
    }
}

/// A 64-byte aligned, zero-initialised heap buffer.
public final class AlignedBuffer: @unchecked Sendable {
    public let bytes: UnsafeMutableRawBufferPointer
    /// zeroed false: the bytes are left uninitialized, for a caller that writes every one of them
    /// before reading any (zeroing hundreds of MB first costs a pass over them on one core).
    /// hugePages: a buffer of 2 MiB or more is 2 MiB aligned and asks the kernel for transparent huge
    /// pages (madvise; Linux only, where the system allows it: Debian's default "madvise" mode), so
    /// that its first touch takes one page fault per 2 MiB instead of per 4 KiB. For the large buffers
    /// calibration fills once (synthesized Kronos-base: about 1.7 GB; its first window, 2.5 -> 2.1 s).
    public init(byteCount: Int, zeroed: Bool = true, hugePages: Bool = false) {
        let huge = hugePages && byteCount >= Self.hugePage
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: huge ? Self.hugePage : 64)
        #if os(Linux)
            if huge { _ = madvise(p, byteCount / Self.hugePage * Self.hugePage, MADV_HUGEPAGE) }  // (advice only)
        #endif
        if zeroed { p.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1)) }
        bytes = UnsafeMutableRawBufferPointer(start: p, count: byteCount)
    }
    deinit { bytes.baseAddress.map { $0.deallocate() } ?? () }

    static let hugePage = 2 << 20
}
