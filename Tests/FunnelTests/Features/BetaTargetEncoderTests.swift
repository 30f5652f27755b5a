import Foundation
import XCTest
@testable import Funnel

/// Beta target encoding against hand-computed posteriors (two-stage LightGBM paper Eq. 1–8).
final class BetaTargetEncoderTests: XCTestCase {
    func testStatisticsOfBeta3And7() {
        let b = BetaDistribution(alpha: 3, beta: 7)
        XCTAssertEqual(b.value(.mean), 0.3, accuracy: 1e-12)
        XCTAssertEqual(b.value(.mode), 2.0 / 8.0, accuracy: 1e-12)
        XCTAssertEqual(b.value(.median), (8.0 / 3) / (28.0 / 3), accuracy: 1e-12)
        XCTAssertEqual(b.value(.variance), 21.0 / (100 * 11), accuracy: 1e-12)
        let skew: Double = 8 * 11.0.squareRoot() / (12 * 21.0.squareRoot())
        XCTAssertEqual(b.value(.skewness), skew, accuracy: 1e-12)
        let kurt: Double = 6 * (176.0 - 252.0) / 3276.0  // 6[(α−β)²(α+β+1) − αβ(α+β+2)] / (αβ(α+β+2)(α+β+3))
        XCTAssertEqual(b.value(.kurtosis), kurt, accuracy: 1e-12)
        // Eq. 7 and 8 as printed in the paper.
        XCTAssertEqual(b.value(.skewness, formulas: .paper), -4 / 231.0.squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(b.value(.kurtosis, formulas: .paper), 231.0 / 2520 - 3, accuracy: 1e-12)
        XCTAssertEqual(b.value(.mode, formulas: .paper), 0.25, accuracy: 1e-12)
    }

    func testStandardFormulasMatchSampledMoments() {
        // The standard skewness and excess kurtosis are the Beta's: check against moments of a fine grid.
        let b = BetaDistribution(alpha: 2.5, beta: 4)
        var m = [Double](repeating: 0, count: 5)
        let n = 200_000
        for i in 0..<n {
            let x = (Double(i) + 0.5) / Double(n)
            let w = pow(x, b.alpha - 1) * pow(1 - x, b.beta - 1)
            for k in 0..<5 { m[k] += w * pow(x, Double(k)) }
        }
        let mean = m[1] / m[0]
        func central(_ k: Int) -> Double {
            var s = 0.0
            for j in 0...k { s += Double(binomial(k, j)) * m[j] / m[0] * pow(-mean, Double(k - j)) }
            return s
        }
        let variance = central(2)
        XCTAssertEqual(b.value(.mean), mean, accuracy: 1e-6)
        XCTAssertEqual(b.value(.variance), variance, accuracy: 1e-6)
        XCTAssertEqual(b.value(.skewness), central(3) / pow(variance, 1.5), accuracy: 1e-4)
        XCTAssertEqual(b.value(.kurtosis), central(4) / (variance * variance) - 3, accuracy: 1e-4)
    }

    private func binomial(_ n: Int, _ k: Int) -> Int { k == 0 ? 1 : binomial(n - 1, k - 1) * n / k }

    func testModeAtTheBoundaries() {
        XCTAssertEqual(BetaDistribution(alpha: 0.5, beta: 3).value(.mode), 0)
        XCTAssertEqual(BetaDistribution(alpha: 3, beta: 0.5).value(.mode), 1)
        XCTAssertEqual(BetaDistribution(alpha: 0.5, beta: 0.5).value(.mode), 0.5)
        XCTAssertEqual(BetaDistribution(alpha: 0.1, beta: 5).value(.median), 0)  // clamped, the approximation goes negative
    }

    /// A: 4 rows (2 positive), B: 1 row (positive), C: 5 rows (1 positive); μ = 0.4, N₀ = 10, N_min = 2.
    private let keys: [Int64] = [1, 1, 1, 1, 2, 3, 3, 3, 3, 3]
    private let labels: [Float] = [1, 0, 1, 0, 1, 0, 0, 0, 0, 1]

    func testFittedPosteriorsSmallCountsAndUnseen() throws {
        var enc = try BetaTargetEncoder(priorStrength: 10, minCount: 2, statistics: [.mean, .variance], formulas: .standard)
        enc.fit(keys: keys, labels: labels)
        XCTAssertEqual(enc.priorMean, 0.4, accuracy: 1e-12)
        XCTAssertEqual(enc.posterior(for: 1), BetaDistribution(alpha: 6, beta: 8))
        XCTAssertEqual(enc.posterior(for: 2), BetaDistribution(alpha: 4, beta: 6), "N = 1 < N_min: the prior")
        XCTAssertEqual(enc.posterior(for: 3), BetaDistribution(alpha: 5, beta: 10))
        XCTAssertEqual(enc.posterior(for: 99), BetaDistribution(alpha: 4, beta: 6), "unseen: the prior")
        var out: [[Float]] = [[0, 0, 0], [0, 0, 0]]
        enc.encode(keys: [1, 99, 3], into: &out)
        XCTAssertEqual(out[0][0], Float(6.0 / 14), accuracy: 1e-7)
        XCTAssertEqual(out[0][1], 0.4, accuracy: 1e-7)
        XCTAssertEqual(out[1][1], Float(24.0 / (100 * 11)), accuracy: 1e-8)
        XCTAssertEqual(out[0][2], Float(5.0 / 15), accuracy: 1e-7)
        // Survives a save/load round trip.
        let decoded = try JSONDecoder().decode(BetaTargetEncoder.self, from: try JSONEncoder().encode(enc))
        XCTAssertEqual(decoded.posterior(for: 1), enc.posterior(for: 1))
        XCTAssertEqual(decoded.posterior(for: 99), enc.posterior(for: 99))
    }

    func testOutOfFoldUsesOnlyTheOtherFolds() throws {
        var enc = try BetaTargetEncoder(priorStrength: 10, minCount: 2, statistics: [.mean], formulas: .standard)
        let folds: [Int32] = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]
        var out: [[Float]] = [[Float](repeating: 0, count: 10)]
        enc.fitOutOfFold(keys: keys, labels: labels, fold: folds, folds: 2, into: &out)
        // Row 0 (A, fold 0): fold 1 holds rows 1, 3, 5, 7, 9 → μ = 1/5; A there: n = 0, N = 2 → Beta(2, 10).
        XCTAssertEqual(out[0][0], Float(2.0 / 12), accuracy: 1e-7)
        // Row 4 (B, fold 0): B never appears in fold 1 → the prior Beta(2, 8).
        XCTAssertEqual(out[0][4], 0.2, accuracy: 1e-7)
        // Row 1 (A, fold 1): fold 0 holds rows 0, 2, 4, 6, 8 (3 positive) → μ = 0.6; A there: n = 2, N = 2 → Beta(8, 4).
        XCTAssertEqual(out[0][1], Float(8.0 / 12), accuracy: 1e-7)
        // Row 9 (C, fold 1): fold 0 has C at rows 6, 8 (no positive) → Beta(6 + 0, 4 + 2).
        XCTAssertEqual(out[0][9], Float(6.0 / 12), accuracy: 1e-7)
        // And the encoder for later rows is fitted on all rows.
        XCTAssertEqual(enc.posterior(for: 1), BetaDistribution(alpha: 6, beta: 8))
    }

