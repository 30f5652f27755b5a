/// One mini-batch, gathered into contiguous buffers allocated once per training run.
public final class Batch {
    public let capacity: Int
    public let fields: Int
    public let denseCount: Int
    public private(set) var count = 0
    public var ids: [Int32]
    public let dense: FloatBuffer
    public let click: FloatBuffer
    public let conversion: FloatBuffer
    /// click · conversion: the CTCVR label.
    public let clickAndConversion: FloatBuffer

    public init(capacity: Int, fields: Int, denseCount: Int) {
        self.capacity = capacity
        self.fields = fields
        self.denseCount = denseCount
        ids = [Int32](repeating: 0, count: capacity * fields)
        dense = FloatBuffer(count: capacity * denseCount)
        click = FloatBuffer(count: capacity)
        conversion = FloatBuffer(count: capacity)
        clickAndConversion = FloatBuffer(count: capacity)
    }

    /// Copies `rows` of `data` (at most `capacity`) into the batch.
    public func fill(from data: EncodedDataset, rows: UnsafeBufferPointer<Int32>) {
        precondition(rows.count <= capacity && data.fields == fields && data.denseCount == denseCount)
        count = rows.count
        let f = fields, d = denseCount
        ids.withUnsafeMutableBufferPointer { dst in
            data.ids.withUnsafeBufferPointer { src in
                for (k, r) in rows.enumerated() {
                    (dst.baseAddress! + k * f).update(from: src.baseAddress! + Int(r) * f, count: f)
                }
            }
        }
        if d > 0 {
            data.dense.withUnsafeBufferPointer { src in
                for (k, r) in rows.enumerated() {
                    (dense.base + k * d).update(from: src.baseAddress! + Int(r) * d, count: d)
                }
            }
        }
        if let c = data.click, let v = data.conversion {
            for (k, r) in rows.enumerated() {
                click[k] = c[Int(r)]
                conversion[k] = v[Int(r)]
                clickAndConversion[k] = c[Int(r)] * v[Int(r)]
            }
        }
    }

    /// Fills the batch with the contiguous rows `start..<start+n` (prediction order).
    public func fill(from data: EncodedDataset, start: Int, count n: Int) {
        let rows = (start..<(start + n)).map { Int32($0) }
        rows.withUnsafeBufferPointer { fill(from: data, rows: $0) }
    }
}
