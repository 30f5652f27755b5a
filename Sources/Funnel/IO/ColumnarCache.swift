import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A binary columnar cache of a table (`funnel prepare`): the rows of a CSV/TSV after parsing —
/// category keys, dense values, labels, days — so later commands skip text parsing, and a
/// training run can stream row groups from a memory mapping in bounded memory.
///
/// Layout (little-endian), written in one streaming pass over the source file:
///
///     "FUNNELC\u{1}"                       8-byte magic (format version 1 in its last byte)
///     row group × G                        each: categorical columns (rows × Int64),
///                                          dense columns (rows × Float32), click and conversion
///                                          (rows × UInt8, when labelled), days (rows × Int32, when
///                                          read), source rows (rows × Int32), zero padding to 8 bytes
///     footer JSON                          version, layout, groups (offset, rows, checksum), report,
///                                          text of non-integer categories, source file
///     UInt64 footer offset, UInt64 footer length, UInt64 footer checksum, "FUNNELCE"
///
/// Version 2 (written when the table has multi-valued columns or shared records) adds, per row
/// group, the shared-record index (rows × Int32) and each multi-valued column's CSR — offsets
/// ((rows + 1) × Int32), keys (n × Int64), weights (n × Float32) — every array padded to 8 bytes;
/// and, between the magic and the first group, a shared section: records that many rows point
/// to (raw Ali-CCP's common features, one per md5, stored once rather than per impression),
/// then their offsets. A single-valued column held by the shared records is not a row column.
///
/// Every group and the footer carry an FNV-1a checksum, verified when read; the file is written
/// to a temporary name, fsynced and renamed, so a reader sees a complete cache or none.
public final class ColumnarCache {
    public static let magic: [UInt8] = Array("FUNNELC".utf8) + [1]
    static let trailerMagic: [UInt8] = Array("FUNNELCE".utf8)
    /// The newest format written; version 1 (no multi-valued columns, no shared records) and 2
    /// (no request column) are still written byte for byte when a table needs nothing newer, and
    /// read. Version 3 adds a request column's keys to every row group.
    public static let currentVersion = 3

    public struct Group: Codable, Sendable {
        public var offset: Int
        public var rows: Int
        public var checksum: String
        /// Values per multi-valued column (version 2).
        public var values: [Int]?
    }

    /// Records shared by many rows (version 2): record e's values are (field name index, key,
    /// weight) triples; `offsetsAt` (relative to `offset`) holds entries + 1 Int64 record offsets.
    public struct SharedSection: Codable, Sendable {
        public var offset: Int
        public var bytes: Int
        public var entries: Int
        public var offsetsAt: Int
        public var checksum: String
        /// The field names records refer to by index.
        public var fields: [String]
        /// The file the records came from (raw Ali-CCP's common features).
        public var source: String

        enum CodingKeys: String, CodingKey {
            case offset, bytes, entries, checksum, fields, source
            case offsetsAt = "offsets_at"
        }
    }

    public struct Footer: Codable, Sendable {
        public var version: Int
        public var layout: TableLayout
        public var hasLabels: Bool
        public var dayColumn: String?
        public var rows: Int
        public var groups: [Group]
        public var report: ReadReport
        public var textTokens: [String: String]
        public var source: String
        public var sourceBytes: Int
        public var shared: SharedSection?
        /// `funnel prepare --request-column COL --request-fields …` (version 3): each group stores
        /// its rows' request keys (COL's values, checked when prepared: the request fields are
        /// constant within a request); COL itself is not a column of the layout.
        public var requestColumn: String? = nil
        public var requestColumnFields: [String]? = nil

        enum CodingKeys: String, CodingKey {
            case version, layout, rows, groups, report, source, shared
            case hasLabels = "has_labels", dayColumn = "day_column", textTokens = "text_tokens", sourceBytes = "source_bytes"
            case requestColumn = "request_column", requestColumnFields = "request_fields"
        }

        /// The single-valued categorical columns stored per row (the others are bags, or come
        /// from the shared records), in layout order.
        public var rowColumns: [String] {
            let shared = Set(self.shared?.fields ?? [])
            let bags = Set(layout.multiValued)
            return layout.categorical.filter { !bags.contains($0) && !shared.contains($0) }
        }

