// Every way reading or writing a bundle can fail, each naming the file and what was expected / found.
import Foundation

public enum BundleError: Error, LocalizedError, Sendable, Equatable {
    /// The file could not be opened, read, mapped or written.
    case io(file: String, message: String)
    /// The header is wrong: field, expected, found.
    case header(file: String, field: String, expected: String, found: String)
    /// The manifest is not what version 1 allows.
    case manifest(file: String, message: String)
    /// A tensor record is inconsistent.
    case tensor(file: String, tensor: String, message: String)
    /// A frame does not match its checksum or does not decompress to its declared size.
    case frame(file: String, tensor: String, offset: Int, message: String)
    /// The tensor table does not match the model the configs describe.
    case layout(file: String, problems: [String])
    /// The target exists and --force was not given.
    case exists(file: String)

    public var errorDescription: String? {
        switch self {
        case let .io(file, message): return "\(file): \(message)"
        case let .header(file, field, expected, found):
            return "\(file): bad bundle header: \(field): expected \(expected), found \(found)"
        case let .manifest(file, message): return "\(file): bad manifest: \(message)"
        case let .tensor(file, tensor, message): return "\(file): tensor \(tensor): \(message)"
        case let .frame(file, tensor, offset, message):
            return "\(file): tensor \(tensor) (frame at byte \(offset)): \(message)"
        case let .layout(file, problems):
            return
                "\(file): tensor table does not match the configs (\(problems.count) "
                + "problem\(problems.count == 1 ? "" : "s")):\n  "
                + Self.report(problems)
        case let .exists(file): return "\(file) already exists (use --force to overwrite it)"
        }
    }

    /// Problems reported in a message at most (the count says how many there were).
    public static let reportedProblems = 64

    /// The first `reportedProblems` problems, one per line, and how many more there were.
    public static func report(_ problems: [String]) -> String {
        let shown = problems.prefix(reportedProblems).joined(separator: "\n  ")
        return problems.count > reportedProblems
            ? shown + "\n  ... and \(problems.count - reportedProblems) more" : shown
    }
}
