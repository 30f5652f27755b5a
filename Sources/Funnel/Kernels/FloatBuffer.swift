/// A fixed-size, 64-byte-aligned, contiguous Float array. Layers keep their weights, gradients
/// and activations in these so hot loops work on raw pointers with no copy-on-write checks
/// and no per-batch allocation.
public final class FloatBuffer {
    public let count: Int
    public let base: UnsafeMutablePointer<Float>

    public init(count: Int, value: Float = 0) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        base.initialize(repeating: value, count: max(count, 1))
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let s = src.baseAddress { base.update(from: s, count: values.count) }
        }
    }

    deinit { base.deallocate() }

    @inline(__always) public subscript(i: Int) -> Float {
        get { base[i] }
        set { base[i] = newValue }
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: base, count: count) }
    public var array: [Float] { Array(buffer) }

    public func zero() { base.update(repeating: 0, count: count) }
}
