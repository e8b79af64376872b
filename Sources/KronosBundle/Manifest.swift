// The bundle header and manifest records (formats/kq-bundle.md).
import KronosQuant

public enum BundleFormat {
    /// "KRONOSKQ"
    public static let magic: [UInt8] = Array("KRONOSKQ".utf8)
    public static let version: UInt32 = 1
    public static let headerSize = 64
    public static let alignment = 64
    public static let maxManifestSize = 64 << 20
    public static let maxDimensions = 8
    public static let formatName = "kronos-bundle"

    /// n rounded up to a multiple of the alignment; nil on overflow.
    public static func align(_ n: Int) -> Int? {
        let (s, o) = n.addingReportingOverflow(alignment - 1)
        return o ? nil : s / alignment * alignment
    }
}

/// The fixed 64-byte header.
public struct BundleHeader: Sendable, Equatable {
    public var version: UInt32 = BundleFormat.version
    public var headerSize: UInt32 = UInt32(BundleFormat.headerSize)
    public var dataOffset: UInt64 = UInt64(BundleFormat.headerSize)
    public var dataSize: UInt64
    public var manifestOffset: UInt64
    public var manifestSize: UInt64
    public var manifestXXH64: UInt64

    public init(dataSize: UInt64, manifestOffset: UInt64, manifestSize: UInt64, manifestXXH64: UInt64) {
        self.dataSize = dataSize; self.manifestOffset = manifestOffset
        self.manifestSize = manifestSize; self.manifestXXH64 = manifestXXH64
    }

    /// The 64 bytes, with the header checksum in the last 8.
    public func encoded() -> [UInt8] {
        var b = BundleFormat.magic
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { b.append(contentsOf: $0) } }
        put(version); put(headerSize); put(dataOffset); put(dataSize); put(manifestOffset); put(manifestSize);
        put(manifestXXH64)
        put(XXH64.hash(b))
        return b
    }
}

public struct ConverterInfo: Codable, Sendable, Equatable {
    public var name: String
    public var version: String
    public init(name: String, version: String) { self.name = name; self.version = version }
}

public struct CreationSettings: Codable, Sendable, Equatable {
    /// Requested default: f32, f16, q8 or q4.
    public var quantize: String
    /// --keep overrides, "PATTERN=TYPE".
    public var keep: [String]
    public var zstdLevel: Int
    public var q4SearchSteps: Int
    /// Where the importance matrix the quantized blocks were fitted to came from; nil for a
    /// data-free conversion (manifests written before calibration existed have no such key).
    public var calibration: CalibrationRecord?
    enum CodingKeys: String, CodingKey {
        case quantize, keep
        case zstdLevel = "zstd_level"
        case q4SearchSteps = "q4_search_steps"
        case calibration
    }
    public init(
        quantize: String, keep: [String], zstdLevel: Int, q4SearchSteps: Int, calibration: CalibrationRecord? = nil
    ) {
        self.quantize = quantize; self.keep = keep; self.zstdLevel = zstdLevel; self.q4SearchSteps = q4SearchSteps
        self.calibration = calibration
    }
}

/// The calibration behind a bundle's importance-weighted blocks (kronos-convert --calibrate).
public struct CalibrationRecord: Codable, Sendable, Equatable {
    /// The candle files the f32 model ran over, in the order given.
    public var files: [CalibrationFile]
    /// Windows run (spread evenly over the files' rows).
    public var windows: Int
    /// Context rows per window, and rows after them run one step at a time (teacher-forced).
    public var lookback: Int
    public var steps: Int
    /// Activation rows behind the importance of the predictor's transformer matmuls.
    public var rows: Int
    /// SHA-256 of the importance matrix file when it was read with --imatrix (nil when computed here).
    public var imatrixSHA256: String?
    enum CodingKeys: String, CodingKey {
        case files, windows, lookback, steps, rows
        case imatrixSHA256 = "imatrix_sha256"
    }
    public init(
        files: [CalibrationFile], windows: Int, lookback: Int, steps: Int, rows: Int, imatrixSHA256: String? = nil
    ) {
        self.files = files; self.windows = windows; self.lookback = lookback; self.steps = steps; self.rows = rows
        self.imatrixSHA256 = imatrixSHA256
    }
}

