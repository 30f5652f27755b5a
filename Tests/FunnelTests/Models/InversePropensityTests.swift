import Foundation
import XCTest
@testable import Funnel

/// Multi-IPW and ESCM²-IPW: the loss against the estimator written out by hand, and the stopped
/// propensity gradient (the CTR tower learns from the CTR loss alone, whatever the CVR term).
final class InversePropensityTests: XCTestCase {
    private func setup(_ kind: ModelKind, clip: Double = 0.5, lambda: Double = 0.7, seed: UInt64 = 5)
        -> (FunnelNetwork, Batch, EncodedDataset, [Int32]) {
        var config = ModelConfig(kind: kind)
        config.embeddingDim = 3
        config.hidden = [5]
        config.seed = seed
        config.propensityClip = clip  // high enough that some rows are floored
        config.counterfactualWeight = lambda
        config.imputationWeight = 0.4
        config.twinConstraintWeight = 0.3
        let data = randomDataset(rows: 30, fields: 3, vocab: 4, dense: 2, seed: 8, clickRate: 0.5)
        let net = FunnelNetwork(config: config, embeddingRows: 12, fields: 3, denseCount: 2)
        let rows: [Int32] = Array(0..<12)
        let batch = Batch(capacity: 12, fields: 3, denseCount: 2)
        rows.withUnsafeBufferPointer { batch.fill(from: data, rows: $0) }
        return (net, batch, data.subset(rows, weights: nil), rows)
    }

    private func ce(_ y: Float, _ p: Float) -> Double { -(Double(y) * log(Double(p)) + Double(1 - y) * log(Double(1 - p))) }

    func testTheLossesAreTheEstimatorsWrittenOut() {
        for (kind, objective) in [(ModelKind.multiIPW, Objective.ipwCVR), (.escm2IPW, .entireSpaceIPW)] {
            let (net, batch, data, _) = setup(kind)
            let p = net.predict(data)
            var ctr = 0.0, ctcvr = 0.0, ipw = 0.0
            var floored = 0
            for i in 0..<data.rowCount {
                let y = data.click![i], z = data.conversion![i]
                ctr += ce(y, p.ctr[i])
                ctcvr += ce(y * z, p.ctr[i] * p.cvr[i])
                if p.ctr[i] < 0.5 { floored += 1 }
                ipw += Double(y) / Double(max(p.ctr[i], 0.5)) * ce(z, p.cvr[i])
            }
            let n = Double(data.rowCount)
            let expected = objective == .ipwCVR ? (ctr + ipw) / n : (ctr + ctcvr + 0.7 * ipw) / n
            XCTAssertEqual(net.computeGradients(batch, objective: objective), expected, accuracy: 1e-5, "\(kind)")
            XCTAssertGreaterThan(floored, 0, "the clip is exercised")
        }
    }

    /// The CTR tower's gradient under Multi-IPW is the CTR loss's alone: no gradient flows
    /// through the propensity weights.
    func testThePropensityGradientIsStopped() {
        let (net, batch, _, _) = setup(.multiIPW)
        _ = net.computeGradients(batch, objective: .ipwCVR)
        let towers = net.parameters(for: .ipwCVR).filter { $0.name.hasPrefix("ctr.") }
        XCTAssertFalse(towers.isEmpty)
        let withIPW = towers.map { p in (0..<p.count).map { p.grad[$0] } }
        let fresh = Batch(capacity: batch.capacity, fields: 3, denseCount: 2)
        let (_, _, data, rows) = setup(.multiIPW)
        rows.withUnsafeBufferPointer { fresh.fill(from: data, rows: $0) }
        _ = net.computeGradients(fresh, objective: .ctr)
        for (k, p) in towers.enumerated() {
            XCTAssertEqual(withIPW[k], (0..<p.count).map { p.grad[$0] }, p.name)
        }
    }

