/// The objective → loss routing: which loss each `Objective` computes from which head logits,
/// and the logit gradients it leaves in the worker's buffers for the backward pass. The losses
/// themselves (and their forward/backward pairs) are in `Layers/Losses.swift`.
extension FunnelNetwork {
    /// The objective's loss and the gradients of its logits (into this worker's buffers); with
    /// several learners per head, also each learner's logit gradient: its share of the head's
    /// (the head logit is their mean) plus, for TAML, its self-distillation term.
    func lossAndLogitGradients(_ objective: Objective, _ batch: Batch, worker: Int, normalizer: Double) -> Double {
        let loss = headLossAndGradients(objective, batch, worker: worker, normalizer: normalizer)
        guard learnerCount > 1 else { return loss }
        return learnerGradientsAndDistillation(objective, batch, worker: worker, normalizer: normalizer, loss: loss)
    }

    /// Splits each head's logit gradient over its learners and adds TAML's self-distillation
    /// (taml-www2023 Eq. 2–3, with log(1 − p̂) where Eq. 2 prints (1 − log p̂)): the fused
    /// prediction is the teacher, held constant, each learner the student. Returns `loss` plus
    /// the distillation terms, added in learner order.
    private func learnerGradientsAndDistillation(_ objective: Objective, _ batch: Batch, worker: Int,
                                                 normalizer: Double, loss: Double) -> Double {
        let s = scratch.workers[worker]
        let n = batch.count
        let scale = 1 / Float(learnerCount)
        var loss = loss
        for h in heads(for: objective) {
            let k = h.rawValue
            let dHead = s.logitGradients[k], headLogit = s.logits[k]
            let weight = objective == .multiLearner && h != .ctcvr ? (h == .ctr ? config.distillationCTR : config.distillationCVR) : 0
            let soft = s.teacher
            for i in 0..<n { soft[i] = Sigmoid.value(headLogit[i]) }
            for l in 0..<learnerCount {
                let d = s.learnerGradients[k][l]
                for i in 0..<n { d[i] = dHead[i] * scale }
                guard weight > 0 else { continue }
                let distill = LogitCrossEntropy.forwardBackward(
                    logits: s.learnerLogits[k][l], labels: soft, weights: UnsafePointer(batch.weight.base), count: n,
                    normalizer: normalizer, dLogits: s.maskedWeights)
                for i in 0..<n { d[i] += Float(weight) * s.maskedWeights[i] }
                loss += weight * distill
            }
        }
        return loss
    }

    private func headLossAndGradients(_ objective: Objective, _ batch: Batch, worker: Int, normalizer: Double) -> Double {
        let s = scratch.workers[worker]
        let n = batch.count
        let lc = s.logits[Head.ctr.rawValue], ls = s.logits[Head.second.rawValue]
        let dc = s.logitGradients[Head.ctr.rawValue], ds = s.logitGradients[Head.second.rawValue]
        let w = UnsafePointer(batch.weight.base)
        let y = batch.click.base, yz = batch.clickAndConversion.base
        func ce(_ z: UnsafePointer<Float>, _ labels: UnsafePointer<Float>, _ weights: UnsafePointer<Float>,
                _ d: UnsafeMutablePointer<Float>, accumulate: Bool = false) -> Double {
            LogitCrossEntropy.forwardBackward(logits: z, labels: labels, weights: weights, count: n,
                                              normalizer: normalizer, dLogits: d, accumulate: accumulate)
        }
        /// ESMM: CE(y·z, pCTR·pCVR) + CE(y, pCTR). The CTCVR term first: it writes both logit
        /// gradients; the CTR term then adds to the CTR one. Put first in a sum (operands are
        /// evaluated left to right), the terms after it add to its gradients.
        func entireSpace() -> Double {
            ProductCrossEntropy.forwardBackward(logitsA: lc, logitsB: ls, labels: yz, weights: w, count: n, normalizer: normalizer,
                                               dA: dc, dB: ds)
                + ce(lc, y, w, dc, accumulate: true)
        }
        /// The data weights times the click: the CVR loss counted on clicked rows only.
        func clickMasked() -> UnsafePointer<Float> {
            for i in 0..<n { s.maskedWeights[i] = w[i] * y[i] }
            return UnsafePointer(s.maskedWeights)
        }
        switch objective {
        case .ctr:
            return ce(lc, y, w, dc)
        case .cvr, .ctcvr:
            // y·z: equal to z on clicked rows, and 0 on the unclicked negatives AMAN adds.
            return ce(ls, yz, w, ds)
        case .entireSpace, .multiLearner:
            return entireSpace()
        case .splitHeads:
            return ce(lc, y, w, dc) + ce(ls, yz, w, ds)
        case .clickMaskedCVR:
            return ce(lc, y, w, dc) + ce(ls, batch.conversion.base, clickMasked(), ds)
        case .parallelHeads:
            // MTDM: CTR and CTCVR on every row, CVR on clicked rows, three heads in parallel.
            return ce(lc, y, w, dc) + ce(ls, batch.conversion.base, clickMasked(), ds)
                + ce(s.logits[Head.ctcvr.rawValue], yz, w, s.logitGradients[Head.ctcvr.rawValue])
        case .ipwCVR:
            return ce(lc, y, w, dc) + ce(ls, batch.conversion.base, inversePropensityWeights(batch, lc, scale: 1, worker: worker), ds)
        case .entireSpaceIPW:
            let weights = inversePropensityWeights(batch, lc, scale: Float(config.effectiveCounterfactualWeight), worker: worker)
            return entireSpace() + ce(ls, batch.conversion.base, weights, ds, accumulate: true)
        case .doublyRobustCVR:
            return ce(lc, y, w, dc) + doublyRobust(batch, lc, ls, ds, scale: 1, worker: worker, normalizer: normalizer)
        case .entireSpaceDR:
            let lambda = config.effectiveCounterfactualWeight
            return entireSpace() + doublyRobust(batch, lc, ls, ds, scale: lambda, worker: worker, normalizer: normalizer, accumulate: true)
        case .counterfactualTwin:
            return entireSpace() + counterfactualTwin(batch, lc, ls, ds, worker: worker, normalizer: normalizer, accumulate: true)
        case .transferWithConstraint:
            let loss = ce(lc, y, w, dc) + ce(ls, yz, w, ds)
            return loss + LabelConstraint.forwardBackward(upper: lc, lower: ls, weights: w, count: n, alpha: config.aitmAlpha,
                                                          normalizer: normalizer, dUpper: dc, dLower: ds)
        }
    }

