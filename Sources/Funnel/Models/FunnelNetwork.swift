/// The network of every model in the family: one or two embedding tables, a CTR tower and a
/// CVR tower. What differs between models is data (`Architecture`): whether the towers share
/// the embedding, and which objectives train them.
///
/// A training step is split as *compute gradients → (reduce) → apply* so data-parallel
/// training can reduce gradients between the two halves.
public final class FunnelNetwork {
    public let config: ModelConfig
    public let architecture: Architecture
    public let fields: Int
    public let denseCount: Int
    public let embeddingRows: Int
    /// Rows one worker handles per call.
    public let maxBatch: Int
    /// Gradient workers: each computes the gradient of its shard of a batch concurrently.
    public let workers: Int

    /// `[shared]` or `[ctr, cvr]`.
    public let embeddings: [EmbeddingLayer]
    public let ctrTower: MLP
    public let cvrTower: MLP

    /// Per-worker scratch: [worker][embedding] inputs and their gradients, and logit buffers.
    private let inputs: [[FloatBuffer]]
    private let inputGradients: [[FloatBuffer]]
    private let ctrLogits: [FloatBuffer]
    private let dCtr: [FloatBuffer]
    private let dCvr: [FloatBuffer]

    /// - Parameters:
    ///   - maxBatch: rows per worker call (default: the config's batch size split over workers).
    ///   - workers: concurrent gradient workers (the training thread count).
    public init(config: ModelConfig, embeddingRows: Int, fields: Int, denseCount: Int, maxBatch: Int? = nil,
                workers: Int = 1) {
        self.config = config
        architecture = config.architecture
        self.fields = fields
        self.denseCount = denseCount
        self.embeddingRows = embeddingRows
        let w = max(1, workers)
        self.workers = w
        let cap = maxBatch ?? (config.batchSize + w - 1) / w
        self.maxBatch = cap
        // Every parameter tensor draws from its own stream so adding one never shifts another's init.
        var stream: UInt64 = 0
        func rng() -> RandomSource { stream += 1; return RandomSource(seed: config.seed, stream: stream) }
        let names = architecture.sharedEmbedding ? ["embedding"] : ["ctr.embedding", "cvr.embedding"]
        embeddings = names.map { name in
            var r = rng()
            return EmbeddingLayer(name: name, rows: embeddingRows, fields: fields, dim: config.embeddingDim,
                                  denseCount: denseCount, maxBatch: cap, workers: w, rng: &r)
        }
        let width = embeddings[0].outputWidth
        var r1 = rng(), r2 = rng()
        ctrTower = MLP(name: "ctr.tower", inputWidth: width, hidden: config.hidden, maxBatch: cap, workers: w, rng: &r1)
        cvrTower = MLP(name: "cvr.tower", inputWidth: width, hidden: config.hidden, maxBatch: cap, workers: w, rng: &r2)
        let embeddingCount = embeddings.count
        inputs = (0..<w).map { _ in (0..<embeddingCount).map { _ in FloatBuffer(count: cap * width) } }
        inputGradients = (0..<w).map { _ in (0..<embeddingCount).map { _ in FloatBuffer(count: cap * width) } }
        ctrLogits = (0..<w).map { _ in FloatBuffer(count: cap) }
        dCtr = (0..<w).map { _ in FloatBuffer(count: cap) }
        dCvr = (0..<w).map { _ in FloatBuffer(count: cap) }
    }

    private var ctrEmbedding: Int { 0 }
    private var cvrEmbedding: Int { architecture.sharedEmbedding ? 0 : 1 }

    /// All parameters in a fixed order (the order of the weights file).
    public var parameters: [Parameter] {
        embeddings.map(\.table) + ctrTower.parameters + cvrTower.parameters
    }

    /// The parameters a stage trains.
    public func parameters(for objective: Objective) -> [Parameter] {
        switch objective {
        case .entireSpace:
            return parameters
        case .clickOnly:
            return [embeddings[ctrEmbedding].table] + ctrTower.parameters
        case .conversionOnly:
            return [embeddings[cvrEmbedding].table] + cvrTower.parameters
        }
    }

