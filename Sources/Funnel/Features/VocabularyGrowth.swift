/// One field's vocabulary after a run: the previous run's values (none on a first run) with
/// this run's occurrences added, admitted, evicted and capped by the `VocabularyPolicy`.
///
/// Kept values keep their order (their ids shift down only past evicted ones); newly admitted
/// values follow in ascending key order — so a first run without a policy is exactly the
/// sorted vocabulary of values seen `minCount` times.
struct VocabularyGrowth {
    /// What a run did to one field (for notes and `train --json`).
    struct Report: Codable, Sendable {
        var admitted = 0
        var evicted = 0
        var pending = 0
        /// The largest pending count dropped by the pending table's capacity (0: none dropped).
        var forgottenMaxCount = 0

        enum CodingKeys: String, CodingKey {
            case admitted, evicted, pending
            case forgottenMaxCount = "forgotten_max_count"
        }
    }

    let previous: FieldVocabulary?
    let counts: [Int64: Int]
    /// This run's last day per key (nil: no day column — every key seen now is seen at `clock`).
    let lastDays: [Int64: Int32]?
    let clock: Int32
    let minCount: Int
    let policy: VocabularyPolicy?
    let text: (Int64) -> String

    private struct Candidate {
        var key: Int64, text: String, occurrences: UInt32, lastSeen: Int32, known: Bool
    }

    /// The field's next vocabulary and what changed.
    func grown(name: String, sharesRowsWith: String?) -> (FieldVocabulary, Report) {
        var report = Report()
        let rules = policy?.rules(for: name)
        var (kept, pending) = carriedOver(evictDays: rules?.evictDays, report: &report)
        let threshold = UInt32(clamping: rules?.admit ?? max(minCount, 1))
        var fresh: [Candidate] = []
        for (key, n) in counts where (previous?.id(of: key) ?? 0) == 0 {
            let total = Self.add(pending.removeValue(forKey: key) ?? 0, n)
            let seen = lastDays?[key] ?? clock
            // Seen only long ago (a day-stamped file spanning more than D days): not a row.
            if let d = rules?.evictDays, Int(seen) <= Int(clock) - d { continue }
            if total >= threshold {
                fresh.append(Candidate(key: key, text: text(key), occurrences: total, lastSeen: seen, known: false))
            } else if rules?.admit != nil {
                pending[key] = total
            }
        }
        fresh.sort { $0.key < $1.key }
        report.admitted = fresh.count
        var values = kept + fresh
        if let m = rules?.maxRows, values.count > m {
            let order = values.indices.sorted { a, b in
                let x = values[a], y = values[b]
                if x.occurrences != y.occurrences { return x.occurrences > y.occurrences }
                return x.lastSeen != y.lastSeen ? x.lastSeen > y.lastSeen : x.key < y.key
            }
            let survivors = Set(order.prefix(m))
            for i in values.indices where !survivors.contains(i) {
                if values[i].known { report.evicted += 1 } else { report.admitted -= 1 }
                if rules?.admit != nil && !values[i].known { pending[values[i].key] = values[i].occurrences }
            }
            values = values.indices.filter(survivors.contains).map { values[$0] }
        }
        let pendingList = capped(pending, report: &report)
        let field = FieldVocabulary(name: name, values: values.map(\.text), occurrences: values.map(\.occurrences),
                                    lastSeen: values.map(\.lastSeen), pending: pendingList, sharesRowsWith: sharesRowsWith)
        return (field, report)
    }

    /// The previous values that stay (this run's occurrences added; unseen for too long:
    /// evicted), and the pending counts carried over.
    private func carriedOver(evictDays: Int?, report: inout Report) -> ([Candidate], [Int64: UInt32]) {
        guard let previous else { return ([], [:]) }
        var kept: [Candidate] = []
        kept.reserveCapacity(previous.count)
        for i in 0..<previous.count {
            let key = previous.key(at: i)
            let usage = previous.usage(at: i) ?? (0, clock)
            let n = counts[key]
            let lastSeen = n == nil ? usage.lastSeen : (lastDays?[key] ?? clock)
            if let d = evictDays, Int(lastSeen) <= Int(clock) - d {
                report.evicted += 1
                continue
            }
            kept.append(Candidate(key: key, text: previous.value(at: i), occurrences: Self.add(usage.occurrences, n ?? 0),
                                  lastSeen: lastSeen, known: true))
        }
        var pending: [Int64: UInt32] = [:]
        for p in previous.pending { pending[p.key] = p.count }
        return (kept, pending)
    }

    /// The pending table cut to its capacity: the highest counts stay (ties: smaller key).
    private func capped(_ pending: [Int64: UInt32], report: inout Report) -> [(key: Int64, count: UInt32)] {
        var list = pending.map { (key: $0.key, count: $0.value) }.sorted { $0.count != $1.count ? $0.count > $1.count : $0.key < $1.key }
        let capacity = policy?.pendingCapacity ?? VocabularyPolicy.defaultPendingCapacity
        if list.count > capacity {
            report.forgottenMaxCount = Int(list[capacity].count)
            list.removeLast(list.count - capacity)
        }
        report.pending = list.count
        return list.sorted { $0.key < $1.key }
    }

    static func add(_ a: UInt32, _ b: Int) -> UInt32 { UInt32(clamping: Int(a) + b) }

    /// One note per field that admission, eviction or growth changed.
    static func notes(_ reports: [String: Report], fields: [FieldVocabulary]) -> [String] {
        fields.compactMap { f in
            guard let r = reports[f.name], r.admitted + r.evicted + r.pending > 0 else { return nil }
            return "field \(f.name): \(f.count) values (\(r.admitted) admitted, \(r.evicted) evicted), \(r.pending) pending"
                + (r.forgottenMaxCount > 0 ? " (pending ids with \(r.forgottenMaxCount) or fewer occurrences forgotten at capacity)" : "")
        }
    }
}
