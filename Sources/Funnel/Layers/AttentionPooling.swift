/// One multi-valued field pooled by `TargetAttention` with a single-valued field's embedding as
/// its query (`--pooling attention --attention-query LIST=QUERY`): gathers the values' table rows
/// and the rows' queries into contiguous blocks, runs the unit, and scatters the gradients back —
/// each value's to its table row, each query's to the query field's row (which the query field's
/// own slot in the concatenation also trains).
package final class AttentionPooling {
    package let field: Int
    package let query: Int
    package let unit: TargetAttention
    /// One worker's gathered values and queries and their gradients, grown when a batch has more
    /// values or rows than planned (prediction batches); each worker owns one object, so growing
    /// never touches what another thread reads.
    private final class Scratch {
        var values, queries, dValues, dQueries: FloatBuffer
        init(values n: Int, rows: Int, dim: Int) {
            (values, dValues) = (FloatBuffer(count: max(1, n * dim)), FloatBuffer(count: max(1, n * dim)))
            (queries, dQueries) = (FloatBuffer(count: max(1, rows * dim)), FloatBuffer(count: max(1, rows * dim)))
        }
    }
    private let scratch: [Scratch]

    init(name: String, field: Int, query: Int, dim: Int, hiddenUnits: Int, normalize: Bool, maxBatch: Int, maxValues: Int,
         workers: Int, rng: inout RandomSource) {
        self.field = field
        self.query = query
        unit = TargetAttention(name: name, dim: dim, hiddenUnits: hiddenUnits, normalize: normalize, maxValues: maxValues,
                               workers: workers, rng: &rng)
        scratch = (0..<workers).map { _ in Scratch(values: maxValues, rows: maxBatch, dim: dim) }
    }

    private func reserve(values n: Int, rows: Int, dim: Int, worker w: Int) {
        let b = scratch[w]
        if b.values.count < n * dim { (b.values, b.dValues) = (FloatBuffer(count: n * dim), FloatBuffer(count: n * dim)) }
        if b.queries.count < rows * dim { (b.queries, b.dQueries) = (FloatBuffer(count: rows * dim), FloatBuffer(count: rows * dim)) }
    }

    private func bags(_ bag: EncodedBag, batch: Int, worker: Int, ignoreValues: Bool,
                      _ body: (TargetAttention.Bags) -> Void) {
        bag.offsets.withUnsafeBufferPointer { o in
            bag.weights.withUnsafeBufferPointer { w in
                body(TargetAttention.Bags(count: batch, offsets: o.baseAddress!, values: scratch[worker].values.base,
                                          queries: scratch[worker].queries.base, weights: ignoreValues ? nil : w.baseAddress))
            }
        }
    }


    /// Pools the field's bags into its slot of `out` (the query field's slot already filled).
    func forward(table: UnsafePointer<Float>, bag: EncodedBag, batch: Int, dim: Int, out: UnsafeMutablePointer<Float>,
                 rowStride: Int, ignoreValues: Bool, worker: Int) {
        reserve(values: Int(bag.offsets[batch]), rows: batch, dim: dim, worker: worker)
        let v = scratch[worker].values.base, q = scratch[worker].queries.base
        for (i, id) in bag.ids.prefix(Int(bag.offsets[batch])).enumerated() { (v + i * dim).update(from: table + Int(id) * dim, count: dim) }
        for b in 0..<batch { (q + b * dim).update(from: out + b * rowStride + query * dim, count: dim) }
        bags(bag, batch: batch, worker: worker, ignoreValues: ignoreValues) { unit.forward($0, out: out + field * dim, outStride: rowStride, worker: worker) }
    }

    /// The unit's gradients, then every value's and query's into the table's sparse rows
    /// (`slots`: table row → slot, as `EmbeddingBag.backward` keeps them).
    func backward(dOut: UnsafePointer<Float>, bag: EncodedBag, ids: UnsafePointer<Int32>, fields: Int, batch: Int, dim: Int,
                  rowStride: Int, ignoreValues: Bool, worker: Int, gradient: ParameterGradient,
                  slots: UnsafeMutableBufferPointer<Int32>) {
        bags(bag, batch: batch, worker: worker, ignoreValues: ignoreValues) {
            unit.backward($0, dOut: dOut + field * dim, outStride: rowStride, worker: worker,
                          dValues: scratch[worker].dValues.base, dQueries: scratch[worker].dQueries.base)
        }
        func add(_ g: UnsafePointer<Float>, toRow r: Int) {
            let dst = gradient.slot(ofRow: r, width: dim, slots: slots)
            for d in 0..<dim { dst[d] += g[d] }
        }
        for (i, id) in bag.ids.prefix(Int(bag.offsets[batch])).enumerated() { add(scratch[worker].dValues.base + i * dim, toRow: Int(id)) }
        for b in 0..<batch { add(scratch[worker].dQueries.base + b * dim, toRow: Int(ids[b * fields + query])) }
    }
}
