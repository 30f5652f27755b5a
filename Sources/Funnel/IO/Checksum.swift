import Foundation

/// FNV-1a 64-bit checksums of model files and weights, as hex: a damaged or swapped file is
/// refused at load.
public enum Checksum {
    public static func fnv64Hex(_ data: Data) -> String {
        var stream = ByteStream()
        data.withUnsafeBytes { stream.update($0) }
        return stream.hex
    }

    /// FNV-1a over bytes, fed in pieces: `fnv64Hex` of a file written without holding it whole.
    struct ByteStream {
        private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
        mutating func update(_ bytes: UnsafeRawBufferPointer) {
            for b in bytes { value = (value ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        }

        var hex: String { String(format: "%016llx", value) }
    }
}

extension Checksum {
    /// FNV-1a over 64-bit little-endian words (then the tail bytes): the cache's checksum, eight
    /// times faster than byte-wise FNV on gigabytes of columns.
    public static func fnv64Words(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let words = bytes.count / 8
        var stream = WordStream()
        stream.update(UnsafeRawBufferPointer(rebasing: bytes[0..<(words * 8)]))
        return stream.finished(tail: UnsafeRawBufferPointer(rebasing: bytes[(words * 8)...]))
    }

    public static func fnv64Words(_ data: Data) -> UInt64 { data.withUnsafeBytes { fnv64Words($0) } }

    public static func fnv64Hex(words data: Data) -> String { data.withUnsafeBytes { fnv64Hex(words: $0) } }

    public static func fnv64Hex(words bytes: UnsafeRawBufferPointer) -> String { String(format: "%016llx", fnv64Words(bytes)) }

    /// FNV-1a over 64-bit words, fed in pieces whose lengths are multiples of 8: the word loop of
    /// `fnv64Words`, which also lets the cache writer checksum a section as it streams out.
    struct WordStream {
        private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
        mutating func update(_ bytes: UnsafeRawBufferPointer) {
            precondition(bytes.count % 8 == 0)
            for i in 0..<(bytes.count / 8) {
                value = (value ^ UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))) &* 0x0000_0100_0000_01B3
            }
        }

        /// The checksum once the last bytes (fewer than 8, after the last whole word) are folded in.
        func finished(tail: UnsafeRawBufferPointer) -> UInt64 {
            tail.reduce(value) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01B3 }
        }

        var hex: String { String(format: "%016llx", value) }
    }
}

extension Checksum {
    /// `fnv64Words` of a file written in pieces of any length (the bytes short of a word wait
    /// for the next piece): the checksum of weights streamed to disk without holding them.
    struct PieceStream {
        private var words = WordStream()
        private var pending: [UInt8] = []

        mutating func update(_ bytes: UnsafeRawBufferPointer) {
            var rest = bytes
            if !pending.isEmpty {
                let take = min(8 - pending.count, rest.count)
                pending += rest.prefix(take)
                rest = UnsafeRawBufferPointer(rebasing: rest[take...])
                guard pending.count == 8 else { return }
                pending.withUnsafeBytes { words.update($0) }
                pending = []
            }
            let whole = rest.count / 8 * 8
            words.update(UnsafeRawBufferPointer(rebasing: rest[..<whole]))
            pending = Array(rest[whole...])
        }

        var hex: String { pending.withUnsafeBytes { String(format: "%016llx", words.finished(tail: $0)) } }
    }
}
