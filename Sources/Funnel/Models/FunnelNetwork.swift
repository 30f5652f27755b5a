/// The network of every model in the family: one or two *trunks* (an embedding table and the
/// layers its `TrunkKind` builds above it) under a CTR head and a second head that predicts
/// pCVR or pCTCVR. What differs between models is data (`Architecture`): whether the heads share
/// a trunk, which heads exist, what the second one means and which objectives train them on
/// which rows.
///
/// A training step is split as *compute gradients → reduce → apply*: workers compute the
/// gradients of their shard of a batch concurrently, `reduceGradients` sums them, and the
/// optimizer applies the sum. A data-parallel run reduces across processes at the same point.
///
/// This file wires the network and routes forward/backward; the objective → loss routing is in
/// `FunnelNetwork+Objectives.swift`, prediction and gate summaries in
/// `FunnelNetwork+Prediction.swift`, the per-worker buffers in `NetworkScratch`.
public final class FunnelNetwork {
    public let config: ModelConfig
    public let architecture: Architecture
    public let fields: Int
    public let denseCount: Int
    public let embeddingRows: Int
    /// Rows one worker handles per call.
    public let maxBatch: Int
    /// Gradient workers: each computes the gradient of its shard of a batch concurrently.
    public let workers: Int
    /// How this network's GEMMs run (engine, precision, row buckets); every call that runs on a
    /// worker thread applies them there (`BLAS.with`), so networks differing here share a process.
    public var gemm = GEMMSettings.standard

    /// One embedding table per trunk.
    public let embeddings: [EmbeddingLayer]
    /// The layers above each trunk's embedding table.
    public let bodies: [TrunkBody]
    /// DCN-v2 cross layers between each trunk's embedding concatenation and its body (nil: none).
    public let crosses: [CrossNetwork?]
    /// Each head's learners (towers): one, or `config.learners` for TAML, whose mean logit is
    /// the head's logit.
    public let ctrLearners: [MLP]
    /// Predicts pCVR or pCTCVR (`architecture.secondHead`).
    public let secondLearners: [MLP]
    /// MTDM's CTCVR head beside the CTR and CVR heads (empty otherwise).
    public let ctcvrLearners: [MLP]
    /// AITM: the towers end in representations, the CTR one is transferred into the second head
    /// through `transfer`, and `towerOutputs` ([ctr, second]) turn them into logits.
    public let transfer: AdaptiveInformationTransfer?
    package let towerOutputs: [DenseLayer]
    let scratch: NetworkScratch
    let requestPlans = RequestPlans()

    package enum Head: Int { case ctr = 0, second = 1, ctcvr = 2 }

    public var ctrTower: MLP? { ctrLearners.first }
    public var secondTower: MLP { secondLearners[0] }
    /// The gated trunks (`--arch mmoe`, `ple`, `taml`), one per trunk, else empty.
    public var mixtures: [any GatedTrunk] { bodies.compactMap { if case .gated(let g) = $0 { return g } else { return nil } } }
    /// The shared bottoms (`--arch shared-bottom`), one per trunk, else empty.
    public var bottoms: [MLP] { bodies.compactMap { if case .dense(let m) = $0 { return m } else { return nil } } }
    var isGated: Bool { config.trunk.isGated }

