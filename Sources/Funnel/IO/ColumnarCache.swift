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
/// Every group and the footer carry an FNV-1a checksum, verified when read; the file is written
/// to a temporary name, fsynced and renamed, so a reader sees a complete cache or none.
public final class ColumnarCache {
    public static let magic: [UInt8] = Array("FUNNELC".utf8) + [1]
    static let trailerMagic: [UInt8] = Array("FUNNELCE".utf8)
    public static let currentVersion = 1

    public struct Group: Codable, Sendable {
        public var offset: Int
        public var rows: Int
        public var checksum: String
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

        enum CodingKeys: String, CodingKey {
            case version, layout, rows, groups, report, source
            case hasLabels = "has_labels", dayColumn = "day_column", textTokens = "text_tokens", sourceBytes = "source_bytes"
        }
    }

    public let path: String
    public let footer: Footer
    private let data: Data

    /// True when `path` starts with the cache magic (any version).
    public static func isCache(_ path: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        let head = (try? h.read(upToCount: 7)) ?? Data()
        return Array(head) == Array(magic.prefix(7))
    }

    /// Opens and validates a cache: magic, version, trailer, footer checksum and shape.
    public init(path: String) throws {
        self.path = path
        let bytes: Data
        do { bytes = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw DataError(file: path, "cannot read: \(error.localizedDescription)")
        }
        let n = bytes.count
        guard n >= 8 + 32, Array(bytes.prefix(7)) == Array(Self.magic.prefix(7)) else {
            throw DataError(file: path, "not a Funnel cache (run `funnel prepare` to make one)")
        }
        guard Int(bytes[7]) == Self.currentVersion else {
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
        guard footerOffset >= 8, footerLength > 0, footerOffset <= n, footerOffset + footerLength == n - 32 else {
            throw DataError(file: path, "cache trailer is damaged")
        }
        let footerBytes = bytes.subdata(in: footerOffset..<(footerOffset + footerLength))
        guard Checksum.fnv64Words(footerBytes) == footerSum else { throw DataError(file: path, "cache footer checksum mismatch: the file is damaged") }
        let f: Footer
        do { f = try JSONDecoder().decode(Footer.self, from: footerBytes) } catch {
            throw DataError(file: path, "cache footer is unreadable: \(error)")
        }
        var expected = 8
        for g in f.groups {
            guard g.offset == expected, g.rows > 0 else { throw DataError(file: path, "cache row groups are inconsistent") }
            expected += Self.groupBytes(rows: g.rows, footer: f)
        }
        guard expected == footerOffset, f.groups.reduce(0, { $0 + $1.rows }) == f.rows else {
            throw DataError(file: path, "cache row groups do not add up to the file")
        }
        data = bytes
        footer = f
    }

    public var layout: TableLayout { footer.layout }
    public var rowCount: Int { footer.rows }
    public var byteCount: Int { data.count }

    static func groupBytes(rows: Int, footer: Footer) -> Int {
        var b = rows * (8 * footer.layout.categorical.count + 4 * footer.layout.dense.count + 4)
        if footer.hasLabels { b += 2 * rows }
        if footer.dayColumn != nil { b += 4 * rows }
        return (b + 7) / 8 * 8
    }

    /// Row group `g` as a table with `layout`'s columns (picked by name; all must be in the cache).
    public func group(_ g: Int, layout wanted: TableLayout, requireLabels: Bool, dayColumn: String?) throws -> RawTable {
        let info = footer.groups[g]
        let rows = info.rows, size = Self.groupBytes(rows: rows, footer: footer)
        let bytes = data.subdata(in: info.offset..<(info.offset + size))
        guard Checksum.fnv64Hex(words: bytes) == info.checksum else {
            throw DataError(file: path, "row group \(g) checksum mismatch: the cache is damaged; run `funnel prepare` again")
        }
        if requireLabels && !footer.hasLabels {
            throw DataError(file: path, column: wanted.clickColumn, "the cache has no labels (its source had no label columns)")
        }
        if let d = dayColumn, d != footer.dayColumn {
            throw DataError(file: path, column: d, "the cache was prepared without this day column (use --day-column with funnel prepare)")
        }
        let have = footer.layout
        var table = RawTable(layout: wanted, hasLabels: footer.hasLabels, file: path)
        table.rowCount = rows
        bytes.withUnsafeBytes { raw in
            var at = 0
            func take<T>(_: T.Type) -> [T] {
                let out = Array(UnsafeBufferPointer(start: (raw.baseAddress! + at).assumingMemoryBound(to: T.self), count: rows))
                at += rows * MemoryLayout<T>.size
                return out
            }
            var keys: [String: [Int64]] = [:], dense: [String: [Float]] = [:]
            for name in have.categorical { keys[name] = take(Int64.self) }
            for name in have.dense { dense[name] = take(Float.self) }
            if footer.hasLabels {
                let click = take(UInt8.self), conversion = take(UInt8.self)
                if table.hasLabels { table.click = click.map(Float.init); table.conversion = conversion.map(Float.init) }
            }
            if footer.dayColumn != nil {
                let days = take(Int32.self)
                if dayColumn != nil { table.days = days.map(Int.init) }
            }
            table.sourceRows = take(Int32.self)
            table.keys = wanted.categorical.map { keys[$0] ?? [] }
            table.dense = wanted.dense.map { dense[$0] ?? [] }
        }
        for (k, name) in wanted.categorical.enumerated() where table.keys[k].count != rows {
            throw DataError(file: path, column: name, "column is missing from the cache (the model was trained with it)")
        }
        for (k, name) in wanted.dense.enumerated() where table.dense[k].count != rows {
            throw DataError(file: path, column: name, "column is missing from the cache (the model was trained with it)")
        }
        for (k, v) in footer.textTokens { if let key = Int64(k) { table.textTokens[key] = v } }
        table.report = footer.report
        table.report.rowsKept = rows
        return table
    }

    /// Hands row group `g`'s mapped pages back to the kernel (a stream that has read the group
    /// keeps its resident set bounded; the pages are read again from the file if needed).
    public func release(group g: Int) {
        let info = footer.groups[g]
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (info.offset + page - 1) / page * page
        let end = (info.offset + Self.groupBytes(rows: info.rows, footer: footer)) / page * page
        guard end > start else { return }
        data.withUnsafeBytes { raw in
            _ = madvise(UnsafeMutableRawPointer(mutating: raw.baseAddress! + start), end - start, MADV_DONTNEED)
        }
    }

    /// The whole cache as one table.
    public func table(layout wanted: TableLayout, requireLabels: Bool, dayColumn: String?) throws -> RawTable {
        var out = RawTable(layout: wanted, hasLabels: false, file: path)
        for g in 0..<footer.groups.count {
            let part = try group(g, layout: wanted, requireLabels: requireLabels, dayColumn: dayColumn)
            if g == 0 { out = part; continue }
            for k in 0..<out.keys.count { out.keys[k] += part.keys[k] }
            for k in 0..<out.dense.count { out.dense[k] += part.dense[k] }
            out.click += part.click
            out.conversion += part.conversion
            out.days += part.days
            out.sourceRows += part.sourceRows
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

        enum CodingKeys: String, CodingKey {
            case rows, groups, seconds, report
            case sourceBytes = "source_bytes", cacheBytes = "cache_bytes"
            case megabytesPerSecond = "source_mb_per_second", peakRSSMegabytes = "peak_rss_mb"
        }
    }

    /// Converts a CSV/TSV into a cache in one streaming pass (column roles inferred from the first
    /// `sampleRows` rows unless the options fix them), in row groups of `groupRows`.
    public static func prepare(source: String, options: ReadOptions, to out: String, groupRows: Int = 1 << 16,
                               sampleRows: Int = 1_000_000, force: Bool = false) throws -> PrepareSummary {
        guard groupRows >= 1 else { throw FunnelError("row groups need at least one row") }
        let start = Date()
        let csv = try CSVFile(path: source, delimiter: options.delimiter)
        let layout = try TableReader.inferLayout(csv, options: options, sampleRows: sampleRows)
        let hasLabels = csv.header.contains(layout.clickColumn) && csv.header.contains(layout.conversionColumn)
        let url = URL(fileURLWithPath: out)
        let tmp = url.deletingLastPathComponent().path + "/.\(url.lastPathComponent).tmp-\(getpid())"
        guard options.multiValued.isEmpty, !PaddleRecLayout.matches(source) else {
            throw FunnelError("multi-valued columns are not stored in caches yet; train on the CSV/TSV itself")
        }
        try OutputPath.checkFile(out, force: force)
        unlink(tmp)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw FunnelError("\(tmp): cannot create: \(String(cString: strerror(errno)))") }
        var closed = false
        defer { if !closed { close(fd); unlink(tmp) } }
        var written = 0
        func write(_ bytes: UnsafeRawBufferPointer) throws {
            var off = 0
            while off < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + off, bytes.count - off)
                if n < 0 { if errno == EINTR { continue }; throw FunnelError("\(out): write failed: \(String(cString: strerror(errno)))") }
                off += n
            }
            written += bytes.count
        }
        try magic.withUnsafeBytes { try write($0) }
        var groups: [Group] = []
        var buffer: [UInt8] = []
        var tokens: [Int64: String] = [:]
        // Every row is kept; each reading command applies its own --inconsistent policy.
        var readOptions = options
        readOptions.inconsistent = .keep
        let report = try TableReader.readChunks(csv, layout: layout, options: readOptions, requireLabels: false,
                                                chunkRows: groupRows, releasePages: true) { chunk in
            buffer.removeAll(keepingCapacity: true)
            func append<T>(_ values: [T]) { values.withUnsafeBytes { buffer.append(contentsOf: $0) } }
            for k in 0..<layout.categorical.count { append(chunk.keys[k]) }
            for k in 0..<layout.dense.count { append(chunk.dense[k]) }
            if hasLabels { append(chunk.click.map { UInt8($0) }); append(chunk.conversion.map { UInt8($0) }) }
            if options.dayColumn != nil { append(chunk.days.map { Int32(truncatingIfNeeded: $0) }) }
            append(chunk.sourceRows)
            while buffer.count % 8 != 0 { buffer.append(0) }
            let sum = buffer.withUnsafeBytes { Checksum.fnv64Hex(words: $0) }
            groups.append(Group(offset: written, rows: chunk.rowCount, checksum: sum))
            try buffer.withUnsafeBytes { try write($0) }
            tokens = chunk.textTokens
        }
        let footer = Footer(version: currentVersion, layout: layout, hasLabels: hasLabels, dayColumn: options.dayColumn,
                            rows: groups.reduce(0) { $0 + $1.rows }, groups: groups, report: report,
                            textTokens: Dictionary(uniqueKeysWithValues: tokens.map { (String($0.key), $0.value) }),
                            source: source, sourceBytes: csv.byteCount)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let footerBytes = try enc.encode(footer)
        let footerOffset = written
        try footerBytes.withUnsafeBytes { try write($0) }
        var trailer = [UInt64(footerOffset), UInt64(footerBytes.count), Checksum.fnv64Words(footerBytes)].map(\.littleEndian)
        try trailer.withUnsafeMutableBytes { try write(UnsafeRawBufferPointer($0)) }
        try trailerMagic.withUnsafeBytes { try write($0) }
        guard fsync(fd) == 0 else { throw FunnelError("\(out): fsync failed: \(String(cString: strerror(errno)))") }
        close(fd)
        closed = true
        guard rename(tmp, out) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(tmp)
            throw FunnelError("\(out): cannot rename into place: \(why)")
        }
        let dfd = open(url.deletingLastPathComponent().path, O_RDONLY)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
        let seconds = Date().timeIntervalSince(start)
        return PrepareSummary(rows: footer.rows, groups: groups.count, sourceBytes: csv.byteCount, cacheBytes: written,
                              seconds: seconds, megabytesPerSecond: Double(csv.byteCount) / 1e6 / max(seconds, 1e-9),
                              peakRSSMegabytes: ResourceUsage.peakRSSMegabytes, report: report)
    }
}

extension Checksum {
    /// FNV-1a over 64-bit little-endian words (then the tail bytes): the cache's checksum, eight
    /// times faster than byte-wise FNV on gigabytes of columns.
    public static func fnv64Words(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        let words = bytes.count / 8
        for i in 0..<words {
            h = (h ^ UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))) &* 0x0000_0100_0000_01B3
        }
        for i in (words * 8)..<bytes.count { h = (h ^ UInt64(bytes[i])) &* 0x0000_0100_0000_01B3 }
        return h
    }

    public static func fnv64Words(_ data: Data) -> UInt64 { data.withUnsafeBytes { fnv64Words($0) } }

    public static func fnv64Hex(words data: Data) -> String { data.withUnsafeBytes { fnv64Hex(words: $0) } }

    public static func fnv64Hex(words bytes: UnsafeRawBufferPointer) -> String { String(format: "%016llx", fnv64Words(bytes)) }
}
