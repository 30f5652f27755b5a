/// Hashed ids: fields whose values map to a fixed number of buckets by a stable hash instead of
/// a vocabulary — for id spaces too large for a vocabulary, or arriving in a stream. A field's
/// table then has `buckets + 1` rows: row 0 for the empty cell, rows 1…buckets for the values.
/// Distinct training values that share a bucket (collisions) are counted and reported.
public struct HashBuckets: Equatable, Sendable {
    /// Buckets of every categorical field not named in `perField` (nil: vocabularies).
    public var all: Int?
    public var perField: [String: Int] = [:]

    public init(all: Int? = nil, perField: [String: Int] = [:]) {
        self.all = all
        self.perField = perField
    }

    public var isEmpty: Bool { all == nil && perField.isEmpty }

    /// The most buckets a field may have (its table must stay addressable with 32-bit ids).
    public static let limit = 1 << 28

    public func buckets(for field: String) -> Int? { perField[field] ?? all }

    /// Per-field buckets must name categorical fields of the table.
    public func check(_ layout: TableLayout, file: String) throws {
        for name in perField.keys.sorted() where !layout.categorical.contains(name) {
            throw DataError(file: file, column: name, "hash buckets name a column that is not a categorical field")
        }
    }

    /// Parses `N` (every field), `FIELD=N` entries, or both, comma-separated: `4096,205=1000000`.
    public static func parse(_ text: String) throws -> HashBuckets {
        var out = HashBuckets()
        for part in text.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard let n = Int(pieces.last ?? ""), (1...limit).contains(n), !(pieces.count == 2 && pieces[0].isEmpty) else {
                throw FunnelError("hash buckets must be N or FIELD=N with 1 ≤ N ≤ \(limit), comma-separated; got '\(part)'")
            }
            if pieces.count == 2 { out.perField[pieces[0]] = n } else { out.all = n }
        }
        return out
    }

    /// The bucket (1…n) of a key: SplitMix64 of the category key, which is itself the integer
    /// value or a hash of the text — the same on every machine and run.
    @inline(__always)
    public static func bucket(_ key: Int64, _ n: Int) -> Int32 {
        Int32(1 + mix(key) % UInt64(n))
    }

    /// SplitMix64's finaliser of a key: every bit of the key moves every bit of the result
    /// (also the home slot of `vocabularies.bin`'s id table).
    @inline(__always)
    static func mix(_ key: Int64) -> UInt64 {
        var z = UInt64(bitPattern: key) &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
