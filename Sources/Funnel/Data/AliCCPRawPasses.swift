import Foundation

/// The three streaming passes of `AliCCPRawLayout.prepare`: the common features into shared
/// records (`readCommon`), the skeleton's fields from its first lines (`inferLayout`), the
/// skeleton into row groups pointing at their records (`writeSkeleton`).
extension AliCCPRawLayout {
    /// What pass 1 leaves: the md5 → record index (the only per-md5 memory kept), the fields the
    /// common file has (and which it repeats in a line), its read report and byte count.
    struct CommonFeatures {
        var fields = FieldNames()
        var index: [RecordKey: Int32] = [:]
        var report: ReadReport
        var repeated = Set<String>()
        var present = Set<Int>()
        var bytes = 0
        var shared: ColumnarCache.SharedSection?
    }

    /// Pass 1: each common-features line becomes a shared record of the cache.
    static func readCommon(_ common: String, options: ReadOptions, writer: CacheWriter) throws -> CommonFeatures {
        var out = CommonFeatures(report: ReadReport(file: common))
        var line = CommonLineReader(file: common)
        out.bytes = try MappedLines.forEach(common, releasePages: true) { number, p, n in
            out.report.dataLines += 1
            do {
                try line.read(number, p, n, into: &out, writer: writer)
            } catch let problem as RowProblem {
                try BadRowPolicy.handle(problem, options: options, report: &out.report)
            }
            return true
        }
        guard out.report.dataLines > 0 else { throw DataError(file: common, "is empty") }
        out.report.rowsKept = line.recordLines.count
        out.shared = try writer.finishShared(fields: out.fields.names, source: common)
        return out
    }

    /// One common-features line at a time, into reusable buffers; the line of each record (to
    /// name the first of a repeated md5) is kept for this pass only.
    struct CommonLineReader {
        let file: String
        var recordLines: [Int32] = []
        private var cells: [Range<Int>] = []
        private var f: [Int32] = [], k: [Int64] = [], w: [Float] = []
        private var seen = [Int](), touched: [Int] = []

        init(file: String) { self.file = file }

        mutating func read(_ line: Int, _ p: UnsafePointer<UInt8>, _ n: Int, into out: inout CommonFeatures, writer: CacheWriter) throws {
            func bad(_ column: String?, _ message: String, _ kind: RowProblem.Kind = .malformedLine) -> RowProblem {
                RowProblem(kind, DataError(file: file, line: line, column: column, message))
            }
            guard split(p, n, fields: 3, into: &cells) else { throw bad(nil, "expected 3 comma-separated fields md5,feature_num,feature_list") }
            guard let key = RecordKey(p + cells[0].lowerBound, cells[0].count) else { throw bad("md5", "is empty or longer than \(maxKeyBytes) bytes") }
            guard let declared = count(p, cells[1]) else {
                throw bad("feature_num", "'\(text(p + cells[1].lowerBound, cells[1].count))' is not a count in 0…\(maxFeaturesPerLine)")
            }
            if let first = out.index[key] {
                throw bad("md5", "'\(text(p + cells[0].lowerBound, cells[0].count))' already appeared on line \(recordLines[Int(first)])", .repeatedRecord)
            }
            f.removeAll(keepingCapacity: true); k.removeAll(keepingCapacity: true); w.removeAll(keepingCapacity: true)
            for t in touched { seen[t] = 0 }
            touched.removeAll(keepingCapacity: true)
            let list = cells[2]
            let got = try forEachFeature(p + list.lowerBound, list.count, limit: declared, file: file, line: line) { fp, fn, key, weight in
                let field = out.fields.index(fp, fn, create: true)!
                if field >= seen.count { seen.append(contentsOf: [Int](repeating: 0, count: field + 1 - seen.count)) }
                if seen[field] == 0 { touched.append(field) }
                seen[field] += 1
                f.append(Int32(field)); k.append(key); w.append(weight)
            }
            guard got == declared else { throw bad("feature_num", "says \(declared) but the list has \(got) feature(s)", .featureCountDisagrees) }
            guard out.index.count < Int(Int32.max) else { throw FunnelError("\(file): more than \(Int32.max) common-feature lines") }
            for t in touched { out.present.insert(t); if seen[t] > 1 { out.repeated.insert(out.fields.names[t]) } }
            try writer.appendSharedRecord(fields: f, keys: k, weights: w)
            out.index[key] = Int32(recordLines.count)
            recordLines.append(Int32(clamping: line))
        }
    }

