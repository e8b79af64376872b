// Strings that come from files (paths, header names, cells, JSON values) are escaped before they are
// printed: a crafted file must not be able to move the cursor, recolour, retitle or clear a terminal
// with ESC / CSI sequences, or forge extra lines in a log.
public enum Terminal {
    /// `s` with C0 controls, DEL and C1 controls written as \n, \r, \t, \e or \u{XX}; everything else kept.
    public static func safe(_ s: some StringProtocol) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for u in s.unicodeScalars {
            switch u.value {
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x1B: out += "\\e"
            case 0x00...0x1F, 0x7F...0x9F: out += "\\u{" + String(u.value, radix: 16, uppercase: true) + "}"
            default: out.unicodeScalars.append(u)
            }
        }
        return out
    }
}
