import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// PaddleRec's Ali-CCP text layout (`models/multitask/esmm/data/*/small.txt`): one impression
/// per line, no header, `sample_id,click,buy,field:feaid,field:feaid,…`. Every field id is a
/// categorical field; a field that occurs more than once in a row is multi-valued (its values
/// pool, each weighing 1). Unlike PaddleRec's own reader, no token is skipped and no list is
/// truncated to 3 values. Recognised from the first line (no header, three integers, then
/// `field:feaid` tokens); every command that reads a file reads this layout too.
public enum PaddleRecLayout {
    public static let click = "click"
    public static let conversion = "buy"

    /// Whether `path` starts like a PaddleRec line (not a header).
    public static func matches(_ path: String) -> Bool {
        // Only a readable regular file is probed (a directory or FIFO is reported by the reader).
        guard (try? InputFile.checkReadable(path)) != nil else { return false }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = Glibc.read(fd, &buffer, buffer.count)
        guard n > 0 else { return false }
        let head = Data(buffer[0..<n])
        let line = head.prefix { $0 != 10 && $0 != 13 }
        var cells = line.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
        if line.count == head.count && cells.count > 4 { cells.removeLast() }  // a long line: its last token may be cut
        guard cells.count >= 4, cells.prefix(3).allSatisfy({ !$0.isEmpty && $0.allSatisfy { NumberParsing.isDigit($0) } }) else {
            return false
        }
        return cells.dropFirst(3).allSatisfy { token in
            guard let colon = token.firstIndex(of: 58) else { return false }
            return colon > token.startIndex && token[(colon + 1)...].allSatisfy { NumberParsing.isDigit($0) } && colon + 1 < token.endIndex
        }
    }

    /// Walks the lines: (1-based line number, the line's bytes, its comma-separated cells).
    static func forEachLine(_ path: String, releasePages: Bool = false,
                            _ body: (_ line: Int, _ bytes: UnsafePointer<UInt8>, _ cells: [Range<Int>]) throws -> Void) throws {
        var cells: [Range<Int>] = []
        try MappedLines.forEach(path, releasePages: releasePages) { line, bytes, n in
            cells.removeAll(keepingCapacity: true)
            var s = 0
            for i in 0...n where i == n || bytes[i] == 44 { cells.append(s..<i); s = i + 1 }
            try body(line, bytes, cells)
            return true
        }
    }

    /// The layout of a training file: every field id seen (sorted), multi-valued where a row
    /// repeats it.
    public static func inferLayout(_ path: String) throws -> TableLayout {
        var fields = Set<String>(), repeated = Set<String>()
        var seen: [String: Int] = [:]
        try forEachLine(path) { line, bytes, cells in
            guard cells.count >= 3 else { throw DataError(file: path, line: line, "expected sample_id,click,buy,field:feaid,…") }
            seen.removeAll(keepingCapacity: true)
            for c in cells.dropFirst(3) {
                guard let colon = c.first(where: { bytes[$0] == 58 }), colon > c.lowerBound else {
                    throw DataError(file: path, line: line, "expected field:feaid, got '\(text(bytes, c))'")
                }
                let field = text(bytes, c.lowerBound..<colon)
                seen[field, default: 0] += 1
            }
            for (f, n) in seen { fields.insert(f); if n > 1 { repeated.insert(f) } }
        }
        guard !fields.isEmpty else { throw DataError(file: path, "no features") }
        let categorical = fields.sorted()
        return TableLayout(clickColumn: click, conversionColumn: conversion, categorical: categorical, dense: [], ignored: [],
                           multiValued: categorical.filter(repeated.contains))
    }

    static func text(_ bytes: UnsafePointer<UInt8>, _ r: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(start: bytes + r.lowerBound, count: r.count), as: UTF8.self)
    }

    /// Reads a file against `layout`: a field absent from a row is an empty cell (an empty list
    /// when multi-valued); fields the layout does not know are ignored; a single-valued field
    /// repeated in a row is an error naming the line.
    public static func read(_ path: String, layout: TableLayout, options: ReadOptions, requireLabels: Bool) throws -> RawTable {
        var whole: RawTable?
        _ = try readChunks(path, layout: layout, options: options, chunkRows: Int.max) { whole = $0 }
        return whole!
    }

    /// Reads the file as `read` does, handing `sink` tables of `chunkRows` rows (the last may be
    /// shorter) so a caller can write them out in bounded memory (`funnel prepare`); the mapped
    /// pages already read are released with `releasePages`. Returns the whole file's report.
    public static func readChunks(_ path: String, layout: TableLayout, options: ReadOptions, chunkRows: Int,
                                  releasePages: Bool = false, sink: (RawTable) throws -> Void) throws -> ReadReport {
        var chunks = RawTableChunker(layout: layout, hasLabels: true, file: path, chunkRows: chunkRows)
        let position = Dictionary(uniqueKeysWithValues: layout.categorical.enumerated().map { ($1, $0) })
        let bagOf = layout.categorical.map { layout.multiValued.firstIndex(of: $0) }
        var keys = [Int64](repeating: CategoryKey.empty, count: layout.categorical.count)
        var bagKeys = [[Int64]](repeating: [], count: layout.multiValued.count)
        var dataRow = -1
        try forEachLine(path, releasePages: releasePages) { line, bytes, cells in
            dataRow += 1
            chunks.table.report.dataLines += 1
            if let shard = options.shard, !shard.owns(dataRow) { return }
            guard cells.count >= 3,
                  let c = NumberParsing.parseInteger(bytes + cells[1].lowerBound, cells[1].count), c == 0 || c == 1,
                  let b = NumberParsing.parseInteger(bytes + cells[2].lowerBound, cells[2].count), b == 0 || b == 1 else {
                throw DataError(file: path, line: line, "expected sample_id,click,buy with 0/1 labels")
            }
            for k in keys.indices { keys[k] = CategoryKey.empty }
            for k in bagKeys.indices { bagKeys[k].removeAll(keepingCapacity: true) }
            var filled = [Bool](repeating: false, count: keys.count)
            for cell in cells.dropFirst(3) {
                guard let colon = cell.first(where: { bytes[$0] == 58 }), colon > cell.lowerBound,
                      let k = position[text(bytes, cell.lowerBound..<colon)] else { continue }
                let key = CellDecoding.categorical(bytes + colon + 1, cell.upperBound - colon - 1)
                if let bag = bagOf[k] { bagKeys[bag].append(key); continue }
                guard !filled[k] else {
                    throw DataError(file: path, line: line, column: layout.categorical[k], "repeats in this row, but the model reads it as single-valued")
                }
                filled[k] = true
                keys[k] = key
            }
            if c == 0 && b == 1, try !options.inconsistent.admit(file: path, line: line, column: conversion, report: &chunks.table.report) {
                return
            }
            for (bag, values) in bagKeys.enumerated() {
                var kept = values, weights = [Float](repeating: 1, count: values.count)
                CellDecoding.keepHighest(layout.maxValues, keys: &kept, weights: &weights)
                chunks.table.appendBag(bag, keys: kept, weights: weights)
            }
            chunks.table.appendRow(keys: keys, dense: [], labels: (Float(c), Float(b)), day: nil, sourceRow: Int32(dataRow))
            try chunks.rowKept(sink: sink)
        }
        guard chunks.kept > 0 else { throw DataError(file: path, "no usable rows") }
        return try chunks.finish(sink: sink)
    }
}
