/// A named trainable tensor with its gradient and optimizer state.
///
/// Dense parameters carry a dense gradient. Embedding tables are `sparse`: only the rows a
/// batch touched carry a gradient (`touchedRows` / `rowGradients`) and only they are updated,
/// so a step costs O(batch × fields × dim), not O(vocabulary).
public final class Parameter {
    public let name: String
    public let shape: [Int]
    public let value: FloatBuffer
    /// Dense gradient (unused, size 1, for sparse parameters).
    public let grad: FloatBuffer
    public let isSparse: Bool

    /// Sparse gradient: rows touched by the current batch, in first-touch order, and their
    /// gradients, row-major `[touchedRows.count × rowWidth]`.
    public var touchedRows: [Int32] = []
    public var rowGradients: FloatBuffer
    /// Adam moments, allocated by the optimizer on first use.
    public var moment1: FloatBuffer?
    public var moment2: FloatBuffer?

    public var count: Int { value.count }
    public var rowWidth: Int { shape.count > 1 ? shape[1...].reduce(1, *) : 1 }

    public init(name: String, shape: [Int], sparse: Bool = false, maxTouchedRows: Int = 0) {
        self.name = name
        self.shape = shape
        let n = shape.reduce(1, *)
        value = FloatBuffer(count: n)
        isSparse = sparse
        grad = FloatBuffer(count: sparse ? 1 : n)
        let width = shape.count > 1 ? shape[1...].reduce(1, *) : 1
        rowGradients = FloatBuffer(count: sparse ? max(1, maxTouchedRows) * width : 1)
    }
}