    private func embed(_ e: Int, _ batch: Batch, worker: Int) {
        batch.ids.withUnsafeBufferPointer { ids in
            embeddings[e].forward(ids: ids.baseAddress!, dense: batch.dense.base, batch: batch.count,
                                  into: inputs[worker][e].base)
        }
    }

    private func embedBackward(_ e: Int, _ batch: Batch, worker: Int) {
        batch.ids.withUnsafeBufferPointer { ids in
            embeddings[e].backward(ids: ids.baseAddress!, dOut: inputGradients[worker][e].base, batch: batch.count,
                                   worker: worker)
        }
    }

    /// Forward and backward for one objective on `worker`'s shard; leaves the gradients in that
    /// worker's slots and returns the shard's loss divided by `normalizer` (default: the shard
    /// size). Shards of one batch pass the batch size, so their gradients simply add up.
    @discardableResult
    public func computeGradients(_ batch: Batch, objective: Objective, worker: Int = 0, normalizer: Int? = nil) -> Double {
        let n = batch.count
        let norm = Double(normalizer ?? n)
        let x: UnsafePointer<Float>
        switch objective {
        case .entireSpace:
            let e = ctrEmbedding
            embed(e, batch, worker: worker)
            x = UnsafePointer(inputs[worker][e].base)
            let lc = ctrLogits[worker].base, dc = dCtr[worker].base, dv = dCvr[worker].base
            lc.update(from: ctrTower.forward(x, batch: n, worker: worker), count: n)
            let lv = cvrTower.forward(x, batch: n, worker: worker)
            // CTCVR first: it writes both logit gradients; the CTR term then adds to the CTR one.
            var loss = ProductCrossEntropy.forwardBackward(
                logitsA: lc, logitsB: lv, labels: batch.clickAndConversion.base, weights: nil,
                count: n, normalizer: norm, dA: dc, dB: dv)
            loss += LogitCrossEntropy.forwardBackward(
                logits: lc, labels: batch.click.base, weights: nil, count: n,
                normalizer: norm, dLogits: dc, accumulate: true)
            let dx = inputGradients[worker][e].base
            ctrTower.backward(x, dLogits: dc, batch: n, dx: dx, accumulateInputGradient: false, worker: worker)
            cvrTower.backward(x, dLogits: dv, batch: n, dx: dx, accumulateInputGradient: true, worker: worker)
            embedBackward(e, batch, worker: worker)
            return loss
        case .clickOnly, .conversionOnly:
            let isCTR = objective == .clickOnly
            let e = isCTR ? ctrEmbedding : cvrEmbedding
            let tower = isCTR ? ctrTower : cvrTower
            let labels = isCTR ? batch.click : batch.conversion
            let d = (isCTR ? dCtr : dCvr)[worker].base
            embed(e, batch, worker: worker)
            x = UnsafePointer(inputs[worker][e].base)
            let logits = tower.forward(x, batch: n, worker: worker)
            let loss = LogitCrossEntropy.forwardBackward(
                logits: logits, labels: labels.base, weights: nil, count: n, normalizer: norm, dLogits: d)
            tower.backward(x, dLogits: d, batch: n, dx: inputGradients[worker][e].base,
                           accumulateInputGradient: false, worker: worker)
            embedBackward(e, batch, worker: worker)
            return loss
        }
    }

    /// The reduce step: sums the gradients of workers 1..<`active` into worker 0's slots, in
    /// worker order (so a fixed worker count gives bitwise-identical sums).
    public func reduceGradients(for objective: Objective, active: Int) {
        guard active > 1 else { return }
        let tables = Set(parameters(for: objective).filter(\.isSparse).map(\.name))
        for e in embeddings where tables.contains(e.table.name) { e.reduceGradients(workers: active) }
        for p in parameters(for: objective) where !p.isSparse {
            let dst = p.gradients[0].dense.base
            for w in 1..<active {
                let src = p.gradients[w].dense.base
                for i in 0..<p.count { dst[i] += src[i] }
            }
        }
    }

