import CProcess
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A read-only shared mapping of a file of a model directory (its vocabularies): pages are read
/// in by the kernel when touched and shared by every process mapping the file, so a model with
/// tens of millions of ids loads without reading or copying its tables. Registered with
/// `CProcess` like `MappedFile`, so a file cut short while mapped ends the command in words
/// instead of a SIGBUS. Unmapped when the last reference goes.
public final class MappedRegion: @unchecked Sendable {
    public let base: UnsafeRawPointer
    public let count: Int
    private let slot: Int32

    init(_ fd: Int32, path: String) throws {
        count = try FileDescriptor.regularFileSize(fd, path: path)
        guard count > 0 else { throw DataError(file: path, "is empty") }
        guard let p = mmap(nil, count, PROT_READ, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            throw DataError(file: path, "cannot map: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
        slot = funnel_mapping_register(base, count, path)
    }

    deinit {
        funnel_mapping_forget(slot)
        munmap(UnsafeMutableRawPointer(mutating: base), count)
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}
