import Foundation
@testable import Funnel

/// A seeded byte mutator for bounded fuzz runs over the parsers (CSV/TSV reader, cache reader,
/// model directory loader). `make test` runs a fixed number of iterations per target;
/// `make fuzz` runs each for `FUNNEL_FUZZ_SECONDS`. The seed comes from `FUNNEL_FUZZ_SEED`, so a
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

    /// Iterations per target in `make test` (a fixed count: the same work on any machine);
    /// `make fuzz` sets FUNNEL_FUZZ_SECONDS and runs each target for that long instead.
    static let defaultIterations = 300

    /// Runs `body` on mutations of `corpus` (see `repeatUntilDone`); returns the iterations run.
    static func run(stream: UInt64, corpus: [[UInt8]], _ body: (_ input: [UInt8], _ iteration: Int) throws -> Void) rethrows -> Int {
        var m = Mutator(stream: stream)
        return try repeatUntilDone { i in try body(m.mutate(corpus[m.below(corpus.count)]), i) }
    }

    /// Calls `body` `defaultIterations` times, or for FUNNEL_FUZZ_SECONDS when set, under a
    /// watchdog: an iteration that runs past `watchdogSeconds` (a hang) ends the process with its
    /// stream's seed and iteration, since a hung parser cannot be interrupted from inside.
    static func repeatUntilDone(iterations: Int = defaultIterations, _ body: (_ iteration: Int) throws -> Void) rethrows -> Int {
        let timed = ProcessInfo.processInfo.environment["FUNNEL_FUZZ_SECONDS"] != nil
        let deadline = Date().addingTimeInterval(seconds)
        let watchdog = Watchdog(seconds: watchdogSeconds)
        var i = 0
        while timed ? Date() < deadline : i < iterations {
            watchdog.arm(iteration: i)
            try body(i)
            i += 1
        }
        watchdog.disarm()
        return i
    }

    static let watchdogSeconds = 30.0

    /// Ends the process when one iteration outlives its time (checked from another thread).
    final class Watchdog: @unchecked Sendable {
        private let lock = NSLock()
        private var started = Date(), iteration = -1
        private let timer: DispatchSourceTimer

        init(seconds: Double) {
            timer = DispatchSource.makeTimerSource(queue: .global())
            timer.schedule(deadline: .now() + 1, repeating: 1)
            timer.setEventHandler { [unowned self] in
                let (since, i) = self.lock.withLock { (self.started, self.iteration) }
                if i >= 0 && Date().timeIntervalSince(since) > seconds {
                    fatalError("fuzz iteration \(i) (FUNNEL_FUZZ_SEED=\(Mutator.seed)) ran over \(seconds) s: a hang")
                }
            }
            timer.resume()
        }

        func arm(iteration i: Int) { lock.withLock { started = Date(); iteration = i } }
        func disarm() { lock.withLock { iteration = -1 }; timer.cancel() }
    }
}
