/// One mini-batch, gathered into contiguous buffers allocated once per training run.
public final class Batch {
    public let capacity: Int
    public let fields: Int
    public let denseCount: Int
    public private(set) var count = 0
    public var ids: [Int32]
    public let dense: FloatBuffer
    public let click: FloatBuffer
    public let conversion: FloatBuffer
    /// click · conversion: the CTCVR label.
    public let clickAndConversion: FloatBuffer
    /// Per-row loss weight: the data's own (negative downsampling) times the stage's (UNBIAS).
    public let weight: FloatBuffer
    /// The batch rows' multi-valued fields, CSR per field (as `EncodedBag`, rows renumbered 0..<count).
    public internal(set) var bags: [EncodedBag] = []
    /// Inverse-propensity objectives: each row's pCTR, taken from the CTR head at the first loss
    /// computed on this fill and held constant after — the propensity's gradient is stopped, and
    /// a finite-difference check of the loss differentiates the same function the backward pass does.
    let propensity: FloatBuffer
    var propensityTaken = false
    /// Doubly robust objectives: the imputed conversion σ(t) and the CVR logit, taken alike —
    /// each is a stopped constant in the term that trains the other tower.
    let imputedConversion: FloatBuffer
    let stoppedCVRLogit: FloatBuffer
    var doublyRobustTaken = false
    /// Request sharing: the plan the network computes this batch's requests by (nil: the
    /// per-row path); it decides how `fill` groups rows.
    public let sharing: RequestSharing?
    var grouping: RequestGrouping? { sharing?.grouping }
    /// Distinct requests among the rows (0 without grouping or without request keys).
    public private(set) var requestCount = 0
    /// Per row, its request's slot `0..<requestCount` (slots in order of first appearance);
    /// `capacity` entries, allocated once.
    public let requestOf: UnsafeMutablePointer<Int32>
    /// Per request, the ids of its first row `[requestCount × fields]` (its request fields' are
    /// every row's).
    public internal(set) var requestIds: [Int32] = []
    /// The request fields' bags, one row per request.
    public internal(set) var requestBags: [EncodedBag] = []
    private var slotOfKey: [Int64: Int32] = [:]

    public init(capacity: Int, fields: Int, denseCount: Int, sharing: RequestSharing? = nil) {
        self.sharing = sharing
        requestOf = .allocate(capacity: max(1, capacity))
        requestOf.initialize(repeating: 0, count: max(1, capacity))
        self.capacity = capacity
        self.fields = fields
        self.denseCount = denseCount
        ids = [Int32](repeating: 0, count: capacity * fields)
        dense = FloatBuffer(count: capacity * denseCount)
        click = FloatBuffer(count: capacity)
        conversion = FloatBuffer(count: capacity)
        clickAndConversion = FloatBuffer(count: capacity)
        weight = FloatBuffer(count: capacity, value: 1)
        propensity = FloatBuffer(count: capacity)
        imputedConversion = FloatBuffer(count: capacity)
        stoppedCVRLogit = FloatBuffer(count: capacity)
    }

    deinit { requestOf.deallocate() }

    /// Copies `rows` of `data` (at most `capacity`) into the batch; `rowWeights`, indexed by
    /// data row, multiply the data's own weights.
    public func fill(from data: EncodedDataset, rows: UnsafeBufferPointer<Int32>, rowWeights: [Float]? = nil) {
        fill(from: data, count: rows.count, rowWeights: rowWeights) { Int(rows[$0]) }
    }

    /// Fills the batch with the contiguous rows `start..<start+n` (prediction order).
    public func fill(from data: EncodedDataset, start: Int, count n: Int) {
        fill(from: data, count: n, rowWeights: nil) { start + $0 }
    }

    @inline(__always)
    private func fill(from data: EncodedDataset, count n: Int, rowWeights: [Float]?, row: (Int) -> Int) {
        precondition(n <= capacity && data.fields == fields && data.denseCount == denseCount)
        count = n
        propensityTaken = false
        doublyRobustTaken = false
        let f = fields, d = denseCount
        ids.withUnsafeMutableBufferPointer { dst in
            data.ids.withUnsafeBufferPointer { src in
                for k in 0..<n {
                    (dst.baseAddress! + k * f).update(from: src.baseAddress! + row(k) * f, count: f)
                }
            }
        }
        if d > 0 {
            data.dense.withUnsafeBufferPointer { src in
                for k in 0..<n {
                    (dense.base + k * d).update(from: src.baseAddress! + row(k) * d, count: d)
                }
            }
        }
        if let c = data.click, let v = data.conversion {
            c.withUnsafeBufferPointer { c in
                v.withUnsafeBufferPointer { v in
                    for k in 0..<n {
                        let r = row(k)
                        click[k] = c[r]
                        conversion[k] = v[r]
                        clickAndConversion[k] = c[r] * v[r]
                    }
                }
            }
        }
        // Grouped only by requests whose constant fields include the plan's (else per row).
        let grouped = grouping.map { g in data.requests.map { r in g.fields.allSatisfy(r.fields.contains) } ?? false } ?? false
        if !data.bags.isEmpty || !bags.isEmpty {
            // Grouped without per-row copies of the request bags: they are gathered per request only.
            let perRow = data.bags.filter { !grouped || grouping!.keepsRowBags || !grouping!.fields.contains($0.field) }
            bags = perRow.map { Self.gather($0, of: data, count: n, row: row) }
        }
        if grouped { group(data, count: n, row: row) } else if requestCount > 0 { requestCount = 0; requestBags = [] }
        if data.weights == nil && rowWeights == nil {
            weight.base.update(repeating: 1, count: n)
        } else {
            for k in 0..<n {
                let r = row(k)
                weight[k] = (data.weights?[r] ?? 1) * (rowWeights?[r] ?? 1)
            }
        }
    }

