/// A tower: Dense → ReLU → … → Dense(1), producing one logit per row.
/// Keeps every layer's output for the backward pass; buffers are sized once for `maxBatch`.
public final class MLP {
    public let layers: [DenseLayer]
    public let inputWidth: Int
    private let outputs: [FloatBuffer]
    private let gradients: [FloatBuffer]

    /// `widths` are the hidden sizes; a final 1-unit layer is appended.
    public init(name: String, inputWidth: Int, hidden: [Int], maxBatch: Int, rng: inout RandomSource) {
        self.inputWidth = inputWidth
        var sizes = [inputWidth] + hidden + [1]
        var layers: [DenseLayer] = []
        for i in 0..<(sizes.count - 1) {
            layers.append(DenseLayer(name: "\(name).\(i)", inFeatures: sizes[i], outFeatures: sizes[i + 1], rng: &rng))
        }
        self.layers = layers
        sizes.removeFirst()
        outputs = sizes.map { FloatBuffer(count: $0 * maxBatch) }
        gradients = sizes.map { FloatBuffer(count: $0 * maxBatch) }
    }

    public var parameters: [Parameter] { layers.flatMap(\.parameters) }

    /// Returns a pointer to the `[batch]` logits, valid until the next forward.
    @discardableResult
    public func forward(_ x: UnsafePointer<Float>, batch: Int) -> UnsafeMutablePointer<Float> {
        var input = x
        for (i, layer) in layers.enumerated() {
            let y = outputs[i].base
            layer.forward(input, batch: batch, into: y)
            if i < layers.count - 1 { ReLU.forward(y, count: batch * layer.outFeatures) }
            input = UnsafePointer(y)
        }
        return outputs[layers.count - 1].base
    }

    /// Back-propagates `dLogits [batch]`; writes or accumulates the input gradient into `dx`.
    public func backward(_ x: UnsafePointer<Float>, dLogits: UnsafePointer<Float>, batch: Int,
                         dx: UnsafeMutablePointer<Float>?, accumulateInputGradient: Bool) {
        var dy = UnsafeMutablePointer(mutating: dLogits)
        for i in stride(from: layers.count - 1, through: 0, by: -1) {
            let layer = layers[i]
            if i < layers.count - 1 {
                ReLU.backward(output: outputs[i].base, gradient: dy, count: batch * layer.outFeatures)
            }
            let input = i == 0 ? x : UnsafePointer(outputs[i - 1].base)
            let dInput: UnsafeMutablePointer<Float>? = i == 0 ? dx : gradients[i - 1].base
            layer.backward(input, dy: dy, batch: batch, dx: dInput,
                           accumulateInputGradient: i == 0 ? accumulateInputGradient : false)
            if i > 0 { dy = gradients[i - 1].base }
        }
    }
}
