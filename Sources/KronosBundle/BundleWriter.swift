// Atomic, streaming bundle writer: frames go to a temporary file in the target directory as they
// come; `finish` appends the manifest, writes the header, syncs and renames over the target.
import Foundation
import KronosQuant
#if canImport(Glibc)
    import Glibc
#endif

public final class BundleWriter {
    public let destination: String
    public let temporaryPath: String
    private let force: Bool
    private var fd: Int32
    private var position = 0
    private var records = [TensorRecord]()
    private var finished = false

    /// Opens a temporary file beside `destination`. Refuses an existing destination unless `force`.
    /// Stale temporary files of earlier killed conversions to the same destination are removed.
    public init(destination: String, force: Bool) throws(BundleError) {
        // A symbolic link's final target is written (the link stays); a device or FIFO is never
        // replaced, with or without --force (OutputFile.swift).
        let target: OutputTarget
        do { target = try OutputTarget.resolve(destination, option: "--output", regularOnly: true) } catch {
            throw .io(file: destination, message: error.message)
        }
        guard case let .replace(resolved, existingMode) = target.kind else {
            throw .io(file: destination, message: "not a regular file")
        }
        if !force, existingMode != nil { throw .exists(file: destination) }
        self.force = force
        self.destination = resolved
        let url = URL(fileURLWithPath: resolved)
        let dir = url.deletingLastPathComponent().path
        let base = url.lastPathComponent
        BundleWriter.removeStaleTemporaries(directory: dir, base: base)
        let tmp = (dir as NSString).appendingPathComponent(
            ".\(base).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        temporaryPath = tmp
        // Registered before it exists, so that a signal arriving right after the file appears still
        // removes it.
        TemporaryFiles.register(tmp)
        fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            TemporaryFiles.unregister(tmp)
            throw .io(file: tmp, message: "cannot create: \(reason)")
        }
        // Held until the descriptor closes: the proof, for removeStaleTemporaries, that a writer is alive.
        _ = flock(fd, LOCK_EX | LOCK_NB)
        do throws(BundleError) { try write([UInt8](repeating: 0, count: BundleFormat.headerSize)) } catch {
            abandon(); throw error
        }
    }

    /// Temporary files `.<base>.tmp-<pid>-<n>` whose writer is provably gone: every live writer holds
    /// an exclusive flock on its temporary file, so one whose lock can be taken is abandoned (a pid
    /// test would be fooled by a reused pid or a writer in another pid namespace).
    static func removeStaleTemporaries(directory: String, base: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        let prefix = ".\(base).tmp-"
        for name in names where name.hasPrefix(prefix) {
            let path = (directory as NSString).appendingPathComponent(name)
            let fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { continue }
            var st = stat()
            if fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, flock(fd, LOCK_EX | LOCK_NB) == 0 { unlink(path) }
            close(fd)
        }
    }

    private func write(_ bytes: UnsafeRawBufferPointer) throws(BundleError) {
        var done = 0
        while done < bytes.count {
            let n = systemWrite(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(file: temporaryPath, message: "write failed: \(String(cString: strerror(errno)))")
            }
            done += n
        }
        position += bytes.count
    }

    private func write(_ bytes: [UInt8]) throws(BundleError) {
        let r: Result<Void, BundleError> = bytes.withUnsafeBytes { b in
            Result { () throws(BundleError) in try write(b) }
        }
        try r.get()
    }

    private func padToAlignment() throws(BundleError) {
        guard let aligned = BundleFormat.align(position) else {
            throw .io(file: temporaryPath, message: "file offset overflow")
        }
        if aligned > position { try write([UInt8](repeating: 0, count: aligned - position)) }
    }

    /// Appends one tensor's compressed frame (made by `Zstd.compress` from `rawSize` bytes).
    public func append(
        name: String, part: ModelPart, type: TensorType, shape: [Int], frame: [UInt8], rawSize: Int,
        error: QuantErrorStats?
    ) throws(BundleError) {
        precondition(!finished)
        try padToAlignment()
        let offset = position - BundleFormat.headerSize
        let hash = frame.withUnsafeBytes { XXH64.hash($0) }
        try write(frame)
        records.append(
            TensorRecord(
                name: name, part: part, type: type, shape: shape, offset: offset,
                storedSize: frame.count, rawSize: rawSize, xxh64: XXH64.hex(hash),
                error: error.map(TensorErrorRecord.init)))
    }

    /// Bytes written so far.
    public var bytesWritten: Int { position }

