import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a rank sees at an input path: its size and a checksum of 64 blocks of 4 KiB spread over
/// the file (the first and last included), so ranks that would read different files at the same
/// path — another mount, a stale copy — are caught before the first step, at the cost of 256 KiB
/// read per file whatever its size.
public struct InputFingerprint: Codable, Equatable, Sendable {
    public var path: String
    public var bytes: Int
    public var sampledChecksum: String

    public static let blocks = 64, blockBytes = 4096

    public init(_ path: String) throws {
        let fd = try InputFile.openForReading(path)
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw DataError(file: path, "cannot read: \(String(cString: strerror(errno)))") }
        let size = Int(st.st_size)
        var sampled = Data()
        var block = [UInt8](repeating: 0, count: Self.blockBytes)
        let stride = max(Self.blockBytes, size / Self.blocks)
        var offset = 0
        while offset < size {
            let at = min(offset, max(0, size - Self.blockBytes))
            let n = block.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, Self.blockBytes, off_t(at)) }
            guard n >= 0 else { throw DataError(file: path, "cannot read: \(String(cString: strerror(errno)))") }
            sampled.append(contentsOf: block[0..<n])
            offset += stride
        }
        self.path = path
        bytes = size
        sampledChecksum = Checksum.fnv64Hex(sampled)
    }
}

extension Communicator {
    /// Refuses to go on when the ranks see different files at the same input paths, naming the
    /// first rank that differs from rank 0 and what each sees (one rank: nothing to compare).
    public func checkSameInputs(_ paths: [String]) throws {
        guard isDistributed else { return }
        let mine = try paths.map(InputFingerprint.init)
        let enc = JSONEncoder()
        let all = try allgatherBytes(Array(try enc.encode(mine)), kind: .control).map {
            try JSONDecoder().decode([InputFingerprint].self, from: Data($0))
        }
        for (r, theirs) in all.enumerated() where theirs != all[0] {
            let k = zip(theirs, all[0]).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? 0
            let (a, b) = (all[0][k], theirs[k])
            throw FunnelError("rank \(r) sees \(b.path) as \(b.bytes) bytes (sampled checksum \(b.sampledChecksum)), rank 0 as \(a.bytes) bytes "
                              + "(\(a.sampledChecksum)): every rank must read the same file (another mount or a stale copy?)")        }
    }
}
