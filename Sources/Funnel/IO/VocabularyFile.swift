import Foundation

/// `vocabularies.bin`: every vocabulary of a model directory in one binary file that is mapped,
/// never parsed — a model's load time and memory no longer grow with its id count the way
/// `model.json`'s JSON arrays did (81 MB for Ali-CCP's 3.9M ids).
///
/// Layout (little-endian): an 8-byte header length H, a JSON header of H bytes, then 64-byte
/// aligned sections. The header lists per field `name`, `count` (values), `slots` and the
/// absolute offsets of its sections:
/// - `keys`: `Int64 × count`, value i's category key (`CategoryKey.of`) — id i + 1;
/// - `slot_table`: `UInt32 × slots`, an open-addressing table of ids (0: empty), a key's home
///   slot `VocabularyFile.slot(of:slots:)` then linear probing; `slots` ≥ 1.5 × count + 1, so a
///   lookup ends within a few probes at an empty slot;
/// - `text_offsets` (`UInt64 × (count + 1)`) and `text` (`text_bytes` of UTF-8): the values'
///   text, absent when every value is a canonical integer (its text is its key's decimal form).
/// Fields sharing rows (`--share-embedding`) point at their owner's sections.
public enum VocabularyFile {
    public static let fileName = "vocabularies.bin"
    static let format = "funnel-vocabularies"
    static let version = 1

    struct Header: Codable {
        var format = VocabularyFile.format
        var version = VocabularyFile.version
        var fields: [Entry]
    }

    struct Entry: Codable {
        var name: String
        var count: Int
        var slots: Int
        var keys: Int
        var slotTable: Int
        var textOffsets: Int?
        var text: Int?
        var textBytes: Int?
        /// Usage per value (`UInt32` occurrences, `Int32` last-seen day) and pending ids
        /// (`Int64` keys, `UInt32` counts), when recorded.
        var occurrences: Int?
        var lastSeen: Int?
        var pendingCount: Int?
        var pendingKeys: Int?
        var pendingCounts: Int?

        enum CodingKeys: String, CodingKey {
            case name, count, slots, keys, occurrences
            case slotTable = "slot_table", textOffsets = "text_offsets", text, textBytes = "text_bytes"
            case lastSeen = "last_seen", pendingCount = "pending_count", pendingKeys = "pending_keys", pendingCounts = "pending_counts"
        }

        /// Every section offset moved by `shift`.
        func shifted(_ shift: Int) -> Entry {
            var e = self
            e.keys += shift; e.slotTable += shift
            for path in [\Entry.textOffsets, \.text, \.occurrences, \.lastSeen, \.pendingKeys, \.pendingCounts] {
                e[keyPath: path] = e[keyPath: path].map { $0 + shift }
            }
            return e
        }
    }

    /// A key's home slot among `slots`: SplitMix64 of the key scaled to the table (multiply-high).
    @inline(__always)
    static func slot(of key: Int64, slots: Int) -> Int {
        Int(HashBuckets.mix(key).multipliedFullWidth(by: UInt64(slots)).high)
    }

    static func slotCount(for count: Int) -> Int { count + count / 2 + 1 }

    /// The file for `fields` (hashed fields have no vocabulary and are left out).
    public static func encode(_ fields: [FieldVocabulary]) throws -> Data {
        var body = Data(), entries: [Entry] = [], placed: [String: Entry] = [:]
        for f in fields where f.hashBuckets == nil {
            if let owner = f.sharesRowsWith, var e = placed[owner], e.count == f.count {
                e.name = f.name
                entries.append(e)
                continue
            }
            let keys = (0..<f.count).map { f.key(at: $0) }
            let slots = slotCount(for: keys.count)
            var table = [UInt32](repeating: 0, count: slots)
            for (i, k) in keys.enumerated() {
                var s = slot(of: k, slots: slots)
                while table[s] != 0 { s = s + 1 == slots ? 0 : s + 1 }
                table[s] = UInt32(i + 1)
            }
            var e = Entry(name: f.name, count: keys.count, slots: slots, keys: section(keys, &body), slotTable: section(table, &body))
            if !f.isCanonicalIntegers {
                var offsets: [UInt64] = [0], text: [UInt8] = []
                for i in 0..<f.count {
                    text += f.value(at: i).utf8
                    offsets.append(UInt64(text.count))
                }
                e.textOffsets = section(offsets, &body)
                (e.text, e.textBytes) = (section(text, &body), text.count)
            }
            appendUsage(of: f, to: &e, &body)
            entries.append(e)
            placed[f.name] = e
        }
        return try assemble(entries, body)
    }

