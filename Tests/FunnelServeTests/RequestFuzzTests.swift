import Foundation
import XCTest
@testable import Funnel
@testable import FunnelServe

/// Bounded fuzz run of the request path: mutated bodies through the JSON parser and the row
/// decoder may be refused (a `Malformed`, `TooManyRows` or `RequestError`), never crash.
/// A fixed 50,000 iterations in `make test`; `FUNNEL_FUZZ_SECONDS` (`make fuzz`) and
/// `FUNNEL_FUZZ_SEED` as for the file parsers.
final class RequestFuzzTests: XCTestCase {
    func testRequestParserAndDecoder() throws {
        let seconds = Double(ProcessInfo.processInfo.environment["FUNNEL_FUZZ_SECONDS"] ?? "")
        let seed = UInt64(ProcessInfo.processInfo.environment["FUNNEL_FUZZ_SEED"] ?? "") ?? 1
        var rng = RandomSource(seed: seed, stream: 4)
        let layout = TableLayout(clickColumn: "click", conversionColumn: "purchase", categorical: ["101", "205"], dense: ["D1"], ignored: [])
        let decoder = RequestTableDecoder(layout: layout, required: ["101", "205", "D1"], dayColumn: nil, rejectUnknownFields: false)
        let corpus = [
            #"{"rows": [{"101": 12, "205": "abc", "D1": 0.5}, {"101": null, "205": 1.50, "D1": null}]}"#,
            #"{"meta": {"a": [1, {"b": null}]}, "rows": [{"101": -3, "205": "x\"y\u00e9", "D1": 1e-3, "extra": [1, 2]}]}"#,
            #"{"rows": [{}, {"101": true}]}"#,
            #"{"request": {"101": 7, "D1": 0.25}, "rows": [{"205": "abc"}, {"205": 3}]}"#,
        ].map { Array($0.utf8) }
        let interesting = Array("{}[],:\"\\-+.eE0123456789 ntrufals".utf8) + [0, 0xFF, 0xC3, 0x80]
        let deadline = Date().addingTimeInterval(seconds ?? 0)
        var iterations = 0
        while seconds == nil ? iterations < 50_000 : Date() < deadline {
            var b = corpus[rng.below(corpus.count)]
            for _ in 0..<(1 + rng.below(8)) {
                let pos = rng.below(b.count + 1)
                switch rng.below(5) {
                case 0 where !b.isEmpty: b[min(pos, b.count - 1)] = interesting[rng.below(interesting.count)]
                case 1: b.insert(interesting[rng.below(interesting.count)], at: pos)
                case 2 where !b.isEmpty: b.remove(at: min(pos, b.count - 1))
                case 3: b.insert(contentsOf: Array(repeating: UInt8(ascii: rng.below(2) == 0 ? "[" : "{"), count: 1 + rng.below(200)), at: pos)
                default: b = Array(b.prefix(pos))
                }
            }
            do {
                let body = try RequestParser.body(b, limits: .init(rows: 50, fieldsPerRow: 16))
                _ = try decoder.decode(body.rows, request: body.request)
            } catch is RequestParser.Malformed {} catch is RequestParser.TooManyRows {} catch is RequestError {} catch {
                XCTFail("iteration \(iterations) (FUNNEL_FUZZ_SEED=\(seed)): unexpected \(type(of: error)): \(error)")
            }
            iterations += 1
        }
        XCTAssertGreaterThan(iterations, 100)
    }
}

final class RequestGateTests: XCTestCase {
    /// At most `limit` holders at once; everyone gets in eventually.
    func testGateBoundsConcurrency() async {
        let gate = RequestGate(limit: 2)
        final class Counter: @unchecked Sendable {
            let lock = NSLock()
            var now = 0, peak = 0, done = 0
            func change(_ d: Int) { lock.withLock { now += d; peak = max(peak, now); if d < 0 { done += 1 } } }
        }
        let c = Counter()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<20 {
                group.addTask {
                    do { try await gate.enter() } catch { return XCTFail("an uncancelled waiter was turned away: \(error)") }
                    c.change(1)
                    try? await Task.sleep(nanoseconds: 2_000_000)
                    c.change(-1)
                    gate.leave()
                }
            }
        }
        XCTAssertEqual(c.done, 20)
        XCTAssertLessThanOrEqual(c.peak, 2)
        XCTAssertEqual(c.peak, 2)
    }
}