        /// Where each of `rowColumns` sits in `layout.categorical` (one pass: a table of 100,000
        /// columns must not cost 100,000² name comparisons per row group).
        public var rowColumnIndices: [Int] {
            let position = Dictionary(layout.categorical.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
            return rowColumns.map { position[$0]! }
        }
    }

    public let path: String
    public let footer: Footer
    private let mapping: MappedFile
    private var data: Data { mapping.data }

    /// True when `path` starts with the cache magic (any version).
    /// Only a regular file is opened (without blocking): a FIFO given as input is never waited on.
    public static func isCache(_ path: String) -> Bool {
        guard let fd = try? InputFile.openForReading(path) else { return false }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 7)
        return pread(fd, &head, 7, 0) == 7 && head == Array(magic.prefix(7))
    }

    /// Opens and validates a cache: magic, version, trailer, footer checksum and shape.
    public init(path: String) throws {
        self.path = path
        let mapped = try MappedFile(path)
        let bytes = mapped.data
        let n = bytes.count
        guard n >= 8 + 32, Array(bytes.prefix(7)) == Array(Self.magic.prefix(7)) else {
            throw DataError(file: path, "not a Funnel cache (run `funnel prepare` to make one)")
        }
        guard (1...Self.currentVersion).contains(Int(bytes[7])) else {
            throw DataError(file: path, "cache format version \(bytes[7]) is not the one this funnel reads (\(Self.currentVersion)); run `funnel prepare` again")
        }
        guard Array(bytes.suffix(8)) == Self.trailerMagic else {
            // A trailer followed by other bytes is a cache with data appended, not a cut one.
            if let end = bytes.range(of: Data(Self.trailerMagic), options: .backwards)?.upperBound {
                throw DataError(file: path, "\(n - end) bytes follow the cache's trailer (data appended to the file?); run `funnel prepare` again")
            }
            throw DataError(file: path, "cache is truncated (no trailer); run `funnel prepare` again")
        }
        func u64(_ at: Int) -> UInt64 {
            bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        }
        let footerOffset = Int(clamping: u64(n - 32)), footerLength = Int(clamping: u64(n - 24)), footerSum = u64(n - 16)
        // Compared without adding the two (both come from the file and may be near Int.max).
        guard footerOffset >= 8, footerLength > 0, footerOffset <= n - 32, footerLength == n - 32 - footerOffset else {
            throw DataError(file: path, "cache trailer is damaged")
        }
        let footerBytes = bytes.subdata(in: footerOffset..<(footerOffset + footerLength))
        guard Checksum.fnv64Words(footerBytes) == footerSum else { throw DataError(file: path, "cache footer checksum mismatch: the file is damaged") }
        let f: Footer
        do { f = try JSONDecoder().decode(Footer.self, from: footerBytes) } catch {
            throw DataError(file: path, "cache footer is unreadable: \(error)")
        }
        guard f.version == Int(bytes[7]) else { throw DataError(file: path, "cache footer and magic disagree on the format version") }
        try Self.checkSections(of: f, in: bytes, footerOffset: footerOffset, path: path)
        mapping = mapped
        footer = f
        requestFields = Self.requestFields(of: f)
    }