    /// - Parameters:
    ///   - maxBatch: rows per worker call (default: the config's batch size split over workers).
    ///   - workers: concurrent gradient workers (the training thread count).
    ///   - bagFields: the multi-valued fields (pooled as the config's `pooling` says);
    ///     `maxBagValues`: the most values a row has over all of them.
    public init(config: ModelConfig, embeddingRows: Int, fields: Int, denseCount: Int, maxBatch: Int? = nil,
                workers: Int = 1, bagFields: [Int] = [], maxBagValues: Int = 0, attention: [Int: Int] = [:], shard: TableShard? = nil) {
        self.config = config
        let arch = config.architecture
        architecture = arch
        self.fields = fields
        self.denseCount = denseCount
        self.embeddingRows = embeddingRows
        let w = max(1, workers)
        self.workers = w
        let cap = maxBatch ?? (config.batchSize + w - 1) / w
        self.maxBatch = cap
        // Every parameter tensor draws from its own stream so adding one never shifts another's init.
        var stream: UInt64 = 0
        func rng() -> RandomSource { stream += 1; return RandomSource(seed: config.seed, stream: stream) }
        let trunkNames = arch.trunkCount == 1 ? [""] : ["ctr.", arch.secondHead.rawValue + "."]
        embeddings = trunkNames.map { prefix in
            var r = rng()
            return EmbeddingLayer(name: prefix + "embedding", rows: embeddingRows, fields: fields, dim: config.embeddingDim,
                                  denseCount: denseCount, maxBatch: cap, workers: w, rng: &r, bagFields: bagFields,
                                  maxBagValues: maxBagValues, pooling: config.pooling ?? .sum, ignoreValues: config.ignoreValues ?? false,
                                  attention: attention, attentionHidden: config.attentionHidden ?? ModelConfig.defaultAttentionHidden,
                                  attentionNormalize: config.attentionNormalize ?? false, shard: shard)
        }
        let embeddingWidth = embeddings[0].outputWidth
        let learners = max(1, config.learners)
        let gates = Self.headsPerTrunk(arch) * learners
        bodies = trunkNames.map { prefix in
            config.trunk.builder.build(TrunkShape(name: prefix, inputWidth: embeddingWidth, gates: gates, learners: learners,
                                                  maxBatch: cap, workers: w), config: config, rng: rng)
        }
        let headInput = bodies[0].outputWidth(input: embeddingWidth)
        let heads = Self.makeHeads(config, inputWidth: headInput, learners: learners, maxBatch: cap, workers: w, rng: rng)
        (ctrLearners, secondLearners, ctcvrLearners) = (heads.ctr, heads.second, heads.ctcvr)
        (transfer, towerOutputs) = (heads.transfer, heads.towerOutputs)
        // Drawn after every other tensor's stream, so a network without crosses is unchanged.
        crosses = trunkNames.map { prefix in
            guard config.effectiveCrossLayers > 0 else { return nil }
            var r = rng()
            return CrossNetwork(name: prefix + "cross", width: embeddingWidth, layers: config.effectiveCrossLayers, rank: config.crossRank,
                                maxBatch: cap, workers: w, rng: &r)
        }
        scratch = NetworkScratch(.init(trunks: embeddings.count, embeddingWidth: embeddingWidth, headInput: headInput,
                                       sharedBottom: config.trunk.builder.usesBottom, gated: config.trunk.isGated, learners: learners,
                                       transferWidth: arch.transfer ? config.hidden.last! : nil, maxBatch: cap),
                                 workers: w)
    }

    /// Heads reading one trunk: both heads when shared, else one; plus a third head (MTDM's CTCVR, DR's imputation).
    static func headsPerTrunk(_ arch: Architecture) -> Int {
        (arch.trunkCount == 1 && arch.ctrHead ? 2 : 1) + (arch.thirdHead ? 1 : 0)
    }

