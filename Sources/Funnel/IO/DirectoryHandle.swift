import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A directory opened once, whose files are read through the open descriptor (`openat`): every
/// file comes from the same directory even when a writer swaps a new one in at the same path
/// meanwhile (`AtomicDirectory`), so a reader never pairs one model's manifest with another's
/// weights. Files are opened without following symbolic links and without blocking, and must
/// be regular files: a link inside a model directory never leads a reader (a server's reload)
/// to a file elsewhere.
public final class DirectoryHandle {
    public let path: String
    private let fd: Int32

    public init(_ path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            switch errno {
            case ENOENT: throw FunnelError("\(path): not found")
            case ENOTDIR: throw FunnelError("\(path): not a directory (a Funnel model directory holds model.json and its weights)")
            case EACCES: throw FunnelError("\(path): cannot open the directory: permission denied")
            default: throw FunnelError("\(path): cannot open the directory: \(String(cString: strerror(errno)))")
            }
        }
    }

    deinit { close(fd) }

    /// Whether `name` may exist in the directory (as anything; links not followed): false only
    /// when it certainly does not, so an unreadable one is reported by `contents`, not as missing.
    public func exists(_ name: String) -> Bool {
        var st = stat()
        return fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT
    }

    /// The whole of the regular file `name`, refused unread when over `limit` bytes.
    public func contents(_ name: String, limit: Int) throws -> Data {
        let (file, display) = try openFile(name)
        defer { close(file) }
        return try FileDescriptor.readAll(file, path: display, limit: limit)
    }

    /// The regular file `name` mapped read-only, its FNV-1a 64 (over words, `Checksum.fnv64Words`)
    /// computed by reading it — not through the mapping, so checking a file does not fault its
    /// pages into this process; they are touched only where they are used.
    public func mapped(_ name: String) throws -> (region: MappedRegion, checksum: UInt64) {
        let (file, display) = try openFile(name)
        defer { close(file) }
        let checksum = try FileDescriptor.wordChecksum(file, path: display)
        return (try MappedRegion(file, path: display), checksum)
    }

    private func openFile(_ name: String) throws -> (Int32, String) {
        let display = path + "/" + name
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            throw FunnelError("\(display): names a file outside the model directory")
        }
        let file = openat(fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard file >= 0 else {
            switch errno {
            case ENOENT: throw DataError(file: display, "no such file")
            case ELOOP: throw DataError(file: display, "is a symbolic link; files inside a model directory are read only as regular files")
            case EACCES: throw DataError(file: display, "cannot open: permission denied")
            default: throw DataError(file: display, "cannot open: \(String(cString: strerror(errno)))")
            }
        }
        return (file, display)
    }
}