    /// Appends `values` as a section, padded to 64 bytes; its offset in `body`.
    private static func section<T>(_ values: [T], _ body: inout Data) -> Int {
        let at = body.count
        values.withUnsafeBytes { body.append(contentsOf: $0) }
        body.append(Data(count: (64 - body.count % 64) % 64))
        return at
    }

    /// The usage and pending sections of a field that records them.
    private static func appendUsage(of f: FieldVocabulary, to e: inout Entry, _ body: inout Data) {
        if f.hasUsage {
            let usage = (0..<f.count).map { f.usage(at: $0)! }
            e.occurrences = section(usage.map(\.occurrences), &body)
            e.lastSeen = section(usage.map(\.lastSeen), &body)
        }
        let pending = f.pending
        if !pending.isEmpty {
            e.pendingCount = pending.count
            e.pendingKeys = section(pending.map(\.key), &body)
            e.pendingCounts = section(pending.map(\.count), &body)
        }
    }

    /// Header length, header and sections, the sections' offsets made absolute.
    private static func assemble(_ entries: [Entry], _ body: Data) throws -> Data {
        func header(shift: Int) throws -> Data {
            let moved = entries.map { $0.shifted(shift) }
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            return try enc.encode(Header(fields: moved))
        }
        // The offsets' digits can change the header's length: settle on a fixed point.
        var shift = 0
        var h = try header(shift: 0)
        while true {
            let start = (8 + h.count + 63) / 64 * 64
            if start == shift { break }
            shift = start
            h = try header(shift: shift)
        }
        var out = Data()
        var length = UInt64(h.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(h)
        out.append(Data(count: shift - out.count))
        out.append(body)
        return out
    }
}

extension VocabularyFile {
    /// The vocabularies of a mapped file by field name, every section checked to lie inside the
    /// file, aligned and sized for its counts; text offsets checked to be ordered. Nothing else
    /// is read: keys and slots are touched by the lookups that use them.
    static func open(_ region: MappedRegion, path: String) throws -> [String: MappedVocabulary] {
        let bytes = region.bytes
        guard bytes.count >= 8 else { throw DataError(file: path, "too short for a vocabulary file") }
        let length = Int(min(UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self)), UInt64(Int32.max)))
        guard length <= min(bytes.count - 8, 64 << 20) else { throw DataError(file: path, "header length \(length) is out of range") }
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: Data(bytes[8..<(8 + length)]))
        } catch {
            throw DataError(file: path, "not a Funnel vocabulary file: \(DecodingErrorText.describe(error))")
        }
        guard header.format == format, header.version == version else {
            throw DataError(file: path, "format \(header.format) version \(header.version); this funnel reads \(format) version \(version)")
        }
        var out: [String: MappedVocabulary] = [:]
        for e in header.fields {
            guard out[e.name] == nil else { throw DataError(file: path, "field '\(e.name)' appears twice") }
            out[e.name] = try vocabulary(e, in: region, path: path)
        }
        return out
    }

    private static func vocabulary(_ e: Entry, in region: MappedRegion, path: String) throws -> MappedVocabulary {
        let size = region.count
        func check(_ ok: Bool, _ what: String) throws { if !ok { throw DataError(file: path, "field '\(e.name)': \(what)") } }
        func section(_ at: Int, _ bytes: Int, alignment: Int) -> Bool {
            at >= 0 && at % alignment == 0 && bytes >= 0 && at <= size && bytes <= size - at
        }
        try check((0..<Int(Int32.max)).contains(e.count), "count \(e.count) is out of range")
        try check(e.slots > e.count && e.slots <= Int(UInt32.max), "\(e.slots) slots cannot hold \(e.count) ids")
        try check(section(e.keys, e.count * 8, alignment: 8), "keys lie outside the file")
        try check(section(e.slotTable, e.slots * 4, alignment: 4), "the slot table lies outside the file")
        let base = region.base
        var text: (offsets: UnsafePointer<UInt64>, bytes: UnsafePointer<UInt8>)?
        if let at = e.textOffsets {
            guard let t = e.text, let n = e.textBytes else { throw DataError(file: path, "field '\(e.name)': text offsets without text") }
            try check(section(at, (e.count + 1) * 8, alignment: 8) && section(t, n, alignment: 1), "text lies outside the file")
            let offsets = (base + at).assumingMemoryBound(to: UInt64.self)
            var last: UInt64 = 0
            for i in 0...e.count {
                try check(offsets[i] >= last && offsets[i] <= UInt64(n) && (i > 0 || offsets[0] == 0), "text offsets are out of order")
                last = offsets[i]
            }
            text = (offsets, (base + t).assumingMemoryBound(to: UInt8.self))
        }
        var usage: (occurrences: UnsafePointer<UInt32>, lastSeen: UnsafePointer<Int32>)?
        if let o = e.occurrences, let l = e.lastSeen {
            try check(section(o, e.count * 4, alignment: 4) && section(l, e.count * 4, alignment: 4), "usage lies outside the file")
            usage = ((base + o).assumingMemoryBound(to: UInt32.self), (base + l).assumingMemoryBound(to: Int32.self))
        }
        var pending: (count: Int, keys: UnsafePointer<Int64>, counts: UnsafePointer<UInt32>)?
        if let n = e.pendingCount, let k = e.pendingKeys, let c = e.pendingCounts {
            try check(n >= 0 && n <= size / 12 && section(k, n * 8, alignment: 8) && section(c, n * 4, alignment: 4), "pending ids lie outside the file")
            pending = (n, (base + k).assumingMemoryBound(to: Int64.self), (base + c).assumingMemoryBound(to: UInt32.self))
        }
        return MappedVocabulary(region: region, count: e.count, keys: (base + e.keys).assumingMemoryBound(to: Int64.self),
                                slots: (base + e.slotTable).assumingMemoryBound(to: UInt32.self), slotCount: e.slots, text: text,
                                usage: usage, pending: pending)
    }
}

