import Foundation
@testable import Funnel

/// A seeded byte mutator for bounded fuzz runs over the parsers (CSV/TSV reader, cache reader,
/// model directory loader). A run's length comes from `FUNNEL_FUZZ_SECONDS` (default 3 s per
/// target in `make test`; `make fuzz` runs longer) and its seed from `FUNNEL_FUZZ_SEED`, so a
/// failure is reproduced by the seed and iteration it reports.
struct Mutator {
    var rng: RandomSource
    static var seconds: Double { Double(ProcessInfo.processInfo.environment["FUNNEL_FUZZ_SECONDS"] ?? "") ?? 3 }
    static var seed: UInt64 { UInt64(ProcessInfo.processInfo.environment["FUNNEL_FUZZ_SEED"] ?? "") ?? 1 }

    init(stream: UInt64) { rng = RandomSource(seed: Mutator.seed, stream: stream) }

    mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(rng.below(n)) }

    /// Bytes the formats give meaning to, tried more often than random ones.
    static let interesting: [UInt8] = Array(",\t;|\"\n\r{}[]:-+.eE0123456789 \\".utf8) + [0, 0xFF, 0x80, 0xEF, 0xBB, 0xBF]

    /// One to eight edits: flip, overwrite, insert, delete, duplicate a slice, or truncate.
    mutating func mutate(_ input: [UInt8]) -> [UInt8] {
        var b = input
        for _ in 0..<(1 + below(8)) {
            let pos = below(b.count + 1)
            switch below(7) {
            case 0 where !b.isEmpty: b[min(pos, b.count - 1)] ^= UInt8(1 << below(8))
            case 1 where !b.isEmpty: b[min(pos, b.count - 1)] = Mutator.interesting[below(Mutator.interesting.count)]
            case 2: b.insert(Mutator.interesting[below(Mutator.interesting.count)], at: pos)
            case 3 where !b.isEmpty: b.remove(at: min(pos, b.count - 1))
            case 4 where b.count > 2:
                let start = below(b.count - 1), len = 1 + below(min(64, b.count - start))
                b.insert(contentsOf: b[start..<(start + len)], at: pos)
            case 5: b = Array(b.prefix(pos))
            default: b.insert(UInt8(truncatingIfNeeded: below(256)), at: pos)
            }
        }
        return b
    }

    /// Runs `body` on mutations of `corpus` until the time is up; returns the iterations run.
    static func run(stream: UInt64, corpus: [[UInt8]], _ body: (_ input: [UInt8], _ iteration: Int) throws -> Void) rethrows -> Int {
        var m = Mutator(stream: stream)
        let deadline = Date().addingTimeInterval(seconds)
        var i = 0
        while Date() < deadline {
            try body(m.mutate(corpus[m.below(corpus.count)]), i)
            i += 1
        }
        return i
    }
}