    /// Loss only (no gradients), for gradient checks and validation.
    public func loss(_ batch: Batch, objective: Objective) -> Double {
        let (lc, lv) = logits(batch)
        let n = batch.count
        var total = 0.0
        for i in 0..<n {
            let y = Double(batch.click[i]), v = Double(batch.conversion[i]), yv = Double(batch.clickAndConversion[i])
            let a = Double(lc[i]), b = Double(lv[i])
            switch objective {
            case .entireSpace:
                total -= y * Sigmoid.logValue(a) + (1 - y) * Sigmoid.logValue(-a)
                let p = Sigmoid.value(a) * Sigmoid.value(b)
                total -= yv * (Sigmoid.logValue(a) + Sigmoid.logValue(b)) + (1 - yv) * _log(max(1 - p, 1e-7))
            case .clickOnly:
                total -= y * Sigmoid.logValue(a) + (1 - y) * Sigmoid.logValue(-a)
            case .conversionOnly:
                total -= v * Sigmoid.logValue(b) + (1 - v) * Sigmoid.logValue(-b)
            }
        }
        return total / Double(n)
    }

    /// CTR and CVR logits for a batch (worker 0's buffers).
    public func logits(_ batch: Batch, worker: Int = 0) -> ([Float], [Float]) {
        let n = batch.count
        embed(ctrEmbedding, batch, worker: worker)
        let lc = Array(UnsafeBufferPointer(start: ctrTower.forward(inputs[worker][ctrEmbedding].base, batch: n, worker: worker), count: n))
        if cvrEmbedding != ctrEmbedding { embed(cvrEmbedding, batch, worker: worker) }
        let lv = Array(UnsafeBufferPointer(start: cvrTower.forward(inputs[worker][cvrEmbedding].base, batch: n, worker: worker), count: n))
        return (lc, lv)
    }

    /// pCTR, pCVR and pCTCVR = pCTR·pCVR for every row of `data`, in order. Rows are split into
    /// contiguous chunks, one per worker, predicted concurrently.
    public func predict(_ data: EncodedDataset) -> Predictions {
        var out = Predictions(count: data.rowCount)
        let n = data.rowCount
        let chunk = (n + workers - 1) / max(workers, 1)
        out.ctr.withUnsafeMutableBufferPointer { ctr in
            out.cvr.withUnsafeMutableBufferPointer { cvr in
                out.ctcvr.withUnsafeMutableBufferPointer { ctcvr in
                    let pc = ctr.baseAddress!, pv = cvr.baseAddress!, pcv = ctcvr.baseAddress!
                    Parallel.forEach(workers) { w in
                        let lo = min(n, w * chunk), hi = min(n, lo + chunk)
                        self.predict(data, rows: lo..<hi, worker: w, ctr: pc, cvr: pv, ctcvr: pcv)
                    }
                }
            }
        }
        return out
    }

    private func predict(_ data: EncodedDataset, rows: Range<Int>, worker: Int,
                         ctr: UnsafeMutablePointer<Float>, cvr: UnsafeMutablePointer<Float>, ctcvr: UnsafeMutablePointer<Float>) {
        guard !rows.isEmpty else { return }
        let batch = Batch(capacity: maxBatch, fields: fields, denseCount: denseCount)
        var start = rows.lowerBound
        while start < rows.upperBound {
            let n = min(maxBatch, rows.upperBound - start)
            batch.fill(from: data, start: start, count: n)
            embed(ctrEmbedding, batch, worker: worker)
            let lc = ctrTower.forward(inputs[worker][ctrEmbedding].base, batch: n, worker: worker)
            for i in 0..<n { ctr[start + i] = Sigmoid.value(lc[i]) }
            if cvrEmbedding != ctrEmbedding { embed(cvrEmbedding, batch, worker: worker) }
            let lv = cvrTower.forward(inputs[worker][cvrEmbedding].base, batch: n, worker: worker)
            for i in 0..<n {
                let v = Sigmoid.value(lv[i])
                cvr[start + i] = v
                ctcvr[start + i] = ctr[start + i] * v
            }
            start += n
        }
    }
}

/// The three probabilities for each row.
public struct Predictions: Sendable {
    public var ctr: [Float]
    public var cvr: [Float]
    public var ctcvr: [Float]

    public init(count: Int) {
        ctr = [Float](repeating: 0, count: count)
        cvr = ctr
        ctcvr = ctr
    }
}
