import Foundation

/// A delimited text file with a header, memory-mapped and scanned byte by byte.
///
/// Cells are handed out as byte ranges into the mapping; nothing is allocated per row.
/// Double-quoted cells are supported (the quotes are stripped; `""` inside stays as is).
public final class CSVFile {
    public struct Cell {
        public var start: Int
        public var count: Int
        /// A quoted cell whose closing quote is not on this line (line breaks inside quoted
        /// fields are not supported): the reader reports that, not a column count.
        public var unterminatedQuote = false
    }

    public let path: String
    public let delimiter: UInt8
    public let header: [String]
    private let mapping: MappedFile
    private var data: Data { mapping.data }
    private let bodyStart: Int

    /// Opens `path`; `delimiter` nil means auto-detect from the header line among `,` tab `;` `|`.
    public init(path: String, delimiter requested: UInt8? = nil) throws {
        self.path = path
        mapping = try MappedFile(path)
        let data = mapping.data
        var headerEnd = 0
        var lineEnd = 0
        var bom = 0
        let parsed: (UInt8, [String], Int) = try data.withUnsafeBytes { raw in
            let b = raw.bindMemory(to: UInt8.self)
            let n = b.count
            if n >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF { bom = 3 }
            var i = bom
            while i < n && b[i] != 10 { i += 1 }
            lineEnd = i
            headerEnd = i < n ? i + 1 : n
            var contentEnd = lineEnd
            if contentEnd > bom && b[contentEnd - 1] == 13 { contentEnd -= 1 }
            if contentEnd <= bom {
                throw DataError(file: path, line: 1, n == 0 ? "file is empty" : "header line is empty")
            }
            let line = UnsafeBufferPointer(rebasing: b[bom..<contentEnd])
            let d = requested ?? CSVFile.detectDelimiter(line)
            var cells: [Cell] = []
            CSVFile.split(line.baseAddress!, line.count, delimiter: d, into: &cells)
            let names = cells.map {
                String(decoding: UnsafeBufferPointer(start: line.baseAddress! + $0.start, count: $0.count), as: UTF8.self)
                    .trimmingCharacters(in: .whitespaces)
            }
            return (d, names, headerEnd)
        }
        delimiter = parsed.0
        header = parsed.1
        bodyStart = parsed.2
        var seen = Set<String>()
        for (i, name) in header.enumerated() {
            if name.isEmpty { throw DataError(file: path, line: 1, "header column \(i + 1) has no name") }
            if !seen.insert(name).inserted { throw DataError(file: path, line: 1, column: name, "duplicate column name") }
        }
    }

    public var byteCount: Int { data.count }

    static func detectDelimiter(_ line: UnsafeBufferPointer<UInt8>) -> UInt8 {
        let candidates: [UInt8] = [44, 9, 59, 124]  // , \t ; |
        var best: UInt8 = 44, bestCount = 0
        for c in candidates {
            let k = line.reduce(0) { $0 + ($1 == c ? 1 : 0) }
            if k > bestCount { best = c; bestCount = k }
        }
        return best
    }

    /// Splits one line (without its newline) into cells.
    @inline(__always)
    static func split(_ p: UnsafePointer<UInt8>, _ n: Int, delimiter: UInt8, into cells: inout [Cell]) {
        cells.removeAll(keepingCapacity: true)
        var i = 0
        while true {
            if i < n && p[i] == 34 {  // quoted cell
                let start = i + 1
                var j = start
                while j < n {
                    if p[j] == 34 { if j + 1 < n && p[j + 1] == 34 { j += 2; continue } else { break } }
                    j += 1
                }
                cells.append(Cell(start: start, count: j - start, unterminatedQuote: j >= n))
                i = j + 1
                while i < n && p[i] != delimiter { i += 1 }
            } else {
                let start = i
                while i < n && p[i] != delimiter { i += 1 }
                var s = start, e = i
                while s < e && p[s] == 32 { s += 1 }
                while e > s && p[e - 1] == 32 { e -= 1 }
                cells.append(Cell(start: s, count: e - s))
            }
            if i >= n { break }
            i += 1  // skip the delimiter
            if i == n { cells.append(Cell(start: n, count: 0)); break }
        }
    }

