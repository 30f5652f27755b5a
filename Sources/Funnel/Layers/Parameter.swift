/// One worker's gradient of a parameter. Dense parameters use `dense`; sparse (embedding)
/// parameters use `touchedRows` (first-touch order) and `rowGradients`
/// (`[touchedRows.count × rowWidth]`), so a step costs O(rows touched), not O(vocabulary).
public final class ParameterGradient {
    public let dense: FloatBuffer
    public var touchedRows: [Int32] = []
    public let rowGradients: FloatBuffer

    init(denseCount: Int, rowCapacity: Int, rowWidth: Int) {
        dense = FloatBuffer(count: denseCount)
        rowGradients = FloatBuffer(count: max(1, rowCapacity) * rowWidth)
        touchedRows.reserveCapacity(rowCapacity)
    }

    /// Table row `r`'s gradient slot of `width` floats to add into: a row touched for the first
    /// time takes the next slot (first-touch order), zeroed. `slots` maps table row → slot (−1:
    /// untouched); the caller resets it once the gradient is collected.
    @inline(__always)
    func slot(ofRow r: Int, width: Int, slots: UnsafeMutableBufferPointer<Int32>) -> UnsafeMutablePointer<Float> {
        var s = slots[r]
        if s < 0 {
            s = Int32(touchedRows.count)
            slots[r] = s
            (rowGradients.base + Int(s) * width).update(repeating: 0, count: width)
            touchedRows.append(Int32(r))
        }
        return rowGradients.base + Int(s) * width
    }
}

/// A named trainable tensor, its optimizer state, and one gradient slot per training worker.
/// Workers compute gradients on their shard of a batch concurrently; the reduce step sums them
/// into worker 0's slot, which the optimizer applies.
public final class Parameter {
    public let name: String
    public let shape: [Int]
    public let value: FloatBuffer
    public let isSparse: Bool
    public let gradients: [ParameterGradient]
    /// Adam moments, allocated by the optimizer on first use.
    public var moment1: FloatBuffer?
    public var moment2: FloatBuffer?

    public var count: Int { value.count }
    public var rowWidth: Int { shape.count > 1 ? shape[1...].reduce(1, *) : 1 }

    /// - Parameters:
    ///   - maxTouchedRows: rows one worker's shard can touch (sparse only); worker 0 also
    ///     holds the reduced gradient, so it gets room for `workers ×` that.
    public init(name: String, shape: [Int], sparse: Bool = false, maxTouchedRows: Int = 0, workers: Int = 1,
                totalRows: Int? = nil) {
        self.name = name
        self.shape = shape
        let n = shape.reduce(1, *)
        value = FloatBuffer(count: n)
        isSparse = sparse
        let width = shape.count > 1 ? shape[1...].reduce(1, *) : 1
        let rows = totalRows ?? (shape.first ?? 1)
        gradients = (0..<max(1, workers)).map { w in
            ParameterGradient(denseCount: sparse ? 1 : n,
                              rowCapacity: sparse ? min(rows, maxTouchedRows * (w == 0 ? max(1, workers) : 1)) : 0,
                              rowWidth: width)
        }
    }

    /// Worker 0's (after reduction: the batch's) gradient.
    public var grad: FloatBuffer { gradients[0].dense }
    public var touchedRows: [Int32] {
        get { gradients[0].touchedRows }
        set { gradients[0].touchedRows = newValue }
    }
    public var rowGradients: FloatBuffer { gradients[0].rowGradients }
}