/// One calibration file: its name (no directories), the candle rows read from it and its bytes' hash.
public struct CalibrationFile: Codable, Sendable, Equatable {
    public var file: String
    public var rows: Int
    public var sha256: String
    public init(file: String, rows: Int, sha256: String) { self.file = file; self.rows = rows; self.sha256 = sha256 }
}

public struct SourceFile: Codable, Sendable, Equatable {
    public var part: ModelPart
    public var file: String
    public var bytes: UInt64
    public var sha256: String
    public init(part: ModelPart, file: String, bytes: UInt64, sha256: String) {
        self.part = part; self.file = file; self.bytes = bytes; self.sha256 = sha256
    }
}

public struct TensorErrorRecord: Codable, Sendable, Equatable {
    public var rmse: Double
    public var maxAbs: Double
    public var relativeRMSE: Double
    enum CodingKeys: String, CodingKey {
        case rmse
        case maxAbs = "max_abs"
        case relativeRMSE = "rel_rmse"
    }
    public init(_ s: QuantErrorStats) { rmse = s.rmse; maxAbs = s.maxAbs; relativeRMSE = s.relativeRMSE }
}

/// One row of the tensor table.
public struct TensorRecord: Codable, Sendable, Equatable {
    public var name: String
    public var part: ModelPart
    public var type: TensorType
    public var shape: [Int]
    /// Frame offset relative to the data section.
    public var offset: Int
    public var storedSize: Int
    public var rawSize: Int
    /// XXH64 of the stored frame, 16 hex digits.
    public var xxh64: String
    public var error: TensorErrorRecord?

    enum CodingKeys: String, CodingKey {
        case name, part, type, shape, offset
        case storedSize = "stored_size"
        case rawSize = "raw_size"
        case xxh64, error
    }

    public var elementCount: Int { KronosQuant.elementCount(shape) ?? 0 }

    public init(
        name: String, part: ModelPart, type: TensorType, shape: [Int], offset: Int, storedSize: Int, rawSize: Int,
        xxh64: String, error: TensorErrorRecord?
    ) {
        self.name = name; self.part = part; self.type = type; self.shape = shape; self.offset = offset
        self.storedSize = storedSize; self.rawSize = rawSize; self.xxh64 = xxh64; self.error = error
    }
}

public struct Manifest: Codable, Sendable, Equatable {
    public var format: String = BundleFormat.formatName
    public var formatVersion: Int = Int(BundleFormat.version)
    public var converter: ConverterInfo
    public var settings: CreationSettings
    public var maxContext: Int
    public var tokenizerConfig: TokenizerConfig
    public var predictorConfig: PredictorConfig
    public var sources: [SourceFile]
    public var notes: [String]
    public var tensors: [TensorRecord]
    /// Bytes of every tensor once decompressed (what a loaded bundle occupies in memory).
    public var decodedBytes: UInt64 { tensors.reduce(0) { $0 + UInt64($1.rawSize) } }

    enum CodingKeys: String, CodingKey {
        case format
        case formatVersion = "format_version"
        case converter, settings
        case maxContext = "max_context"
        case tokenizerConfig = "tokenizer_config"
        case predictorConfig = "predictor_config"
        case sources, notes, tensors
    }

    public init(
        converter: ConverterInfo, settings: CreationSettings, maxContext: Int, config: ModelConfig,
        sources: [SourceFile], notes: [String], tensors: [TensorRecord]
    ) {
        self.converter = converter; self.settings = settings; self.maxContext = maxContext
        self.tokenizerConfig = config.tokenizer; self.predictorConfig = config.predictor
        self.sources = sources; self.notes = notes; self.tensors = tensors
    }

    public var modelConfig: ModelConfig { ModelConfig(tokenizer: tokenizerConfig, predictor: predictorConfig) }
}