    private static func makeHeads(_ config: ModelConfig, inputWidth: Int, learners: Int, maxBatch cap: Int, workers w: Int,
                                  rng: () -> RandomSource)
        -> (ctr: [MLP], second: [MLP], ctcvr: [MLP], transfer: AdaptiveInformationTransfer?, towerOutputs: [DenseLayer]) {
        let arch = config.architecture, second = arch.secondHead.rawValue, transferring = arch.transfer
        // One learner keeps the historical names ("ctr.tower"); several are "ctr.learner.<l>".
        func tower(_ head: String, _ l: Int, logit: Bool, _ r: inout RandomSource) -> MLP {
            MLP(name: learners == 1 ? head + ".tower" : "\(head).learner.\(l)", inputWidth: inputWidth, hidden: config.hidden,
                logitOutput: logit, maxBatch: cap, workers: w, rng: &r)
        }
        var ctr: [MLP] = [], ctcvr: [MLP] = []
        if arch.ctrHead {
            var r = rng()
            ctr = (0..<learners).map { tower("ctr", $0, logit: !transferring, &r) }
        }
        var r2 = rng()
        let secondHead = (0..<learners).map { tower(second, $0, logit: !transferring, &r2) }
        if arch.thirdHead {
            var r = rng()
            ctcvr = (0..<learners).map { tower(arch.third!.towerName, $0, logit: true, &r) }
        }
        guard transferring else { return (ctr, secondHead, ctcvr, nil, []) }
        let k = config.hidden.last!
        var r3 = rng()
        let transfer = AdaptiveInformationTransfer(name: "ait", width: k, maxBatch: cap, workers: w, rng: &r3)
        let outputs = ["ctr", second].map { DenseLayer(name: "\($0).output", inFeatures: k, outFeatures: 1, workers: w, rng: &r3) }
        return (ctr, secondHead, ctcvr, transfer, outputs)
    }

    // MARK: Heads, trunks and gates

    package func trunk(of head: Head) -> Int { head == .ctr || embeddings.count == 1 ? 0 : 1 }
    var learnerCount: Int { secondLearners.count }
    /// The gate of a head's learner within its trunk's mixture.
    package func gate(of head: Head, learner l: Int = 0) -> Int {
        let position: Int
        switch head {
        case .ctr: position = 0
        case .second: position = embeddings.count == 1 && architecture.ctrHead ? 1 : 0
        case .ctcvr: position = 2  // MTDM: one shared trunk under all three heads
        }
        return position * learnerCount + l
    }
    var gatesPerTrunk: Int { Self.headsPerTrunk(architecture) * learnerCount }
    package func learners(_ head: Head) -> [MLP] {
        switch head {
        case .ctr: return ctrLearners
        case .second: return secondLearners
        case .ctcvr: return ctcvrLearners
        }
    }

    /// The exchanges of row-sharded tables (nil: every table whole on this process).
    public private(set) var sharded: ShardedEmbeddings?

    /// Starts the exchanges of the tables this network holds row-sharded (built with a
    /// `TableShard`) over `communicator`, whose ranks hold the other rows.
    public func shareTables(over communicator: Communicator) {
        sharded = ShardedEmbeddings(embeddings, communicator: communicator)
    }

    /// How batches share their requests' computation (nil: every row computed on its own):
    /// the plan `makeBatch` gives its batches.
    public internal(set) var requestSharing: RequestSharing?

    /// Shares the computation of `fields` (constant within a request) once per request in every
    /// batch whose rows carry request keys; nil `fields` turns sharing off. Returns the plan (nil
    /// when none of the fields can be shared).
    @discardableResult
    public func shareRequests(fields: [Int]?) -> RequestSharing? {
        requestSharing = fields.flatMap(sharingPlan(for:))
        return requestSharing
    }

    /// Shares requests as `data`'s rows carry them (its request fields); rows without requests
    /// turn sharing off.
    public func shareRequests(as data: EncodedDataset) { shareRequests(fields: data.requests?.fields) }

    /// The plan for request fields `fields`, made once per distinct set (a server's requests may
    /// name different fields; plans are kept, a bounded number, and shared by every worker).
    public func sharingPlan(for fields: [Int]) -> RequestSharing? {
        requestPlans.plan(for: fields) { RequestSharing(network: self, fields: fields) }
    }

    /// A batch of `maxBatch` rows grouped as `sharing` says (default: `requestSharing`).
    public func makeBatch(sharing: RequestSharing?? = nil) -> Batch {
        Batch(capacity: maxBatch, fields: fields, denseCount: denseCount, sharing: sharing ?? requestSharing)
    }

