import Foundation
import XCTest
@testable import Funnel

enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static func path(_ relative: String) -> String { root + "/" + relative }
}

/// A fresh temporary directory, removed by the caller's tearDown or left for the OS.
func makeTempDirectory(_ tag: String = "funnel-test") -> String {
    let dir = NSTemporaryDirectory() + "\(tag)-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

func writeFile(_ dir: String, _ name: String, _ text: String) -> String {
    let p = dir + "/" + name
    try! text.write(toFile: p, atomically: true, encoding: .utf8)
    return p
}

/// A small random data set with known shapes, for gradient checks and round trips.
func randomDataset(rows: Int, fields: Int, vocab: Int, dense: Int, seed: UInt64, clickRate: Double = 0.4,
                   conversionRate: Double = 0.5) -> EncodedDataset {
    var rng = RandomSource(seed: seed)
    var ids: [Int32] = [], values: [Float] = [], click: [Float] = [], conv: [Float] = []
    for _ in 0..<rows {
        for f in 0..<fields { ids.append(Int32(f * vocab + rng.below(vocab))) }
        for _ in 0..<dense { values.append(Float(rng.normal())) }
        let c: Float = rng.uniform() < clickRate ? 1 : 0
        click.append(c)
        conv.append(c == 1 && rng.uniform() < conversionRate ? 1 : 0)
    }
    return EncodedDataset(rowCount: rows, fields: fields, denseCount: dense, ids: ids, dense: values,
                          click: click, conversion: conv, sourceRows: (0..<rows).map { Int32($0) })
}

/// `data` with field `field` made multi-valued: 0–3 values per row from that field's ids, with
/// weights in [0.25, 2.25) (an id may repeat within a row).
func withBag(_ data: EncodedDataset, field: Int, vocab: Int, seed: UInt64) -> EncodedDataset {
    var rng = RandomSource(seed: seed)
    var offsets: [Int32] = [0], ids: [Int32] = [], weights: [Float] = []
    for _ in 0..<data.rowCount {
        for _ in 0..<rng.below(4) {
            ids.append(Int32(field * vocab + rng.below(vocab)))
            weights.append(Float(0.25 + 2 * rng.uniform()))
        }
        offsets.append(Int32(ids.count))
    }
    return EncodedDataset(rowCount: data.rowCount, fields: data.fields, denseCount: data.denseCount, ids: data.ids, dense: data.dense,
                          click: data.click, conversion: data.conversion, sourceRows: data.sourceRows, weights: data.weights,
                          bags: [EncodedBag(field: field, offsets: offsets, ids: ids, weights: weights)])
}

/// Central finite differences of `loss` against analytic gradients for sampled coordinates of a
/// buffer. Float forward passes limit precision, hence the mixed tolerance (2e-3 + 5%); a wrong
/// sign, a missing term or a factor of two is far outside it. Where the two one-sided
/// differences disagree, the step crossed a kink (a ReLU unit or a max() at its threshold) and
/// the central difference measures a mix of two slopes: such coordinates are skipped, and at
/// most a fifth of them may be, so the check cannot quietly pass by skipping.
///
/// A coordinate whose true gradient is below that absolute tolerance would pass against an
/// analytic gradient of zero, so when no checked coordinate is above twice that tolerance, they
/// are checked together (`checkAlongGradient`): a central difference along the unit direction of
/// their numeric gradients measures ‖g‖ with the noise of one difference, that noise is measured
/// (the same difference at smaller steps), and the measured ‖g‖ must stand above it and match the
/// analytic component along the direction within it. When the sample's gradient is too small
/// for that, more coordinates are added (up to `probes`). A parameter the loss does not depend
/// on at all (every difference exactly zero: an unused task's gate) must have an analytic
/// gradient of exactly zero; any other gradient too small to measure fails, naming the parameter.
func checkGradient(
    name: String, values: UnsafeMutablePointer<Float>, count: Int, analytic: (Int) -> Float,
    samples: Int = 40, epsilon: Float = 5e-4, probes: Int = 400, loss: () -> Double,
    file: StaticString = #filePath, line: UInt = #line
) {
    var rng = RandomSource(seed: UInt64(count) &* 31 &+ UInt64(name.utf8.count))
    let indices = count <= samples ? Array(0..<count) : (0..<samples).map { _ in rng.below(count) }
    var checked: [(index: Int, numeric: Double)] = [], skipped = 0
    func check(_ i: Int) {
        let original = values[i]
        let center = loss()
        values[i] = original + epsilon
        let up = loss()
        values[i] = original - epsilon
        let down = loss()
        values[i] = original
        let numeric = (up - down) / (2 * Double(epsilon))
        let forward = (up - center) / Double(epsilon), backward = (center - down) / Double(epsilon)
        let a = Double(analytic(i))
        let tolerance = 2e-3 + 5e-2 * max(abs(a), abs(numeric))
        if abs(forward - backward) > tolerance && abs(a - numeric) > tolerance {
            skipped += 1
            return
        }
        XCTAssertEqual(a, numeric, accuracy: tolerance, "\(name)[\(i)]: analytic \(a) vs numeric \(numeric)", file: file, line: line)
        checked.append((i, numeric))
    }
    for i in Array(Set(indices)).sorted() { check(i) }
    XCTAssertGreaterThan(checked.count, 0, file: file, line: line)
    XCTAssertLessThanOrEqual(skipped * 5, indices.count, "\(name): \(skipped) of \(indices.count) coordinates sat on kinks", file: file, line: line)
    // A coordinate twice above the absolute tolerance already fails a zero analytic gradient.
    if checked.contains(where: { abs($0.numeric) > 4e-3 }) { return }
    if !checkAlongGradient(name: name, values: values, checked: checked, analytic: analytic, epsilon: 4 * epsilon, loss: loss,
                           report: false, file: file, line: line), count > indices.count {
        // Too small in the sample to measure: every coordinate of a small tensor, more of a large one.
        let more = count <= probes ? Array(Set(0..<count).subtracting(indices)).sorted() : (0..<probes).map { _ in rng.below(count) }
        for i in more { check(i) }
    }
    if checked.allSatisfy({ $0.numeric == 0 }) {
        // Zero up to the rounding of a sum that is zero in exact arithmetic (a softmax's shift
        // invariance: Σ a(∂a − Σ a∂a)), far below any gradient a step could act on.
        for c in checked {
            XCTAssertEqual(analytic(c.index), 0, accuracy: 1e-8, "\(name)[\(c.index)]: the loss does not depend on it", file: file, line: line)
        }
        return
    }
    _ = checkAlongGradient(name: name, values: values, checked: checked, analytic: analytic, epsilon: 4 * epsilon, loss: loss,
                           report: true, file: file, line: line)
}

private func norm(_ checked: [(index: Int, numeric: Double)]) -> Double {
    checked.reduce(0) { $0 + $1.numeric * $1.numeric }.squareRoot()
}

/// The joint check of `checkGradient`: the central difference D(h) along the unit direction u of
/// the checked coordinates' numeric gradients against the analytic g·u. Its noise (rounding,
/// truncation) is measured as the spread of D(h), D(h/2), D(h/4); the first step whose D(h)
/// stands above 4× that noise is compared, within 3× the noise + 5% (so a zero analytic
/// gradient fails). False (and, with
/// `report`, a failure naming the parameter) when no step measures the gradient above its noise.
@discardableResult
private func checkAlongGradient(name: String, values: UnsafeMutablePointer<Float>, checked: [(index: Int, numeric: Double)],
                                analytic: (Int) -> Float, epsilon: Float, loss: () -> Double, report: Bool,
                                file: StaticString, line: UInt) -> Bool {
    let n = norm(checked)
    guard n > 0 else {
        if report { XCTFail("\(name): no checked coordinate has a gradient (‖g‖ = 0)", file: file, line: line) }
        return false
    }
    let u = checked.map { ($0.index, $0.numeric / n) }
    let originals = u.map { values[$0.0] }
    let projected = u.reduce(0) { $0 + Double(analytic($1.0)) * $1.1 }
    func central(_ h: Float) -> Double {
        var sides: [Double] = []
        for sign: Float in [1, -1] {
            for (k, (i, w)) in u.enumerated() { values[i] = originals[k] + sign * h * Float(w) }
            sides.append(loss())
        }
        for (k, (i, _)) in u.enumerated() { values[i] = originals[k] }
        return (sides[0] - sides[1]) / (2 * Double(h))
    }
    var noiseSeen = Double.infinity
    for h in [epsilon, 4 * epsilon, epsilon / 4] {
        // Rounding noise grows as the step shrinks and truncation as it grows: their spread over
        // three steps bounds both.
        let d = [central(h), central(h / 2), central(h / 4)]
        let noise = d.max()! - d.min()!
        noiseSeen = min(noiseSeen, noise)
        guard abs(d[0]) > 4 * noise else { continue }
        if report {
            XCTAssertEqual(projected, d[0], accuracy: 3 * noise + 5e-2 * max(abs(projected), abs(d[0])),
                           "\(name): along the gradient, analytic \(projected) vs numeric \(d[0]) (noise \(noise))", file: file, line: line)
        }
        return true
    }
    if report {
        XCTFail("\(name): ‖g‖ = \(n) over \(checked.count) coordinates is below the measured noise \(noiseSeen) of a Float difference: "
                + "too small to verify (a zero analytic gradient would pass)", file: file, line: line)
    }
    return false
}

/// A fresh temporary directory holding a small simulated funnel (train.csv, test.csv, truths).
func simulatedFunnel(_ tag: String, rows: Int, seed: UInt64) -> String {
    let dir = makeTempDirectory(tag)
    var c = SimulatorConfig()
    c.rows = rows; c.seed = seed; c.vocabScale = 0.02
    _ = try! FunnelSimulator(config: c).write(to: dir)
    return dir
}
