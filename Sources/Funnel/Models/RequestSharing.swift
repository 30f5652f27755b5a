import Foundation

/// How a network computes the request part of a batch once per request (the ESMM paper's
/// common features: one user's profile and behaviour lists shared by every impression of a
/// page view): the request fields' lookups and pooled bags run on one row per request, and
/// every first layer reading the concatenation splits its product (`RequestSplit`).
///
/// A trunk whose body cannot split — DCN-v2 cross layers mix every column with every other
/// before any linear layer, and PLE's extraction layers are not split — *falls back*: it reads
/// the concatenation row by row as without sharing (`fallbacks` says which). Fields DIN's
/// attention reads (the pooled list and its query) stay per impression: the pooling depends on
/// the candidate.
public final class RequestSharing {
    /// How batches group their rows (the fields computed once per request).
    public let grouping: RequestGrouping
    /// Per trunk: whether its body reads the split (false: the per-row path).
    public let splitTrunks: [Bool]
    /// The parts of the network that fall back to the per-row path, with the reason.
    public let fallbacks: [String]
    /// The embedding tables whose trunks split.
    public let splitTrunkNames: [String]
    let requestPart: EmbeddingPart
    let itemPart: EmbeddingPart
    let columns: SplitColumns
    private let workers: [WorkerState]

    /// One worker's compact blocks per trunk (U and R, dU and dR) and its last split.
    final class WorkerState {
        let values: [FloatBuffer]
        let gradients: [FloatBuffer]
        let scratch: SplitScratch
        var splits: [RequestSplit?]
        init(trunks: Int, block: Int, scratch: SplitScratch) {
            values = (0..<trunks).map { _ in FloatBuffer(count: max(1, block)) }
            gradients = (0..<trunks).map { _ in FloatBuffer(count: max(1, block)) }
            self.scratch = scratch
            splits = Array(repeating: nil, count: trunks)
        }
    }

    /// The plan for `network` when batches carry requests with `fields`; nil when no field can
    /// be shared (every one is attention's).
    init?(network: FunnelNetwork, fields requested: [Int]) {
        let e = network.embeddings[0]
        let attentionFields = Set(e.attentionPools.flatMap { [$0.field, $0.query] })
        let fields = requested.filter { !attentionFields.contains($0) }.sorted()
        guard !fields.isEmpty else { return nil }
        let isRequest = (0..<e.fields).map(fields.contains)
        requestPart = EmbeddingPart(fields: isRequest, dense: false)
        itemPart = EmbeddingPart(fields: isRequest.map { !$0 }, dense: true)
        columns = SplitColumns(isRequest: (0..<e.outputWidth).map { c in c < e.fields * e.dim && isRequest[c / e.dim] })
        var fallbacks: [String] = []
        let splitTrunks = (0..<network.embeddings.count).map { t in
            let name = network.embeddings[t].table.name
            if network.crosses[t] != nil { fallbacks.append("\(name): DCN-v2 cross layers read every column together"); return false }
            if case .gated(let g) = network.bodies[t], !g.splitsRequests { fallbacks.append("\(name): \(type(of: g)) does not split"); return false }
            return true
        }
        self.fallbacks = fallbacks
        self.splitTrunks = splitTrunks
        splitTrunkNames = network.embeddings.indices.filter { splitTrunks[$0] }.map { network.embeddings[$0].table.name }
        grouping = RequestGrouping(fields: fields, keepsRowBags: splitTrunks.contains(false))
        let maxOut = network.firstLayerWidths.max() ?? 1
        let block = network.maxBatch * e.outputWidth
        workers = (0..<network.workers).map { _ in
            WorkerState(trunks: network.embeddings.count, block: block,
                        scratch: SplitScratch(maxOut: maxOut, width: e.outputWidth, maxRows: network.maxBatch))
        }
    }

    /// Whether trunk `t` reads `batch` split.
    func splits(_ t: Int, _ batch: Batch) -> Bool { splitTrunks[t] && batch.requestCount > 0 }

    /// The batch's per-row bags of the impression's fields.
    private func itemBags(_ batch: Batch) -> [EncodedBag] { batch.bags.filter { itemPart.fields[$0.field] } }

