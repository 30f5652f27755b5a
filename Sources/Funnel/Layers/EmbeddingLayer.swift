/// Field-wise embedding lookup plus dense pass-through: the input layer of every tower.
///
/// One table holds all fields' rows; a batch arrives as global row ids `[B × fields]`
/// (field offset already added by the encoder). The layer's output row is
/// `[emb(field 0) | … | emb(field F−1) | dense features]`, width `fields·dim + denseCount`.
/// Backward is sparse: it collects the touched rows once each, in first-touch order, so an
/// update costs O(batch·fields·dim) however large the vocabulary.
public final class EmbeddingLayer {
    public let fields: Int
    public let dim: Int
    public let denseCount: Int
    public let rows: Int
    public let table: Parameter
    public var outputWidth: Int { fields * dim + denseCount }

    /// Row → slot in `table.rowGradients` for the current batch, −1 when untouched.
    private var slotOfRow: [Int32]

    public init(name: String, rows: Int, fields: Int, dim: Int, denseCount: Int, maxBatch: Int,
                rng: inout RandomSource) {
        self.fields = fields
        self.dim = dim
        self.denseCount = denseCount
        self.rows = rows
        table = Parameter(name: name, shape: [rows, dim], sparse: true,
                          maxTouchedRows: min(rows, maxBatch * fields))
        slotOfRow = [Int32](repeating: -1, count: rows)
        // Small normal initialisation: keeps the first layer's pre-activations O(1) for any field count.
        for i in 0..<table.count { table.value[i] = Float(rng.normal() * 0.05) }
    }

    public func forward(ids: UnsafePointer<Int32>, dense: UnsafePointer<Float>, batch: Int,
                        into out: UnsafeMutablePointer<Float>) {
        let w = table.value.base
        let width = outputWidth
        for b in 0..<batch {
            let row = out + b * width
            let rid = ids + b * fields
            for f in 0..<fields {
                (row + f * dim).update(from: w + Int(rid[f]) * dim, count: dim)
            }
            if denseCount > 0 {
                (row + fields * dim).update(from: dense + b * denseCount, count: denseCount)
            }
        }
    }

    /// Collects the sparse gradient of the table from `dOut [B × outputWidth]`.
    public func backward(ids: UnsafePointer<Int32>, dOut: UnsafePointer<Float>, batch: Int) {
        table.touchedRows.removeAll(keepingCapacity: true)
        let g = table.rowGradients.base
        let width = outputWidth
        slotOfRow.withUnsafeMutableBufferPointer { slots in
            for b in 0..<batch {
                let src = dOut + b * width
                let rid = ids + b * fields
                for f in 0..<fields {
                    let r = Int(rid[f])
                    var s = slots[r]
                    if s < 0 {
                        s = Int32(table.touchedRows.count)
                        slots[r] = s
                        table.touchedRows.append(Int32(r))
                        (g + Int(s) * dim).update(from: src + f * dim, count: dim)
                    } else {
                        let dst = g + Int(s) * dim
                        let from = src + f * dim
                        for d in 0..<dim { dst[d] += from[d] }
                    }
                }
            }
            for r in table.touchedRows { slots[Int(r)] = -1 }
        }
    }
}
