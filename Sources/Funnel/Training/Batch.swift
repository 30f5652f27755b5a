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
    public private(set) var bags: [EncodedBag] = []
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

    public init(capacity: Int, fields: Int, denseCount: Int) {
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
        if !data.bags.isEmpty || !bags.isEmpty {
            bags = data.bags.map { Self.gather($0, count: n, row: row) }
        }
        if data.weights == nil && rowWeights == nil {
            weight.base.update(repeating: 1, count: n)
        } else {
            for k in 0..<n {
                let r = row(k)
                weight[k] = (data.weights?[r] ?? 1) * (rowWeights?[r] ?? 1)
            }
        }
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
