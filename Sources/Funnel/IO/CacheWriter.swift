import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes a `ColumnarCache` file in one streaming pass: magic, then (version 2) the shared
/// section, then row groups, then footer and trailer. The bytes go to a temporary name beside
/// the output (`AtomicFile.Stream`), fsynced and renamed into place by `finish`, so a reader sees
/// a complete cache or none; a writer dropped before `finish` leaves nothing behind.
final class CacheWriter {
    private let file: AtomicFile.Stream
    /// Shared-section state: start offset, record offsets (relative), running checksum.
    private var sharedStart: Int?
    private var sharedOffsets: [Int64] = []
    private var sharedSum = Checksum.WordStream()

    init(out: String, version: Int, force: Bool) throws {
        file = try AtomicFile.Stream(out, force: force)
        try write(Array(ColumnarCache.magic.prefix(7)) + [UInt8(version)])
    }

    var written: Int { file.written }

    func write(_ bytes: UnsafeRawBufferPointer) throws { try file.write(bytes) }

    func write(_ bytes: [UInt8]) throws { try file.write(bytes) }

    // MARK: - Shared section (version 2): records that many rows point to

    /// Appends one shared record (e.g. the common features of one Ali-CCP md5): its values as
    /// (index into the section's field names, key, weight). Record layout, each array padded to
    /// 8 bytes: Int64 count, Int32 fields, Int64 keys, Float32 weights.
    func appendSharedRecord(fields: [Int32], keys: [Int64], weights: [Float]) throws {
        if sharedStart == nil { sharedStart = written }
        sharedOffsets.append(Int64(written - sharedStart!))
        var buffer: [UInt8] = []
        buffer.reserveCapacity(8 + 16 * keys.count + 16)
        CacheWriter.append([Int64(keys.count)], to: &buffer)
        CacheWriter.append(fields, to: &buffer)
        CacheWriter.append(keys, to: &buffer)
        CacheWriter.append(weights, to: &buffer)
        buffer.withUnsafeBytes { sharedSum.update($0) }
        try write(buffer)
    }

    /// Closes the shared section (writes its record offsets) and describes it for the footer.
    func finishShared(fields: [String], source: String) throws -> ColumnarCache.SharedSection {
        let start = sharedStart ?? written
        sharedStart = start
        let offsetsAt = written - start
        sharedOffsets.append(Int64(offsetsAt))  // end of the last record: record e spans offsets[e]..<offsets[e+1]
        var buffer: [UInt8] = []
        CacheWriter.append(sharedOffsets, to: &buffer)
        buffer.withUnsafeBytes { sharedSum.update($0) }
        try write(buffer)
        return ColumnarCache.SharedSection(offset: start, bytes: written - start, entries: sharedOffsets.count - 1,
                                           offsetsAt: offsetsAt, checksum: sharedSum.hex,
                                           fields: fields, source: source)
    }

    // MARK: - Row groups

    /// Appends one row group: the row-stored single-valued columns, dense columns, labels, days,
    /// source rows (version 1 columns), then the shared-record index, the request keys (version 3) and each multi-valued
    /// column's CSR (offsets, keys, weights) when the cache has them.
    func appendGroup(_ chunk: RawTable, footer: ColumnarCache.Footer, sharedIndex: [Int32]?) throws -> ColumnarCache.Group {
        var buffer: [UInt8] = []
        func add<T>(_ values: [T]) { values.withUnsafeBytes { buffer.append(contentsOf: $0) } }
        let layout = footer.layout
        for k in footer.rowColumnIndices { add(chunk.keys[k]) }
        for k in 0..<layout.dense.count { add(chunk.dense[k]) }
        if footer.hasLabels { add(chunk.click.map { UInt8($0) }); add(chunk.conversion.map { UInt8($0) }) }
        if footer.dayColumn != nil { add(chunk.days.map { Int32(truncatingIfNeeded: $0) }) }
        add(chunk.sourceRows)
        CacheWriter.pad(&buffer)
        if footer.shared != nil {
            precondition(sharedIndex?.count == chunk.rowCount)
            CacheWriter.append(sharedIndex!, to: &buffer)
        }
        if let column = footer.requestColumn {
            guard let requests = chunk.requests, requests.keys.count == chunk.rowCount else {
                throw DataError(file: footer.source, column: column, "a request column is read from CSV/TSV tables only")
            }
            CacheWriter.append(requests.keys, to: &buffer)
        }
        var values: [Int] = []
        for bag in chunk.bags {
            CacheWriter.append(bag.offsets, to: &buffer)
            CacheWriter.append(bag.keys, to: &buffer)
            CacheWriter.append(bag.weights, to: &buffer)
            values.append(bag.keys.count)
        }
        let sum = buffer.withUnsafeBytes { Checksum.fnv64Hex(words: $0) }
        let group = ColumnarCache.Group(offset: written, rows: chunk.rowCount, checksum: sum, values: footer.version >= 2 ? values : nil)
        precondition(buffer.count == ColumnarCache.groupBytes(rows: chunk.rowCount, values: values, footer: footer))
        try write(buffer)
        return group
    }

    // MARK: - Footer, trailer, rename

    func finish(footer: ColumnarCache.Footer) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let footerBytes = try enc.encode(footer)
        let footerOffset = written
        try footerBytes.withUnsafeBytes { try write($0) }
        var trailer = [UInt64(footerOffset), UInt64(footerBytes.count), Checksum.fnv64Words(footerBytes)].map(\.littleEndian)
        try trailer.withUnsafeMutableBytes { try write(UnsafeRawBufferPointer($0)) }
        try write(ColumnarCache.trailerMagic)
        try file.finish()
    }

    static func pad(_ buffer: inout [UInt8]) {
        while buffer.count % 8 != 0 { buffer.append(0) }
    }

    /// Appends an array's bytes, then zero padding to 8 bytes.
    static func append<T>(_ values: [T], to buffer: inout [UInt8]) {
        values.withUnsafeBytes { buffer.append(contentsOf: $0) }
        pad(&buffer)
    }
}