    /// Calls `body` for every non-blank data line with its 1-based line number, the line's bytes
    /// and its cells. Stops early when `body` returns false. With `releasePages`, the mapped pages
    /// already scanned are handed back to the kernel every 64 MiB, so a single pass over a file of
    /// any size keeps a bounded resident set (cells of earlier rows must not be touched again).
    public func forEachRow(
        releasePages: Bool = false,
        _ body: (_ line: Int, _ bytes: UnsafePointer<UInt8>, _ cells: UnsafeBufferPointer<Cell>) throws -> Bool
    ) throws {
        var cells: [Cell] = []
        cells.reserveCapacity(header.count + 1)
        let d = delimiter
        try data.withUnsafeBytes { raw in
            let b = raw.bindMemory(to: UInt8.self)
            guard let base = b.baseAddress else { return }
            let n = b.count
            var pos = bodyStart
            var line = 1
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            let releaseEvery = 64 << 20
            var released = 0
            while pos < n {
                if releasePages && pos - released >= releaseEvery {
                    let upTo = (pos / page) * page
                    _ = madvise(UnsafeMutableRawPointer(mutating: base + released), upTo - released, MADV_DONTNEED)
                    released = upTo
                }
                line += 1
                let remaining = n - pos
                let nl = memchr(base + pos, 10, remaining)
                let end = nl.map { UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self) - base } ?? n
                var contentEnd = end
                if contentEnd > pos && base[contentEnd - 1] == 13 { contentEnd -= 1 }
                if contentEnd > pos {
                    let lp = base + pos
                    CSVFile.split(lp, contentEnd - pos, delimiter: d, into: &cells)
                    let keepGoing = try cells.withUnsafeBufferPointer { try body(line, lp, $0) }
                    if !keepGoing { return }
                }
                pos = end + 1
            }
        }
    }

    /// The number of data rows `forEachRow` visits (non-blank lines after the header), counted
    /// without splitting cells.
    public func dataRowCount() -> Int {
        data.withUnsafeBytes { raw -> Int in
            let b = raw.bindMemory(to: UInt8.self)
            guard let base = b.baseAddress else { return 0 }
            let n = b.count
            var pos = bodyStart, rows = 0
            while pos < n {
                let nl = memchr(base + pos, 10, n - pos)
                let end = nl.map { UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self) - base } ?? n
                var contentEnd = end
                if contentEnd > pos && base[contentEnd - 1] == 13 { contentEnd -= 1 }
                if contentEnd > pos { rows += 1 }
                pos = end + 1
            }
            return rows
        }
    }

    /// The data rows the file holds, estimated from the mean length of its first `sample` lines
    /// (one pass over those lines only): sizes a read before it starts.
    public func estimatedDataRows(sample: Int = 1000) -> Int {
        data.withUnsafeBytes { raw -> Int in
            let b = raw.bindMemory(to: UInt8.self)
            guard let base = b.baseAddress, bodyStart < b.count else { return 0 }
            var pos = bodyStart, lines = 0
            while pos < b.count && lines < sample {
                let nl = memchr(base + pos, 10, b.count - pos)
                pos = (nl.map { UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self) - base } ?? b.count) + 1
                lines += 1
            }
            let scanned = min(pos, b.count) - bodyStart
            return pos >= b.count ? lines : Int((Double(b.count - bodyStart) / Double(max(1, scanned)) * Double(lines)).rounded(.up))
        }
    }

    /// The text of a cell, for error messages (truncated to 40 characters).
    public static func text(_ bytes: UnsafePointer<UInt8>, _ cell: Cell) -> String {
        let s = String(decoding: UnsafeBufferPointer(start: bytes + cell.start, count: cell.count), as: UTF8.self)
        return s.count > 40 ? String(s.prefix(40)) + "…" : s
    }

    /// Text from a file or a request, safe to print in a one-line message: control characters
    /// (a raw `\r`, an escape sequence) become visible escapes.
    public static func printable(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "\r": out += "\\r"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 || u.value == 0x7F || (0x80..<0xA0).contains(u.value) {
                    out += String(format: "\\u{%02X}", u.value)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out
    }
}
