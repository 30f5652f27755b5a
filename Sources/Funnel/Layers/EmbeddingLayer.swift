import CKernels

/// Field-wise embedding lookup plus dense pass-through: the input layer of every tower.
///
/// One table holds all fields' rows; a batch arrives as global row ids `[B × fields]`
/// (field offset already added by the encoder). The layer's output row is
/// `[emb(field 0) | … | emb(field F−1) | dense features]`, width `fields·dim + denseCount`.
/// Backward is sparse: it collects the touched rows once each, in first-touch order, so an
/// update costs O(batch·fields·dim) however large the vocabulary.
///
/// A multi-valued field (`bagFields`) fills its slot with the pooled embedding of its values
/// (`EmbeddingBag`: weighted sum or mean) instead of one row; its values arrive as the batch's
/// CSR bags, and its backward shares the touched-row bookkeeping of the single-valued fields.
///
/// Row-sharded (`TableShard`, under mpirun), `table` holds only this rank's rows and the layer
/// computes on `lookup`, a small table of the rows one step touches: `ShardedEmbeddings` fetches
/// them from their owners and renumbers the batch's ids to their places in `lookup` before the
/// step, and sends `lookup`'s row gradients back to the owners after it. Replicated, `lookup` is
/// `table` itself.
public final class EmbeddingLayer {
    /// Batch rows ahead whose table rows (forward) or slots (backward) are prefetched.
    static let prefetchRows = 4
    public let fields: Int
    public let dim: Int
    public let denseCount: Int
    public let rows: Int
    /// The trained rows this process holds: the whole table, or a row-sharded rank's share.
    public let table: Parameter
    /// The rows forward and backward read and write (and their gradients): `table`, or a
    /// row-sharded step's fetched rows.
    public let lookup: Parameter
    /// Which rows this process holds when the table is row-sharded (nil: all of them).
    public let shard: TableShard?
    public var outputWidth: Int { fields * dim + denseCount }
    /// Per field: whether it is multi-valued (pooled from the batch's bags).
    public let isBag: [Bool]
    public let bag: EmbeddingBag
    /// Multi-valued fields pooled by DIN's target attention (`--pooling attention`), in field order.
    package let attentionPools: [AttentionPooling]
    /// The table, then each attention unit's parameters in field order.
    public var parameters: [Parameter] { [table] + attentionPools.flatMap(\.unit.parameters) }

    /// The attention pooling of multi-valued field `field`, if it has one.
    package func attentionPool(of field: Int) -> AttentionPooling? { attentionPools.first { $0.field == field } }

    /// Per worker: row → slot in that worker's `rowGradients`, −1 when untouched. Always all −1
    /// between calls.
    private var slotOfRow: [[Int32]]

    /// - Parameters:
    ///   - bagFields: the multi-valued fields; `maxBagValues`: the most values a row has over
    ///     all of them together (sizes the sparse gradient), `pooling`/`ignoreValues`: how they pool.
    ///   - attention: multi-valued field → the single-valued field whose embedding queries it
    ///     (`TargetAttention`, `attentionHidden` units, softmax when `attentionNormalize`).
    public init(name: String, rows: Int, fields: Int, dim: Int, denseCount: Int, maxBatch: Int, workers: Int = 1,
                rng: inout RandomSource, bagFields: [Int] = [], maxBagValues: Int = 0, pooling: BagPooling = .sum,
                ignoreValues: Bool = false, attention: [Int: Int] = [:], attentionHidden: Int = 36, attentionNormalize: Bool = false,
                shard: TableShard? = nil) {
        self.fields = fields
        self.dim = dim
        self.denseCount = denseCount
        self.rows = rows
        self.shard = shard
        isBag = (0..<fields).map(bagFields.contains)
        bag = EmbeddingBag(dim: dim, pooling: pooling, ignoreValues: ignoreValues)
        let touched = maxBatch * (fields + maxBagValues)
        if let shard {
            let local = shard.ownership.localRows(rank: shard.rank)
            // The owner sums every rank's rows: up to `ranks ×` one rank's step.
            table = Parameter(name: name, shape: [local, dim], sparse: true, maxTouchedRows: min(local, shard.lookupRows * shard.ownership.ranks))
            lookup = Parameter(name: name, shape: [shard.lookupRows, dim], sparse: true, maxTouchedRows: min(shard.lookupRows, touched),
                               workers: workers)
        } else {
            table = Parameter(name: name, shape: [rows, dim], sparse: true, maxTouchedRows: min(rows, touched), workers: workers)
            lookup = table
        }
        slotOfRow = Array(repeating: [Int32](repeating: -1, count: lookup.shape[0]), count: max(1, workers))
        Self.initialise(table, rows: rows, dim: dim, shard: shard, rng: &rng)
        // After the table's draws: a model without attention is unchanged.
        attentionPools = attention.keys.sorted().map { f in
            AttentionPooling(name: "\(name).attention.\(f)", field: f, query: attention[f]!, dim: dim,
                             hiddenUnits: attentionHidden, normalize: attentionNormalize, maxBatch: maxBatch,
                             maxValues: maxBatch * max(1, maxBagValues), workers: max(1, workers), rng: &rng)
        }
    }

