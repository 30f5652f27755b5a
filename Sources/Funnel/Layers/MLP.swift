/// A stack of dense layers with ReLU between them. As a tower (`logitOutput`), it ends in a
/// 1-unit layer with no activation and produces one logit per row; as a shared bottom it ends
/// in a ReLU and feeds the towers. Keeps every layer's output for the backward pass, per
/// worker; buffers are sized once for `maxBatch` rows per worker.
public final class MLP {
    public let layers: [DenseLayer]
    public let inputWidth: Int
    /// Whether the last layer is followed by a ReLU (a bottom) or not (a logit tower).
    public let activatesLast: Bool
    public var outputWidth: Int { layers.last?.outFeatures ?? inputWidth }
    /// [worker][layer] outputs and output gradients.
    private let outputs: [[FloatBuffer]]
    private let gradients: [[FloatBuffer]]

    /// `hidden` are the hidden sizes; with `logitOutput` a final 1-unit layer is appended.
    public init(name: String, inputWidth: Int, hidden: [Int], logitOutput: Bool = true, maxBatch: Int, workers: Int = 1,
                rng: inout RandomSource) {
        self.inputWidth = inputWidth
        activatesLast = !logitOutput
        var sizes = [inputWidth] + hidden + (logitOutput ? [1] : [])
        var layers: [DenseLayer] = []
        for i in 0..<(sizes.count - 1) {
            layers.append(DenseLayer(name: "\(name).\(i)", inFeatures: sizes[i], outFeatures: sizes[i + 1],
                                     workers: workers, rng: &rng))
        }
        self.layers = layers
        sizes.removeFirst()
        outputs = (0..<workers).map { _ in sizes.map { FloatBuffer(count: $0 * maxBatch) } }
        gradients = (0..<workers).map { _ in sizes.map { FloatBuffer(count: $0 * maxBatch) } }
    }

    public var parameters: [Parameter] { layers.flatMap(\.parameters) }

    /// Returns a pointer to the `[batch]` logits, valid until this worker's next forward.
    @discardableResult
    public func forward(_ x: UnsafePointer<Float>, batch: Int, worker: Int = 0) -> UnsafeMutablePointer<Float> {
        forward(.rows(x), batch: batch, worker: worker)
    }

    /// The forward of either input: the first layer reads rows or a request split.
    @discardableResult
    public func forward(_ x: LayerInput, batch: Int, worker: Int = 0) -> UnsafeMutablePointer<Float> {
        var input = x
        let out = outputs[worker]
        for (i, layer) in layers.enumerated() {
            let y = out[i].base
            layer.forward(input, batch: batch, into: y, relu: i < layers.count - 1 || activatesLast)
            input = .rows(UnsafePointer(y))
        }
        return out[layers.count - 1].base
    }

    /// The last forward's output for this worker.
    public func forwardOutput(worker: Int = 0) -> UnsafeMutablePointer<Float> { outputs[worker][layers.count - 1].base }

    /// Back-propagates the output gradient `dLogits [batch × outputWidth]` (clobbered when the
    /// last layer is activated); writes or accumulates the input gradient into `dx`.
    public func backward(_ x: UnsafePointer<Float>, dLogits: UnsafePointer<Float>, batch: Int,
                         dx: UnsafeMutablePointer<Float>?, accumulateInputGradient: Bool, worker: Int = 0) {
        backward(.rows(x), dLogits: dLogits, batch: batch, dx: dx, accumulateInputGradient: accumulateInputGradient, worker: worker)
    }

    /// The backward of either input (a split takes its input gradient in its own blocks).
    public func backward(_ x: LayerInput, dLogits: UnsafePointer<Float>, batch: Int,
                         dx: UnsafeMutablePointer<Float>?, accumulateInputGradient: Bool, worker: Int = 0) {
        let out = outputs[worker], grads = gradients[worker]
        var dy = UnsafeMutablePointer(mutating: dLogits)
        for i in stride(from: layers.count - 1, through: 0, by: -1) {
            let layer = layers[i]
            if i < layers.count - 1 || activatesLast {
                ReLU.backward(output: out[i].base, gradient: dy, count: batch * layer.outFeatures)
            }
            let input = i == 0 ? x : .rows(UnsafePointer(out[i - 1].base))
            let dInput: UnsafeMutablePointer<Float>? = i == 0 ? dx : grads[i - 1].base
            layer.backward(input, dy: dy, batch: batch, dx: dInput,
                           accumulateInputGradient: i == 0 ? accumulateInputGradient : false, worker: worker)
            if i > 0 { dy = grads[i - 1].base }
        }
    }
}
