/// The merge of sparse row gradients arriving from several ranks into one parameter's compact
/// gradient buffer (`rowWidth` floats per slot): a row's first arrival takes the next slot and is
/// copied, later arrivals are added, in the order they are handed in (rank order) — so the
/// all-gathered replicas (`GradientExchange`) and the owners of sharded rows (`RowShardedTable`)
/// sum in exactly the same order. The row → slot table is reset by the rows a step used, so a
/// step costs O(rows touched), not O(table).
struct RowGradientSum {
    /// Per table row: its slot this step, -1 when untouched.
    private var slot: [Int32]
    /// The rows touched this step, first seen first (slot order).
    private(set) var rows: [Int32] = []

    init(tableRows: Int) { slot = [Int32](repeating: -1, count: tableRows) }

    /// Adds `value(j)`, j < `width`, as row `row`'s gradient into `out` (`capacity` slots);
    /// throws `overflow` when the step touches more rows than `out` holds.
    mutating func add(_ row: Int32, width: Int, into out: UnsafeMutablePointer<Float>, capacity: Int, overflow: @autoclosure () -> String,
                      _ value: (Int) -> Float) throws {
        var s = Int(slot[Int(row)])
        let fresh = s < 0
        if fresh {
            s = rows.count
            guard s < capacity else { throw FunnelError(overflow()) }
            slot[Int(row)] = Int32(s)
            rows.append(row)
        }
        for j in 0..<width {
            if fresh { out[s * width + j] = value(j) } else { out[s * width + j] += value(j) }
        }
    }

    /// The step's rows, slot order; the table is ready for the next step.
    mutating func finish() -> [Int32] {
        for row in rows { slot[Int(row)] = -1 }
        defer { rows.removeAll(keepingCapacity: true) }
        return rows
    }
}
