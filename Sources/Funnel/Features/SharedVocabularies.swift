/// Categorical fields that share one vocabulary and one block of embedding rows
/// (`--share-embedding 109_14,206`): a value means the same row whichever of the group's fields it
/// appears in — a behaviour list and the candidate field it is compared with (DIN's
/// goods/category ids), so target attention compares embeddings of one space. The group's first
/// field in the table's column order owns the rows; its vocabulary is fitted on the values of
/// every field of the group together (counted for `--min-count` over all of them).
public struct SharedVocabularies: Sendable, Equatable {
    public var groups: [[String]]

    public init(groups: [[String]] = []) { self.groups = groups }

    /// `A,B[,…]` per flag; a group names at least two fields, a field belongs to one group.
    public static func parse(_ specs: [String]) throws -> SharedVocabularies {
        var groups: [[String]] = [], seen = Set<String>()
        for spec in specs {
            let names = spec.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard names.count >= 2, !names.contains(where: \.isEmpty) else {
                throw FunnelError("--share-embedding takes two or more fields separated by commas, e.g. 109_14,206; got '\(spec)'")
            }
            for n in names {
                guard seen.insert(n).inserted else { throw FunnelError("--share-embedding names '\(n)' twice") }
            }
            groups.append(names)
        }
        return SharedVocabularies(groups: groups)
    }

    /// Every field a categorical column of `layout`, none hashed.
    public func check(_ layout: TableLayout, hashing: HashBuckets) throws {
        for name in groups.joined() {
            guard layout.categorical.contains(name) else {
                throw FunnelError("--share-embedding: '\(name)' is not a categorical column of the data")
            }
            guard hashing.buckets(for: name) == nil else {
                throw FunnelError("--share-embedding: '\(name)' is hashed (--hash-buckets); shared rows need a vocabulary")
            }
        }
    }

    /// Field (by name) → the field that owns its rows, for every non-owning member: the owner is
    /// the group's field that comes first in `categorical`.
    public func owners(in categorical: [String]) -> [String: String] {
        var out: [String: String] = [:]
        for g in groups {
            let ordered = g.sorted { (categorical.firstIndex(of: $0) ?? .max) < (categorical.firstIndex(of: $1) ?? .max) }
            for member in ordered.dropFirst() { out[member] = ordered[0] }
        }
        return out
    }
}
