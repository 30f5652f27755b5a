/// Backward through the heads and trunks, the gradient of one objective on one worker's
/// shard, and the reduce over workers.
extension FunnelNetwork {
    /// Where head `h` writes its input gradient: its own buffer under a mixture, else the
    /// trunk's shared one (heads on one trunk then accumulate).
    private func headInputGradient(_ h: Head, learner l: Int = 0, worker: Int) -> UnsafeMutablePointer<Float> {
        let s = scratch.workers[worker]
        let t = trunk(of: h)
        switch bodies[t] {
        case .gated: return s.headInputGradients[h.rawValue * learnerCount + l]
        case .dense: return s.bottomGradients[t]
        case .identity: return s.embeddingGradients[t]
        }
    }

    /// Trunk t's body (shared bottom or expert mixture): its parameters' gradients and its input
    /// gradient, which `backwardInputs` carries to the embeddings.
    private func backwardBody(_ t: Int, _ batch: Batch, heads hs: [Head], worker: Int) {
        let s = scratch.workers[worker]
        let dEmbedding = s.embeddingGradients[t]
        let x = bodyInput(t, batch, worker: worker)
        switch bodies[t] {
        case .identity: break
        case .dense(let bottom):
            bottom.backward(x, dLogits: s.bottomGradients[t], batch: batch.count,
                            dx: dEmbedding, accumulateInputGradient: false, worker: worker)
        case .gated(let mixture):
            var dOutputs = [UnsafePointer<Float>?](repeating: nil, count: gatesPerTrunk)
            for h in hs where trunk(of: h) == t {
                for l in 0..<learnerCount { dOutputs[gate(of: h, learner: l)] = UnsafePointer(headInputGradient(h, learner: l, worker: worker)) }
            }
            mixture.backward(x, dOutputs: dOutputs, batch: batch.count, dx: dEmbedding,
                             accumulateInputGradient: false, worker: worker)
        }
    }

    /// Below trunk t's body: the request split, the cross layers and the embeddings (rows,
    /// pooling, attention units) — every gradient `inputParameters` holds.
    private func backwardInputs(_ t: Int, _ batch: Batch, worker: Int) {
        let dEmbedding = scratch.workers[worker].embeddingGradients[t]
        if case .split = bodyInput(t, batch, worker: worker) {
            batch.sharing!.backward(embeddings[t], trunk: t, batch, full: dEmbedding, worker: worker)
            return
        }
        // The body's input gradient is the cross layers' output gradient; in place, to the embeddings'.
        crosses[t]?.backward(dy: dEmbedding, batch: batch.count, worker: worker, dx0: dEmbedding, accumulate: false)
        batch.ids.withUnsafeBufferPointer { ids in
            embeddings[t].backward(ids: ids.baseAddress!, dOut: dEmbedding, batch: batch.count, worker: worker, bags: batch.bags)
        }
    }

    /// AITM: output layers first; the transfer then adds its share to the CTR representation's gradient.
    private func backwardTransfer(_ transfer: AdaptiveInformationTransfer, batch n: Int, worker: Int) {
        let s = scratch.workers[worker]
        let dqc = s.transfer[0], dqs = s.transfer[1], dz = s.transfer[2]
        towerOutputs[0].backward(ctrTower!.forwardOutput(worker: worker), dy: s.logitGradients[Head.ctr.rawValue], batch: n, dx: dqc, worker: worker)
        towerOutputs[1].backward(transfer.output(worker: worker), dy: s.logitGradients[Head.second.rawValue], batch: n, dx: dz, worker: worker)
        transfer.backward(dz: dz, batch: n, dPrevious: dqc, dCurrent: dqs, worker: worker)
    }

    /// The gradient a learner's backward starts from: the AITM scratch, the head's logit
    /// gradient, or (several learners) the learner's own, set by the loss.
    private func learnerLogitGradient(_ h: Head, learner l: Int, worker: Int) -> UnsafePointer<Float> {
        let s = scratch.workers[worker]
        if transfer != nil { return UnsafePointer(s.transfer[h == .ctr ? 0 : 1]) }
        if learners(h).count == 1 { return UnsafePointer(s.logitGradients[h.rawValue]) }
        return UnsafePointer(s.learnerGradients[h.rawValue][l])
    }

