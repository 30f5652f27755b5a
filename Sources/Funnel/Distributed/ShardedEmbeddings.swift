import Foundation

/// A network's row-sharded embedding tables at work (`EmbeddingShardingPlan` decided which):
/// the per-step exchanges around the unchanged layers, in TorchRec's manner — sharding is the
/// tables' storage and two collectives, not a branch in the model's maths.
///
/// Before a step (`prepare`): the distinct rows the rank's batches touch are numbered in first-
/// seen order, the batches' ids renumbered to those numbers, and each sharded table's rows
/// fetched from their owners into the layer's `lookup` table. Forward and backward then run as
/// on a replica. After the workers' reduce (`reduce`): `lookup`'s touched rows, named by their
/// global rows again, go to their owners, which sum them in rank order — the order the
/// replicated all-gather sums in — so the owners' Adam steps give every row the values a replica
/// would hold.
public final class ShardedEmbeddings {
    public let communicator: Communicator
    /// The sharded layers and their exchanges, in trunk order.
    let tables: [(layer: EmbeddingLayer, exchange: RowShardedTable)]
    /// This step's distinct rows: `rows[k]` is the global row at place k of every `lookup`.
    private var rows: [Int32] = []
    private var place: [Int32: Int32] = [:]

    /// Nil when no layer of `network` is sharded.
    init?(_ layers: [EmbeddingLayer], communicator: Communicator) {
        let sharded = layers.filter { $0.shard != nil }
        guard !sharded.isEmpty else { return nil }
        self.communicator = communicator
        tables = sharded.map { ($0, RowShardedTable(slice: $0.table, ownership: $0.shard!.ownership, communicator: communicator)) }
    }

    /// Whether `p` is a sharded table's slice (reduced by its owners, not all-gathered).
    func owns(_ p: Parameter) -> Bool { tables.contains { $0.layer.table === p } }

    /// Renumbers `batches`' ids to places in `lookup` and fetches those rows from their owners.
    /// Collective: every rank calls it once per step, with its batches (possibly none).
    func prepare<C: Collection>(_ batches: C) throws where C.Element == Batch {
        rows.removeAll(keepingCapacity: true)
        place.removeAll(keepingCapacity: true)
        for batch in batches {
            batch.renumberIds { row in
                if let k = place[row] { return k }
                let k = Int32(rows.count)
                place[row] = k
                rows.append(row)
                return k
            }
        }
        for (layer, exchange) in tables {
            guard rows.count <= layer.lookup.shape[0] else {
                throw FunnelError("a step touches \(rows.count) rows of \(layer.table.name), more than its lookup table's \(layer.lookup.shape[0])")
            }
            try exchange.fetch(rows, into: layer.lookup.value.base)
        }
    }

    /// Sends the step gradient of each table the stage trains (among `parameters`; worker 0's
    /// `lookup` gradient after the workers' reduce, none when `active` is false: this rank had
    /// no rows) to the rows' owners.
    func reduce(active: Bool, training parameters: [Parameter]) throws {
        for (layer, exchange) in tables where parameters.contains(where: { $0 === layer.table }) {
            let touched = active ? layer.lookup.touchedRows : []
            try exchange.reduceGradients(rows: touched.map { rows[Int($0)] }, gradients: layer.lookup.rowGradients.base)
        }
    }
}

extension Batch {
    /// Replaces every embedding row id the batch holds — the rows' fields, the requests' fields,
    /// every bag's values — by `renumber(id)`, in a fixed order (row by row, then the bags).
    func renumberIds(_ renumber: (Int32) -> Int32) {
        ids.withUnsafeMutableBufferPointer { p in for i in 0..<(count * fields) { p[i] = renumber(p[i]) } }
        for b in bags.indices { bags[b].ids.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = renumber(p[i]) } } }
        guard requestCount > 0 else { return }
        requestIds.withUnsafeMutableBufferPointer { p in for i in 0..<(requestCount * fields) { p[i] = renumber(p[i]) } }
        for b in requestBags.indices { requestBags[b].ids.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = renumber(p[i]) } } }
    }
}