    /// Trunk `t`'s embedding forward, split: the request part once per request into R, the
    /// impression part per row into U (`full` is the per-row concatenation buffer, used as scratch).
    func forward(_ embedding: EmbeddingLayer, trunk t: Int, _ batch: Batch, full: UnsafeMutablePointer<Float>, worker: Int) -> RequestSplit {
        let w = workers[worker], m = batch.requestCount, n = batch.count
        let values = w.values[t].base, gradients = w.gradients[t].base
        let requests = values + n * columns.itemWidth
        batch.requestIds.withUnsafeBufferPointer { ids in
            embedding.forward(ids: ids.baseAddress!, dense: batch.dense.base, batch: m, into: full, bags: batch.requestBags,
                              worker: worker, part: requestPart)
        }
        SplitColumns.pack(columns.requestRuns, rows: m, from: full, width: columns.width, into: requests)
        batch.ids.withUnsafeBufferPointer { ids in
            embedding.forward(ids: ids.baseAddress!, dense: batch.dense.base, batch: n, into: full, bags: itemBags(batch),
                              worker: worker, part: itemPart)
        }
        SplitColumns.pack(columns.itemRuns, rows: n, from: full, width: columns.width, into: values)
        let split = RequestSplit(rows: n, requestCount: m, items: values, requests: requests, requestOf: batch.requestOf,
                                 dItems: gradients, dRequests: gradients + n * columns.itemWidth, columns: columns, scratch: w.scratch)
        w.splits[t] = split
        return split
    }

    /// The split trunk `t`'s last forward on this worker.
    func split(_ t: Int, worker: Int) -> RequestSplit { workers[worker].splits[t]! }

    /// Trunk `t`'s embedding backward from the split's dR and dU: the request rows' gradients
    /// once per request, then the impressions'.
    func backward(_ embedding: EmbeddingLayer, trunk t: Int, _ batch: Batch, full: UnsafeMutablePointer<Float>, worker: Int) {
        let x = split(t, worker: worker)
        SplitColumns.unpack(columns.requestRuns, rows: x.requestCount, from: x.dRequests, into: full, width: columns.width, accumulate: false)
        batch.requestIds.withUnsafeBufferPointer { ids in
            embedding.backward(ids: ids.baseAddress!, dOut: full, batch: x.requestCount, worker: worker, bags: batch.requestBags,
                               part: requestPart)
        }
        SplitColumns.unpack(columns.itemRuns, rows: x.rows, from: x.dItems, into: full, width: columns.width, accumulate: false)
        batch.ids.withUnsafeBufferPointer { ids in
            embedding.backward(ids: ids.baseAddress!, dOut: full, batch: x.rows, worker: worker, bags: itemBags(batch),
                               part: itemPart, appending: true)
        }
    }
}

/// A network's sharing plans by request fields, made on first use. Bounded: past `limit`
/// distinct field sets, a new set gets no plan (its rows are computed one by one).
final class RequestPlans: @unchecked Sendable {
    static let limit = 64
    private var plans: [[Int]: RequestSharing?] = [:]
    private let lock = NSLock()

    func plan(for fields: [Int], make: () -> RequestSharing?) -> RequestSharing? {
        lock.lock()
        defer { lock.unlock() }
        if let known = plans[fields] { return known }
        guard plans.count < Self.limit else { return nil }
        let plan = make()
        plans[fields] = plan
        return plan
    }
}

/// What `train --json` says about request sharing (`request_sharing`).
public struct RequestSharingReport: Codable, Sendable, Equatable {
    /// Whether the request part was computed once per request.
    public var enabled: Bool
    /// The fields constant within a request (the data's), and those computed once per request.
    public var requestFields: [String]
    public var sharedFields: [String]
    /// Rows per request on average (nil when the data was streamed).
    public var rowsPerRequest: Double?
    /// Embedding tables whose trunk reads the split, and the parts that fell back to per-row.
    public var splitTrunks: [String]
    public var fallbacks: [String]
    /// Requests longer than a batch, cut into batch-sized pieces.
    public var requestsCut: Int

    enum CodingKeys: String, CodingKey {
        case enabled, fallbacks
        case requestFields = "request_fields", sharedFields = "shared_fields", rowsPerRequest = "rows_per_request"
        case splitTrunks = "split_trunks", requestsCut = "requests_cut"
    }

    public init(_ sharing: RequestSharing?, requestFields: [Int], schema: FeatureSchema, rowsPerRequest: Double?, requestsCut: Int) {
        let names = schema.layout.categorical
        enabled = sharing != nil
        self.requestFields = requestFields.map { names[$0] }
        sharedFields = sharing?.grouping.fields.map { names[$0] } ?? []
        self.rowsPerRequest = rowsPerRequest
        splitTrunks = sharing?.splitTrunkNames ?? []
        fallbacks = sharing?.fallbacks ?? []
        self.requestsCut = requestsCut
    }
}