    /// The output widths of every layer that reads the embedding concatenation (or a trunk's
    /// output): the sizes the split layers' scratch must hold.
    var firstLayerWidths: [Int] {
        let towers = (ctrLearners + secondLearners + ctcvrLearners).compactMap { $0.layers.first?.outFeatures }
        let trunks = bodies.flatMap { body -> [Int] in
            switch body {
            case .identity: return []
            case .dense(let bottom): return bottom.layers.first.map { [$0.outFeatures] } ?? []
            case .gated(let g):
                guard let moe = g as? MixtureOfExperts else { return [] }
                return moe.experts.compactMap { $0.layers.first?.outFeatures } + moe.gates.map(\.outFeatures)
            }
        }
        return towers + trunks
    }

    private func trunkParameters(_ t: Int) -> [Parameter] { embeddings[t].parameters + (crosses[t]?.parameters ?? []) + bodies[t].parameters }

    /// All parameters in a fixed order (the order of the weights file).
    public var parameters: [Parameter] {
        (0..<embeddings.count).flatMap(trunkParameters) + ctrLearners.flatMap(\.parameters) + secondLearners.flatMap(\.parameters)
            + ctcvrLearners.flatMap(\.parameters)
            + (transfer?.parameters ?? []) + towerOutputs.flatMap(\.parameters)
    }

    func heads(for objective: Objective) -> [Head] {
        (objective.usesCTRHead ? [Head.ctr] : []) + (objective.usesSecondHead ? [Head.second] : [])
            + (objective.usesThirdHead ? [Head.ctcvr] : [])
    }

    /// The parameters a stage trains: its heads and the trunks under them.
    public func parameters(for objective: Objective) -> [Parameter] {
        let hs = heads(for: objective)
        let trunks = Set(hs.map(trunk(of:))).sorted()
        return trunks.flatMap(trunkParameters) + hs.flatMap { learners($0).flatMap(\.parameters) }
            + (hs.count == 2 ? (transfer?.parameters ?? []) + towerOutputs.flatMap(\.parameters) : [])
    }

    /// A stage's parameters below its trunk bodies (embedding tables, attention units, cross
    /// layers): their gradients come last in the backward (`computeInputGradients`).
    public func inputParameters(for objective: Objective) -> [Parameter] {
        Set(heads(for: objective).map(trunk(of:))).sorted().flatMap { embeddings[$0].parameters + (crosses[$0]?.parameters ?? []) }
    }

    /// A stage's other parameters (towers, transfer, bodies): final after `computeTowerGradients`.
    public func towerParameters(for objective: Objective) -> [Parameter] {
        let inputs = Set(inputParameters(for: objective).map(ObjectIdentifier.init))
        return parameters(for: objective).filter { !inputs.contains(ObjectIdentifier($0)) }
    }

    // MARK: Forward

    /// Runs trunk `t` forward; returns the heads' input (under a mixture: the embedding output,
    /// each head then reads its gate's mixture, see `headInput`). A trunk that splits a batch's
    /// requests (`requestSharing`) returns the split where the heads read the concatenation.
    func forwardTrunk(_ t: Int, _ batch: Batch, worker: Int) -> LayerInput {
        let out = scratch.workers[worker].embeddingOutputs[t]
        if let sharing = batch.sharing, sharing.splits(t, batch) {
            let split = LayerInput.split(sharing.forward(embeddings[t], trunk: t, batch, full: out, worker: worker))
            return forwardBody(t, split, batch: batch.count, worker: worker)
        }
        batch.ids.withUnsafeBufferPointer { ids in
            embeddings[t].forward(ids: ids.baseAddress!, dense: batch.dense.base, batch: batch.count, into: out, bags: batch.bags,
                                  worker: worker)
        }
        let x = crosses[t].map { $0.forward(out, batch: batch.count, worker: worker) } ?? UnsafePointer(out)
        return forwardBody(t, .rows(x), batch: batch.count, worker: worker)
    }

