/// Every per-worker buffer the network's routing needs (trunk outputs and their gradients, head
/// logits and their gradients, learner logits, masks, AITM scratch), carved out of one zeroed,
/// 64-byte-aligned allocation sized up front — as llm.c's `fill_in_parameter_sizes` then
/// `malloc_and_point_parameters` do — instead of one array per purpose.
final class NetworkScratch {
    /// What decides the sizes.
    struct Sizes {
        var trunks: Int
        var embeddingWidth: Int
        /// Width of what the heads read (embedding, bottom or mixture output).
        var headInput: Int
        var sharedBottom: Bool
        var gated: Bool
        var learners: Int
        /// AITM's tower width; nil without a transfer.
        var transferWidth: Int?
        var maxBatch: Int
    }

    /// One worker's views into the block. Heads are indexed as `FunnelNetwork.Head`'s raw values.
    struct Worker {
        var embeddingOutputs: [UnsafeMutablePointer<Float>] = []  // [trunk] B×E
        var embeddingGradients: [UnsafeMutablePointer<Float>] = []  // [trunk] B×E
        var bottomGradients: [UnsafeMutablePointer<Float>] = []  // [trunk] B×H (shared bottom)
        var headInputGradients: [UnsafeMutablePointer<Float>] = []  // [head × learners + l] B×H (gated)
        var logits: [UnsafeMutablePointer<Float>] = []  // [head] B
        var logitGradients: [UnsafeMutablePointer<Float>] = []  // [head] B
        var learnerLogits: [[UnsafeMutablePointer<Float>]] = []  // [head][learner] B
        var learnerGradients: [[UnsafeMutablePointer<Float>]] = []  // [head][learner] B
        var teacher = UnsafeMutablePointer<Float>(bitPattern: 64)!  // B (placeholder until pointed)
        var maskedWeights = UnsafeMutablePointer<Float>(bitPattern: 64)!  // B
        var transfer: [UnsafeMutablePointer<Float>] = []  // dq_ctr, dq_second, dz: B×K each (AITM)
    }

    static let heads = 3
    let workers: [Worker]
    private let storage: FloatBuffer

    init(_ sizes: Sizes, workers count: Int) {
        let total = Self.point(sizes, into: nil).floats * count
        storage = FloatBuffer(count: total)
        var workers: [Worker] = []
        var next = storage.base
        for _ in 0..<count {
            let (worker, floats) = Self.point(sizes, into: next)
            workers.append(worker)
            next += floats
        }
        self.workers = workers
    }

    /// Lays one worker's buffers out from `base` (or only counts them when nil); each slice
    /// starts on a 64-byte boundary.
    private static func point(_ s: Sizes, into base: UnsafeMutablePointer<Float>?) -> (Worker, floats: Int) {
        var offset = 0
        func take(_ n: Int) -> UnsafeMutablePointer<Float> {
            let p = (base ?? UnsafeMutablePointer(bitPattern: 64)!) + offset
            offset += (n + 15) / 16 * 16
            return p
        }
        let b = s.maxBatch
        var w = Worker()
        w.embeddingOutputs = (0..<s.trunks).map { _ in take(b * s.embeddingWidth) }
        w.embeddingGradients = (0..<s.trunks).map { _ in take(b * s.embeddingWidth) }
        w.bottomGradients = (0..<s.trunks).map { _ in take(s.sharedBottom ? b * s.headInput : 0) }
        w.headInputGradients = (0..<(heads * s.learners)).map { _ in take(s.gated ? b * s.headInput : 0) }
        w.logits = (0..<heads).map { _ in take(b) }
        w.logitGradients = (0..<heads).map { _ in take(b) }
        w.learnerLogits = (0..<heads).map { _ in (0..<s.learners).map { _ in take(b) } }
        w.learnerGradients = (0..<heads).map { _ in (0..<s.learners).map { _ in take(b) } }
        w.teacher = take(b)
        w.maskedWeights = take(b)
        if let k = s.transferWidth { w.transfer = (0..<3).map { _ in take(b * k) } }
        return (w, offset)
    }
}
