import XCTest
@testable import Funnel

/// The embedding bag's forward by hand and its backward against finite differences, for sum and
/// mean pooling, with and without the values' weights, with repeated ids and empty bags.
final class EmbeddingBagTests: XCTestCase {
    let rows = 12, dim = 3, batch = 3, bagFields = 2
    // Bags (row, field): [1,4,4] [] | [7] [2,9,1,2] | [11,0] [5]; id 4 and 2 repeat within a bag.
    let offsets: [Int32] = [0, 3, 3, 4, 8, 10, 11]
    let ids: [Int32] = [1, 4, 4, 7, 2, 9, 1, 2, 11, 0, 5]
    let weights: [Float] = [2, 1, 0.5, 3, 1, 2, 0.25, 1, 4, 1, 2]
    // Output rows: 1 single-valued slot first, then the two bags, then 2 dense columns.
    var firstColumn: Int { dim }
    var rowStride: Int { dim * (1 + bagFields) + 2 }

    private func table() -> FloatBuffer {
        var rng = RandomSource(seed: 4)
        return FloatBuffer((0..<(rows * dim)).map { _ in Float(rng.normal()) })
    }

    func testForwardByHand() {
        let t = table()
        // Under --pooling attention, a list given no query pools as the weighted sum.
        for (pooling, ignore) in [(BagPooling.sum, false), (.mean, false), (.sum, true), (.mean, true), (.attention, false)] {
            let bag = EmbeddingBag(dim: dim, pooling: pooling, ignoreValues: ignore)
            let out = FloatBuffer(count: batch * rowStride, value: 9)
            bag.forward(table: t.base, batch: batch, bagFields: bagFields, offsets: offsets, ids: ids, weights: weights,
                        out: out.base, rowStride: rowStride, firstColumn: firstColumn)
            for j in 0..<(batch * bagFields) {
                let (b, f) = (j / bagFields, j % bagFields)
                let range = Int(offsets[j])..<Int(offsets[j + 1])
                let w = range.map { ignore ? Float(1) : weights[$0] }
                let total = w.reduce(0, +)
                for d in 0..<dim {
                    var expected = zip(range, w).reduce(Float(0)) { $0 + $1.1 * t[Int(ids[$1.0]) * dim + d] }
                    if pooling == .mean && total > 0 { expected /= total }
                    XCTAssertEqual(out[b * rowStride + firstColumn + f * dim + d], range.isEmpty ? 0 : expected, accuracy: 1e-5,
                                   "\(pooling) ignore=\(ignore) bag \(j) dim \(d)")
                }
            }
            XCTAssertEqual(out[0], 9, "the single-valued slot is untouched")
            XCTAssertEqual(out[rowStride - 1], 9, "the dense columns are untouched")
        }
    }

    func testBackwardMatchesFiniteDifferences() {
        for (pooling, ignore) in [(BagPooling.sum, false), (.mean, false), (.sum, true), (.mean, true)] {
            let bag = EmbeddingBag(dim: dim, pooling: pooling, ignoreValues: ignore)
            let t = table()
            var rng = RandomSource(seed: 8)
            let c = FloatBuffer((0..<(batch * rowStride)).map { _ in Float(rng.normal()) })
            let out = FloatBuffer(count: batch * rowStride)
            func loss() -> Double {
                bag.forward(table: t.base, batch: batch, bagFields: bagFields, offsets: offsets, ids: ids, weights: weights,
                            out: out.base, rowStride: rowStride, firstColumn: firstColumn)
                var s = 0.0
                for b in 0..<batch { for k in 0..<(bagFields * dim) { let i = b * rowStride + firstColumn + k; s += Double(out[i]) * Double(c[i]) } }
                return s
            }
            let gradient = ParameterGradient(denseCount: 1, rowCapacity: rows, rowWidth: dim)
            var slots = [Int32](repeating: -1, count: rows)
            slots.withUnsafeMutableBufferPointer {
                bag.backward(dOut: c.base, batch: batch, bagFields: bagFields, offsets: offsets, ids: ids, weights: weights,
                             rowStride: rowStride, firstColumn: firstColumn, gradient: gradient, slots: $0)
            }
            XCTAssertEqual(Set(gradient.touchedRows), Set(ids), "only the rows used are touched")
            XCTAssertEqual(gradient.touchedRows.count, Set(ids).count, "each once")
            for r in 0..<rows {
                for d in 0..<dim {
                    let i = r * dim + d, h: Float = 1e-2
                    let saved = t[i]
                    t[i] = saved + h; let up = loss()
                    t[i] = saved - h; let down = loss()
                    t[i] = saved
                    let numeric = (up - down) / (2 * Double(h))
                    let analytic = gradient.touchedRows.firstIndex(of: Int32(r)).map { Double(gradient.rowGradients[$0 * dim + d]) } ?? 0
                    XCTAssertEqual(analytic, numeric, accuracy: 1e-3, "\(pooling) ignore=\(ignore) row \(r) dim \(d)")
                }
            }
        }
    }
}
