import Foundation
import Funnel

/// Output policy: progress goes to stderr and only on a terminal; results go to stdout.
enum Terminal {
    static let stderrIsTTY = isatty(2) == 1

    static func error(_ message: String) {
        FileHandle.standardError.write(Data("funnel: error: \(message)\n".utf8))
    }

    static func note(_ message: String) {
        FileHandle.standardError.write(Data("funnel: \(message)\n".utf8))
    }

    /// Rewrites the current progress line (TTY only).
    static func progress(_ line: String, final: Bool = false) {
        guard stderrIsTTY else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[2K\(line)\(final ? "\n" : "")".utf8))
    }

    static func printJSON<T: Encodable>(_ value: T) {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        if let data = try? enc.encode(value), let s = String(data: data, encoding: .utf8) { print(s) }
    }

    static func duration(_ s: Double) -> String {
        guard s.isFinite else { return "?" }
        if s < 60 { return String(format: "%.0fs", s) }
        if s < 3600 { return String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60) }
        return String(format: "%dh%02dm", Int(s) / 3600, (Int(s) % 3600) / 60)
    }

    static func rate(_ r: Double) -> String {
        r >= 1e6 ? String(format: "%.2fM", r / 1e6) : r >= 1e3 ? String(format: "%.1fk", r / 1e3) : String(format: "%.0f", r)
    }
}
