import CProcess
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Standard output and standard error as Funnel writes them: straight `write(2)` calls through
/// `FileDescriptor.writeAll`, never Foundation's `FileHandle.write` (which traps on a full disk
/// or a closed descriptor) nor `print` (whose buffered errors are lost, so a result sent to a
/// full disk would exit 0). A failed write to standard output throws; a failed write to
/// standard error cannot be reported on it, so it is remembered and the command exits non-zero.
public enum StandardStreams {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var errorWriteFailed = false

    /// Call once at start: SIGPIPE is ignored, so a closed pipe is a write error with a message.
    /// (A descriptor 0, 1 or 2 closed at start was already reopened on /dev/null read-only by
    /// `CProcess`, before the Swift runtime could open anything under its number.)
    public static func prepare() {
        signal(SIGPIPE, SIG_IGN)
    }

    private static func closedAtStart(_ fd: Int32) -> Bool { funnel_standard_streams_closed_at_start() & (1 << fd) != 0 }

    public static func write(_ data: Data) throws {
        if closedAtStart(1) { throw FunnelError("standard output is closed; nothing could be written") }
        try data.withUnsafeBytes { try FileDescriptor.writeAll(1, $0, path: "standard output") }
    }

    /// One line of results on standard output.
    public static func line(_ text: String) throws { try write(Data((text + "\n").utf8)) }

    /// Text for standard error (notes, errors, progress). Never throws.
    public static func error(_ text: String) {
        let ok = (try? Data(text.utf8).withUnsafeBytes { try FileDescriptor.writeAll(2, $0, path: "standard error") }) != nil
        if !ok { lock.withLock { errorWriteFailed = true } }
    }

    /// Whether a write to standard error failed during this run.
    public static var errorFailed: Bool { lock.withLock { errorWriteFailed } }
}
