import Foundation

/// The raw Ali-CCP layout the ESMM paper released: a sample skeleton and its common features.
///
///     sample_skeleton_X.csv   sample_id,click,buy,md5,feature_num,feature_list   (one impression per line)
///     common_features_X.csv   md5,feature_num,feature_list                       (one per md5, shared by many impressions)
///
/// A feature list joins features with `\x01`; each is `field\x02feature_id\x03value`. A row's
/// features are its own list plus the common list of its md5. Every field id is a field. A field
/// is multi-valued when Ali-CCP declares it so (the user behaviour lists `109_14`, `110_14`,
/// `127_14`, `150_14` and their crosses `508`, `509`, `702`, `853`), when `--multi-valued`
/// names it, when a line repeats it, or when both files give it; the feature value is the
/// value's weight (a single-valued field's value is 1 in Ali-CCP and is not read).
///
/// `prepare` writes a version 2 `ColumnarCache` in two streaming passes without holding either
/// file in memory: the common features become the cache's shared records (stored once, not per
/// impression), indexed in memory by md5 only (16 bytes + an entry number each), then the
/// skeleton is streamed into row groups that point at their record. Pages of both files are
/// released as they are scanned.
///
/// Policy on bad input (without `--skip-bad-rows`, the first stops the run naming file, line and
/// what is wrong; with it, each is skipped and counted): a line that is not 6 (skeleton) or 3
/// (common) comma-separated fields; a label other than 0/1; a feature without its `\x02`/`\x03`
/// separators, a feature id that is not an integer or a value that is not a finite number;
/// `feature_num` that disagrees with the number of features in the list (it is checked, never
/// trusted for sizing: at most `maxFeaturesPerLine` features are read from a line); an md5
/// repeated in the common file (the first stays); a skeleton md5 the common file lacks; a
/// single-valued field given twice in one row. Rows with buy = 1 and click = 0 are kept in the
/// cache; each reading command applies its `--inconsistent` policy.
public enum AliCCPRaw {
    public static let click = "click"
    public static let conversion = "buy"
    /// Ali-CCP's multi-valued fields: the 14-day behaviour lists and their crosses with the item.
    public static let declaredMultiValued: Set<String> = ["109_14", "110_14", "127_14", "150_14", "508", "509", "702", "853"]
    /// The most features read from one line (checked before anything is sized by a line).
    public static let maxFeaturesPerLine = 1 << 20
    static let maxKeyBytes = 128

    /// An md5 as 128 bits: 32 hex digits exactly, any other token by two independent 64-bit hashes.
    struct RecordKey: Hashable {
        var hi: UInt64
        var lo: UInt64

        init?(_ p: UnsafePointer<UInt8>, _ n: Int) {
            guard n > 0, n <= AliCCPRaw.maxKeyBytes else { return nil }
            if n == 32, let hi = RecordKey.hex(p), let lo = RecordKey.hex(p + 16) { self.hi = hi; self.lo = lo; return }
            var a: UInt64 = 0xcbf2_9ce4_8422_2325, b: UInt64 = 0x9E37_79B9_7F4A_7C15
            for i in 0..<n {
                a = (a ^ UInt64(p[i])) &* 0x0000_0100_0000_01B3
                b = (b &+ UInt64(p[i]) &+ 1) &* 0xBF58_476D_1CE4_E5B9
                b ^= b >> 29
            }
            hi = a; lo = b
        }

        private static func hex(_ p: UnsafePointer<UInt8>) -> UInt64? {
            var v: UInt64 = 0
            for i in 0..<16 {
                let c = p[i]
                let d: UInt8
                switch c {
                case 48...57: d = c - 48
                case 97...102: d = c - 87
                case 65...70: d = c - 55
                default: return nil
                }
                v = v << 4 | UInt64(d)
            }
            return v
        }
    }

    /// Field ids by index, looked up from their bytes without building a string per feature.
    struct FieldNames {
        private(set) var names: [String] = []
        private var packed: [UInt64: Int] = [:]
        private var long: [String: Int] = [:]