    /// Writes the manifest (with the tensor table filled in) and the header, syncs, renames.
    /// Returns the final size of the bundle.
    @discardableResult
    public func finish(_ manifestTemplate: Manifest) throws(BundleError) -> Int {
        precondition(!finished)
        do throws(BundleError) {
            try padToAlignment()
            let manifestOffset = position
            var manifest = manifestTemplate
            manifest.tensors = records
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let json: [UInt8]
            do { json = [UInt8](try encoder.encode(manifest)) } catch {
                throw BundleError.manifest(file: destination, message: "cannot encode: \(error)")
            }
            try write(json)
            let header = BundleHeader(
                dataSize: UInt64(manifestOffset - BundleFormat.headerSize),
                manifestOffset: UInt64(manifestOffset), manifestSize: UInt64(json.count),
                manifestXXH64: XXH64.hash(json))
            let hb = header.encoded()
            let wrote = hb.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
            guard wrote == hb.count else {
                throw BundleError.io(
                    file: temporaryPath, message: "header write failed: \(String(cString: strerror(errno)))")
            }
            guard fsync(fd) == 0 else {
                throw BundleError.io(file: temporaryPath, message: "fsync failed: \(String(cString: strerror(errno)))")
            }
            close(fd); fd = -1
            if force {
                guard rename(temporaryPath, destination) == 0 else {
                    throw BundleError.io(
                        file: destination,
                        message: "cannot rename \(temporaryPath) into place: \(String(cString: strerror(errno)))")
                }
            } else {
                // Without --force nothing may be replaced, not even a file another process created
                // since the check at the start: link() refuses an existing name atomically.
                if link(temporaryPath, destination) != 0 {
                    if errno == EEXIST { throw BundleError.exists(file: destination) }
                    throw BundleError.io(
                        file: destination,
                        message: "cannot link \(temporaryPath) into place: \(String(cString: strerror(errno)))")
                }
                unlink(temporaryPath)
            }
            TemporaryFiles.unregister(temporaryPath)
            finished = true
            let dir = URL(fileURLWithPath: destination).deletingLastPathComponent().path
            let dfd = open(dir, O_RDONLY | O_DIRECTORY)
            if dfd >= 0 { fsync(dfd); close(dfd) }
            return manifestOffset + json.count
        } catch {
            abandon()
            throw error
        }
    }

    /// Closes and deletes the temporary file; the destination is untouched.
    public func abandon() {
        if fd >= 0 { close(fd); fd = -1 }
        if !finished {
            unlink(temporaryPath)
            TemporaryFiles.unregister(temporaryPath)
            finished = true
        }
    }

    deinit { abandon() }
}

/// Temporary files in progress, removed by `removeAll()` from a signal handler (SIGINT / SIGTERM)
/// using only async-signal-safe calls.
public enum TemporaryFiles {
    private static let slots = 64  // one per output of a run (kronos-run stages one chart per series)
    private static let pathCapacity = 4096
    nonisolated(unsafe) private static let storage: UnsafeMutablePointer<CChar> = {
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: slots * pathCapacity)
        p.initialize(repeating: 0, count: slots * pathCapacity)
        return p
    }()
    private static let lock = NSLock()

    /// Registers `path` for removal by `removeAll` (a signal) until `unregister`.
    public static func register(_ path: String) {
        lock.lock(); defer { lock.unlock() }
        let bytes = Array(path.utf8CString)
        guard bytes.count <= pathCapacity else { return }
        for s in 0..<slots where storage[s * pathCapacity] == 0 {
            for (i, c) in bytes.enumerated() { storage[s * pathCapacity + i] = c }
            return
        }
    }

    public static func unregister(_ path: String) {
        lock.lock(); defer { lock.unlock() }
        for s in 0..<slots where String(cString: storage + s * pathCapacity) == path {
            storage[s * pathCapacity] = 0
        }
    }

    /// Unlinks every registered temporary file (async-signal-safe).
    public static func removeAll() {
        for s in 0..<slots where storage[s * pathCapacity] != 0 {
            unlink(storage + s * pathCapacity)
        }
    }

    /// Signals whose default action ends the process and that a handler can catch: each removes the
    /// temporary files, then exits 128 + signal.
    static let fatalSignals = [
        SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGXCPU,
    ]

    /// Installs the handlers of `fatalSignals`, and ignores SIGXFSZ (RLIMIT_FSIZE) and SIGPIPE so that
    /// such a write fails with EFBIG / EPIPE and the writer's error path removes its temporary file.
    public static func installSignalCleanup() {
        _ = storage
        // A parent may have started us with these signals blocked; unblock them so the handler runs.
        var set = sigset_t()
        sigemptyset(&set)
        for sig in fatalSignals { sigaddset(&set, sig) }
        sigprocmask(SIG_UNBLOCK, &set, nil)
        for sig in fatalSignals {
            signal(sig) { s in
                TemporaryFiles.removeAll()
                _exit(128 + s)
            }
        }
        signal(SIGXFSZ, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
    }
}