    /// Assigns each row its request's slot and copies each request's ids and request-field bags
    /// from its first row.
    @inline(__always)
    private func group(_ data: EncodedDataset, count n: Int, row: (Int) -> Int) {
        let keys = data.requests!.keys
        slotOfKey.removeAll(keepingCapacity: true)
        var firstRows: [Int] = []
        for k in 0..<n {
            let r = row(k)
            if let s = slotOfKey[keys[r]] { requestOf[k] = s; continue }
            let s = Int32(firstRows.count)
            slotOfKey[keys[r]] = s
            requestOf[k] = s
            firstRows.append(r)
        }
        requestCount = firstRows.count
        let f = fields
        if requestIds.count < capacity * f { requestIds = [Int32](repeating: 0, count: capacity * f) }
        requestIds.withUnsafeMutableBufferPointer { dst in
            data.ids.withUnsafeBufferPointer { src in
                for (j, r) in firstRows.enumerated() { (dst.baseAddress! + j * f).update(from: src.baseAddress! + r * f, count: f) }
            }
        }
        let fieldsOfRequest = Set(grouping!.fields)
        requestBags = data.bags.filter { fieldsOfRequest.contains($0.field) }.map { Self.gather($0, of: data, count: firstRows.count) { firstRows[$0] } }
    }

    /// Rows `row(0) ..< row(n)` of `data`'s bag `bag`: the rows' own values, or — a request-level
    /// read keeps a request's own bags once per request — each row's request's.
    @inline(__always)
    private static func gather(_ bag: EncodedBag, of data: EncodedDataset, count n: Int, row: (Int) -> Int) -> EncodedBag {
        guard let p = data.requests?.perRequest, let once = p.bag(of: bag.field) else { return gather(bag, count: n, row: row) }
        return p.rowRequest.withUnsafeBufferPointer { q in gather(once, count: n) { Int(q[row($0)]) } }
    }

    /// Rows `row(0) ..< row(n)` of a bag, into arrays sized exactly (through raw pointers:
    /// slicing per row would retain and release the source arrays once a row, and growth would
    /// copy them).
    @inline(__always)
    private static func gather(_ bag: EncodedBag, count n: Int, row: (Int) -> Int) -> EncodedBag {
        var offsets = [Int32](repeating: 0, count: n + 1)
        var total = 0
        bag.offsets.withUnsafeBufferPointer { o in
            for k in 0..<n {
                let r = row(k)
                total += Int(o[r + 1] - o[r])
                offsets[k + 1] = Int32(total)
            }
        }
        var ids = [Int32](repeating: 0, count: total), weights = [Float](repeating: 0, count: total)
        bag.offsets.withUnsafeBufferPointer { o in
            bag.ids.withUnsafeBufferPointer { srcIds in
                bag.weights.withUnsafeBufferPointer { srcWeights in
                    ids.withUnsafeMutableBufferPointer { dstIds in
                        weights.withUnsafeMutableBufferPointer { dstWeights in
                            for k in 0..<n {
                                let r = row(k), start = Int(o[r]), count = Int(o[r + 1]) - start, at = Int(offsets[k])
                                guard count > 0 else { continue }
                                (dstIds.baseAddress! + at).update(from: srcIds.baseAddress! + start, count: count)
                                (dstWeights.baseAddress! + at).update(from: srcWeights.baseAddress! + start, count: count)
                            }
                        }
                    }
                }
            }
        }
        return EncodedBag(field: bag.field, offsets: offsets, ids: ids, weights: weights)
    }
}

/// How a batch groups its rows by request (its `RequestSharing` plan decides).
public struct RequestGrouping: Sendable, Equatable {
    /// The request fields: computed once per request.
    public var fields: [Int]
    /// Also keep every row's copy of the request bags (a trunk that cannot split reads them).
    public var keepsRowBags: Bool

    public init(fields: [Int], keepsRowBags: Bool) {
        self.fields = fields
        self.keepsRowBags = keepsRowBags
    }
}