        init(_ names: [String] = []) { for n in names { _ = index(Array(n.utf8), create: true) } }

        mutating func index(_ p: UnsafePointer<UInt8>, _ n: Int, create: Bool) -> Int? {
            if n <= 8 {
                var key: UInt64 = 0
                for i in 0..<n { key |= UInt64(p[i]) << (8 * UInt64(i)) }
                if let k = packed[key] { return k }
                guard create else { return nil }
                names.append(String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self))
                packed[key] = names.count - 1
                return names.count - 1
            }
            let name = String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
            if let k = long[name] { return k }
            guard create else { return nil }
            names.append(name)
            long[name] = names.count - 1
            return names.count - 1
        }

        mutating func index(_ bytes: [UInt8], create: Bool) -> Int? {
            bytes.withUnsafeBufferPointer { index($0.baseAddress ?? UnsafePointer(bitPattern: 1)!, $0.count, create: create) }
        }
    }

    /// Calls `body(field bytes, field length, key, weight)` for each feature of a feature list;
    /// returns how many there were. `limit` bounds the features read.
    static func forEachFeature(_ p: UnsafePointer<UInt8>, _ n: Int, limit: Int, file: String, line: Int,
                               _ body: (UnsafePointer<UInt8>, Int, Int64, Float) throws -> Void) throws -> Int {
        var count = 0, start = 0
        func problem(_ message: String) -> RowProblem {
            RowProblem(.malformedFeature, DataError(file: file, line: line, column: "feature_list", message))
        }
        while start < n {
            var end = start
            while end < n && p[end] != 1 { end += 1 }
            count += 1
            guard count <= limit else { throw problem("more than \(limit) features") }
            var a = start
            while a < end && p[a] != 2 { a += 1 }
            var b = a + 1
            while b < end && p[b] != 3 { b += 1 }
            guard a > start, a < end, b < end else {
                throw problem("feature \(count) '\(text(p + start, end - start))' is not field\\x02feature_id\\x03value")
            }
            guard b > a + 1, NumberParsing.parseInteger(p + a + 1, b - a - 1) != nil else {
                throw problem("feature \(count) (field \(text(p + start, a - start))): feature id '\(text(p + a + 1, b - a - 1))' is not an integer")
            }
            guard let w = NumberParsing.parseDouble(p + b + 1, end - b - 1), w.isFinite, abs(w) <= Double(Float.greatestFiniteMagnitude) else {
                throw problem("feature \(count) (field \(text(p + start, a - start))): value '\(text(p + b + 1, end - b - 1))' is not a finite number")
            }
            try body(p + start, a - start, CellDecoding.categorical(p + a + 1, b - a - 1), Float(w))
            start = end + 1
        }
        return count
    }

    static func text(_ p: UnsafePointer<UInt8>, _ n: Int) -> String {
        let s = String(decoding: UnsafeBufferPointer(start: p, count: min(n, 40)), as: UTF8.self)
        return n > 40 ? s + "…" : s
    }

    /// Splits the first `fields - 1` commas of a line (the last field keeps any further bytes).
    static func split(_ p: UnsafePointer<UInt8>, _ n: Int, fields: Int, into cells: inout [Range<Int>]) -> Bool {
        cells.removeAll(keepingCapacity: true)
        var start = 0
        for i in 0..<n where p[i] == 44 && cells.count < fields - 1 { cells.append(start..<i); start = i + 1 }
        cells.append(start..<n)
        return cells.count == fields
    }

    static func count(_ p: UnsafePointer<UInt8>, _ r: Range<Int>) -> Int? {
        guard let v = NumberParsing.parseInteger(p + r.lowerBound, r.count), v >= 0, v <= Int64(maxFeaturesPerLine) else { return nil }
        return Int(v)
    }

    // MARK: - prepare

    /// Converts a skeleton and its common features into a cache (see the type's notes).
    public static func prepare(skeleton: String, common: String, options: ReadOptions, to out: String, groupRows: Int = 1 << 16,
                               sampleRows: Int = 1_000_000, force: Bool = false) throws -> ColumnarCache.PrepareSummary {
        guard groupRows >= 1, sampleRows >= 1 else { throw FunnelError("row groups and the layout sample need at least one row") }
        if options.clickColumn != nil || options.conversionColumn != nil || !options.categorical.isEmpty || !options.dense.isEmpty
            || options.dayColumn != nil {
            throw FunnelError("the raw Ali-CCP layout fixes its columns (click, buy, one categorical field per field id); "
                              + "only --ignore and --multi-valued apply")
        }
        try InputFile.checkReadable(skeleton)
        try InputFile.checkReadable(common)
        let start = Date()
        let writer = try CacheWriter(out: out, version: 2, force: force)

        // Pass 1: the common features become shared records; the md5 index stays in memory.
        var commonFields = FieldNames()
        var index: [RecordKey: Int32] = [:]
        var recordLines: [Int32] = []
        var commonReport = ReadReport(file: common)
        var repeated = Set<String>(), inCommon = Set<Int>()
        var commonBytes = 0
        do {
            var cells: [Range<Int>] = []
            var f: [Int32] = [], k: [Int64] = [], w: [Float] = []
            var seen = [Int](), touched: [Int] = []
            commonBytes = try MappedLines.forEach(common, releasePages: true) { line, p, n in
                commonReport.dataLines += 1
                do {
                    guard split(p, n, fields: 3, into: &cells) else {
                        throw RowProblem(.malformedLine, DataError(file: common, line: line, "expected 3 comma-separated fields md5,feature_num,feature_list"))
                    }
                    guard let key = RecordKey(p + cells[0].lowerBound, cells[0].count) else {
                        throw RowProblem(.malformedLine, DataError(file: common, line: line, column: "md5", "is empty or longer than \(maxKeyBytes) bytes"))
                    }
                    guard let declared = count(p, cells[1]) else {
                        throw RowProblem(.malformedLine, DataError(file: common, line: line, column: "feature_num",
                                                                                   "'\(text(p + cells[1].lowerBound, cells[1].count))' is not a count in 0…\(maxFeaturesPerLine)"))
                    }
                    if let first = index[key] {
                        throw RowProblem(.repeatedRecord, DataError(file: common, line: line, column: "md5",
                                                                                 "'\(text(p + cells[0].lowerBound, cells[0].count))' already appeared on line \(recordLines[Int(first)])"))
                    }
                    f.removeAll(keepingCapacity: true); k.removeAll(keepingCapacity: true); w.removeAll(keepingCapacity: true)
                    for t in touched { seen[t] = 0 }
                    touched.removeAll(keepingCapacity: true)
                    let list = cells[2]
                    let got = try forEachFeature(p + list.lowerBound, list.count, limit: declared, file: common, line: line) { fp, fn, key, weight in
                        let field = commonFields.index(fp, fn, create: true)!
                        if field >= seen.count { seen.append(contentsOf: [Int](repeating: 0, count: field + 1 - seen.count)) }
                        if seen[field] == 0 { touched.append(field) }
                        seen[field] += 1
                        f.append(Int32(field)); k.append(key); w.append(weight)
                    }
                    guard got == declared else {
                        throw RowProblem(.featureCountDisagrees, DataError(file: common, line: line, column: "feature_num",
                                                                                          "says \(declared) but the list has \(got) feature(s)"))
                    }
                    guard index.count < Int(Int32.max) else { throw FunnelError("\(common): more than \(Int32.max) common-feature lines") }
                    for t in touched { inCommon.insert(t); if seen[t] > 1 { repeated.insert(commonFields.names[t]) } }
                    try writer.appendSharedRecord(fields: f, keys: k, weights: w)
                    index[key] = Int32(recordLines.count)
                    recordLines.append(Int32(clamping: line))
                } catch let problem as RowProblem {
                    try BadRowPolicy.handle(problem, options: options, report: &commonReport)
                }
                return true
            }
            guard commonReport.dataLines > 0 else { throw DataError(file: common, "is empty") }
            commonReport.rowsKept = recordLines.count
        }
        let shared = try writer.finishShared(fields: commonFields.names, source: common)
        recordLines = []

        // Pass 2 (a prefix of the skeleton): which fields it has and which repeat in a line.
        var skeletonFields = FieldNames()
        var inSkeleton = Set<Int>()
        do {
            var cells: [Range<Int>] = []
            var counts: [Int: Int] = [:]
            var rows = 0
            try MappedLines.forEach(skeleton, releasePages: true) { line, p, n in
                rows += 1
                guard split(p, n, fields: 6, into: &cells) else { return rows < sampleRows }
                counts.removeAll(keepingCapacity: true)
                _ = try? forEachFeature(p + cells[5].lowerBound, cells[5].count, limit: maxFeaturesPerLine, file: skeleton, line: line) { fp, fn, _, _ in
                    counts[skeletonFields.index(fp, fn, create: true)!, default: 0] += 1
                }
                for (field, c) in counts { inSkeleton.insert(field); if c > 1 { repeated.insert(skeletonFields.names[field]) } }
                return rows < sampleRows
            }
        }
        let commonNames = Set(inCommon.map { commonFields.names[$0] }), skeletonNames = Set(inSkeleton.map { skeletonFields.names[$0] })
        let all = commonNames.union(skeletonNames)
        let ignored = all.filter { ReadOptions.matches($0, options.ignore) }.sorted()
        let categorical = all.subtracting(ignored).sorted()
        guard !categorical.isEmpty else { throw DataError(file: skeleton, "no features (every field ignored, or no feature lists)") }
        let multi = categorical.filter {
            declaredMultiValued.contains($0) || repeated.contains($0) || (commonNames.contains($0) && skeletonNames.contains($0))
                || ReadOptions.matches($0, options.multiValued)
        }
        let layout = TableLayout(clickColumn: click, conversionColumn: conversion, categorical: categorical, dense: [], ignored: ignored,
                                 multiValued: multi)

        // Pass 3: the skeleton into row groups, each row pointing at its common record.
        var footer = ColumnarCache.Footer(version: 2, layout: layout, hasLabels: true, dayColumn: nil, rows: 0, groups: [],
                                          report: ReadReport(file: skeleton), textTokens: [:], source: skeleton, sourceBytes: 0, shared: shared)
        let rowColumns = Set(footer.rowColumns)
        enum Role { case single(Int), bag(Int), ignored }
        var fieldIndex = FieldNames(layout.categorical + ignored)
        let roles: [Role] = (layout.categorical + ignored).map { name in
            if let b = layout.multiValued.firstIndex(of: name) { return .bag(b) }
            if let k = layout.categorical.firstIndex(of: name), rowColumns.contains(name) { return .single(k) }
            return .ignored  // ignored fields, and single-valued fields that only the common records hold
        }
        var table = RawTable(layout: layout, hasLabels: true, file: skeleton)
        var report = ReadReport(file: skeleton)
        var sharedIndex: [Int32] = []
        var keys = [Int64](repeating: CategoryKey.empty, count: layout.categorical.count)
        var filled = [Bool](repeating: false, count: layout.categorical.count)
        var bagKeys = [[Int64]](repeating: [], count: layout.multiValued.count)
        var bagWeights = [[Float]](repeating: [], count: layout.multiValued.count)
        var cells: [Range<Int>] = []
        var dataRow = -1
        func flush() throws {
            guard table.rowCount > 0 else { return }
            footer.groups.append(try writer.appendGroup(table, footer: footer, sharedIndex: sharedIndex))
            table = RawTable(layout: layout, hasLabels: true, file: skeleton)
            sharedIndex.removeAll(keepingCapacity: true)
        }
        let skeletonBytes = try MappedLines.forEach(skeleton, releasePages: true) { line, p, n in
            dataRow += 1
            report.dataLines += 1
            guard dataRow < Int(Int32.max) else { throw FunnelError("\(skeleton): more than \(Int32.max) lines") }
            do {
                func bad(_ kind: RowProblem.Kind, _ column: String?, _ message: String) -> RowProblem {
                    RowProblem(kind, DataError(file: skeleton, line: line, column: column, message))
                }
                guard split(p, n, fields: 6, into: &cells) else {
                    throw bad(.malformedLine, nil, "expected 6 comma-separated fields sample_id,click,buy,md5,feature_num,feature_list")
                }
                guard let c = BadRowPolicy.label(p + cells[1].lowerBound, cells[1].count) else {
                    throw bad(.labelNotBinary, "click", "label must be 0 or 1, got '\(text(p + cells[1].lowerBound, cells[1].count))'")
                }
                guard let b = BadRowPolicy.label(p + cells[2].lowerBound, cells[2].count) else {
                    throw bad(.labelNotBinary, "buy", "label must be 0 or 1, got '\(text(p + cells[2].lowerBound, cells[2].count))'")
                }
                guard let key = RecordKey(p + cells[3].lowerBound, cells[3].count) else {
                    throw bad(.malformedLine, "md5", "is empty or longer than \(maxKeyBytes) bytes")
                }
                guard let record = index[key] else {
                    throw bad(.missingRecord, "md5", "'\(text(p + cells[3].lowerBound, cells[3].count))' is not in \(common)")
                }
                guard let declared = count(p, cells[4]) else {
                    throw bad(.malformedLine, "feature_num", "'\(text(p + cells[4].lowerBound, cells[4].count))' is not a count in 0…\(maxFeaturesPerLine)")
                }
                for k in keys.indices { keys[k] = CategoryKey.empty; filled[k] = false }
                for k in bagKeys.indices { bagKeys[k].removeAll(keepingCapacity: true); bagWeights[k].removeAll(keepingCapacity: true) }
                let got = try forEachFeature(p + cells[5].lowerBound, cells[5].count, limit: declared, file: skeleton, line: line) { fp, fn, key, weight in
                    guard let field = fieldIndex.index(fp, fn, create: false) else {
                        throw bad(.unknownField, text(fp, fn), "is not among the fields of the first \(sampleRows) lines and the common features "
                                  + "(raise --sample-rows, or --ignore it)")
                    }
                    switch roles[field] {
                    case .ignored:
                        if field < layout.categorical.count {
                            throw bad(.fieldInBothFiles, text(fp, fn), "comes from the common features too; read it as multi-valued (--multi-valued \(text(fp, fn)))")
                        }
                    case .bag(let b): bagKeys[b].append(key); bagWeights[b].append(weight)
                    case .single(let k):
                        guard !filled[k] else {
                            throw bad(.repeatedField, text(fp, fn), "repeats in this row, but it was read as single-valued (declare it with --multi-valued)")
                        }
                        filled[k] = true
                        keys[k] = key
                    }
                }
                guard got == declared else { throw bad(.featureCountDisagrees, "feature_num", "says \(declared) but the list has \(got) feature(s)") }
                for k in bagKeys.indices { table.appendBag(k, keys: bagKeys[k], weights: bagWeights[k]) }
                table.appendRow(keys: keys, dense: [], labels: (c, b), day: nil, sourceRow: Int32(dataRow))
                sharedIndex.append(record)
                if table.rowCount >= groupRows { try flush() }
            } catch let problem as RowProblem {
                try BadRowPolicy.handle(problem, options: options, report: &report)
            }
            return true
        }
        try flush()
        guard report.dataLines > 0 else { throw DataError(file: skeleton, "is empty") }
        footer.rows = footer.groups.reduce(0) { $0 + $1.rows }
        guard footer.rows > 0 else { throw DataError(file: skeleton, "no usable rows (\(report.dataLines) read, all skipped)") }
        report.rowsKept = footer.rows
        for (kind, n) in commonReport.skipped {
            report.skipped["common features: " + kind] = n
            report.firstSkipped["common features: " + kind] = commonReport.firstSkipped[kind]
        }
        footer.report = report
        footer.sourceBytes = skeletonBytes + commonBytes
        try writer.finish(footer: footer)
        var summary = ColumnarCache.PrepareSummary(start: start, footer: footer, cacheBytes: writer.written)
        summary.sharedRecords = shared.entries
        return summary
    }
}