    /// The shared section and the row groups must tile the bytes before the footer exactly,
    /// every count bounded by the file's size before any arithmetic (a forged footer with a
    /// matching checksum must not overflow); the shared section's checksum is verified here,
    /// each group's when it is read.
    private static func checkSections(of f: Footer, in bytes: Data, footerOffset: Int, path: String) throws {
        let n = bytes.count
        var expected = 8
        if let column = f.requestColumn {
            let fields = f.requestColumnFields ?? []
            guard f.version >= 3, f.shared == nil, !fields.isEmpty, fields.allSatisfy(f.layout.categorical.contains),
                  !f.layout.categorical.contains(column), !f.layout.dense.contains(column) else {
                throw DataError(file: path, "cache request column '\(column)' is inconsistent with its layout")
            }
        }
        if let shared = f.shared {
            guard f.version >= 2, shared.offset == 8, shared.entries >= 0, shared.entries < n / 8, shared.bytes >= 0,
                  shared.bytes <= footerOffset - 8, shared.bytes >= 8 * (shared.entries + 1),
                  shared.offsetsAt == shared.bytes - 8 * (shared.entries + 1) else {
                throw DataError(file: path, "cache shared section is inconsistent")
            }
            let sum = bytes.withUnsafeBytes { Checksum.fnv64Hex(words: UnsafeRawBufferPointer(rebasing: $0[shared.offset..<(shared.offset + shared.bytes)])) }
            guard sum == shared.checksum else {
                throw DataError(file: path, "cache shared section checksum mismatch: the cache is damaged; run `funnel prepare` again")
            }
            expected += shared.bytes
        }
        for g in f.groups {
            let values = g.values ?? []
            guard g.offset == expected, g.rows > 0, g.rows <= n, values.count == (f.version >= 2 ? f.layout.multiValued.count : 0),
                  values.allSatisfy({ $0 >= 0 && $0 <= min(n, Int(Int32.max)) }), f.layout.categorical.count + f.layout.dense.count < n else {
                throw DataError(file: path, "cache row groups are inconsistent")
            }
            expected += groupBytes(rows: g.rows, values: values, footer: f)
            guard expected <= footerOffset else { throw DataError(file: path, "cache row groups do not add up to the file") }
        }
        guard expected == footerOffset, f.groups.reduce(0, { $0 + $1.rows }) == f.rows else {
            throw DataError(file: path, "cache row groups do not add up to the file")
        }
    }

    public var layout: TableLayout { footer.layout }
    public var rowCount: Int { footer.rows }
    public var byteCount: Int { data.count }

    static func groupBytes(rows: Int, values: [Int], footer: Footer) -> Int {
        func pad8(_ n: Int) -> Int { (n + 7) / 8 * 8 }
        var b = rows * (8 * footer.rowColumns.count + 4 * footer.layout.dense.count + 4)
        if footer.hasLabels { b += 2 * rows }
        if footer.dayColumn != nil { b += 4 * rows }
        b = pad8(b)
        if footer.shared != nil { b += pad8(4 * rows) }
        if footer.requestColumn != nil { b += 8 * rows }
        for n in values { b += pad8(4 * (rows + 1)) + 8 * n + pad8(4 * n) }
        return b
    }

    func groupBytes(_ g: Int) -> Int {
        Self.groupBytes(rows: footer.groups[g].rows, values: footer.groups[g].values ?? [], footer: footer)
    }

    /// Row group `g` as a table with `layout`'s columns (picked by name; all must be in the cache,
    /// each single- or multi-valued as there). A row's multi-valued values are its own, then its
    /// shared record's; `wanted.maxValues` keeps the highest-weight ones.
    /// `requestLevel`: the request's own multi-valued columns (`requestFields`) are kept once per
    /// request (`RequestKeys.perRequest`) instead of copied into every row (their rows' bags are
    /// empty): for readers that compute a request once (`RequestSharing`).
    public func group(_ g: Int, layout wanted: TableLayout, requireLabels: Bool, dayColumn: String?,
                      requestLevel: Bool = false) throws -> RawTable {
        let info = footer.groups[g]
        let bytes = data.subdata(in: info.offset..<(info.offset + groupBytes(g)))
        guard Checksum.fnv64Hex(words: bytes) == info.checksum else {
            throw DataError(file: path, "row group \(g) checksum mismatch: the cache is damaged; run `funnel prepare` again")
        }
        try checkReadable(as: wanted, requireLabels: requireLabels, dayColumn: dayColumn)
        var (table, stored, sharedIndex) = decode(bytes, group: g, layout: wanted, dayColumn: dayColumn)
        for (k, name) in wanted.dense.enumerated() where table.dense[k].count != info.rows {
            throw DataError(file: path, column: name, "column is missing from the cache (the model was trained with it)")
        }
        for bag in stored.values {
            guard bag.offsets.first == 0, Int(bag.offsets.last!) == bag.keys.count, zip(bag.offsets, bag.offsets.dropFirst()).allSatisfy({ $0 <= $1 }) else {
                throw DataError(file: path, "row group \(g) has inconsistent value offsets: the cache is damaged")
            }
        }
        let perRequest = try joinBags(into: &table, stored: wanted.multiValued.map { stored[$0] }, sharedIndex: sharedIndex,
                                      requestLevel: requestLevel)
        if footer.requestColumn == nil { table.requests = requests(sharedIndex, of: table) }
        table.requests?.perRequest = perRequest
        for (k, v) in footer.textTokens { if let key = Int64(k) { table.textTokens[key] = v } }
        table.report = footer.report
        table.report.rowsKept = info.rows
        return table
    }