    /// Pass 2 (the first `sampleRows` skeleton lines): the layout — every field of the common
    /// file and the sample, multi-valued when declared, named, repeated in a line, or in both
    /// files — and the fields `--ignore` drops.
    static func inferLayout(skeleton: String, sampleRows: Int, common: CommonFeatures, options: ReadOptions) throws -> (TableLayout, ignored: [String]) {
        var skeletonFields = FieldNames()
        var inSkeleton = Set<Int>(), repeated = common.repeated
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
        let commonNames = Set(common.present.map { common.fields.names[$0] }), skeletonNames = Set(inSkeleton.map { skeletonFields.names[$0] })
        let all = commonNames.union(skeletonNames)
        let ignored = all.filter { ReadOptions.matches($0, options.ignore) }.sorted()
        let categorical = all.subtracting(ignored).sorted()
        guard !categorical.isEmpty else { throw DataError(file: skeleton, "no features (every field ignored, or no feature lists)") }
        let multi = categorical.filter {
            declaredMultiValued.contains($0) || repeated.contains($0) || (commonNames.contains($0) && skeletonNames.contains($0))
                || ReadOptions.matches($0, options.multiValued)
        }
        return (TableLayout(clickColumn: click, conversionColumn: conversion, categorical: categorical, dense: [], ignored: ignored,
                            multiValued: multi), ignored)
    }

