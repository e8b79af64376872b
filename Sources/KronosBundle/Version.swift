// The toolchain's version: what `--version` prints on every tool and what a bundle's manifest
// records as its converter version (converter.version).
public enum KronosVersion {
    public static let string = "0.2.0"
}
