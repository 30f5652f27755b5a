import Foundation
import Funnel

/// Output policy: progress goes to stderr and only on a terminal; results go to stdout.
enum Terminal {
    static let stderrIsTTY = isatty(2) == 1

    static func error(_ message: String) {
        StandardStreams.error("funnel: error: \(message)\n")
    }

    static func note(_ message: String) {
        StandardStreams.error("funnel: \(message)\n")
    }

    /// Rewrites the current progress line (TTY only).
    static func progress(_ line: String, final: Bool = false) {
        guard stderrIsTTY else { return }
        StandardStreams.error("\r\u{1B}[2K\(line)\(final ? "\n" : "")")
    }

    /// One line of results on standard output; a failed write (full disk, closed output) throws.
    static func say(_ line: String) throws { try StandardStreams.line(line) }

    static func printJSON<T: Encodable>(_ value: T) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let data: Data
        do { data = try enc.encode(value) } catch { throw FunnelError("cannot encode the JSON output: \(error)") }
        try StandardStreams.write(data + Data("\n".utf8))
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
