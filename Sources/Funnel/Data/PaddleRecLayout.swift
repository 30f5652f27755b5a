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
        // sample_id an integer; click and buy numbers (a bad label is the reader's to report, located).
        guard cells.count >= 4, !cells[0].isEmpty, cells[0].allSatisfy({ NumberParsing.isDigit($0) }),
              cells[1...2].allSatisfy({ !$0.isEmpty && $0.allSatisfy { NumberParsing.isDigit($0) || $0 == 46 } }) else {
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
    /// A malformed line is an error here, or — with `skipBadRows` — left out of the layout as the
    /// read leaves it out (and counts it).
    public static func inferLayout(_ path: String, skipBadRows: Bool = false) throws -> TableLayout {
        var fields = Set<String>(), repeated = Set<String>()
        var seen: [String: Int] = [:]
        try forEachLine(path) { line, bytes, cells in
            do {
                guard cells.count >= 3 else { throw DataError(file: path, line: line, "expected sample_id,click,buy,field:feaid,…") }
                seen.removeAll(keepingCapacity: true)
                for c in cells.dropFirst(3) {
                    guard let colon = separator(of: c, bytes) else {
                        throw DataError(file: path, line: line, "expected field:feaid, got '\(text(bytes, c))'")
                    }
                    seen[text(bytes, c.lowerBound..<colon), default: 0] += 1
                }
            } catch where skipBadRows { return }
            for (f, n) in seen { fields.insert(f); if n > 1 { repeated.insert(f) } }
        }
        guard !fields.isEmpty else { throw DataError(file: path, "no features") }
        let categorical = fields.sorted()
        return TableLayout(clickColumn: click, conversionColumn: conversion, categorical: categorical, dense: [], ignored: [],
                           multiValued: categorical.filter(repeated.contains))
    }

    /// The colon of a `field:feaid` token, nil unless both sides are non-empty.
    static func separator(of token: Range<Int>, _ bytes: UnsafePointer<UInt8>) -> Int? {
        guard let colon = token.first(where: { bytes[$0] == 58 }), colon > token.lowerBound, colon + 1 < token.upperBound else { return nil }
        return colon
    }

    static func text(_ bytes: UnsafePointer<UInt8>, _ r: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(start: bytes + r.lowerBound, count: r.count), as: UTF8.self)
    }

    /// Reads a file against `layout`: a field absent from a row is an empty cell (an empty list
    /// when multi-valued). Bad rows (labels other than 0/1, a token that is not `field:feaid`, a
    /// single-valued field repeated) follow `BadRowPolicy`. A field the layout does not have —
    /// only possible against a trained model's layout, since a training file's layout is
    /// inferred from every line — carries nothing the model can read: its values are left out
    /// and counted per field in the report's notes.
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
        var row = LineDecoder(layout: layout, path: path)
        var dataRow = -1
        try forEachLine(path, releasePages: releasePages) { line, bytes, cells in
            dataRow += 1
            chunks.table.report.dataLines += 1
            if let shard = options.shard, !shard.owns(dataRow) { return }
            do {
                let (c, b) = try row.decode(line: line, bytes, cells, report: &chunks.table.report)
                if c == 0 && b == 1, try !options.inconsistent.admit(file: path, line: line, column: conversion, report: &chunks.table.report) {
                    return
                }
                for (bag, values) in row.bagKeys.enumerated() {
                    var kept = values, weights = [Float](repeating: 1, count: values.count)
                    CellDecoding.keepHighest(layout.maxValues, keys: &kept, weights: &weights)
                    chunks.table.appendBag(bag, keys: kept, weights: weights)
                }
                chunks.table.appendRow(keys: row.keys, dense: [], labels: (c, b), day: nil, sourceRow: Int32(dataRow))
                try chunks.rowKept(sink: sink)
            } catch let problem as RowProblem {
                try BadRowPolicy.handle(problem, options: options, report: &chunks.table.report)
            }
        }
        guard chunks.kept > 0 else { throw DataError(file: path, "no usable rows (\(chunks.table.report.dataLines) read, all dropped or skipped)") }
        return try chunks.finish(sink: sink)
    }

    /// One line's labels, single-valued keys and bags, into reusable buffers.
    struct LineDecoder {
        let layout: TableLayout, path: String
        let position: [String: Int]
        let bagOf: [Int?]
        var keys: [Int64], filled: [Bool]
        var bagKeys: [[Int64]]

        init(layout: TableLayout, path: String) {
            self.layout = layout
            self.path = path
            position = Dictionary(uniqueKeysWithValues: layout.categorical.enumerated().map { ($1, $0) })
            bagOf = layout.categorical.map { layout.multiValued.firstIndex(of: $0) }
            keys = [Int64](repeating: CategoryKey.empty, count: layout.categorical.count)
            filled = [Bool](repeating: false, count: keys.count)
            bagKeys = [[Int64]](repeating: [], count: layout.multiValued.count)
        }

        mutating func decode(line: Int, _ bytes: UnsafePointer<UInt8>, _ cells: [Range<Int>],
                             report: inout ReadReport) throws -> (click: Float, conversion: Float) {
            guard cells.count >= 3 else {
                throw RowProblem(.malformedLine, DataError(file: path, line: line, "expected sample_id,click,buy,field:feaid,…"))
            }
            let labels = try [(1, click), (2, conversion)].map { i, name in
                guard let v = BadRowPolicy.label(bytes + cells[i].lowerBound, cells[i].count) else {
                    throw RowProblem(.labelNotBinary, DataError(file: path, line: line, column: name,
                                                                "label must be 0 or 1, got '\(text(bytes, cells[i]))'"))
                }
                return v
            }
            for k in keys.indices { keys[k] = CategoryKey.empty; filled[k] = false }
            for k in bagKeys.indices { bagKeys[k].removeAll(keepingCapacity: true) }
            for cell in cells.dropFirst(3) { try token(cell, line: line, bytes, report: &report) }
            return (labels[0], labels[1])
        }

        private mutating func token(_ cell: Range<Int>, line: Int, _ bytes: UnsafePointer<UInt8>, report: inout ReadReport) throws {
            guard let colon = separator(of: cell, bytes) else {
                throw RowProblem(.malformedFeature, DataError(file: path, line: line, "expected field:feaid, got '\(text(bytes, cell))'"))
            }
            let field = text(bytes, cell.lowerBound..<colon)
            guard let k = position[field] else {
                report.ignoredFieldValues[field, default: 0] += 1
                return
            }
            let key = CellDecoding.categorical(bytes + colon + 1, cell.upperBound - colon - 1)
            if let bag = bagOf[k] { bagKeys[bag].append(key); return }
            guard !filled[k] else {
                throw RowProblem(.repeatedField, DataError(file: path, line: line, column: field,
                                                           "repeats in this row, but the model reads it as single-valued"))
            }
            filled[k] = true
            keys[k] = key
        }
    }
}