    private func forwardBody(_ t: Int, _ x: LayerInput, batch n: Int, worker: Int) -> LayerInput {
        switch bodies[t] {
        case .identity: return x
        case .dense(let bottom): return .rows(UnsafePointer(bottom.forward(x, batch: n, worker: worker)))
        case .gated(let mixture):
            mixture.forward(x, batch: n, worker: worker)
            return x
        }
    }

    /// What trunk `t`'s body read in this worker's last forward of `batch`: the request split, the
    /// cross layers' output, or the embedding concatenation.
    func bodyInput(_ t: Int, _ batch: Batch, worker: Int) -> LayerInput {
        if let sharing = batch.sharing, sharing.splits(t, batch) { return .split(sharing.split(t, worker: worker)) }
        return .rows(crosses[t]?.output(worker: worker) ?? UnsafePointer(scratch.workers[worker].embeddingOutputs[t]))
    }

    /// What head `h` reads once its trunk ran: the trunk output, or its own gate's mixture.
    func headInput(_ h: Head, learner l: Int = 0, trunkOutput: LayerInput, worker: Int) -> LayerInput {
        guard case .gated(let mixture) = bodies[trunk(of: h)] else { return trunkOutput }
        return .rows(mixture.output(gate: gate(of: h, learner: l), worker: worker))
    }

    /// Forward of the heads an objective needs; logits land in this worker's buffers. Returns
    /// each trunk's output, by trunk.
    func forward(_ batch: Batch, heads hs: [Head], worker: Int) -> [Int: LayerInput] {
        BLAS.with(gemm) { forwardHeads(batch, heads: hs, worker: worker) }
    }

    private func forwardHeads(_ batch: Batch, heads hs: [Head], worker: Int) -> [Int: LayerInput] {
        if transfer != nil { return forwardTransfer(batch, worker: worker) }
        var inputs: [Int: LayerInput] = [:]
        let n = batch.count
        let s = scratch.workers[worker]
        for h in hs {
            let t = trunk(of: h)
            if inputs[t] == nil { inputs[t] = forwardTrunk(t, batch, worker: worker) }
            let dst = s.logits[h.rawValue]
            let ls = learners(h)
            if ls.count == 1 {
                dst.update(from: ls[0].forward(headInput(h, trunkOutput: inputs[t]!, worker: worker), batch: n, worker: worker), count: n)
                continue
            }
            // Several learners: keep each logit (for distillation) and average them into the head's.
            dst.update(repeating: 0, count: n)
            let scale = 1 / Float(ls.count)
            for (l, learner) in ls.enumerated() {
                let z = learner.forward(headInput(h, learner: l, trunkOutput: inputs[t]!, worker: worker), batch: n, worker: worker)
                s.learnerLogits[h.rawValue][l].update(from: z, count: n)
                for i in 0..<n { dst[i] += scale * z[i] }
            }
        }
        return inputs
    }

    /// AITM: both towers run; the second head reads the transfer of the CTR representation.
    private func forwardTransfer(_ batch: Batch, worker: Int) -> [Int: LayerInput] {
        var inputs: [Int: LayerInput] = [:]
        let n = batch.count
        let s = scratch.workers[worker]
        for h in [Head.ctr, .second] where inputs[trunk(of: h)] == nil { inputs[trunk(of: h)] = forwardTrunk(trunk(of: h), batch, worker: worker) }
        let qc = ctrTower!.forward(headInput(.ctr, trunkOutput: inputs[trunk(of: .ctr)]!, worker: worker), batch: n, worker: worker)
        let qs = secondTower.forward(headInput(.second, trunkOutput: inputs[trunk(of: .second)]!, worker: worker), batch: n, worker: worker)
        towerOutputs[0].forward(qc, batch: n, into: s.logits[Head.ctr.rawValue])
        let z = transfer!.forward(previous: qc, current: qs, batch: n, worker: worker)
        towerOutputs[1].forward(z, batch: n, into: s.logits[Head.second.rawValue])
        return inputs
    }
}
