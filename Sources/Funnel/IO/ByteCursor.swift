import Foundation

/// Reads arrays one after another out of raw bytes (copies; alignment-agnostic). Two uses: the
/// cache's checked blocks (`take`, whose bounds the block's checksum and footer already proved)
/// and messages from other ranks (`read`, `region`: every bound checked, a short or malformed
/// message thrown naming `what`).
struct ByteCursor {
    let raw: UnsafeRawBufferPointer
    var at = 0
    /// What the bytes are, for errors ("rank 2's gradient message").
    var what = "message"
    init(_ raw: UnsafeRawBufferPointer, what: String = "message") {
        self.raw = raw
        self.what = what
    }

    var isAtEnd: Bool { at == raw.count }

    mutating func take<T>(_: T.Type, _ count: Int) -> [T] {
        let n = count * MemoryLayout<T>.stride
        precondition(at + n <= raw.count)
        let out = [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            if n > 0 { memcpy(UnsafeMutableRawPointer(buffer.baseAddress!), raw.baseAddress! + at, n) }
            initialized = count
        }
        at += n
        return out
    }

    mutating func align() { at = (at + 7) / 8 * 8 }

    /// The next `T`, little-endian as `ByteWriter` put it.
    mutating func read<T: FixedWidthInteger>(_: T.Type) throws -> T {
        T(littleEndian: try region(MemoryLayout<T>.size).loadUnaligned(as: T.self))
    }

    mutating func read(_: Double.Type) throws -> Double { Double(bitPattern: try read(UInt64.self)) }

    /// A count written by `ByteWriter.putCount`: refused when negative or when `elementBytes`
    /// each would run past the message.
    mutating func readCount(elementBytes: Int) throws -> Int {
        let n = try read(Int64.self)
        guard n >= 0, n <= Int64(raw.count - at) / Int64(max(1, elementBytes)) else {
            throw FunnelError("\(what) is malformed: a count of \(n) at byte \(at - 8) overruns its \(raw.count) bytes")
        }
        return Int(n)
    }

    /// The next `bytes` bytes, in place.
    mutating func region(_ bytes: Int) throws -> UnsafeRawBufferPointer {
        guard bytes >= 0, bytes <= raw.count - at else {
            throw FunnelError("\(what) is malformed: cut short at byte \(at) of \(raw.count) (\(bytes) more expected)")
        }
        defer { at += bytes }
        return UnsafeRawBufferPointer(rebasing: raw[at..<(at + bytes)])
    }
}

/// Builds a message for other ranks, read back by `ByteCursor.read`/`region`: fixed-width
/// values little-endian, counts as Int64, arrays as their raw bytes.
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func put<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func put(_ value: Double) { put(value.bitPattern) }

    mutating func putCount(_ n: Int) { put(Int64(n)) }

    /// Raw bytes as they are (arrays of plain values: rows, gradients).
    mutating func put(raw: UnsafeRawBufferPointer) { bytes.append(contentsOf: raw) }
}
