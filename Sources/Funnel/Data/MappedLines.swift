import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The lines of a text file without a header, memory-mapped and scanned once. With
/// `releasePages`, pages already scanned are handed back to the kernel every 64 MiB, so one pass
/// over a file of any size keeps a bounded resident set.
enum MappedLines {
    /// Calls `body(line, bytes, count)` for every non-blank line (1-based numbers; a trailing `\r`
    /// is not part of the line); stops when `body` returns false. Returns the file's size.
    @discardableResult
    static func forEach(_ path: String, releasePages: Bool,
                        _ body: (_ line: Int, _ bytes: UnsafePointer<UInt8>, _ count: Int) throws -> Bool) throws -> Int {
        let mapping = try MappedFile(path)
        let data = mapping.data
        defer { withExtendedLifetime(mapping) {} }
        try data.withUnsafeBytes { raw in
            guard let base = raw.bindMemory(to: UInt8.self).baseAddress else { return }
            let n = raw.count
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            var pos = 0, line = 0, released = 0
            while pos < n {
                if releasePages && pos - released >= 64 << 20 {
                    let upTo = pos / page * page
                    _ = madvise(UnsafeMutableRawPointer(mutating: base + released), upTo - released, MADV_DONTNEED)
                    released = upTo
                }
                line += 1
                let nl = memchr(base + pos, 10, n - pos)
                let end = nl.map { UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self) - base } ?? n
                var contentEnd = end
                if contentEnd > pos && base[contentEnd - 1] == 13 { contentEnd -= 1 }
                if contentEnd > pos, try !body(line, base + pos, contentEnd - pos) { return }
                pos = end + 1
            }
        }
        return data.count
    }
}
