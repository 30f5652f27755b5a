import Foundation

/// Per category of one column, against one binary target: positives n and rows N over all
/// training rows and within each out-of-fold fold — everything Beta target encoding fits on.
///
/// Counts add up: the counts of several ranks' rows, merged, are exactly the counts of all
/// rows (sums of 0/1 labels are integers, exact in a Double below 2⁵³), so N ranks fit the
/// encoder one machine fits.
public struct CategoryLabelCounts: Equatable, Sendable {
    public private(set) var folds: Int
    /// Sorted category keys.
    public private(set) var keys: [Int64]
    public private(set) var positives: [Double]
    public private(set) var counts: [Double]
    /// `[key index · folds + fold]`.
    public private(set) var foldPositives: [Double]
    public private(set) var foldCounts: [Double]
    public private(set) var foldRows: [Double]
    public private(set) var foldLabelSums: [Double]
    public private(set) var rows: Double
    public private(set) var positiveRows: Double

    /// Counts `rowKeys` against `labels`; `fold` (nil: every row in fold 0) assigns each row
    /// to one of `folds` folds.
    public init(keys rowKeys: [Int64], labels: [Float], fold: [Int32]?, folds: Int) {
        precondition(rowKeys.count == labels.count && (fold?.count ?? rowKeys.count) == rowKeys.count && folds >= 1)
        var slot: [Int64: Int] = [:]
        for k in rowKeys where slot[k] == nil { slot[k] = slot.count }
        let order = slot.keys.sorted()
        var sortedSlot: [Int64: Int] = [:]
        for (i, k) in order.enumerated() { sortedSlot[k] = i }
        self.folds = folds
        keys = order
        let c = order.count
        positives = [Double](repeating: 0, count: c)
        counts = [Double](repeating: 0, count: c)
        foldPositives = [Double](repeating: 0, count: c * folds)
        foldCounts = [Double](repeating: 0, count: c * folds)
        foldRows = [Double](repeating: 0, count: folds)
        foldLabelSums = [Double](repeating: 0, count: folds)
        rows = Double(rowKeys.count)
        positiveRows = 0
        for r in 0..<rowKeys.count {
            let i = sortedSlot[rowKeys[r]]!, f = fold.map { Int($0[r]) } ?? 0, y = Double(labels[r])
            positives[i] += y
            counts[i] += 1
            foldPositives[i * folds + f] += y
            foldCounts[i * folds + f] += 1
            foldRows[f] += 1
            foldLabelSums[f] += y
            positiveRows += y
        }
    }

    /// The counts of `parts` together (every part with the same fold count).
    public init(merging parts: [CategoryLabelCounts]) {
        precondition(!parts.isEmpty && parts.allSatisfy { $0.folds == parts[0].folds })
        let folds = parts[0].folds
        let order = Array(Set(parts.flatMap(\.keys))).sorted()
        var slot: [Int64: Int] = [:]
        for (i, k) in order.enumerated() { slot[k] = i }
        self.folds = folds
        keys = order
        positives = [Double](repeating: 0, count: order.count)
        counts = positives
        foldPositives = [Double](repeating: 0, count: order.count * folds)
        foldCounts = foldPositives
        foldRows = [Double](repeating: 0, count: folds)
        foldLabelSums = foldRows
        rows = 0
        positiveRows = 0
        for p in parts {
            for (j, k) in p.keys.enumerated() {
                let i = slot[k]!
                positives[i] += p.positives[j]
                counts[i] += p.counts[j]
                for f in 0..<folds {
                    foldPositives[i * folds + f] += p.foldPositives[j * folds + f]
                    foldCounts[i * folds + f] += p.foldCounts[j * folds + f]
                }
            }
            for f in 0..<folds { foldRows[f] += p.foldRows[f]; foldLabelSums[f] += p.foldLabelSums[f] }
            rows += p.rows
            positiveRows += p.positiveRows
        }
    }

    /// Every rank's counts, merged (the same on every rank).
    public func merged(_ comm: Communicator) throws -> CategoryLabelCounts {
        guard comm.isDistributed else { return self }
        let numbers = positives + counts + foldPositives + foldCounts + foldRows + foldLabelSums + [rows, positiveRows]
        let allKeys = try comm.allgather(values: keys), allNumbers = try comm.allgather(values: numbers)
        let parts = zip(allKeys, allNumbers).map { keys, n -> CategoryLabelCounts in
            let c = keys.count
            var part = self
            part.keys = keys
            var at = 0
            func take(_ k: Int) -> [Double] { defer { at += k }; return Array(n[at..<(at + k)]) }
            part.positives = take(c)
            part.counts = take(c)
            part.foldPositives = take(c * folds)
            part.foldCounts = take(c * folds)
            part.foldRows = take(folds)
            part.foldLabelSums = take(folds)
            part.rows = n[at]
            part.positiveRows = n[at + 1]
            return part
        }
        return CategoryLabelCounts(merging: parts)
    }
}
