// Output files that never destroy anything. Every output path is resolved before any work is done:
//   - a regular file or a new path is written atomically: a temporary file beside it, synced, then
//     renamed over it (an interrupted run leaves the old file or none, never half of one);
//   - a symbolic link is followed (relative links against their own directory, up to 40 hops) and
//     its final target written that way: the link stays a link;
//   - a device, FIFO or other non-regular file is opened and written in place, never replaced
//     (`/dev/null` stays a device node), or refused where a tool needs a regular file (bundles);
//   - `-`, `/dev/stdout`, `/dev/stderr`, `/dev/fd/N` and `/proc/self/fd/N` write to that descriptor
//     (reopening them would start a shell's `>>` redirect over at offset 0).
// A tool resolves all its outputs first (refusing a missing directory, a directory, an unwritable
// path, or two outputs on one file), stages them all, then commits them all: one bad path leaves no
// half-set of outputs.
import Foundation
#if canImport(Glibc)
    import Glibc
#endif

public struct OutputError: Error, LocalizedError, Sendable, Equatable {
    /// The option that named the path (e.g. "--output"), the path as given, and what is wrong.
    public var option: String
    public var path: String
    public var message: String
    public init(option: String, path: String, message: String) {
        self.option = option; self.path = path; self.message = message
    }
    public var errorDescription: String? { "\(option) \(path): \(message)" }
}

/// Where one output goes, decided before the work that produces it.
public struct OutputTarget: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Write to this open descriptor (standard output, a /dev/fd path).
        case descriptor(Int32)
        /// Write atomically: temporary file in the same directory, then rename onto `path` (the final
        /// target when the given path is a symbolic link).
        case replace(path: String, existingMode: mode_t?)
        /// Open `path` and write in place (a device, FIFO or other non-regular file).
        case inPlace(path: String)
    }
    public let option: String
    public let given: String
    public let kind: Kind

    /// Resolves `given` as described at the top of this file. `regularOnly` refuses non-regular
    /// targets and standard output (a bundle needs a seekable regular file).
    public static func resolve(_ given: String, option: String, regularOnly: Bool = false) throws(OutputError)
        -> OutputTarget
    {
        func fail(_ m: String) -> OutputError { OutputError(option: option, path: given, message: m) }
        guard !given.isEmpty else { throw fail("empty path") }
        if let fd = descriptorPath(given) {
            guard !regularOnly else { throw fail("standard output is not a regular file; give a file path") }
            guard fcntl(fd, F_GETFD) != -1 else { throw fail("descriptor \(fd) is not open") }
            return OutputTarget(option: option, given: given, kind: .descriptor(fd))
        }
        var path = given
        for _ in 0..<40 {
            var st = stat()
            if lstat(path, &st) != 0 {
                guard errno == ENOENT else { throw fail("cannot inspect \(path): \(String(cString: strerror(errno)))") }
                try checkDirectory(of: path, fail)
                return OutputTarget(option: option, given: given, kind: .replace(path: path, existingMode: nil))
            }
            switch st.st_mode & S_IFMT {
            case S_IFLNK:
                guard let link = readLink(path) else {
                    throw fail("cannot read the symbolic link \(path): \(String(cString: strerror(errno)))")
                }
                path =
                    link.hasPrefix("/")
                    ? link : ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent(link)
                if let fd = descriptorPath(path) {  // /dev/stdout -> /proc/self/fd/1
                    guard !regularOnly else { throw fail("standard output is not a regular file; give a file path") }
                    return OutputTarget(option: option, given: given, kind: .descriptor(fd))
                }
            case S_IFREG:
                guard access(path, W_OK) == 0 else {
                    throw fail("\(path == given ? "the file" : path) is not writable")
                }
                try checkDirectory(of: path, fail)
                return OutputTarget(
                    option: option, given: given, kind: .replace(path: path, existingMode: st.st_mode & 0o7777))
            case S_IFDIR:
                throw fail(path == given ? "is a directory" : "links to the directory \(path)")
            case S_IFSOCK:
                throw fail("\(path == given ? "is" : "links to") a socket; write to a file, a FIFO or a device")
            default:
                let what = describe(st.st_mode)
                guard !regularOnly else {
                    throw fail(
                        "\(path == given ? "is" : "links to") a \(what), not a regular file: it is never replaced (not "
                            + "even with --force)"
                    )
                }
                guard access(path, W_OK) == 0 else { throw fail("the \(what) \(path) is not writable") }
                return OutputTarget(option: option, given: given, kind: .inPlace(path: path))
            }
        }
        throw fail("too many levels of symbolic links")
    }

    /// The descriptor a path names directly, if it is one of the standard descriptor paths.
    static func descriptorPath(_ p: String) -> Int32? {
        switch p {
        case "-", "/dev/stdout": return 1
        case "/dev/stderr": return 2
        default:
            for prefix in ["/dev/fd/", "/proc/self/fd/"] where p.hasPrefix(prefix) {
                return Int32(p.dropFirst(prefix.count))
            }
            return nil
        }
    }

    static func readLink(_ p: String) -> String? {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(p, &buf, buf.count - 1)
        guard n >= 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func checkDirectory(of path: String, _ fail: (String) -> OutputError) throws(OutputError) {
        let dir =
            (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        var st = stat()
        guard stat(dir, &st) == 0 else { throw fail("directory \(dir) does not exist") }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw fail("\(dir) is not a directory") }
        guard access(dir, W_OK) == 0 else { throw fail("directory \(dir) is not writable") }
    }

    static func describe(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFCHR: return "character device"
        case S_IFBLK: return "block device"
        case S_IFIFO: return "FIFO"
        default: return "special file"
        }
    }

    /// What two targets must not share: the file they write.
    var identity: String {
        switch kind {
        case let .descriptor(fd): return "fd:\(fd)"
        case let .replace(path, _), let .inPlace(path):
            let dir = (path as NSString).deletingLastPathComponent
            let resolved = (dir.isEmpty ? FileManager.default.currentDirectoryPath : realPath(dir)) as NSString
            return resolved.appendingPathComponent((path as NSString).lastPathComponent)
        }
    }

    func realPath(_ p: String) -> String {
        guard let r = realpath(p, nil) else { return p }
        defer { free(r) }
        return String(cString: r)
    }

    /// The path the data finally lands in (for messages), or "standard output".
    public var destination: String {
        switch kind {
        case .descriptor(1): return "standard output"
        case let .descriptor(fd): return "descriptor \(fd)"
        case let .replace(path, _), let .inPlace(path): return path
        }
    }
}

