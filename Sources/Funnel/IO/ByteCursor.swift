import Foundation

/// Reads arrays one after another out of raw bytes (copies; alignment-agnostic).
struct ByteCursor {
    let raw: UnsafeRawBufferPointer
    var at = 0
    init(_ raw: UnsafeRawBufferPointer) { self.raw = raw }

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
}