    /// Labels are pure noise and every category has 4 rows. An encoder that sees a row's own label
    /// "predicts" it (AUC far above 0.5 on the training rows); the out-of-fold encoding cannot.
    func testOutOfFoldEncodingDoesNotLeakTheLabel() throws {
        var rng = RandomSource(seed: 11)
        let n = 8000
        let keys = (0..<n).map { Int64($0 / 4) }
        let labels = (0..<n).map { _ in Float(rng.uniform() < 0.3 ? 1 : 0) }
        var folds = [Int32](repeating: 0, count: n)
        var order = (0..<Int32(n)).map { $0 }
        rng.shuffle(&order)
        for (i, r) in order.enumerated() { folds[Int(r)] = Int32(i % 5) }

        var leaky = try BetaTargetEncoder(priorStrength: 1, minCount: 1, statistics: [.mean], formulas: .standard)
        leaky.fit(keys: keys, labels: labels)
        var inSample: [[Float]] = [[Float](repeating: 0, count: n)]
        leaky.encode(keys: keys, into: &inSample)
        let leakyAUC = Metrics.auc(scores: inSample[0], labels: labels)!

        var honest = try BetaTargetEncoder(priorStrength: 1, minCount: 1, statistics: [.mean], formulas: .standard)
        var oof: [[Float]] = [[Float](repeating: 0, count: n)]
        honest.fitOutOfFold(keys: keys, labels: labels, fold: folds, folds: 5, into: &oof)
        let oofAUC = Metrics.auc(scores: oof[0], labels: labels)!

        XCTAssertGreaterThan(leakyAUC, 0.75, "in-sample encoding memorises noise")
        XCTAssertLessThan(abs(oofAUC - 0.5), 0.03, "out-of-fold encoding carries no label information: AUC \(oofAUC)")
    }