/// Outputs staged together and committed together.
public final class OutputSet {
    private struct Staged { var target: OutputTarget; var data: Data; var temporary: String? }
    private var targets = [OutputTarget]()
    private var staged = [Staged]()

    public init() {}

    /// Resolves and adds one output; two outputs on one file are refused.
    @discardableResult
    public func add(_ path: String, option: String) throws(OutputError) -> OutputTarget {
        let t = try OutputTarget.resolve(path, option: option)
        if let other = targets.first(where: { $0.identity == t.identity }) {
            throw OutputError(
                option: option, path: path, message: "\(other.option) \(other.given) writes the same file")
        }
        targets.append(t)
        return t
    }

    /// Writes `data` for `target` to a temporary file beside it (regular targets) or keeps it for
    /// the commit (descriptors, devices, FIFOs).
    public func stage(_ target: OutputTarget, _ data: Data) throws(OutputError) {
        guard case let .replace(path, mode) = target.kind else {
            staged.append(Staged(target: target, data: data, temporary: nil)); return
        }
        let dir = (path as NSString).deletingLastPathComponent
        let tmp = ((dir.isEmpty ? "." : dir) as NSString).appendingPathComponent(
            ".\((path as NSString).lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        TemporaryFiles.register(tmp)
        let fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o666)
        guard fd >= 0 else {
            TemporaryFiles.unregister(tmp)
            throw OutputError(
                option: target.option, path: target.given,
                message: "cannot create \(tmp): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        do throws(OutputError) {
            try Self.writeAll(fd, data, target)
            if let mode { fchmod(fd, mode) }
            guard fsync(fd) == 0 else {
                throw OutputError(
                    option: target.option, path: target.given,
                    message: "fsync failed: \(String(cString: strerror(errno)))")
            }
        } catch {
            unlink(tmp); TemporaryFiles.unregister(tmp)
            throw error
        }
        staged.append(Staged(target: target, data: Data(), temporary: tmp))
    }

    /// Renames every staged temporary file into place and writes the in-place outputs.
    public func commit() throws(OutputError) {
        defer { discard() }
        for i in staged.indices {
            let s = staged[i]
            switch s.target.kind {
            case let .replace(path, _):
                guard let tmp = s.temporary, rename(tmp, path) == 0 else {
                    throw OutputError(
                        option: s.target.option, path: s.target.given,
                        message: "cannot rename into place: \(String(cString: strerror(errno)))")
                }
                TemporaryFiles.unregister(tmp)
                staged[i].temporary = nil
                let dir = (path as NSString).deletingLastPathComponent
                let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY)
                if dfd >= 0 { fsync(dfd); close(dfd) }
            case let .descriptor(fd):
                try Self.writeAll(fd, s.data, s.target)
            case let .inPlace(path):
                let fd = open(path, O_WRONLY | O_CLOEXEC)
                guard fd >= 0 else {
                    throw OutputError(
                        option: s.target.option, path: s.target.given,
                        message: "cannot open \(path): \(String(cString: strerror(errno)))")
                }
                defer { close(fd) }
                try Self.writeAll(fd, s.data, s.target)
            }
        }
    }

    /// Deletes temporary files not yet committed.
    public func discard() {
        for s in staged { if let tmp = s.temporary { unlink(tmp); TemporaryFiles.unregister(tmp) } }
        staged.removeAll()
    }

    deinit { discard() }

    static func writeAll(_ fd: Int32, _ data: Data, _ target: OutputTarget) throws(OutputError) {
        let failure: Int32? = data.withUnsafeBytes { (p: UnsafeRawBufferPointer) -> Int32? in
            var done = 0
            while done < p.count {
                let n = write(fd, p.baseAddress! + done, p.count - done)
                if n < 0 { if errno == EINTR { continue }; return errno }
                done += n
            }
            return nil
        }
        if let e = failure {
            throw OutputError(
                option: target.option, path: target.given, message: "write failed: \(String(cString: strerror(e)))")
        }
    }
}