    /// Small normal initialisation: keeps the first layer's pre-activations O(1) for any field
    /// count. A shard draws the whole table's sequence and keeps its own rows, so every row
    /// starts where a replica's would.
    private static func initialise(_ table: Parameter, rows: Int, dim: Int, shard: TableShard?, rng: inout RandomSource) {
        guard let shard else {
            for i in 0..<table.count { table.value[i] = Float(rng.normal() * 0.05) }
            return
        }
        for r in 0..<rows {
            let mine = shard.ownership.owner(of: Int32(r)) == shard.rank
            let at = table.value.base + Int(shard.ownership.localIndex(of: Int32(r))) * dim
            for d in 0..<dim {
                let v = Float(rng.normal() * 0.05)
                if mine { at[d] = v }
            }
        }
    }

    /// Fills `out [B × outputWidth]`; with a `part`, only its slots (the others keep what they held).
    public func forward(ids: UnsafePointer<Int32>, dense: UnsafePointer<Float>, batch: Int,
                        into out: UnsafeMutablePointer<Float>, bags: [EncodedBag] = [], worker: Int = 0, part: EmbeddingPart? = nil) {
        let w = lookup.value.base
        let width = outputWidth
        let looked = lookedUp(bags: bags, part: part)
        let withDense = denseCount > 0 && part?.dense ?? true
        let ahead = EmbeddingLayer.prefetchRows
        for b in 0..<batch {
            let row = out + b * width
            let rid = ids + b * fields
            // The table rows are scattered (millions of rows): start loading a later batch row's
            // rows now so their cache misses overlap these copies.
            if b + ahead < batch {
                let next = rid + ahead * fields
                for f in 0..<fields { funnel_prefetch_for_read(w + Int(next[f]) * dim, dim * 4) }
            }
            for f in looked { copyShort(row + f * dim, w + Int(rid[f]) * dim, dim) }
            if withDense {
                copyShort(row + fields * dim, dense + b * denseCount, denseCount)
            }
        }
        for b in bags {
            precondition(isBag[b.field], "field \(b.field) is not a multi-valued field of this layer")
            if let pool = attentionPool(of: b.field) {
                pool.forward(table: w, bag: b, batch: batch, dim: dim, out: out, rowStride: width, ignoreValues: bag.ignoreValues, worker: worker)
                continue
            }
            bag.forward(table: w, batch: batch, bagFields: 1, offsets: b.offsets, ids: b.ids, weights: b.weights,
                        out: out, rowStride: width, firstColumn: b.field * dim)
        }
    }

