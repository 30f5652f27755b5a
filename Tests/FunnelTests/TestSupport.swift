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
/// buffer. Float forward passes limit precision, hence the mixed tolerance; a wrong sign, a
/// missing term or a factor of two is far outside it. Where the two one-sided differences
/// disagree, the step crossed a kink (a ReLU unit or a max() at its threshold) and the central
/// difference measures a mix of two slopes: such coordinates are skipped, and at most a fifth
/// of them may be, so the check cannot quietly pass by skipping.
func checkGradient(
    name: String, values: UnsafeMutablePointer<Float>, count: Int, analytic: (Int) -> Float,
    samples: Int = 40, epsilon: Float = 5e-4, loss: () -> Double,
    file: StaticString = #filePath, line: UInt = #line
) {
    var rng = RandomSource(seed: UInt64(count) &* 31 &+ UInt64(name.utf8.count))
    let indices = count <= samples ? Array(0..<count) : (0..<samples).map { _ in rng.below(count) }
    var checked = 0, skipped = 0
    for i in indices {
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
            continue
        }
        XCTAssertEqual(a, numeric, accuracy: tolerance, "\(name)[\(i)]: analytic \(a) vs numeric \(numeric)", file: file, line: line)
        checked += 1
    }
    XCTAssertGreaterThan(checked, 0, file: file, line: line)
    XCTAssertLessThanOrEqual(skipped * 5, indices.count, "\(name): \(skipped) of \(indices.count) coordinates sat on kinks", file: file, line: line)
}

/// A fresh temporary directory holding a small simulated funnel (train.csv, test.csv, truths).
func simulatedFunnel(_ tag: String, rows: Int, seed: UInt64) -> String {
    let dir = makeTempDirectory(tag)
    var c = SimulatorConfig()
    c.rows = rows; c.seed = seed; c.vocabScale = 0.02
    _ = try! FunnelSimulator(config: c).write(to: dir)
    return dir
}
