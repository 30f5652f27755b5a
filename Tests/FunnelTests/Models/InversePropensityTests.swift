import Foundation
import XCTest
@testable import Funnel

/// Multi-IPW and ESCM²-IPW: the loss against the estimator written out by hand, and the stopped
/// propensity gradient (the CTR tower learns from the CTR loss alone, whatever the CVR term).
final class InversePropensityTests: XCTestCase {
    private func setup(_ kind: ModelKind, clip: Double = 0.5, lambda: Double = 0.7)
        -> (FunnelNetwork, Batch, EncodedDataset, [Int32]) {
        var config = ModelConfig(kind: kind)
        config.embeddingDim = 3
        config.hidden = [5]
        config.seed = 5
        config.propensityClip = clip  // high enough that some rows are floored
        config.counterfactualWeight = lambda
        config.imputationWeight = 0.4
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
}
