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
    public let maxBatch: Int

    /// `[shared]` or `[ctr, cvr]`.
    public let embeddings: [EmbeddingLayer]
    public let ctrTower: MLP
    public let cvrTower: MLP

    private let inputs: [FloatBuffer]
    private let inputGradients: [FloatBuffer]
    private let ctrLogits: FloatBuffer
    private let dCtr: FloatBuffer
    private let dCvr: FloatBuffer

    public init(config: ModelConfig, embeddingRows: Int, fields: Int, denseCount: Int, maxBatch: Int? = nil) {
        self.config = config
        architecture = config.architecture
        self.fields = fields
        self.denseCount = denseCount
        self.embeddingRows = embeddingRows
        let cap = maxBatch ?? config.batchSize
        self.maxBatch = cap
        // Every parameter tensor draws from its own stream so adding one never shifts another's init.
        var stream: UInt64 = 0
        func rng() -> RandomSource { stream += 1; return RandomSource(seed: config.seed, stream: stream) }
        let names = architecture.sharedEmbedding ? ["embedding"] : ["ctr.embedding", "cvr.embedding"]
        embeddings = names.map { name in
            var r = rng()
            return EmbeddingLayer(name: name, rows: embeddingRows, fields: fields, dim: config.embeddingDim,
                                  denseCount: denseCount, maxBatch: cap, rng: &r)
        }
        let width = embeddings[0].outputWidth
        var r1 = rng(), r2 = rng()
        ctrTower = MLP(name: "ctr.tower", inputWidth: width, hidden: config.hidden, maxBatch: cap, rng: &r1)
        cvrTower = MLP(name: "cvr.tower", inputWidth: width, hidden: config.hidden, maxBatch: cap, rng: &r2)
        inputs = embeddings.map { _ in FloatBuffer(count: cap * width) }
        inputGradients = embeddings.map { _ in FloatBuffer(count: cap * width) }
        ctrLogits = FloatBuffer(count: cap)
        dCtr = FloatBuffer(count: cap)
        dCvr = FloatBuffer(count: cap)
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

    private func embed(_ e: Int, _ batch: Batch) {
        batch.ids.withUnsafeBufferPointer { ids in
            embeddings[e].forward(ids: ids.baseAddress!, dense: batch.dense.base, batch: batch.count, into: inputs[e].base)
        }
    }

    private func embedBackward(_ e: Int, _ batch: Batch) {
        batch.ids.withUnsafeBufferPointer { ids in
            embeddings[e].backward(ids: ids.baseAddress!, dOut: inputGradients[e].base, batch: batch.count)
        }
    }

    /// Forward and backward for one objective; leaves gradients in the parameters and returns the
    /// batch-mean loss.
    @discardableResult
    public func computeGradients(_ batch: Batch, objective: Objective) -> Double {
        let n = batch.count
        let norm = Double(n)
        switch objective {
        case .entireSpace:
            let e = ctrEmbedding
            embed(e, batch)
            let x = UnsafePointer(inputs[e].base)
            ctrLogits.base.update(from: ctrTower.forward(x, batch: n), count: n)
            let lv = cvrTower.forward(x, batch: n)
            // CTCVR first: it writes both logit gradients; the CTR term then adds to the CTR one.
            var loss = ProductCrossEntropy.forwardBackward(
                logitsA: ctrLogits.base, logitsB: lv, labels: batch.clickAndConversion.base, weights: nil,
                count: n, normalizer: norm, dA: dCtr.base, dB: dCvr.base)
            loss += LogitCrossEntropy.forwardBackward(
                logits: ctrLogits.base, labels: batch.click.base, weights: nil, count: n,
                normalizer: norm, dLogits: dCtr.base, accumulate: true)
            ctrTower.backward(x, dLogits: dCtr.base, batch: n, dx: inputGradients[e].base, accumulateInputGradient: false)
            cvrTower.backward(x, dLogits: dCvr.base, batch: n, dx: inputGradients[e].base, accumulateInputGradient: true)
            embedBackward(e, batch)
            return loss
        case .clickOnly, .conversionOnly:
            let isCTR = objective == .clickOnly
            let e = isCTR ? ctrEmbedding : cvrEmbedding
            let tower = isCTR ? ctrTower : cvrTower
            let labels = isCTR ? batch.click : batch.conversion
            let d = isCTR ? dCtr : dCvr
            embed(e, batch)
            let x = UnsafePointer(inputs[e].base)
            let logits = tower.forward(x, batch: n)
            let loss = LogitCrossEntropy.forwardBackward(
                logits: logits, labels: labels.base, weights: nil, count: n, normalizer: norm, dLogits: d.base)
            tower.backward(x, dLogits: d.base, batch: n, dx: inputGradients[e].base, accumulateInputGradient: false)
            embedBackward(e, batch)
            return loss
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

    /// CTR and CVR logits for a batch.
    public func logits(_ batch: Batch) -> ([Float], [Float]) {
        let n = batch.count
        embed(ctrEmbedding, batch)
        let lc = Array(UnsafeBufferPointer(start: ctrTower.forward(inputs[ctrEmbedding].base, batch: n), count: n))
        if cvrEmbedding != ctrEmbedding { embed(cvrEmbedding, batch) }
        let lv = Array(UnsafeBufferPointer(start: cvrTower.forward(inputs[cvrEmbedding].base, batch: n), count: n))
        return (lc, lv)
    }

    /// pCTR, pCVR and pCTCVR = pCTR·pCVR for every row of `data`, in order.
    public func predict(_ data: EncodedDataset) -> Predictions {
        var out = Predictions(count: data.rowCount)
        let batch = Batch(capacity: maxBatch, fields: fields, denseCount: denseCount)
        var start = 0
        while start < data.rowCount {
            let n = min(maxBatch, data.rowCount - start)
            batch.fill(from: data, start: start, count: n)
            embed(ctrEmbedding, batch)
            let lc = ctrTower.forward(inputs[ctrEmbedding].base, batch: n)
            for i in 0..<n { out.ctr[start + i] = Sigmoid.value(lc[i]) }
            if cvrEmbedding != ctrEmbedding { embed(cvrEmbedding, batch) }
            let lv = cvrTower.forward(inputs[cvrEmbedding].base, batch: n)
            for i in 0..<n {
                let v = Sigmoid.value(lv[i])
                out.cvr[start + i] = v
                out.ctcvr[start + i] = out.ctr[start + i] * v
            }
            start += n
        }
        return out
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