    /// The shared record is the request (raw Ali-CCP's md5 common features). A row without a
    /// record is a request of its own (a key no record has).
    private func requests(_ sharedIndex: [Int32], of table: RawTable) -> RequestKeys? {
        guard !sharedIndex.isEmpty else { return nil }
        let keys = sharedIndex.enumerated().map { r, e in e >= 0 ? Int64(e) : -1 - Int64(table.sourceRows[r]) }
        return RequestKeys(keys: keys, fields: requestFields.filter(table.layout.categorical.contains))
    }

    /// The columns only shared records give (never a row of its own, in any group): constant
    /// within a request. A column both files give varies by impression and is not one. Read
    /// from the footer once, at open (every row group's read asks).
    public let requestFields: [String]

    private static func requestFields(of footer: Footer) -> [String] {
        if footer.requestColumn != nil { return footer.requestColumnFields ?? [] }
        guard let shared = footer.shared else { return [] }
        let rowColumns = Set(footer.rowColumns), bags = footer.layout.multiValued
        return shared.fields.filter { name in
            guard !rowColumns.contains(name) else { return false }
            guard let b = bags.firstIndex(of: name) else { return true }
            return footer.groups.allSatisfy { ($0.values?[b] ?? 0) == 0 }
        }
    }

    /// Refuses a read the cache cannot serve: labels it lacks, another day column, a wanted
    /// column missing or stored single- where multi-valued is wanted (or the reverse).
    private func checkReadable(as wanted: TableLayout, requireLabels: Bool, dayColumn: String?) throws {
        if requireLabels && !footer.hasLabels {
            throw DataError(file: path, column: wanted.clickColumn, "the cache has no labels (its source had no label columns)")
        }
        if let d = dayColumn, d != footer.dayColumn {
            throw DataError(file: path, column: d, "the cache was prepared without this day column (use --day-column with funnel prepare)")
        }
        let have = footer.layout
        for name in wanted.categorical {
            let cacheBag = have.multiValued.contains(name), wantBag = wanted.multiValued.contains(name)
            guard have.categorical.contains(name) else {
                throw DataError(file: path, column: name, "column is missing from the cache (the model was trained with it)")
            }
            guard cacheBag == wantBag else {
                throw DataError(file: path, column: name, wantBag ? "is single-valued in the cache, but the model reads it as multi-valued"
                                : "is multi-valued in the cache, but the model reads it as single-valued")
            }
        }
    }

    /// A checked group's columns, in the order `CacheWriter.appendGroup` wrote them: the wanted
    /// single-valued and dense columns into a table, the stored bags by name, the shared-record index.
    private func decode(_ bytes: Data, group g: Int, layout wanted: TableLayout, dayColumn: String?)
        -> (table: RawTable, bags: [String: RawBag], sharedIndex: [Int32]) {
        let rows = footer.groups[g].rows, values = footer.groups[g].values
        var table = RawTable(layout: wanted, hasLabels: footer.hasLabels, file: path)
        table.rowCount = rows
        var storedBags: [String: RawBag] = [:], sharedIndex: [Int32] = []
        bytes.withUnsafeBytes { raw in
            var reader = ByteCursor(raw)
            var keys: [String: [Int64]] = [:], dense: [String: [Float]] = [:]
            for name in footer.rowColumns { keys[name] = reader.take(Int64.self, rows) }
            for name in footer.layout.dense { dense[name] = reader.take(Float.self, rows) }
            if footer.hasLabels {
                let click = reader.take(UInt8.self, rows), conversion = reader.take(UInt8.self, rows)
                if table.hasLabels { table.click = click.map(Float.init); table.conversion = conversion.map(Float.init) }
            }
            if footer.dayColumn != nil {
                let days = reader.take(Int32.self, rows)
                if dayColumn != nil { table.days = days.map(Int.init) }
            }
            table.sourceRows = reader.take(Int32.self, rows)
            reader.align()
            if footer.shared != nil { sharedIndex = reader.take(Int32.self, rows); reader.align() }
            if footer.requestColumn != nil {
                table.requests = RequestKeys(keys: reader.take(Int64.self, rows), fields: requestFields.filter(wanted.categorical.contains))
            }
            for (b, name) in footer.layout.multiValued.enumerated() {
                var bag = RawBag()
                bag.offsets = reader.take(Int32.self, rows + 1); reader.align()
                bag.keys = reader.take(Int64.self, values![b]); reader.align()
                bag.weights = reader.take(Float.self, values![b]); reader.align()
                storedBags[name] = bag
            }
            table.keys = wanted.categorical.map { keys[$0] ?? [Int64](repeating: CategoryKey.empty, count: rows) }
            table.dense = wanted.dense.map { dense[$0] ?? [] }
        }
        return (table, storedBags, sharedIndex)
    }

