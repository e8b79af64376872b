// Thin, checked wrapper over libzstd: one standalone frame per tensor.
import CZstd

public enum ZstdError: Error, Equatable, Sendable {
    /// libzstd reported an error (its name).
    case library(String)
    /// The frame header does not declare a content size, or declares a different one.
    case contentSize(expected: Int, found: UInt64?)
    /// Decompression produced a different number of bytes than declared.
    case shortOutput(expected: Int, found: Int)
}

public enum Zstd {
    /// Compresses `src` into one frame with content size and content checksum.
    public static func compress(_ src: UnsafeRawBufferPointer, level: Int32) throws(ZstdError) -> [UInt8] {
        let bound = ZSTD_compressBound(src.count)
        var out = [UInt8](repeating: 0, count: bound)
        guard let cctx = ZSTD_createCCtx() else { throw .library("ZSTD_createCCtx failed") }
        defer { ZSTD_freeCCtx(cctx) }
        try check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level))
        try check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1))
        try check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1))
        let written = out.withUnsafeMutableBytes { o in
            ZSTD_compress2(cctx, o.baseAddress, bound, src.baseAddress, src.count)
        }
        try check(written)
        out.removeSubrange(written...)
        return out
    }

    /// Content size the frame header declares, or nil if unknown / not a valid frame header.
    public static func declaredContentSize(_ frame: UnsafeRawBufferPointer) -> UInt64? {
        let v = ZSTD_getFrameContentSize(frame.baseAddress, frame.count)
        if v == ZSTD_CONTENTSIZE_UNKNOWN || v == ZSTD_CONTENTSIZE_ERROR { return nil }
        return UInt64(v)
    }

    /// Decompresses exactly one frame into `dst`, which must be exactly the declared size.
    /// The frame header is checked first so that nothing is written past `dst`.
    public static func decompress(_ frame: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer)
        throws(ZstdError)
    {
        let declared = declaredContentSize(frame)
        guard declared == UInt64(dst.count) else { throw .contentSize(expected: dst.count, found: declared) }
        let compressedSize = ZSTD_findFrameCompressedSize(frame.baseAddress, frame.count)
        try check(compressedSize)
        guard compressedSize == frame.count else {
            throw .library("frame is \(compressedSize) bytes but its record spans \(frame.count) (trailing data)")
        }
        let n = ZSTD_decompress(dst.baseAddress, dst.count, frame.baseAddress, frame.count)
        try check(n)
        guard n == dst.count else { throw .shortOutput(expected: dst.count, found: n) }
    }

    private static func check(_ code: Int) throws(ZstdError) {
        if ZSTD_isError(code) != 0 { throw .library(String(cString: ZSTD_getErrorName(code))) }
    }
}
