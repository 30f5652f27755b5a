import Foundation

/// Dense values a trained network can read honestly. A value standardised to |z| > 10⁶ (1e38
/// in a column whose training values were near 1) drives every unit it feeds into saturation,
/// so every such row gets the same prediction — silently, if nothing said so. Training data
/// never produces one (a z-score over n rows is at most √n), so it is an input error: refused
/// with the row and column, or a counted skip under `--skip-bad-rows`.
extension FeatureSchema {
    public static let maxStandardizedMagnitude = 1e6

    public struct DenseOutOfRange: Sendable {
        /// Index of the row in the table, and its data row in the source (0-based).
        public var row: Int
        public var sourceRow: Int
        public var column: String
        public var value: Float
        public var message: String { "dense value \(value) lies \(String(format: "%.3g", zScore)) standard deviations from the training mean; at most 1e6 are read" }
        var zScore: Double
    }

    /// Checks the schema's own statistics: every mean finite, every std finite and positive.
    public func validateDenseStatistics() throws {
        for d in dense where !(d.mean.isFinite && d.std.isFinite && d.std > 0) {
            throw FunnelError("dense column '\(d.name)': training mean \(d.mean) and std \(d.std) cannot standardise a value (std must be finite and > 0)")
        }
    }

    /// Every dense cell of `raw` whose standardised magnitude exceeds the bound, in row order.
    public func denseOutOfRange(_ raw: RawTable, limit: Int = .max) -> [DenseOutOfRange] {
        var out: [DenseOutOfRange] = []
        for k in 0..<dense.count {
            let mean = dense[k].mean, scale = 1 / dense[k].std
            for (r, v) in raw.dense[k].enumerated() where !v.isNaN {
                let z = (Double(v) - mean) * scale
                if abs(z) > Self.maxStandardizedMagnitude {
                    out.append(DenseOutOfRange(row: r, sourceRow: Int(raw.sourceRows[r]), column: dense[k].name, value: v, zScore: z))
                }
            }
        }
        return out.sorted { $0.row < $1.row }.prefix(limit).map { $0 }
    }

    /// `raw` without its out-of-range rows when `skipBadRows` (counted in the report), or an
    /// error naming the file, the first such row and its column.
    public func keepingDenseInRange(_ raw: RawTable, skipBadRows: Bool) throws -> RawTable {
        let bad = denseOutOfRange(raw)
        guard let first = bad.first else { return raw }
        guard skipBadRows else {
            throw DataError(file: raw.report.file, column: first.column, "data row \(first.sourceRow + 1): \(first.message)")
        }
        let badRows = Set(bad.map(\.row))
        var kept = raw.rows(where: (0..<raw.rowCount).map { !badRows.contains($0) })
        var counted = Set<Int>()
        for b in bad where counted.insert(b.row).inserted {
            kept.report.countSkipped("dense value out of range", "\(raw.report.file): column '\(b.column)': data row \(b.sourceRow + 1): \(b.message)")
        }
        return kept
    }
}