    /// Calls `body(field, key, weight)` for every value of shared record `entry` (fields index
    /// `footer.shared.fields`).
    func forEachSharedValue(_ entry: Int, _ body: (Int, Int64, Float) -> Void) throws {
        guard let shared = footer.shared, entry < shared.entries else {
            throw DataError(file: path, "a row points to shared record \(entry), which the cache does not have: the cache is damaged")
        }
        try data.withUnsafeBytes { raw in
            let base = shared.offset
            let offsets = base + shared.offsetsAt
            let start = Int(raw.loadUnaligned(fromByteOffset: offsets + 8 * entry, as: Int64.self))
            let end = Int(raw.loadUnaligned(fromByteOffset: offsets + 8 * entry + 8, as: Int64.self))
            guard start >= 0, start + 8 <= end, end <= shared.offsetsAt else { throw DataError(file: path, "shared record \(entry) is damaged") }
            let n = Int(raw.loadUnaligned(fromByteOffset: base + start, as: Int64.self))
            func pad8(_ x: Int) -> Int { (x + 7) / 8 * 8 }
            let fieldsAt = base + start + 8, keysAt = fieldsAt + pad8(4 * n), weightsAt = keysAt + 8 * n
            guard n >= 0, start + 8 + pad8(4 * n) + 8 * n + pad8(4 * n) == end else { throw DataError(file: path, "shared record \(entry) is damaged") }
            for i in 0..<n {
                let f = Int(raw.loadUnaligned(fromByteOffset: fieldsAt + 4 * i, as: Int32.self))
                guard f >= 0 && f < shared.fields.count else { continue }
                body(f, raw.loadUnaligned(fromByteOffset: keysAt + 8 * i, as: Int64.self),
                     raw.loadUnaligned(fromByteOffset: weightsAt + 4 * i, as: Float.self))
            }
        }
    }

    /// Hands row group `g`'s mapped pages back to the kernel (a stream that has read the group
    /// keeps its resident set bounded; the pages are read again from the file if needed).
    public func release(group g: Int) {
        let info = footer.groups[g]
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (info.offset + page - 1) / page * page
        let end = (info.offset + groupBytes(g)) / page * page
        guard end > start else { return }
        data.withUnsafeBytes { raw in
            _ = madvise(UnsafeMutableRawPointer(mutating: raw.baseAddress! + start), end - start, MADV_DONTNEED)
        }
    }

    /// The whole cache as one table (one rank's rows of it with `shard`, filtered group by group).
    /// `requestLevel`: a request's own bags once per request (`group(requestLevel:)`).
    public func table(layout wanted: TableLayout, requireLabels: Bool, dayColumn: String?, shard: ReadOptions.Shard? = nil,
                      requestLevel: Bool = false) throws -> RawTable {
        var out = RawTable(layout: wanted, hasLabels: false, file: path)
        for g in 0..<footer.groups.count {
            let part = try group(g, layout: wanted, requireLabels: requireLabels, dayColumn: dayColumn, requestLevel: requestLevel).shard(shard)
            if shard != nil { release(group: g) }
            if g == 0 { out = part; continue }
            for k in 0..<out.keys.count { out.keys[k] += part.keys[k] }
            for k in 0..<out.dense.count { out.dense[k] += part.dense[k] }
            out.click += part.click
            out.conversion += part.conversion
            out.days += part.days
            out.sourceRows += part.sourceRows
            for b in 0..<out.bags.count { out.bags[b].append(part.bags[b]) }
            if let p = part.requests { out.requests?.keys += p.keys }
            if let p = part.requests?.perRequest { out.requests?.perRequest?.append(p) }
            out.rowCount += part.rowCount
        }
        out.report.rowsKept = out.rowCount
        return out
    }