    func testInvalidSettingsAreRefused() {
        XCTAssertThrowsError(try BetaTargetEncoder(priorStrength: 0, minCount: 1, statistics: [.mean], formulas: .standard))
        XCTAssertThrowsError(try BetaTargetEncoder(priorStrength: 1, minCount: 0, statistics: [.mean], formulas: .standard))
        XCTAssertThrowsError(try BetaTargetEncoder(priorStrength: 1, minCount: 1, statistics: [], formulas: .standard))
    }

    /// Counts add up: two halves' counts merged are the whole's, and encoding each half with the
    /// merged counts gives the whole's out-of-fold encodings bit for bit (what N ranks rely on).
    func testCountsOfHalvesMergeIntoTheWhole() throws {
        var rng = RandomSource(seed: 9)
        let n = 3000
        let keys = (0..<n).map { _ in Int64(rng.below(40)) }
        let labels = (0..<n).map { _ in Float(rng.uniform() < 0.3 ? 1 : 0) }
        let folds = (0..<n).map { _ in Int32(rng.below(5)) }
        var whole = try BetaTargetEncoder(priorStrength: 10, minCount: 3, statistics: BetaStatistic.allCases, formulas: .standard)
        var expected = BetaStatistic.allCases.map { _ in [Float](repeating: 0, count: n) }
        whole.fitOutOfFold(keys: keys, labels: labels, fold: folds, folds: 5, into: &expected)
        let cut = 1234
        let a = CategoryLabelCounts(keys: Array(keys[..<cut]), labels: Array(labels[..<cut]), fold: Array(folds[..<cut]), folds: 5)
        let b = CategoryLabelCounts(keys: Array(keys[cut...]), labels: Array(labels[cut...]), fold: Array(folds[cut...]), folds: 5)
        let merged = CategoryLabelCounts(merging: [b, a])
        XCTAssertEqual(merged, CategoryLabelCounts(keys: keys, labels: labels, fold: folds, folds: 5))
        var enc = try BetaTargetEncoder(priorStrength: 10, minCount: 3, statistics: BetaStatistic.allCases, formulas: .standard)
        enc.fit(counts: merged)
        XCTAssertEqual(enc, whole)
        var first = BetaStatistic.allCases.map { _ in [Float](repeating: 0, count: cut) }
        var second = BetaStatistic.allCases.map { _ in [Float](repeating: 0, count: n - cut) }
        enc.encodeOutOfFold(keys: Array(keys[..<cut]), fold: Array(folds[..<cut]), counts: merged, into: &first)
        enc.encodeOutOfFold(keys: Array(keys[cut...]), fold: Array(folds[cut...]), counts: merged, into: &second)
        for s in 0..<expected.count { XCTAssertEqual(first[s] + second[s], expected[s]) }
    }
}