    /// Pass 3: the skeleton into row groups of `groupRows`, each row pointing at its common
    /// record; the footer written last.
    static func writeSkeleton(_ skeleton: String, layout: TableLayout, ignored: [String], common: CommonFeatures, options: ReadOptions,
                              groupRows: Int, sampleRows: Int, writer: CacheWriter) throws -> ColumnarCache.Footer {
        var footer = ColumnarCache.Footer(version: 2, layout: layout, hasLabels: true, dayColumn: nil, rows: 0, groups: [],
                                          report: ReadReport(file: skeleton), textTokens: [:], source: skeleton, sourceBytes: 0,
                                          shared: common.shared)
        var rows = SkeletonRowReader(file: skeleton, commonFile: common.report.file, layout: layout, ignored: ignored, rowColumns: Set(footer.rowColumns),
                                     index: common.index, sampleRows: sampleRows)
        var table = RawTable(layout: layout, hasLabels: true, file: skeleton)
        var sharedIndex: [Int32] = []
        var report = ReadReport(file: skeleton)
        func flush() throws {
            guard table.rowCount > 0 else { return }
            footer.groups.append(try writer.appendGroup(table, footer: footer, sharedIndex: sharedIndex))
            table = RawTable(layout: layout, hasLabels: true, file: skeleton)
            sharedIndex.removeAll(keepingCapacity: true)
        }
        var dataRow = -1
        let skeletonBytes = try MappedLines.forEach(skeleton, releasePages: true) { line, p, n in
            dataRow += 1
            report.dataLines += 1
            guard dataRow < Int(Int32.max) else { throw FunnelError("\(skeleton): more than \(Int32.max) lines") }
            do {
                sharedIndex.append(try rows.read(line, p, n, row: dataRow, into: &table))
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
        for (kind, n) in common.report.skipped {
            report.skipped["common features: " + kind] = n
            report.firstSkipped["common features: " + kind] = common.report.firstSkipped[kind]
        }
        footer.report = report
        footer.sourceBytes = skeletonBytes + common.bytes
        return footer
    }

    /// One skeleton line at a time: checked, its features placed by the layout (single-valued
    /// column, bag, or left out when ignored), appended to the table; returns its record.
    struct SkeletonRowReader {
        enum Role { case single(Int), bag(Int), ignored }
        let file: String, commonFile: String, layout: TableLayout, sampleRows: Int
        let index: [RecordKey: Int32]
        let roles: [Role]
        var fieldIndex: FieldNames
        private var cells: [Range<Int>] = []
        private var keys: [Int64], filled: [Bool]
        private var bagKeys: [[Int64]], bagWeights: [[Float]]

        init(file: String, commonFile: String, layout: TableLayout, ignored: [String], rowColumns: Set<String>, index: [RecordKey: Int32], sampleRows: Int) {
            (self.file, self.commonFile, self.layout, self.index, self.sampleRows) = (file, commonFile, layout, index, sampleRows)
            fieldIndex = FieldNames(layout.categorical + ignored)
            roles = (layout.categorical + ignored).map { name in
                if let b = layout.multiValued.firstIndex(of: name) { return .bag(b) }
                if let k = layout.categorical.firstIndex(of: name), rowColumns.contains(name) { return .single(k) }
                return .ignored  // ignored fields, and single-valued fields that only the common records hold
            }
            keys = [Int64](repeating: CategoryKey.empty, count: layout.categorical.count)
            filled = [Bool](repeating: false, count: layout.categorical.count)
            bagKeys = [[Int64]](repeating: [], count: layout.multiValued.count)
            bagWeights = [[Float]](repeating: [], count: layout.multiValued.count)
        }

        mutating func read(_ line: Int, _ p: UnsafePointer<UInt8>, _ n: Int, row: Int, into table: inout RawTable) throws -> Int32 {
            let file = self.file  // `bad` must not capture self: `place` mutates it
            func bad(_ kind: RowProblem.Kind, _ column: String?, _ message: String) -> RowProblem {
                RowProblem(kind, DataError(file: file, line: line, column: column, message))
            }
            guard split(p, n, fields: 6, into: &cells) else {
                throw bad(.malformedLine, nil, "expected 6 comma-separated fields sample_id,click,buy,md5,feature_num,feature_list")
            }
            let labels = try [(1, click), (2, conversion)].map { i, name in
                guard let v = BadRowPolicy.label(p + cells[i].lowerBound, cells[i].count) else {
                    throw bad(.rawLabelNotBinary, name, "label must be 0 or 1, got '\(text(p + cells[i].lowerBound, cells[i].count))'")
                }
                return v
            }
            guard let key = RecordKey(p + cells[3].lowerBound, cells[3].count) else { throw bad(.malformedLine, "md5", "is empty or longer than \(maxKeyBytes) bytes") }
            guard let record = index[key] else {
                throw bad(.missingRecord, "md5", "'\(text(p + cells[3].lowerBound, cells[3].count))' is not in \(commonFile)")
            }
            guard let declared = count(p, cells[4]) else {
                throw bad(.malformedLine, "feature_num", "'\(text(p + cells[4].lowerBound, cells[4].count))' is not a count in 0…\(maxFeaturesPerLine)")
            }
            for k in keys.indices { keys[k] = CategoryKey.empty; filled[k] = false }
            for k in bagKeys.indices { bagKeys[k].removeAll(keepingCapacity: true); bagWeights[k].removeAll(keepingCapacity: true) }
            let got = try forEachFeature(p + cells[5].lowerBound, cells[5].count, limit: declared, file: file, line: line) { fp, fn, key, weight in
                try place(fp, fn, key, weight, bad: bad)
            }
            guard got == declared else { throw bad(.featureCountDisagrees, "feature_num", "says \(declared) but the list has \(got) feature(s)") }
            for k in bagKeys.indices { table.appendBag(k, keys: bagKeys[k], weights: bagWeights[k]) }
            table.appendRow(keys: keys, dense: [], labels: (labels[0], labels[1]), day: nil, sourceRow: Int32(row))
            return record
        }

        private mutating func place(_ fp: UnsafePointer<UInt8>, _ fn: Int, _ key: Int64, _ weight: Float,
                                    bad: (RowProblem.Kind, String?, String) -> RowProblem) throws {
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
    }
}
