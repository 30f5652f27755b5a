/// Prediction (pCTR, pCVR, pCTCVR per row) and the gate summaries of gated trunks.
extension FunnelNetwork {
    /// Mean gate weight on each expert, per head ("ctr", and "cvr" or "ctcvr"), over `data`
    /// (taml-www2023 Fig. 4's view of what the gates learned). Empty without a mixture trunk.
    public func gateSummary(_ data: EncodedDataset) -> [(head: String, weights: [Double])] {
        let mixtures = self.mixtures
        guard !mixtures.isEmpty, data.rowCount > 0 else { return [] }
        // One row per gate: per head, or per head and learner when heads have several learners.
        var gates: [(name: String, head: Head, learner: Int)] = []
        for h in predictedHeads {
            let name = h == .ctr ? "ctr" : h == .ctcvr ? "ctcvr" : architecture.secondHead.rawValue
            for l in 0..<learnerCount { gates.append((learnerCount == 1 ? name : "\(name) learner \(l)", h, l)) }
        }
        let width = mixtures[0].gateLabels.count
        var sums = gates.map { _ in [Double](repeating: 0, count: width) }
        let batch = makeBatch()
        var start = 0
        while start < data.rowCount {
            let n = min(maxBatch, data.rowCount - start)
            batch.fill(from: data, start: start, count: n)
            BLAS.with(gemm) { for t in 0..<embeddings.count { _ = forwardTrunk(t, batch, worker: 0) } }
            for (k, g) in gates.enumerated() {
                let w = mixtures[trunk(of: g.head)].gateWeights(gate: gate(of: g.head, learner: g.learner), worker: 0)
                for r in 0..<n { for e in 0..<width { sums[k][e] += Double(w[r * width + e]) } }
            }
            start += n
        }
        return gates.enumerated().map { k, g in (g.name, sums[k].map { $0 / Double(data.rowCount) }) }
    }

    /// The heads a prediction runs, in order.
    package var predictedHeads: [Head] { (architecture.ctrHead ? [.ctr, .second] : [.second]) + (architecture.ctcvrHead ? [.ctcvr] : []) }

    /// pCTR for the given rows (CTR head), e.g. for UNBIAS's propensity weights.
    public func predictCTR(_ data: EncodedDataset, rows: [Int32]) -> [Float] {
        guard ctrTower != nil else { return [] }
        precondition(sharded == nil, "a row-sharded network predicts collectively (predictCTRCollectively)")
        var out = [Float](repeating: 0, count: rows.count)
        let batch = makeBatch()
        let logits = scratch.workers[0].logits[Head.ctr.rawValue]
        var start = 0
        while start < rows.count {
            let n = min(maxBatch, rows.count - start)
            rows.withUnsafeBufferPointer { batch.fill(from: data, rows: UnsafeBufferPointer(rebasing: $0[start..<(start + n)])) }
            _ = forward(batch, heads: [.ctr], worker: 0)
            for i in 0..<n { out[start + i] = Sigmoid.value(logits[i]) }
            start += n
        }
        return out
    }

    /// pCTR, pCVR and pCTCVR for every row of `data`, in order; NaN where the model has no
    /// such output (ESP has no CTR head). Rows are split into contiguous chunks, one per
    /// worker, predicted concurrently.
    public func predict(_ data: EncodedDataset) -> Predictions {
        var out = Predictions(count: data.rowCount)
        guard data.rowCount > 0 else { return out }
        out.withOutputs { pc, pv, pcv in
            Parallel.forEach(workers) { w in
                self.predict(data, rows: self.workerRows(w, of: data.rowCount), worker: w, ctr: pc, cvr: pv, ctcvr: pcv)
            }
        }
        return out
    }

    /// Worker `w`'s contiguous share of `n` rows in `predict(_:)` (and its warm-up).
    private func workerRows(_ w: Int, of n: Int) -> Range<Int> {
        let chunk = (n + workers - 1) / max(workers, 1)
        let lo = min(n, w * chunk)
        return lo..<min(n, lo + chunk)
    }