/// One field's vocabulary in a mapped `vocabularies.bin` (`VocabularyFile`).
public struct MappedVocabulary: @unchecked Sendable {
    let region: MappedRegion
    public let count: Int
    let keys: UnsafePointer<Int64>
    let slots: UnsafePointer<UInt32>
    let slotCount: Int
    let text: (offsets: UnsafePointer<UInt64>, bytes: UnsafePointer<UInt8>)?
    let usage: (occurrences: UnsafePointer<UInt32>, lastSeen: UnsafePointer<Int32>)?
    let pending: (count: Int, keys: UnsafePointer<Int64>, counts: UnsafePointer<UInt32>)?

    /// The id (1…count) of a key, 0 when absent. Probing stops at an empty slot, and after every
    /// slot at the latest (a forged table without one cannot loop forever).
    @inline(__always)
    func id(of key: Int64) -> Int32 {
        var s = VocabularyFile.slot(of: key, slots: slotCount)
        for _ in 0..<slotCount {
            let id = Int(slots[s])
            if id == 0 { return 0 }
            if id <= count && keys[id - 1] == key { return Int32(id) }
            s = s + 1 == slotCount ? 0 : s + 1
        }
        return 0
    }

    func key(at i: Int) -> Int64 { keys[i] }

    func value(at i: Int) -> String {
        guard let text else { return String(keys[i]) }
        let a = Int(text.offsets[i]), b = Int(text.offsets[i + 1])
        return String(decoding: UnsafeBufferPointer(start: text.bytes + a, count: b - a), as: UTF8.self)
    }
}
