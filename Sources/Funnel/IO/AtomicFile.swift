import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes a file so that readers see either the old or the new content, never a torn one:
/// write to a temporary file in the same directory, fsync it, rename over the target, fsync
/// the directory.
///
/// Only a regular file (or nothing) at the target is replaced; anything else — a device, FIFO,
/// directory or symbolic link — is refused unless `force` (`OutputPath`). The temporary file is
/// created exclusively and never through a symbolic link.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String, force: Bool = false) throws {
        let file = try Stream(path, force: force)
        try data.withUnsafeBytes { try file.write($0) }
        try file.finish()
    }
}

extension AtomicFile {
    /// The temporary file, streamed (`write` above is one `Stream`; output too large to build in
    /// memory uses one directly): bytes go to `.NAME.tmp-PID` beside the target (created
    /// exclusively, never through a symbolic link; leftovers of killed runs are removed first),
    /// `finish` fsyncs and renames it into place and fsyncs the directory; a stream dropped
    /// before `finish` removes its temporary file, and so does SIGINT or SIGTERM (`Temporaries`).
    public final class Stream {
        public let path: String
        private let tmp: String
        private let fd: Int32
        private let registration: Temporaries.Registration
        private var finished = false
        public private(set) var written = 0

        public init(_ path: String, force: Bool = false) throws {
            try OutputPath.checkFile(path, force: force)
            let url = URL(fileURLWithPath: path)
            self.path = path
            tmp = Temporaries.path(for: url.path)
            Temporaries.sweep(beside: url.path)  // leftovers of killed runs, this process id's included
            fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw FunnelError("\(tmp): cannot create: \(String(cString: strerror(errno)))") }
            registration = Temporaries.register(tmp)
        }

        /// (`finish` forgets the registration itself: forgetting it twice could free another
        /// temporary's slot, taken in between.)
        deinit {
            if !finished { close(fd); unlink(tmp); registration.forget() }
        }

        public func write(_ bytes: UnsafeRawBufferPointer) throws {
            try FileDescriptor.writeAll(fd, bytes, path: path)
            written += bytes.count
        }

        public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

        public func finish() throws {
            guard fsync(fd) == 0 else { throw FunnelError("\(path): fsync failed: \(String(cString: strerror(errno)))") }
            close(fd)
            finished = true
            defer { registration.forget() }
            guard rename(tmp, path) == 0 else {
                let why = String(cString: strerror(errno))
                unlink(tmp)
                throw FunnelError("\(path): cannot rename into place: \(why)")
            }
            FileDescriptor.fsyncDirectory(URL(fileURLWithPath: path).deletingLastPathComponent().path)
        }
    }
}
