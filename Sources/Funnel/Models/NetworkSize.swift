import Foundation

/// What a network of a configuration will allocate, computed from the configuration and the
/// schema's sizes alone — before anything is allocated — so a hostile or mistaken `model.json`
/// or flag (a 2e9-wide layer, a 1e9-dimensional embedding, a million-row batch) is a clear
/// error instead of an abort in the allocator.
public struct NetworkSize: Sendable {
    /// Parameters (weights and biases).
    public var parameters: Double
    /// Bytes: weights, per-worker gradients, Adam's two moments, per-worker activations.
    public var bytes: Double

    /// Hard limits on single quantities, whatever the machine.
    public static let maxLayerWidth = 1 << 16
    public static let maxEmbeddingDim = 4096
    public static let maxBatch = 1 << 20
    public static let maxExperts = 256
    /// The first layers read the concatenation of every field's embedding and the dense values:
    /// its width is bounded like a layer's, so a wide table (100,000 columns of a 10 MB file)
    /// is refused in words instead of allocating gigabytes of first-layer weights.
    public static let maxInputWidth = 1 << 16

    /// `sharesRequests`: the network computes requests once (`RequestSharing`): per worker and
    /// trunk, the split's blocks and their gradients, and the split layers' scratch.
    public init(config c: ModelConfig, embeddingRows: Int, fields: Int, denseCount: Int, maxBatch: Int, workers: Int,
                maxBagValues: Int = 0, sharesRequests: Bool = false) {
        let arch = c.architecture
        let trunks = Double(arch.trunkCount)
        let embeddingWidth = Double(fields * c.embeddingDim + denseCount)
        func mlp(_ input: Double, _ hidden: [Int], logit: Bool) -> (params: Double, width: Double) {
            var p = 0.0, w = 0.0, last = input
            for h in hidden.map(Double.init) + (logit ? [1] : []) { p += last * h + h; w += h; last = h }
            return (p, w)
        }
        var params = Double(embeddingRows) * Double(c.embeddingDim) * trunks
        var activations = embeddingWidth * 2 * trunks
        var headInput = embeddingWidth
        if c.pooling == .attention, let lists = c.attentionQueries?.count, lists > 0 {
            // Per attended list: the activation unit (4d → h → 1), and per row of a batch up to
            // `maxBagValues` values, each with z, ∂z (4d each), the gathered e and ∂e, h and ∂h, s, a, ∂s.
            let d = Double(c.embeddingDim), h = Double(c.attentionHidden ?? ModelConfig.defaultAttentionHidden)
            params += ((4 * d + 1) * h + h + 1) * Double(lists) * trunks
            activations += Double(max(1, maxBagValues)) * (10 * d + 2 * h + 3) * Double(lists) * trunks
        }
        let crossLayers = Double(c.effectiveCrossLayers)
        if crossLayers > 0 {
            // Full rank W (d × d) + b, or low rank V (r × d) + U (d × r) + b, per layer; x_l and u_l per layer.
            let perLayer = c.crossRank.map { 2 * Double($0) * embeddingWidth + embeddingWidth } ?? (embeddingWidth * embeddingWidth + embeddingWidth)
            params += perLayer * crossLayers * trunks
            activations += (embeddingWidth * (2 * crossLayers + 3) + Double(c.crossRank ?? 0) * (crossLayers + 1)) * trunks
        }
        let learners = Double(max(1, c.learners))
        let heads = Double(FunnelNetwork.headsPerTrunk(arch)) * learners
        if c.trunk.builder.usesBottom {
            let b = mlp(embeddingWidth, c.bottom, logit: false)
            params += b.params * trunks
            activations += b.width * 3 * trunks
            headInput = Double(c.bottom.last ?? 1)
        } else if c.trunk.isGated {
            // TAML has general, task and learner experts: at most experts × (1 + heads + heads) of them.
            // PLE's later levels read the previous level's output, so an expert's input is at most the wider of the two.
            let experts = Double(c.experts) * (c.trunk == .taml ? 1 + 2 * heads : c.trunk == .ple ? (heads + 1) * Double(c.levels) : 1)
            let input = max(embeddingWidth, Double(c.expertHidden.last ?? 1))
            let e = mlp(input, c.expertHidden, logit: false)
            let gates = c.trunk == .ple ? (heads + 1) * Double(c.levels) : heads
            params += (e.params * experts + (input + 1) * experts * gates) * trunks
            activations += (e.width * experts * 3 + Double(c.expertHidden.last ?? 1) * heads * 3) * trunks
            headInput = Double(c.expertHidden.last ?? 1)
        }
        let tower = mlp(headInput, c.hidden, logit: true)
        let towers = (arch.ctrHead ? 1.0 : 0) + 1 + (arch.thirdHead ? 1 : 0)
        params += tower.params * towers * learners
        if arch.transfer, let k = c.hidden.last.map(Double.init) { params += 4 * (k * k + k) }  // AITM's attention and transfer
        activations += (tower.width * 3 + headInput) * towers * learners
        let sharing = sharesRequests ? Self.sharingFloats(c, embeddingWidth: embeddingWidth, trunks: trunks) : (perRow: 0, perWorker: 0)
        activations += sharing.perRow
        let perWorker = sharing.perWorker
        parameters = params
        // Weights + Adam's two moments, a dense gradient per worker for the non-embedding part,
        // and every worker's activations for `maxBatch` rows.
        let embedding = Double(embeddingRows) * Double(c.embeddingDim) * trunks
        bytes = 4 * (params * 3 + (params - embedding + perWorker) * Double(workers) + activations * Double(maxBatch) * Double(workers))
    }