    /// Collects this worker's sparse gradient of the table from `dOut [B × outputWidth]`.
    /// With a `part`, only its slots of `dOut` are read; `appending` adds to the rows this
    /// worker's last backward touched instead of starting over (a request part, then an impression part).
    public func backward(ids: UnsafePointer<Int32>, dOut: UnsafePointer<Float>, batch: Int, worker: Int = 0,
                         bags: [EncodedBag] = [], part: EmbeddingPart? = nil, appending: Bool = false) {
        let grad = lookup.gradients[worker]
        if !appending { grad.touchedRows.removeAll(keepingCapacity: true) }
        let g = grad.rowGradients.base
        let width = outputWidth
        let dim = dim, fields = fields
        let looked = lookedUp(bags: bags, part: part)
        slotOfRow[worker].withUnsafeMutableBufferPointer { slots in
            for (s, r) in grad.touchedRows.enumerated() { slots[Int(r)] = Int32(s) }
            let ahead = EmbeddingLayer.prefetchRows
            for b in 0..<batch {
                let src = dOut + b * width
                let rid = ids + b * fields
                if b + ahead < batch {
                    let next = rid + ahead * fields
                    for f in 0..<fields { funnel_prefetch_for_write(slots.baseAddress! + Int(next[f]), 4) }
                }
                for f in looked {
                    let r = Int(rid[f])
                    let s = slots[r]
                    if s < 0 {
                        slots[r] = Int32(grad.touchedRows.count)
                        copyShort(g + grad.touchedRows.count * dim, src + f * dim, dim)
                        grad.touchedRows.append(Int32(r))
                    } else {
                        let dst = g + Int(s) * dim
                        let from = src + f * dim
                        for d in 0..<dim { dst[d] += from[d] }
                    }
                }
            }
            for b in bags {
                if let pool = attentionPool(of: b.field) {
                    pool.backward(dOut: dOut, bag: b, ids: ids, fields: fields, batch: batch, dim: dim, rowStride: width,
                                  ignoreValues: bag.ignoreValues, worker: worker, gradient: grad, slots: slots)
                    continue
                }
                bag.backward(dOut: dOut, batch: batch, bagFields: 1, offsets: b.offsets, ids: b.ids, weights: b.weights,
                             rowStride: width, firstColumn: b.field * dim, gradient: grad, slots: slots)
            }
            for r in grad.touchedRows { slots[Int(r)] = -1 }
        }
    }

    /// The fields whose slot is one table row: every single-valued field (every field when no
    /// bags are given), within `part` when there is one.
    private func lookedUp(bags: [EncodedBag], part: EmbeddingPart?) -> [Int] {
        guard let part else { return bags.isEmpty ? Array(0..<fields) : (0..<fields).filter { !isBag[$0] } }
        return (0..<fields).filter { part.fields[$0] && !isBag[$0] }
    }

    /// Sums workers 1..<workers' sparse gradients into worker 0's (the reduce step).
    public func reduceGradients(workers: Int) {
        guard workers > 1 else { return }
        let g0 = lookup.gradients[0]
        let dst = g0.rowGradients.base
        let dim = dim
        slotOfRow[0].withUnsafeMutableBufferPointer { slots in
            for (s, r) in g0.touchedRows.enumerated() { slots[Int(r)] = Int32(s) }
            for w in 1..<workers {
                let gw = lookup.gradients[w]
                let src = gw.rowGradients.base
                // One slot per touched row here (a batch row has one per field): as far ahead in time.
                let ahead = 4 * EmbeddingLayer.prefetchRows
                for (k, r) in gw.touchedRows.enumerated() {
                    if k + ahead < gw.touchedRows.count {
                        funnel_prefetch_for_write(slots.baseAddress! + Int(gw.touchedRows[k + ahead]), 4)
                    }
                    let s = slots[Int(r)]
                    if s < 0 {
                        slots[Int(r)] = Int32(g0.touchedRows.count)
                        copyShort(dst + g0.touchedRows.count * dim, src + k * dim, dim)
                        g0.touchedRows.append(r)
                    } else {
                        let d = dst + Int(s) * dim, from = src + k * dim
                        for j in 0..<dim { d[j] += from[j] }
                    }
                }
            }
            for r in g0.touchedRows { slots[Int(r)] = -1 }
        }
    }
}

/// Which slots of the concatenation a pass computes: a request's fields once per request, the
/// impression's fields (and the dense features) per row (`RequestSharing`).
public struct EmbeddingPart: Sendable, Equatable {
    /// Per field: whether its slot belongs to this part.
    public var fields: [Bool]
    /// Whether the dense features do.
    public var dense: Bool

    public init(fields: [Bool], dense: Bool) {
        self.fields = fields
        self.dense = dense
    }
}