    /// What `prepare` reports.
    public struct PrepareSummary: Codable, Sendable {
        public var rows: Int
        public var groups: Int
        public var sourceBytes: Int
        public var cacheBytes: Int
        public var seconds: Double
        public var megabytesPerSecond: Double
        public var peakRSSMegabytes: Double
        public var report: ReadReport
        /// Shared records written (raw Ali-CCP: common-feature lines kept).
        public var sharedRecords: Int? = nil

        enum CodingKeys: String, CodingKey {
            case rows, groups, seconds, report
            case sharedRecords = "shared_records"
            case sourceBytes = "source_bytes", cacheBytes = "cache_bytes"
            case megabytesPerSecond = "source_mb_per_second", peakRSSMegabytes = "peak_rss_mb"
        }
    }

    /// Converts a table file into a cache in one streaming pass over its rows (column roles
    /// inferred from the first `sampleRows` rows unless the options fix them; a PaddleRec file's
    /// fields need a first pass over every line), in row groups of `groupRows`. `format` is the
    /// file's (`TableFormats.detect` when nil). Multi-valued columns make a version 2 cache;
    /// otherwise version 1, as before.
    public static func prepare(source: String, format: (any TableFormat)? = nil, options given: ReadOptions, to out: String,
                               groupRows: Int = 1 << 16, sampleRows: Int = 1_000_000, force: Bool = false) throws -> PrepareSummary {
        guard groupRows >= 1 else { throw FunnelError("row groups need at least one row") }
        let start = Date()
        let format = try format ?? TableFormats.detect(source, options: given)
        guard !(format is CacheFormat) else { throw DataError(file: source, "is already a cache (funnel prepare reads a table file)") }
        let options = format.impliedOptions(given)
        // Every row is kept; each reading command applies its own --inconsistent policy.
        var readOptions = options
        readOptions.inconsistent = .keep
        let layout = try format.inferLayout(source, options: options, sampleRows: sampleRows)
        let hasLabels = try format.hasLabels(source, layout: layout, options: options)
        let sourceBytes = InputFile.size(source)
        let stream = { (sink: (RawTable) throws -> Void) throws -> ReadReport in
            try format.readChunks(source, layout: layout, options: readOptions, requireLabels: false, chunkRows: groupRows,
                                  releasePages: true, sink: sink)
        }
        // A request column's keys are a version 3 column; otherwise the oldest version that holds the table.
        let version = options.requestColumn != nil ? 3 : layout.multiValued.isEmpty ? 1 : 2
        let writer = try CacheWriter(out: out, version: version, force: force)
        var footer = Footer(version: version, layout: layout, hasLabels: hasLabels, dayColumn: options.dayColumn, rows: 0, groups: [],
                            report: ReadReport(file: source), textTokens: [:], source: source, sourceBytes: sourceBytes)
        (footer.requestColumn, footer.requestColumnFields) = (options.requestColumn, options.requestColumn.map { _ in options.requestFields })
        var tokens: [Int64: String] = [:]
        let report = try stream { chunk in
            footer.groups.append(try writer.appendGroup(chunk, footer: footer, sharedIndex: nil))
            tokens = chunk.textTokens
        }
        footer.rows = footer.groups.reduce(0) { $0 + $1.rows }
        footer.report = report
        footer.textTokens = Dictionary(uniqueKeysWithValues: tokens.map { (String($0.key), $0.value) })
        try writer.finish(footer: footer)
        return PrepareSummary(start: start, footer: footer, cacheBytes: writer.written)
    }
}

extension ColumnarCache.PrepareSummary {
    init(start: Date, footer: ColumnarCache.Footer, cacheBytes: Int) {
        let seconds = Date().timeIntervalSince(start)
        self.init(rows: footer.rows, groups: footer.groups.count, sourceBytes: footer.sourceBytes, cacheBytes: cacheBytes,
                  seconds: seconds, megabytesPerSecond: Double(footer.sourceBytes) / 1e6 / max(seconds, 1e-9),
                  peakRSSMegabytes: ResourceUsage.peakRSSMegabytes, report: footer.report)
    }
}