    /// Forward and backward for one objective on `worker`'s shard; leaves the gradients in that
    /// worker's slots and returns the shard's weighted loss divided by `normalizer` (default:
    /// the shard size). Shards of one batch pass the batch size, so their gradients simply add.
    @discardableResult
    public func computeGradients(_ batch: Batch, objective: Objective, worker: Int = 0, normalizer: Int? = nil) -> Double {
        BLAS.with(gemm) { gradients(batch, objective: objective, worker: worker, normalizer: normalizer) }
    }

    /// `computeGradients`' first part: forward, loss, and the backward of the heads and trunk
    /// bodies — every gradient of `towerParameters` is final after it, so a data-parallel job can
    /// start their all-reduce while `computeInputGradients` runs.
    @discardableResult
    public func computeTowerGradients(_ batch: Batch, objective: Objective, worker: Int = 0, normalizer: Int? = nil) -> Double {
        BLAS.with(gemm) { gradients(batch, objective: objective, worker: worker, normalizer: normalizer, throughInputs: false) }
    }

    /// `computeGradients`' second part, after `computeTowerGradients` on the same worker and batch.
    public func computeInputGradients(_ batch: Batch, objective: Objective, worker: Int = 0) {
        BLAS.with(gemm) {
            for t in Set(heads(for: objective).map(trunk(of:))).sorted() { backwardInputs(t, batch, worker: worker) }
        }
    }

    private func gradients(_ batch: Batch, objective: Objective, worker: Int, normalizer: Int?, throughInputs: Bool = true) -> Double {
        let n = batch.count
        let hs = heads(for: objective)
        let inputs = forward(batch, heads: hs, worker: worker)
        let loss = lossAndLogitGradients(objective, batch, worker: worker, normalizer: Double(normalizer ?? n))
        if let transfer { backwardTransfer(transfer, batch: n, worker: worker) }
        var started = Set<Int>()
        for h in hs {
            let t = trunk(of: h)
            for (l, learner) in learners(h).enumerated() {
                learner.backward(headInput(h, learner: l, trunkOutput: inputs[t]!, worker: worker),
                                 dLogits: learnerLogitGradient(h, learner: l, worker: worker), batch: n,
                                 dx: headInputGradient(h, learner: l, worker: worker),
                                 accumulateInputGradient: !isGated && started.contains(t), worker: worker)
                started.insert(t)
            }
        }
        // Trunks are independent below their bodies: all bodies first, then all inputs, is the
        // same arithmetic as trunk by trunk.
        for t in started.sorted() { backwardBody(t, batch, heads: hs, worker: worker) }
        if throughInputs { for t in started.sorted() { backwardInputs(t, batch, worker: worker) } }
        return loss
    }

    /// The reduce step: sums the gradients of workers 1..<`active` into worker 0's slots, in
    /// worker order (so a fixed worker count gives bitwise-identical sums).
    public func reduceGradients(for objective: Objective, active: Int) {
        reduceGradients(of: parameters(for: objective), active: active)
    }

    /// The reduce over workers of `params` alone (a stage's tower parameters, say).
    public func reduceGradients(of params: [Parameter], active: Int) {
        guard active > 1 else { return }
        let tables = Set(params.filter(\.isSparse).map(\.name))
        for e in embeddings where tables.contains(e.table.name) { e.reduceGradients(workers: active) }
        for p in params where !p.isSparse {
            let dst = p.gradients[0].dense.base
            for w in 1..<active {
                let src = p.gradients[w].dense.base
                for i in 0..<p.count { dst[i] += src[i] }
            }
        }
    }

    /// The objective's loss without gradients (worker 0), for gradient checks.
    public func loss(_ batch: Batch, objective: Objective) -> Double {
        _ = forward(batch, heads: heads(for: objective), worker: 0)
        return lossAndLogitGradients(objective, batch, worker: 0, normalizer: Double(batch.count))
    }
}
