import XCTest
@testable import Funnel

final class RandomSourceTests: XCTestCase {
    func testBelowIsUniformAndCoversTheRange() {
        var rng = RandomSource(seed: 1)
        var counts = [Int](repeating: 0, count: 10)
        for _ in 0..<100_000 { counts[rng.below(10)] += 1 }
        for c in counts { XCTAssertEqual(Double(c), 10_000, accuracy: 500) }
        var big = Set<Int>()
        for _ in 0..<1000 { big.insert(rng.below(1_000_000)) }
        XCTAssertGreaterThan(big.count, 990)
    }

    func testShuffleIsAPermutationAndMovesElements() {
        var rng = RandomSource(seed: 2)
        var a = (0..<1000).map { Int32($0) }
        rng.shuffle(&a)
        XCTAssertEqual(Set(a).count, 1000)
        let fixed = a.enumerated().filter { $0.offset == Int($0.element) }.count
        XCTAssertLessThan(fixed, 10, "a random permutation has about one fixed point")
        // Neighbours stay neighbours in a rotation; in a shuffle they rarely do.
        let adjacent = zip(a, a.dropFirst()).filter { $1 == $0 + 1 }.count
        XCTAssertLessThan(adjacent, 10)
    }

    func testStreamsAreReproducibleAndDistinct() {
        var a = RandomSource(seed: 5, stream: 1), b = RandomSource(seed: 5, stream: 1), c = RandomSource(seed: 5, stream: 2)
        let x = (0..<4).map { _ in a.next() }, y = (0..<4).map { _ in b.next() }, z = (0..<4).map { _ in c.next() }
        XCTAssertEqual(x, y)
        XCTAssertNotEqual(x, z)
        var n = RandomSource(seed: 9)
        let normals = (0..<20_000).map { _ in n.normal() }
        let mean = normals.reduce(0, +) / 20_000
        let variance = normals.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 20_000
        XCTAssertEqual(mean, 0, accuracy: 0.03)
        XCTAssertEqual(variance, 1, accuracy: 0.05)
    }
}
