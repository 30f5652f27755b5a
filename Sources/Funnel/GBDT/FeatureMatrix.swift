/// A dense row-major Float32 feature matrix with column names: what LightGBM trains and predicts on.
public struct FeatureMatrix: Sendable {
    public var rows: Int
    public var names: [String]
    public var values: [Float]
    public var columns: Int { names.count }

    public init(rows: Int, names: [String], values: [Float]) {
        precondition(values.count == rows * names.count, "matrix values must be rows × columns")
        self.rows = rows
        self.names = names
        self.values = values
    }

    /// The rows at `indices`, in that order.
    public func subset(_ indices: [Int]) -> FeatureMatrix {
        let d = columns
        var out = [Float](repeating: 0, count: indices.count * d)
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for (r, i) in indices.enumerated() {
                    (dst.baseAddress! + r * d).update(from: src.baseAddress! + i * d, count: d)
                }
            }
        }
        return FeatureMatrix(rows: indices.count, names: names, values: out)
    }

    public func column(_ j: Int) -> [Float] { (0..<rows).map { values[$0 * columns + j] } }
}
