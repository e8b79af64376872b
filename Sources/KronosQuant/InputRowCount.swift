// A count of input rows as a type, so that a kernel gets one specialization per count with every
// accumulator in a register and no per-value branch (KronosWideEngine's multi-row matvec, KronosWideVNNI's
// integer matvec). Inlinable: the count folds into the specialized kernels.

public protocol InputRowCount { static var count: Int { get } }
public enum OneInputRow: InputRowCount { @inlinable public static var count: Int { 1 } }
public enum TwoInputRows: InputRowCount { @inlinable public static var count: Int { 2 } }
public enum ThreeInputRows: InputRowCount { @inlinable public static var count: Int { 3 } }
public enum FourInputRows: InputRowCount { @inlinable public static var count: Int { 4 } }
public enum FiveInputRows: InputRowCount { @inlinable public static var count: Int { 5 } }
public enum SixInputRows: InputRowCount { @inlinable public static var count: Int { 6 } }