    /// `RequestSharing`'s floats: per row, the split's blocks and their gradients per trunk and
    /// the request products; per worker, a packed weight block and its gradient (the widest
    /// first layer's: a tower's, a bottom's, an expert's or a gate's).
    static func sharingFloats(_ c: ModelConfig, embeddingWidth: Double, trunks: Double) -> (perRow: Double, perWorker: Double) {
        let widest = Double(([c.hidden.first, c.bottom.first, c.expertHidden.first].compactMap { $0 } + [c.experts * 3 + 2]).max() ?? 1)
        return (embeddingWidth * 2 * trunks + widest * 2, widest * embeddingWidth * 2)
    }

    /// 80% of this machine's memory in MiB: what a command without `--memory-budget` plans within.
    public static var availableMiB: Double { Double(ProcessInfo.processInfo.physicalMemory) * 0.8 / 1_048_576 }

    /// Refuses a configuration whose single sizes are out of range or whose network would not
    /// fit in `memoryFraction` of this machine's memory; the message names the quantity.
    public static func check(config c: ModelConfig, embeddingRows: Int, fields: Int, denseCount: Int, maxBatch: Int, workers: Int,
                             memoryFraction: Double = 0.8, maxBagValues: Int = 0, sharesRequests: Bool = false) throws {
        func limit(_ ok: Bool, _ what: String) throws { if !ok { throw FunnelError(what) } }
        try limit(c.embeddingDim <= maxEmbeddingDim, "the embedding dimension \(c.embeddingDim) exceeds \(maxEmbeddingDim)")
        for (name, sizes) in [("tower", c.hidden), ("bottom", c.bottom), ("expert", c.expertHidden)] {
            try limit(sizes.allSatisfy { $0 <= maxLayerWidth }, "a \(name) layer of \(sizes.max() ?? 0) units exceeds \(maxLayerWidth)")
            try limit(sizes.count <= 64, "\(sizes.count) \(name) layers exceed 64")
        }
        try limit(c.experts <= maxExperts, "\(c.experts) experts exceed \(maxExperts)")
        let width = fields.multipliedReportingOverflow(by: c.embeddingDim).partialValue + denseCount
        try limit(fields <= maxInputWidth && width <= maxInputWidth,
                  "the input is \(fields) categorical fields × \(c.embeddingDim) dimensions + \(denseCount) dense values = \(width) wide; "
                  + "at most \(maxInputWidth) are read (at dimension \(c.embeddingDim), about \(max(0, maxInputWidth - denseCount) / max(1, c.embeddingDim)) fields): "
                  + "ignore columns (--ignore) or lower --embedding-dim")
        try limit(c.batchSize <= NetworkSize.maxBatch, "the batch size \(c.batchSize) exceeds \(NetworkSize.maxBatch) rows")
        try limit(embeddingRows >= 1 && embeddingRows <= Int(Int32.max), "\(embeddingRows) embedding rows are out of range")
        let size = NetworkSize(config: c, embeddingRows: embeddingRows, fields: fields, denseCount: denseCount,
                               maxBatch: maxBatch, workers: workers, maxBagValues: maxBagValues, sharesRequests: sharesRequests)
        let available = Double(ProcessInfo.processInfo.physicalMemory) * memoryFraction
        guard size.bytes <= available else {
            throw FunnelError(String(format: "the network needs about %.1f GiB (%.0f million parameters, batch of %d rows × %d workers); "
                                     + "this machine has %.1f GiB", size.bytes / 1_073_741_824, size.parameters / 1e6, maxBatch, workers,
                                     Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824))
        }
    }
}
