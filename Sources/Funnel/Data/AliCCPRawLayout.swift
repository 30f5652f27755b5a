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
public enum AliCCPRawLayout {
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
            guard n > 0, n <= AliCCPRawLayout.maxKeyBytes else { return nil }
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

    /// Converts a skeleton and its common features into a cache (see the type's notes): the
    /// three passes of `AliCCPRawPasses.swift`, then the footer.
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
        let shared = try readCommon(common, options: options, writer: writer)
        let (layout, ignored) = try inferLayout(skeleton: skeleton, sampleRows: sampleRows, common: shared, options: options)
        let footer = try writeSkeleton(skeleton, layout: layout, ignored: ignored, common: shared, options: options, groupRows: groupRows,
                                       sampleRows: sampleRows, writer: writer)
        try writer.finish(footer: footer)
        var summary = ColumnarCache.PrepareSummary(start: start, footer: footer, cacheBytes: writer.written)
        summary.sharedRecords = shared.shared?.entries
        return summary
    }
}

/// The name this reader had before it took its neighbours' `*Layout` name.
@available(*, deprecated, renamed: "AliCCPRawLayout")
public typealias AliCCPRaw = AliCCPRawLayout