    /// The doubly robust risk written out (r̃ = σ(t) from the imputation head, ê = CE(r̃, pCVR),
    /// e = CE(conversion, pCVR), κ = 0.4) for Multi-DR (with the CTR loss) and ESCM²-DR (with ESMM's, λ = 0.7).
    func testTheDoublyRobustRiskIsTheEstimatorWrittenOut() {
        func softplus(_ x: Double) -> Double { x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)) }
        for (kind, objective) in [(ModelKind.multiDR, Objective.doublyRobustCVR), (.escm2DR, .entireSpaceDR)] {
            let (net, batch, data, _) = setup(kind)
            let loss = net.computeGradients(batch, objective: objective)
            let s = net.scratch.workers[0]
            var ctr = 0.0, ctcvr = 0.0, dr = 0.0
            for i in 0..<data.rowCount {
                let y = Double(data.click![i]), r = Double(data.conversion![i])
                let lc = Double(s.logits[0][i]), ls = Double(s.logits[1][i]), lt = Double(s.logits[2][i])
                let pctr = 1 / (1 + exp(-lc)), pcvr = 1 / (1 + exp(-ls)), imputed = 1 / (1 + exp(-lt))
                ctr += -(y * log(pctr) + (1 - y) * log(1 - pctr))
                ctcvr += -(y * r * log(pctr * pcvr) + (1 - y * r) * log(1 - pctr * pcvr))
                let e = softplus(ls) - r * ls, eHat = softplus(ls) - imputed * ls, inv = 1 / max(Double(Float(pctr)), 0.5)
                dr += eHat + y * (e - eHat) * inv + 0.4 * y * (e - eHat) * (e - eHat) * inv
            }
            let n = Double(data.rowCount)
            let expected = objective == .doublyRobustCVR ? (ctr + dr) / n : (ctr + ctcvr + 0.7 * dr) / n
            XCTAssertEqual(loss, expected, accuracy: 1e-4, "\(kind)")
            XCTAssertEqual(net.predictedHeads.count, 2, "the imputation head is trained, never predicted")
        }
    }

    /// DCMT's twin-tower risk written out (a = o/max(p̂, ½), b = (1 − o)/max(1 − p̂, ½), the
    /// counterfactual tower towards 1 − r, λ₁ = 0.3) with ESMM's losses, weighted w = 0.7.
    func testTheTwinTowerRiskIsDCMTsWrittenOut() {
        // The first seed whose initial pCTRs fall on both sides of the clip ½, so both floors act.
        let seed = (UInt64(5)..<200).first { seed in
            let (net, _, data, _) = setup(.dcmt, seed: seed)
            let p = net.predict(data).ctr
            return p.contains { $0 < 0.5 } && p.contains { $0 > 0.5 }
        }!
        let (net, batch, data, _) = setup(.dcmt, seed: seed)
        let loss = net.computeGradients(batch, objective: .counterfactualTwin)
        let s = net.scratch.workers[0]
        var esmm = 0.0, twin = 0.0, flooredOnEachSide = (0, 0)
        for i in 0..<data.rowCount {
            let y = Double(data.click![i]), r = Double(data.conversion![i])
            let pctr = 1 / (1 + exp(-Double(s.logits[0][i])))
            let pcvr = 1 / (1 + exp(-Double(s.logits[1][i]))), twinCVR = 1 / (1 + exp(-Double(s.logits[2][i])))
            esmm += -(y * log(pctr) + (1 - y) * log(1 - pctr))
            esmm += -(y * r * log(pctr * pcvr) + (1 - y * r) * log(1 - pctr * pcvr))
            let p = Double(Float(pctr))
            if p < 0.5 { flooredOnEachSide.0 += 1 } else { flooredOnEachSide.1 += 1 }
            let a = y / max(p, 0.5), b = (1 - y) / max(1 - p, 0.5)
            let factual = -(r * log(pcvr) + (1 - r) * log(1 - pcvr))
            let counterfactual = -((1 - r) * log(twinCVR) + r * log(1 - twinCVR))
            twin += a * factual + b * counterfactual
            twin += 0.3 * abs(1 - pcvr - twinCVR)
        }
        let n = Double(data.rowCount)
        XCTAssertEqual(loss, (esmm + 0.7 * twin) / n, accuracy: 1e-4)
        XCTAssertGreaterThan(flooredOnEachSide.0, 0, "the clip floors p̂")
        XCTAssertGreaterThan(flooredOnEachSide.1, 0, "the clip floors 1 − p̂")
        XCTAssertEqual(net.predictedHeads.count, 2, "the counterfactual tower is trained, never predicted")
        XCTAssertTrue(net.parameters(for: .counterfactualTwin).contains { $0.name.hasPrefix("counterfactual_cvr.") })
    }

    private static let debiasing: [(ModelKind, Objective)] = [
        (.multiIPW, .ipwCVR), (.escm2IPW, .entireSpaceIPW), (.multiDR, .doublyRobustCVR), (.escm2DR, .entireSpaceDR),
        (.dcmt, .counterfactualTwin),
    ]

    /// The bad input the docs define: propensities that round to 0 or 1 (the CTR output pushed to
    /// ±100), batches where every row or no row is clicked — every loss and gradient finite.
    func testPropensitiesAtTheEdgesAndBatchesOfOneClickLabelAreDefined() {
        for (kind, objective) in Self.debiasing {
            for clickRate in [0.0, 1.0, 0.5] {
                for push: Float in [-100, 100, 0] {
                    var config = ModelConfig(kind: kind)
                    config.embeddingDim = 3
                    config.hidden = [5]
                    let data = randomDataset(rows: 16, fields: 3, vocab: 4, dense: 2, seed: 3, clickRate: clickRate)
                    let net = FunnelNetwork(config: config, embeddingRows: 12, fields: 3, denseCount: 2)
                    let ctrBias = net.parameters(for: objective).last { $0.name.hasPrefix("ctr.") && $0.name.hasSuffix(".bias") }!
                    ctrBias.value[0] += push
                    let batch = Batch(capacity: 16, fields: 3, denseCount: 2)
                    let rows: [Int32] = Array(0..<16)
                    rows.withUnsafeBufferPointer { batch.fill(from: data, rows: $0) }
                    let loss = net.computeGradients(batch, objective: objective)
                    let label = "\(kind) click rate \(clickRate), CTR logit pushed \(push)"
                    XCTAssertTrue(loss.isFinite, label)
                    for p in net.parameters(for: objective) where !p.isSparse {
                        XCTAssertTrue((0..<p.count).allSatisfy { p.grad[$0].isFinite }, "\(label): \(p.name)")
                    }
                }
            }
        }
    }

    /// A loss that stops being finite ends the run naming the stage, and the update that produced
    /// it is never applied: the weights stay finite.
    func testADivergingRunIsRefusedNamingTheStageAndNoNaNReachesTheWeights() {
        var config = ModelConfig(kind: .dcmt)
        config.embeddingDim = 3
        config.hidden = [5]
        config.batchSize = 8
        config.learningRate = 1e30  // Adam's first steps move every weight by ~lr: the logits overflow
        let data = randomDataset(rows: 64, fields: 3, vocab: 4, dense: 2, seed: 3)
        let net = FunnelNetwork(config: config, embeddingRows: 12, fields: 3, denseCount: 2)
        XCTAssertThrowsError(try Trainer(config: config).train(net, on: data)) { error in
            XCTAssertTrue("\(error)".contains("stage 'counterfactual_twin'"), "\(error)")
        }
        for p in net.parameters(for: .counterfactualTwin) {
            XCTAssertTrue((0..<p.count).allSatisfy { p.value[$0].isFinite }, p.name)
        }
    }
}