    /// Runs each worker's first block of `data` through the network once, outputs discarded: the
    /// GEMM engine creates its kernels for the block shape on first use (oneDNN: ~0.25 ms per
    /// layer shape and thread), which `predict(_:)` then finds ready. Called before the clock
    /// starts in `funnel predict`.
    public func warmUp(_ data: EncodedDataset) {
        guard data.rowCount > 0 else { return }
        Parallel.forEach(workers) { w in
            let rows = self.workerRows(w, of: data.rowCount)
            guard !rows.isEmpty else { return }
            let batch = self.makeBatch()
            batch.fill(from: data, start: rows.lowerBound, count: min(self.maxBatch, rows.count))
            _ = self.forward(batch, heads: self.predictedHeads, worker: w)
        }
    }

    /// Predicts every row of `data` with one worker's buffers only, so callers holding distinct
    /// workers (concurrent server requests) can predict at the same time. Rows that carry
    /// requests share them (`sharingPlan(for:)`: a request's part computed once).
    public func predict(_ data: EncodedDataset, worker: Int) -> Predictions {
        var out = Predictions(count: data.rowCount)
        guard data.rowCount > 0 else { return out }
        let sharing = data.requests.flatMap { sharingPlan(for: $0.fields) }
        out.withOutputs { pc, pv, pcv in
            predict(data, rows: 0..<data.rowCount, worker: worker, sharing: sharing, ctr: pc, cvr: pv, ctcvr: pcv)
        }
        return out
    }

    private func predict(_ data: EncodedDataset, rows: Range<Int>, worker: Int, sharing: RequestSharing?? = nil,
                         ctr: UnsafeMutablePointer<Float>, cvr: UnsafeMutablePointer<Float>, ctcvr: UnsafeMutablePointer<Float>) {
        guard !rows.isEmpty else { return }
        precondition(sharded == nil, "a row-sharded network predicts collectively (predictCollectively)")
        let batch = makeBatch(sharing: sharing)
        var start = rows.lowerBound
        while start < rows.upperBound {
            let n = min(maxBatch, rows.upperBound - start)
            batch.fill(from: data, start: start, count: n)
            predictFilled(batch, at: start, worker: worker, ctr: ctr, cvr: cvr, ctcvr: ctcvr)
            start += n
        }
    }

    /// Runs a filled batch forward and writes its rows' probabilities at `start...` of the outputs.
    func predictFilled(_ batch: Batch, at start: Int, worker: Int,
                       ctr: UnsafeMutablePointer<Float>, cvr: UnsafeMutablePointer<Float>, ctcvr: UnsafeMutablePointer<Float>) {
        let s = scratch.workers[worker]
        let lc = s.logits[Head.ctr.rawValue], ls = s.logits[Head.second.rawValue], lt = s.logits[Head.ctcvr.rawValue]
        _ = forward(batch, heads: predictedHeads, worker: worker)
        for i in 0..<batch.count {
            let r = start + i
            let pCTR: Float = architecture.ctrHead ? Sigmoid.value(lc[i]) : .nan
            let second = Sigmoid.value(ls[i])
            ctr[r] = pCTR
            switch architecture.secondHead {
            case .cvr:
                cvr[r] = second
                // MTDM predicts pCTCVR with its own head; otherwise it is pCTR × pCVR.
                ctcvr[r] = architecture.ctcvrHead ? Sigmoid.value(lt[i]) : pCTR * second
            case .ctcvr:
                ctcvr[r] = second
                cvr[r] = architecture.ctrHead ? min(max(second / max(pCTR, .leastNormalMagnitude), 0), 1) : .nan
            }
        }
    }
}

/// The three probabilities for each row (NaN where a model does not predict one).
public struct Predictions: Sendable {
    public var ctr: [Float]
    public var cvr: [Float]
    public var ctcvr: [Float]

    public init(count: Int) {
        ctr = [Float](repeating: 0, count: count)
        cvr = ctr
        ctcvr = ctr
    }

    public init(ctr: [Float], cvr: [Float], ctcvr: [Float]) {
        (self.ctr, self.cvr, self.ctcvr) = (ctr, cvr, ctcvr)
    }

    /// The three output arrays as pointers, for writers that fill rows concurrently.
    mutating func withOutputs(_ body: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) throws -> Void) rethrows {
        try ctr.withUnsafeMutableBufferPointer { c in
            try cvr.withUnsafeMutableBufferPointer { v in
                try ctcvr.withUnsafeMutableBufferPointer { cv in try body(c.baseAddress!, v.baseAddress!, cv.baseAddress!) }
            }
        }
    }
}
