// Input files read whole, without ever blocking on what is not a file: the path is opened with
// O_NONBLOCK (opening a FIFO for reading otherwise waits for a writer forever) and fstat'ed, and
// anything but a regular file is refused (a FIFO, a device such as /dev/zero that never ends, a
// socket, a directory), except `-`, standard input, where reading a stream is meant.
import Foundation
#if canImport(Glibc)
    import Glibc
#endif

public struct InputError: Error, LocalizedError, Sendable, Equatable {
    public var path: String
    public var message: String
    public init(path: String, message: String) { self.path = path; self.message = message }
    public var errorDescription: String? { "\(path): \(message)" }
}

public enum InputFile {
    /// Reads the whole of `path` (at most `limit` bytes; `-` is standard input when `allowStandardInput`).
    public static func read(_ path: String, limit: Int, allowStandardInput: Bool = false) throws(InputError) -> Data {
        func fail(_ m: String) -> InputError { InputError(path: path, message: m) }
        if path == "-" {
            guard allowStandardInput else { throw fail("standard input is not accepted here; give a file") }
            return try readAll(fd: 0, limit: limit, fail)
        }
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw fail("cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw fail("cannot stat: \(String(cString: strerror(errno)))") }
        switch st.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw fail("is a directory, not a file")
        case S_IFIFO:
            throw fail("is a FIFO, not a regular file" + (allowStandardInput ? " (use - to read standard input)" : ""))
        case S_IFCHR: throw fail("is a character device, not a regular file")
        case S_IFBLK: throw fail("is a block device, not a regular file")
        case S_IFSOCK: throw fail("is a socket, not a regular file")
        default: throw fail("is not a regular file")
        }
        guard Int(st.st_size) <= limit else { throw fail("is \(st.st_size) bytes, more than the \(limit) accepted") }
        // Back to blocking reads for a regular file (O_NONBLOCK has no effect on it, but be plain).
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return try readAll(fd: fd, limit: limit, fail)
    }

    static func readAll(fd: Int32, limit: Int, _ fail: (String) -> InputError) throws(InputError) -> Data {
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { systemRead(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw fail("read failed: \(String(cString: strerror(errno)))") }
            if n == 0 { return data }
            guard data.count + n <= limit else { throw fail("is longer than the \(limit) bytes accepted") }
            data.append(contentsOf: chunk[0..<n])
        }
    }
}

// read(2) / write(2) by a name no method hides, on Linux and Darwin alike.
#if canImport(Glibc)
    @inline(__always) func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
        Glibc.read(fd, buffer, count)
    }
    @inline(__always) func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
        Glibc.write(fd, buffer, count)
    }
#elseif canImport(Darwin)
    @inline(__always) func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
        Darwin.read(fd, buffer, count)
    }
    @inline(__always) func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
        Darwin.write(fd, buffer, count)
    }
#endif
