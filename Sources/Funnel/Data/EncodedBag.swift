/// The values of one multi-valued ("bag") field for every row of a dataset, CSR: row r's values
/// are `ids[offsets[r]..<offsets[r+1]]` (global embedding ids, field offset added) with their
/// `weights` alongside. The field's slot in `EncodedDataset.ids` is unused for such a field.
public struct EncodedBag: Sendable, Equatable {
    /// The categorical field (index into the schema's fields) the bag fills.
    public var field: Int
    public var offsets: [Int32]
    public var ids: [Int32]
    public var weights: [Float]

    public init(field: Int, offsets: [Int32], ids: [Int32], weights: [Float]) {
        precondition(offsets.first == 0 && Int(offsets.last!) == ids.count && ids.count == weights.count)
        self.field = field
        self.offsets = offsets
        self.ids = ids
        self.weights = weights
    }

    /// The bag of the given rows, in order.
    func subset(_ rows: [Int32]) -> EncodedBag {
        var offsets: [Int32] = [0], ids: [Int32] = [], weights: [Float] = []
        // Exact capacities: arrays grown by doubling would hold up to twice the values, which a
        // streaming shuffle buffer sized by --memory-budget cannot afford.
        let total = rows.reduce(0) { $0 + Int(self.offsets[Int($1) + 1] - self.offsets[Int($1)]) }
        offsets.reserveCapacity(rows.count + 1)
        ids.reserveCapacity(total)
        weights.reserveCapacity(total)
        for r in rows {
            let range = Int(self.offsets[Int(r)])..<Int(self.offsets[Int(r) + 1])
            ids.append(contentsOf: self.ids[range])
            weights.append(contentsOf: self.weights[range])
            offsets.append(Int32(ids.count))
        }
        return EncodedBag(field: field, offsets: offsets, ids: ids, weights: weights)
    }

    /// Several datasets' bags of one field, one after another.
    static func concatenated(_ parts: [EncodedBag]) -> EncodedBag {
        var offsets: [Int32] = [0], ids: [Int32] = [], weights: [Float] = []
        let total = parts.reduce(0) { $0 + $1.ids.count }
        offsets.reserveCapacity(parts.reduce(1) { $0 + $1.offsets.count - 1 })
        ids.reserveCapacity(total)
        weights.reserveCapacity(total)
        for p in parts {
            let base = Int32(ids.count)
            offsets.append(contentsOf: p.offsets.dropFirst().map { $0 + base })
            ids.append(contentsOf: p.ids)
            weights.append(contentsOf: p.weights)
        }
        return EncodedBag(field: parts[0].field, offsets: offsets, ids: ids, weights: weights)
    }
}