    /// p̂ = σ(CTR logit) per row, taken once per batch fill (`Batch.propensity`) and a constant
    /// of the loss after — no gradient flows into the CTR tower through it — and the clip it is
    /// floored at before inverting.
    private func heldPropensities(_ batch: Batch, _ ctrLogits: UnsafePointer<Float>) -> (p: UnsafePointer<Float>, clip: Float) {
        if !batch.propensityTaken {
            for i in 0..<batch.count { batch.propensity[i] = Sigmoid.value(ctrLogits[i]) }
            batch.propensityTaken = true
        }
        return (UnsafePointer(batch.propensity.base), Float(config.propensityClip ?? ModelConfig.defaultPropensityClip))
    }

    /// scale · w · y / max(p̂, clip) per row: the clicked rows' inverse-propensity weights (the
    /// unbiased estimate of the entire-space CVR risk is (1/N) Σ y·CE / p̂).
    private func inversePropensityWeights(_ batch: Batch, _ ctrLogits: UnsafePointer<Float>, scale: Float, worker: Int) -> UnsafePointer<Float> {
        let s = scratch.workers[worker], (p, clip) = heldPropensities(batch, ctrLogits)
        for i in 0..<batch.count { s.maskedWeights[i] = scale * batch.weight[i] * batch.click[i] / max(p[i], clip) }
        return UnsafePointer(s.maskedWeights)
    }

    /// `CounterfactualTwinRisk` (DCMT) on the factual CVR head and the counterfactual one (the
    /// third slot), with the batch's held propensities; writes (or, `accumulate`, adds to) the
    /// CVR logit gradient, writes the counterfactual one.
    private func counterfactualTwin(_ batch: Batch, _ ctrLogits: UnsafePointer<Float>, _ cvrLogits: UnsafePointer<Float>,
                                    _ dCVR: UnsafeMutablePointer<Float>, worker: Int, normalizer: Double, accumulate: Bool) -> Double {
        let s = scratch.workers[worker], k = Head.ctcvr.rawValue
        let (p, clip) = heldPropensities(batch, ctrLogits)
        return CounterfactualTwinRisk.forwardBackward(
            factualLogits: cvrLogits, counterfactualLogits: s.logits[k], conversion: batch.conversion.base,
            clicked: batch.click.base, propensity: p, clip: clip, weights: batch.weight.base, count: batch.count,
            normalizer: normalizer, constraintWeight: config.twinConstraintWeight ?? ModelConfig.defaultTwinConstraintWeight,
            scale: config.effectiveCounterfactualWeight, dFactual: dCVR, dCounterfactual: s.logitGradients[k], accumulate: accumulate)
    }

    /// `DoublyRobustRisk` on the CVR head and the imputation head (the third slot), with the
    /// batch's held propensities, imputed conversions and CVR logits (taken at the first loss of
    /// this fill); writes (or, `accumulate`, adds to) the CVR logit gradient, writes the
    /// imputation one. (Multi-DR, whose only CVR term this is, once added to last step's.)
    private func doublyRobust(_ batch: Batch, _ ctrLogits: UnsafePointer<Float>, _ cvrLogits: UnsafePointer<Float>,
                              _ dCVR: UnsafeMutablePointer<Float>, scale: Double, worker: Int, normalizer: Double,
                              accumulate: Bool = false) -> Double {
        let s = scratch.workers[worker], n = batch.count, k = Head.ctcvr.rawValue
        if !batch.doublyRobustTaken {
            for i in 0..<n { batch.imputedConversion[i] = Sigmoid.value(s.logits[k][i]); batch.stoppedCVRLogit[i] = cvrLogits[i] }
            batch.doublyRobustTaken = true
        }
        // 1/p̂ for every row (the risk multiplies by the click itself).
        let (p, clip) = heldPropensities(batch, ctrLogits)
        for i in 0..<n { s.maskedWeights[i] = 1 / max(p[i], clip) }
        return DoublyRobustRisk.forwardBackward(
            cvrLogits: cvrLogits, imputationLogits: s.logits[k], heldImputed: batch.imputedConversion.base,
            heldCVRLogits: batch.stoppedCVRLogit.base, conversion: batch.conversion.base, clicked: batch.click.base,
            inversePropensity: s.maskedWeights, weights: batch.weight.base, count: n, normalizer: normalizer,
            imputationWeight: config.imputationWeight ?? 1, scale: scale, dCVR: dCVR, dImputation: s.logitGradients[k],
            accumulate: accumulate)
    }
}
