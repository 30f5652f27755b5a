import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Whole reads and writes on a file descriptor, with errors in words that name the file:
/// every output of Funnel (files, standard output, standard error) is written through
/// `writeAll`, so a full disk, a closed pipe or a closed descriptor is an error, never a trap.
public enum FileDescriptor {
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var off = 0
        while off < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + off, bytes.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                throw FunnelError("\(path): write failed: \(String(cString: strerror(errno)))")
            }
            off += n
        }
    }

    /// Makes a directory's entries durable (a rename into it, a file created in it); best effort:
    /// a directory that cannot be opened is left as it is.
    static func fsyncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { _ = fsync(fd); close(fd) }
    }

    /// Reads an opened regular file whole, refusing one over `limit` bytes before reading.
    static func readAll(_ fd: Int32, path: String, limit: Int) throws -> Data {
        let size = try regularFileSize(fd, path: path)
        guard size <= limit else { throw DataError(file: path, "is \(size) bytes; at most \(limit) are read") }
        var data = Data(count: size)
        var got = 0
        try data.withUnsafeMutableBytes { raw in
            while got < size {
                let n = pread(fd, raw.baseAddress! + got, size - got, off_t(got))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw DataError(file: path, "cannot read: \(String(cString: strerror(errno)))")
                }
                if n == 0 { break }
                got += n
            }
        }
        guard got == size else { throw DataError(file: path, "the file changed (it was cut short) while being read") }
        return data
    }

    /// The size of an opened file, which must be regular.
    static func regularFileSize(_ fd: Int32, path: String) throws -> Int {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw DataError(file: path, "cannot read: \(String(cString: strerror(errno)))") }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw DataError(file: path, st.st_mode & S_IFMT == S_IFDIR ? "is a directory, not a file" : "is not a regular file (a device, FIFO or socket)")
        }
        return Int(st.st_size)
    }

    /// `Checksum.fnv64Words` of an opened regular file, read a megabyte at a time.
    static func wordChecksum(_ fd: Int32, path: String) throws -> UInt64 {
        let size = try regularFileSize(fd, path: path)
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 8)
        defer { buffer.deallocate() }
        var stream = Checksum.WordStream(), at = 0
        while at < size {
            let want = min(chunk, size - at)
            var got = 0
            while got < want {
                let n = pread(fd, buffer.baseAddress! + got, want - got, off_t(at + got))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw DataError(file: path, n == 0 ? "the file changed (it was cut short) while being read" : "cannot read: \(String(cString: strerror(errno)))") }
                got += n
            }
            let whole = want / 8 * 8
            stream.update(UnsafeRawBufferPointer(rebasing: buffer[0..<whole]))
            if whole < want { return stream.finished(tail: UnsafeRawBufferPointer(rebasing: buffer[whole..<want])) }
            at += want
        }
        return stream.value
    }
}
