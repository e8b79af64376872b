// The one owner of the engine's scratch memory (ARCHITECTURE.md §4).

/// Owns every buffer an engine object hands to kernels between calls: the block passes' activations,
/// a session's embeddings, the KV cache rows, the sampler's sort buffers, the workers' scratch.
///
/// - Buffers are 64-byte aligned (a cache line, one AVX-512 register) and uninitialized: whoever
///   carves one writes it before reading it, as the kernels' contracts say.
/// - They are freed together when the arena goes. An object keeps its arena as a stored property,
///   so its buffers live exactly as long as the object that uses them; no deinit frees pointers by hand.
/// - A buffer that must grow is replaced with `regrow`, which frees the old one at once.
/// - Scratch for the span of one function takes `ScratchArena.scoped`, which keeps the arena alive
///   until the function's body returns (Swift may end a local object's lifetime at its last use).
package final class ScratchArena {
    private var owned: [(pointer: UnsafeMutableRawPointer, bytes: Int)] = []

    package init() {}

    deinit { for o in owned { o.pointer.deallocate() } }

    /// Bytes the arena holds now.
    package var bytes: Int { owned.reduce(0) { $0 + $1.bytes } }

    /// An uninitialized, 64-byte aligned buffer of `count` values of T (at least one).
    package func buffer<T>(of _: T.Type = T.self, count: Int) -> UnsafeMutablePointer<T> {
        precondition(count >= 0)
        let (bytes, overflow) = max(count, 1).multipliedReportingOverflow(by: MemoryLayout<T>.stride)
        precondition(!overflow, "scratch buffer of \(count) values overflows")
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        owned.append((p, bytes))
        return p.bindMemory(to: T.self, capacity: max(count, 1))
    }

    /// An uninitialized, 64-byte aligned buffer of `bytes` bytes (rows whose element type is chosen
    /// at run time, e.g. the KV cache's f32 / f16 rows).
    package func rawBuffer(bytes: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(buffer(of: UInt8.self, count: bytes))
    }

    /// A new buffer of `count` values replacing `old` (one of this arena's, freed now; nil: none).
    /// The contents are not carried over.
    package func regrow<T>(_ old: UnsafeMutablePointer<T>?, count: Int) -> UnsafeMutablePointer<T> {
        if let old {
            let raw = UnsafeMutableRawPointer(old)
            guard let i = owned.firstIndex(where: { $0.pointer == raw }) else {
                preconditionFailure("regrow of a buffer this arena does not own")
            }
            owned.remove(at: i).pointer.deallocate()
        }
        return buffer(of: T.self, count: count)
    }

    /// Runs `body` with an arena that lives until `body` returns, then frees its buffers.
    package static func scoped<R, E: Error>(_ body: (ScratchArena) throws(E) -> R) throws(E) -> R {
        let arena = ScratchArena()
        defer { withExtendedLifetime(arena) {} }
        return try body(arena)
    }
}
