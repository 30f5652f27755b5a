import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Checks an input before it is opened, so a wrong path gets an error in words that names it
/// (never a Foundation error code) and a FIFO or device is never read (it could block forever
/// or never end).
public enum InputFile {
    /// Throws unless `path` is a readable regular file (symbolic links are followed).
    public static func checkReadable(_ path: String) throws {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw DataError(file: path, errno == ENOENT ? "no such file" : "cannot open: \(String(cString: strerror(errno)))")
        }
        switch st.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw DataError(file: path, "is a directory, not a file")
        default: throw DataError(file: path, "is not a regular file (a device, FIFO or socket)")
        }
        guard access(path, R_OK) == 0 else { throw DataError(file: path, "cannot open: permission denied") }
    }

    /// The whole of a small regular file (a manifest, a config), refusing one larger than
    /// `limit` bytes before reading it.
    public static func contents(_ path: String, limit: Int) throws -> Data {
        let fd = try openForReading(path)
        defer { close(fd) }
        return try FileDescriptor.readAll(fd, path: path, limit: limit)
    }

    /// A descriptor on the readable regular file `path` (the caller closes it), opened without
    /// blocking: a FIFO swapped in after the check is refused, never waited on.
    public static func openForReading(_ path: String) throws -> Int32 {
        try checkReadable(path)
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw DataError(file: path, "cannot open: \(String(cString: strerror(errno)))") }
        return fd
    }

    /// The size in bytes of a regular file (0 when it cannot be stat'ed).
    public static func size(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : 0
    }

    /// Manifests and configs: far below this; a larger one is not ours.
    public static var manifestLimit: Int { Int(min(Double(2 << 30), Double(ProcessInfo.processInfo.physicalMemory) / 4)) }
}
