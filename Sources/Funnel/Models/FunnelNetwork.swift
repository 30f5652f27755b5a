/// The network of every model in the family: one or two *trunks* (an embedding table, and with
/// `--arch shared-bottom` shared hidden layers) under a CTR head and a second head that
/// predicts pCVR or pCTCVR. What differs between models is data (`Architecture`): whether the
/// heads share a trunk, which heads exist, what the second one means and which objectives
/// train them on which rows.
///
/// A training step is split as *compute gradients → reduce → apply*: workers compute the
/// gradients of their shard of a batch concurrently, `reduceGradients` sums them, and the
/// optimizer applies the sum. A data-parallel run reduces across processes at the same point.
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

    /// One embedding table per trunk.
    public let embeddings: [EmbeddingLayer]
    /// One shared bottom per trunk (`--arch shared-bottom`), else empty.
    public let bottoms: [MLP]
    /// One gated trunk per trunk (`--arch mmoe` or `ple`), a gate per head it feeds, else empty.
    public let mixtures: [any GatedTrunk]
    /// Each head's learners (towers): one, or `config.learners` for TAML, whose mean logit is
    /// the head's logit.
    public let ctrLearners: [MLP]
    /// Predicts pCVR or pCTCVR (`architecture.secondHead`).
    public let secondLearners: [MLP]
    public var ctrTower: MLP? { ctrLearners.first }
    public var secondTower: MLP { secondLearners[0] }
    /// MTDM's CTCVR head beside the CTR and CVR heads (empty otherwise).
    public let ctcvrLearners: [MLP]
    /// AITM: the towers end in representations, the CTR one is transferred into the second head
    /// through `transfer`, and `towerOutputs` ([ctr, second]) turn them into logits.
    public let transfer: AdaptiveInformationTransfer?
    private let towerOutputs: [DenseLayer]
    /// [worker]: dq_ctr, dq_second, dz, each `[maxBatch × tower width]`.
    private let transferScratch: [[FloatBuffer]]

    private enum Head: Int { case ctr = 0, second = 1, ctcvr = 2 }

    // Per-worker scratch, [worker][trunk] or [worker].
    private let embeddingOutputs: [[FloatBuffer]]
    private let embeddingGradients: [[FloatBuffer]]
    private let bottomGradients: [[FloatBuffer]]
    /// [worker][head] input gradients of each head when heads read different (gated) inputs.
    private let headInputGradients: [[FloatBuffer]]
    private let ctrLogits: [FloatBuffer]
    private let secondLogits: [FloatBuffer]
    private let ctcvrLogits: [FloatBuffer]
    private let dCTR: [FloatBuffer]
    private let dSecond: [FloatBuffer]
    private let dCTCVR: [FloatBuffer]
    private let maskedWeights: [FloatBuffer]
    /// [worker][head][learner] logits and their gradients when a head has several learners.
    private let learnerLogits: [[[FloatBuffer]]]
    private let learnerGradients: [[[FloatBuffer]]]
    private let teacher: [FloatBuffer]

    /// - Parameters:
    ///   - maxBatch: rows per worker call (default: the config's batch size split over workers).
    ///   - workers: concurrent gradient workers (the training thread count).
    public init(config: ModelConfig, embeddingRows: Int, fields: Int, denseCount: Int, maxBatch: Int? = nil,
                workers: Int = 1) {
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
        let second = arch.secondHead.rawValue
        let trunkNames = arch.trunkCount == 1 ? [""] : ["ctr.", second + "."]
        embeddings = trunkNames.map { prefix in
            var r = rng()
            return EmbeddingLayer(name: prefix + "embedding", rows: embeddingRows, fields: fields, dim: config.embeddingDim,
                                  denseCount: denseCount, maxBatch: cap, workers: w, rng: &r)
        }
        let embeddingWidth = embeddings[0].outputWidth
        if config.trunk == .sharedBottom {
            bottoms = trunkNames.map { prefix in
                var r = rng()
                return MLP(name: prefix + "bottom", inputWidth: embeddingWidth, hidden: config.bottom, logitOutput: false,
                           maxBatch: cap, workers: w, rng: &r)
            }
        } else {
            bottoms = []
        }
        let learners = max(1, config.learners)
        let headsPerTrunk = ((arch.trunkCount == 1 && arch.ctrHead ? 2 : 1) + (arch.ctcvrHead ? 1 : 0)) * learners
        if config.trunk == .mmoe {
            mixtures = trunkNames.map { prefix in
                var r = rng()
                return MixtureOfExperts(name: prefix + "mmoe", inputWidth: embeddingWidth, experts: config.experts,
                                        expertHidden: config.expertHidden, gates: headsPerTrunk, maxBatch: cap, workers: w, rng: &r)
            }
        } else if config.trunk == .taml {
            // HTAKR (taml-www2023 §2.2): general experts shared by all; task experts per task;
            // learner experts per learner; each learner's gate mixes general ∪ its task's ∪ its own.
            let m = config.experts
            mixtures = trunkNames.map { prefix in
                let tasks = headsPerTrunk / learners
                var names = (0..<m).map { "general.\($0)" }
                for t in 0..<tasks { names += (0..<m).map { "task\(t).\($0)" } }
                for t in 0..<tasks { for l in 0..<learners { names += (0..<m).map { "task\(t).learner\(l).\($0)" } } }
                var subsets: [[Int]] = []
                for t in 0..<tasks {
                    for l in 0..<learners {
                        let general = Array(0..<m), task = (0..<m).map { m + t * m + $0 }
                        let own = (0..<m).map { m + tasks * m + (t * learners + l) * m + $0 }
                        subsets.append(general + task + own)
                    }
                }
                var r = rng()
                let labels = ["general", "task", "learner"].flatMap { group in (0..<m).map { "\(group) expert \($0)" } }
                return MixtureOfExperts(name: prefix + "taml", inputWidth: embeddingWidth, experts: names.count,
                                        expertHidden: config.expertHidden, gates: headsPerTrunk, maxBatch: cap, workers: w,
                                        rng: &r, expertNames: names, gateExperts: subsets, gateLabels: labels)
            }
        } else if config.trunk == .ple {
            mixtures = trunkNames.map { prefix in
                var r = rng()
                return ProgressiveLayeredExtraction(
                    name: prefix + "ple", inputWidth: embeddingWidth, tasks: headsPerTrunk, levels: config.levels,
                    expertsPerTask: config.experts, sharedExperts: config.experts, expertHidden: config.expertHidden,
                    maxBatch: cap, workers: w, rng: &r)
            }
        } else {
            mixtures = []
        }
        let headInput = bottoms.first?.outputWidth ?? mixtures.first?.outputWidth ?? embeddingWidth
        let transferring = arch.transfer
        // One learner keeps the historical names ("ctr.tower"); several are "ctr.learner.<l>".
        func learnerName(_ head: String, _ l: Int) -> String { learners == 1 ? head + ".tower" : "\(head).learner.\(l)" }
        if arch.ctrHead {
            var r = rng()
            ctrLearners = (0..<learners).map {
                MLP(name: learnerName("ctr", $0), inputWidth: headInput, hidden: config.hidden, logitOutput: !transferring,
                    maxBatch: cap, workers: w, rng: &r)
            }
        } else {
            ctrLearners = []
        }
        var r2 = rng()
        secondLearners = (0..<learners).map {
            MLP(name: learnerName(second, $0), inputWidth: headInput, hidden: config.hidden, logitOutput: !transferring,
                maxBatch: cap, workers: w, rng: &r2)
        }
        if arch.ctcvrHead {
            var r = rng()
            ctcvrLearners = (0..<learners).map {
                MLP(name: learnerName("ctcvr", $0), inputWidth: headInput, hidden: config.hidden, maxBatch: cap, workers: w, rng: &r)
            }
        } else {
            ctcvrLearners = []
        }
        if transferring {
            let k = config.hidden.last!
            var r3 = rng()
            transfer = AdaptiveInformationTransfer(name: "ait", width: k, maxBatch: cap, workers: w, rng: &r3)
            towerOutputs = ["ctr", second].map { DenseLayer(name: "\($0).output", inFeatures: k, outFeatures: 1, workers: w, rng: &r3) }
            transferScratch = (0..<w).map { _ in (0..<3).map { _ in FloatBuffer(count: cap * k) } }
        } else {
            transfer = nil
            towerOutputs = []
            transferScratch = []
        }
        let trunks = embeddings.count
        embeddingOutputs = (0..<w).map { _ in (0..<trunks).map { _ in FloatBuffer(count: cap * embeddingWidth) } }
        embeddingGradients = (0..<w).map { _ in (0..<trunks).map { _ in FloatBuffer(count: cap * embeddingWidth) } }
        bottomGradients = (0..<w).map { _ in (0..<trunks).map { _ in FloatBuffer(count: config.trunk == .sharedBottom ? cap * headInput : 1) } }
        let gated = config.trunk == .mmoe || config.trunk == .ple || config.trunk == .taml
        headInputGradients = (0..<w).map { _ in (0..<(3 * learners)).map { _ in FloatBuffer(count: gated ? cap * headInput : 1) } }
        learnerLogits = (0..<w).map { _ in (0..<3).map { _ in (0..<learners).map { _ in FloatBuffer(count: cap) } } }
        learnerGradients = (0..<w).map { _ in (0..<3).map { _ in (0..<learners).map { _ in FloatBuffer(count: cap) } } }
        teacher = (0..<w).map { _ in FloatBuffer(count: cap) }
        ctrLogits = (0..<w).map { _ in FloatBuffer(count: cap) }
        secondLogits = (0..<w).map { _ in FloatBuffer(count: cap) }
        ctcvrLogits = (0..<w).map { _ in FloatBuffer(count: cap) }
        dCTR = (0..<w).map { _ in FloatBuffer(count: cap) }
        dSecond = (0..<w).map { _ in FloatBuffer(count: cap) }
        dCTCVR = (0..<w).map { _ in FloatBuffer(count: cap) }
        maskedWeights = (0..<w).map { _ in FloatBuffer(count: cap) }
    }

    private func trunk(of head: Head) -> Int { head == .ctr || embeddings.count == 1 ? 0 : 1 }
    private var learnerCount: Int { secondLearners.count }
    /// The gate of a head's learner within its trunk's mixture.
    private func gate(of head: Head, learner l: Int = 0) -> Int {
        let position: Int
        switch head {
        case .ctr: position = 0
        case .second: position = embeddings.count == 1 && architecture.ctrHead ? 1 : 0
        case .ctcvr: position = 2  // MTDM: one shared trunk under all three heads
        }
        return position * learnerCount + l
    }
    private var gatesPerTrunk: Int { ((embeddings.count == 1 && architecture.ctrHead ? 2 : 1) + (architecture.ctcvrHead ? 1 : 0)) * learnerCount }
    private func learners(_ head: Head) -> [MLP] {
        switch head {
        case .ctr: return ctrLearners
        case .second: return secondLearners
        case .ctcvr: return ctcvrLearners
        }
    }
    private func logits(_ h: Head) -> [FloatBuffer] { h == .ctr ? ctrLogits : h == .second ? secondLogits : ctcvrLogits }
    private func logitGradients(_ h: Head) -> [FloatBuffer] { h == .ctr ? dCTR : h == .second ? dSecond : dCTCVR }

    private func trunkParameters(_ t: Int) -> [Parameter] {
        [embeddings[t].table] + (bottoms.isEmpty ? [] : bottoms[t].parameters) + (mixtures.isEmpty ? [] : mixtures[t].parameters)
    }

    /// All parameters in a fixed order (the order of the weights file).
    public var parameters: [Parameter] {
        (0..<embeddings.count).flatMap(trunkParameters) + ctrLearners.flatMap(\.parameters) + secondLearners.flatMap(\.parameters)
            + ctcvrLearners.flatMap(\.parameters)
            + (transfer?.parameters ?? []) + towerOutputs.flatMap(\.parameters)
    }

    private func heads(for objective: Objective) -> [Head] {
        (objective.usesCTRHead ? [Head.ctr] : []) + (objective.usesSecondHead ? [Head.second] : [])
            + (objective == .parallelHeads ? [Head.ctcvr] : [])
    }

    /// The parameters a stage trains: its heads and the trunks under them.
    public func parameters(for objective: Objective) -> [Parameter] {
        let hs = heads(for: objective)
        let trunks = Set(hs.map(trunk(of:))).sorted()
        return trunks.flatMap(trunkParameters) + hs.flatMap { learners($0).flatMap(\.parameters) }
            + (hs.count == 2 ? (transfer?.parameters ?? []) + towerOutputs.flatMap(\.parameters) : [])
    }

    /// Runs trunk `t` forward; returns the heads' input.
    private func forwardTrunk(_ t: Int, _ batch: Batch, worker: Int) -> UnsafePointer<Float> {
        let out = embeddingOutputs[worker][t].base
        batch.ids.withUnsafeBufferPointer { ids in
            embeddings[t].forward(ids: ids.baseAddress!, dense: batch.dense.base, batch: batch.count, into: out)
        }
        if !mixtures.isEmpty {
            mixtures[t].forward(out, batch: batch.count, worker: worker)
            return UnsafePointer(out)  // heads read their gate's mixture, see `headInput`
        }
        if bottoms.isEmpty { return UnsafePointer(out) }
        return UnsafePointer(bottoms[t].forward(out, batch: batch.count, worker: worker))
    }

    /// What head `h` reads once its trunk ran: the trunk output, or its own gate's mixture.
    private func headInput(_ h: Head, learner l: Int = 0, trunkOutput: UnsafePointer<Float>, worker: Int) -> UnsafePointer<Float> {
        mixtures.isEmpty ? trunkOutput : mixtures[trunk(of: h)].output(gate: gate(of: h, learner: l), worker: worker)
    }

    /// Where head `h` writes its input gradient: its own buffer under a mixture, else the
    /// trunk's shared one (heads on one trunk then accumulate).
    private func headInputGradient(_ h: Head, learner l: Int = 0, worker: Int) -> UnsafeMutablePointer<Float> {
        if !mixtures.isEmpty { return headInputGradients[worker][h.rawValue * learnerCount + l].base }
        let t = trunk(of: h)
        return bottoms.isEmpty ? embeddingGradients[worker][t].base : bottomGradients[worker][t].base
    }

    private func backwardTrunk(_ t: Int, _ batch: Batch, heads hs: [Head], worker: Int) {
        let dEmbedding = embeddingGradients[worker][t].base
        if !mixtures.isEmpty {
            let mixture = mixtures[t]
            var dOutputs = [UnsafePointer<Float>?](repeating: nil, count: gatesPerTrunk)
            for h in hs where trunk(of: h) == t {
                for l in 0..<learnerCount { dOutputs[gate(of: h, learner: l)] = UnsafePointer(headInputGradient(h, learner: l, worker: worker)) }
            }
            mixture.backward(embeddingOutputs[worker][t].base, dOutputs: dOutputs, batch: batch.count, dx: dEmbedding,
                             accumulateInputGradient: false, worker: worker)
        } else if !bottoms.isEmpty {
            bottoms[t].backward(embeddingOutputs[worker][t].base, dLogits: bottomGradients[worker][t].base, batch: batch.count,
                                dx: dEmbedding, accumulateInputGradient: false, worker: worker)
        }
        batch.ids.withUnsafeBufferPointer { ids in
            embeddings[t].backward(ids: ids.baseAddress!, dOut: dEmbedding, batch: batch.count, worker: worker)
        }
    }

    /// Forward of the heads an objective needs; logits land in this worker's buffers.
    private func forward(_ batch: Batch, heads hs: [Head], worker: Int) -> [Int: UnsafePointer<Float>] {
        var inputs: [Int: UnsafePointer<Float>] = [:]
        let n = batch.count
        if let transfer {
            // AITM: both towers run; the second head reads the transfer of the CTR representation.
            for h in [Head.ctr, .second] where inputs[trunk(of: h)] == nil { inputs[trunk(of: h)] = forwardTrunk(trunk(of: h), batch, worker: worker) }
            let qc = ctrTower!.forward(headInput(.ctr, trunkOutput: inputs[trunk(of: .ctr)]!, worker: worker), batch: n, worker: worker)
            let qs = secondTower.forward(headInput(.second, trunkOutput: inputs[trunk(of: .second)]!, worker: worker), batch: n, worker: worker)
            towerOutputs[0].forward(qc, batch: n, into: ctrLogits[worker].base)
            let z = transfer.forward(previous: qc, current: qs, batch: n, worker: worker)
            towerOutputs[1].forward(z, batch: n, into: secondLogits[worker].base)
            return inputs
        }
        for h in hs {
            let t = trunk(of: h)
            if inputs[t] == nil { inputs[t] = forwardTrunk(t, batch, worker: worker) }
            let dst = logits(h)[worker].base
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
                learnerLogits[worker][h.rawValue][l].base.update(from: z, count: n)
                for i in 0..<n { dst[i] += scale * z[i] }
            }
        }
        return inputs
    }

    /// The objective's loss and the gradients of its logits (into this worker's buffers); with
    /// several learners per head, also each learner's logit gradient: its share of the head's
    /// (the head logit is their mean) plus, for TAML, its self-distillation term.
    private func lossAndLogitGradients(_ objective: Objective, _ batch: Batch, worker: Int, normalizer: Double) -> Double {
        var loss = headLossAndGradients(objective, batch, worker: worker, normalizer: normalizer)
        guard learnerCount > 1 else { return loss }
        let n = batch.count
        let scale = 1 / Float(learnerCount)
        for h in heads(for: objective) {
            let k = h.rawValue
            let dHead = logitGradients(h)[worker].base
            let headLogit = logits(h)[worker].base
            // Self-distillation (taml-www2023 Eq. 2–3, with log(1 − p̂) where Eq. 2 prints (1 − log p̂)):
            // the fused prediction is the teacher, held constant, each learner the student.
            let weight = objective == .multiLearner && h != .ctcvr ? (h == .ctr ? config.distillationCTR : config.distillationCVR) : 0
            let soft = teacher[worker].base
            for i in 0..<n { soft[i] = Sigmoid.value(headLogit[i]) }
            for l in 0..<learnerCount {
                let d = learnerGradients[worker][k][l].base
                for i in 0..<n { d[i] = dHead[i] * scale }
                if weight > 0 {
                    let w = UnsafePointer(batch.weight.base)
                    let kd = learnerGradients[worker][k][l].base
                    let scratch = maskedWeights[worker].base
                    let distill = LogitCrossEntropy.forwardBackward(
                        logits: learnerLogits[worker][k][l].base, labels: soft, weights: w, count: n,
                        normalizer: normalizer, dLogits: scratch)
                    for i in 0..<n { kd[i] += Float(weight) * scratch[i] }
                    loss += weight * distill
                }
            }
        }
        return loss
    }

    private func headLossAndGradients(_ objective: Objective, _ batch: Batch, worker: Int, normalizer: Double) -> Double {
        let n = batch.count
        let lc = ctrLogits[worker].base, ls = secondLogits[worker].base
        let dc = dCTR[worker].base, ds = dSecond[worker].base
        let w = UnsafePointer(batch.weight.base)
        let y = batch.click.base, yz = batch.clickAndConversion.base
        func ce(_ z: UnsafePointer<Float>, _ labels: UnsafePointer<Float>, _ weights: UnsafePointer<Float>,
                _ d: UnsafeMutablePointer<Float>, accumulate: Bool = false) -> Double {
            LogitCrossEntropy.forwardBackward(logits: z, labels: labels, weights: weights, count: n,
                                              normalizer: normalizer, dLogits: d, accumulate: accumulate)
        }
        switch objective {
        case .ctr:
            return ce(lc, y, w, dc)
        case .cvr, .ctcvr:
            // y·z: equal to z on clicked rows, and 0 on the unclicked negatives AMAN adds.
            return ce(ls, yz, w, ds)
        case .entireSpace, .multiLearner:
            // CTCVR first: it writes both logit gradients; the CTR term then adds to the CTR one.
            let ctcvr = ProductCrossEntropy.forwardBackward(
                logitsA: lc, logitsB: ls, labels: yz, weights: w, count: n, normalizer: normalizer, dA: dc, dB: ds)
            return ctcvr + ce(lc, y, w, dc, accumulate: true)
        case .splitHeads:
            return ce(lc, y, w, dc) + ce(ls, yz, w, ds)
        case .clickMaskedCVR:
            let masked = maskedWeights[worker].base
            for i in 0..<n { masked[i] = w[i] * y[i] }
            return ce(lc, y, w, dc) + ce(ls, batch.conversion.base, masked, ds)
        case .parallelHeads:
            // MTDM: CTR and CTCVR on every row, CVR on clicked rows, three heads in parallel.
            let masked = maskedWeights[worker].base
            for i in 0..<n { masked[i] = w[i] * y[i] }
            return ce(lc, y, w, dc) + ce(ls, batch.conversion.base, masked, ds) + ce(ctcvrLogits[worker].base, yz, w, dCTCVR[worker].base)
        case .transferWithConstraint:
            let loss = ce(lc, y, w, dc) + ce(ls, yz, w, ds)
            return loss + LabelConstraint.forwardBackward(upper: lc, lower: ls, weights: w, count: n, alpha: config.aitmAlpha,
                                                          normalizer: normalizer, dUpper: dc, dLower: ds)
        }
    }

    /// Forward and backward for one objective on `worker`'s shard; leaves the gradients in that
    /// worker's slots and returns the shard's weighted loss divided by `normalizer` (default:
    /// the shard size). Shards of one batch pass the batch size, so their gradients simply add.
    @discardableResult
    public func computeGradients(_ batch: Batch, objective: Objective, worker: Int = 0, normalizer: Int? = nil) -> Double {
        let n = batch.count
        let hs = heads(for: objective)
        let inputs = forward(batch, heads: hs, worker: worker)
        let loss = lossAndLogitGradients(objective, batch, worker: worker, normalizer: Double(normalizer ?? n))
        var started = Set<Int>()
        if let transfer {
            // Output layers first; the transfer then adds its share to the CTR representation's gradient.
            let scratch = transferScratch[worker]
            let dqc = scratch[0].base, dqs = scratch[1].base, dz = scratch[2].base
            towerOutputs[0].backward(ctrTower!.forwardOutput(worker: worker), dy: dCTR[worker].base, batch: n, dx: dqc, worker: worker)
            towerOutputs[1].backward(transfer.output(worker: worker), dy: dSecond[worker].base, batch: n, dx: dz, worker: worker)
            transfer.backward(dz: dz, batch: n, dPrevious: dqc, dCurrent: dqs, worker: worker)
        }
        for h in hs {
            let t = trunk(of: h)
            let ls = learners(h)
            for (l, learner) in ls.enumerated() {
                let d: UnsafePointer<Float>
                if transfer != nil {
                    d = UnsafePointer(transferScratch[worker][h == .ctr ? 0 : 1].base)
                } else if ls.count == 1 {
                    d = UnsafePointer(logitGradients(h)[worker].base)
                } else {
                    d = UnsafePointer(learnerGradients[worker][h.rawValue][l].base)  // set by the loss
                }
                learner.backward(headInput(h, learner: l, trunkOutput: inputs[t]!, worker: worker), dLogits: d, batch: n,
                                 dx: headInputGradient(h, learner: l, worker: worker),
                                 accumulateInputGradient: mixtures.isEmpty && started.contains(t), worker: worker)
                started.insert(t)
            }
        }
        for t in started.sorted() { backwardTrunk(t, batch, heads: hs, worker: worker) }
        return loss
    }

    /// The reduce step: sums the gradients of workers 1..<`active` into worker 0's slots, in
    /// worker order (so a fixed worker count gives bitwise-identical sums).
    public func reduceGradients(for objective: Objective, active: Int) {
        guard active > 1 else { return }
        let params = parameters(for: objective)
        let tables = Set(params.filter(\.isSparse).map(\.name))
        for e in embeddings where tables.contains(e.table.name) { e.reduceGradients(workers: active) }
        for p in params where !p.isSparse {
            let dst = p.gradients[0].dense.base
            for w in 1..<active {
                let src = p.gradients[w].dense.base
                for i in 0..<p.count { dst[i] += src[i] }
            }
        }
    }

    /// The objective's loss without gradients (worker 0), for gradient checks.
    public func loss(_ batch: Batch, objective: Objective) -> Double {
        _ = forward(batch, heads: heads(for: objective), worker: 0)
        return lossAndLogitGradients(objective, batch, worker: 0, normalizer: Double(batch.count))
    }

    /// Mean gate weight on each expert, per head ("ctr", and "cvr" or "ctcvr"), over `data`
    /// (taml-www2023 Fig. 4's view of what the gates learned). Empty without a mixture trunk.
    public func gateSummary(_ data: EncodedDataset) -> [(head: String, weights: [Double])] {
        guard !mixtures.isEmpty, data.rowCount > 0 else { return [] }
        // One row per gate: per head, or per head and learner when heads have several learners.
        var gates: [(name: String, head: Head, learner: Int)] = []
        for h in (architecture.ctrHead ? [Head.ctr, .second] : [.second]) + (architecture.ctcvrHead ? [.ctcvr] : []) {
            let name = h == .ctr ? "ctr" : h == .ctcvr ? "ctcvr" : architecture.secondHead.rawValue
            for l in 0..<learnerCount { gates.append((learnerCount == 1 ? name : "\(name) learner \(l)", h, l)) }
        }
        let width = mixtures[0].gateLabels.count
        var sums = gates.map { _ in [Double](repeating: 0, count: width) }
        let batch = Batch(capacity: maxBatch, fields: fields, denseCount: denseCount)
        var start = 0
        while start < data.rowCount {
            let n = min(maxBatch, data.rowCount - start)
            batch.fill(from: data, start: start, count: n)
            for t in 0..<embeddings.count { _ = forwardTrunk(t, batch, worker: 0) }
            for (k, g) in gates.enumerated() {
                let w = mixtures[trunk(of: g.head)].gateWeights(gate: gate(of: g.head, learner: g.learner), worker: 0)
                for r in 0..<n { for e in 0..<width { sums[k][e] += Double(w[r * width + e]) } }
            }
            start += n
        }
        return gates.enumerated().map { k, g in (g.name, sums[k].map { $0 / Double(data.rowCount) }) }
    }

    /// pCTR for the given rows (CTR head), e.g. for UNBIAS's propensity weights.
    public func predictCTR(_ data: EncodedDataset, rows: [Int32]) -> [Float] {
        guard ctrTower != nil else { return [] }
        var out = [Float](repeating: 0, count: rows.count)
        let batch = Batch(capacity: maxBatch, fields: fields, denseCount: denseCount)
        var start = 0
        while start < rows.count {
            let n = min(maxBatch, rows.count - start)
            rows.withUnsafeBufferPointer { batch.fill(from: data, rows: UnsafeBufferPointer(rebasing: $0[start..<(start + n)])) }
            _ = forward(batch, heads: [.ctr], worker: 0)
            for i in 0..<n { out[start + i] = Sigmoid.value(ctrLogits[0][i]) }
            start += n
        }
        return out
    }

    /// pCTR, pCVR and pCTCVR for every row of `data`, in order; NaN where the model has no
    /// such output (ESP has no CTR head). Rows are split into contiguous chunks, one per
    /// worker, predicted concurrently.
    public func predict(_ data: EncodedDataset) -> Predictions {
        var out = Predictions(count: data.rowCount)
        guard data.rowCount > 0 else { return out }
        let n = data.rowCount
        let chunk = (n + workers - 1) / max(workers, 1)
        out.ctr.withUnsafeMutableBufferPointer { ctr in
            out.cvr.withUnsafeMutableBufferPointer { cvr in
                out.ctcvr.withUnsafeMutableBufferPointer { ctcvr in
                    let pc = ctr.baseAddress!, pv = cvr.baseAddress!, pcv = ctcvr.baseAddress!
                    Parallel.forEach(workers) { w in
                        let lo = min(n, w * chunk), hi = min(n, lo + chunk)
                        self.predict(data, rows: lo..<hi, worker: w, ctr: pc, cvr: pv, ctcvr: pcv)
                    }
                }
            }
        }
        return out
    }

    /// Predicts every row of `data` with one worker's buffers only, so callers holding distinct
    /// workers (concurrent server requests) can predict at the same time.
    public func predict(_ data: EncodedDataset, worker: Int) -> Predictions {
        var out = Predictions(count: data.rowCount)
        guard data.rowCount > 0 else { return out }
        out.ctr.withUnsafeMutableBufferPointer { ctr in
            out.cvr.withUnsafeMutableBufferPointer { cvr in
                out.ctcvr.withUnsafeMutableBufferPointer { ctcvr in
                    predict(data, rows: 0..<data.rowCount, worker: worker,
                            ctr: ctr.baseAddress!, cvr: cvr.baseAddress!, ctcvr: ctcvr.baseAddress!)
                }
            }
        }
        return out
    }

    private func predict(_ data: EncodedDataset, rows: Range<Int>, worker: Int,
                         ctr: UnsafeMutablePointer<Float>, cvr: UnsafeMutablePointer<Float>, ctcvr: UnsafeMutablePointer<Float>) {
        guard !rows.isEmpty else { return }
        let batch = Batch(capacity: maxBatch, fields: fields, denseCount: denseCount)
        let hs: [Head] = (architecture.ctrHead ? [.ctr, .second] : [.second]) + (architecture.ctcvrHead ? [.ctcvr] : [])
        let lc = ctrLogits[worker].base, ls = secondLogits[worker].base, lt = ctcvrLogits[worker].base
        var start = rows.lowerBound
        while start < rows.upperBound {
            let n = min(maxBatch, rows.upperBound - start)
            batch.fill(from: data, start: start, count: n)
            _ = forward(batch, heads: hs, worker: worker)
            for i in 0..<n {
                let r = start + i
                let pCTR: Float = architecture.ctrHead ? Sigmoid.value(lc[i]) : .nan
                let second = Sigmoid.value(ls[i])
                ctr[r] = pCTR
                switch architecture.secondHead {
                case .cvr:
                    cvr[r] = second
                    // MTDM predicts pCTCVR with its own head; otherwise it is pCTR × pCVR.
                    ctcvr[r] = architecture.ctcvrHead ? Sigmoid.value(lt[i]) : pCTR * second
                case .ctcvr:
                    ctcvr[r] = second
                    cvr[r] = architecture.ctrHead ? min(max(second / max(pCTR, .leastNormalMagnitude), 0), 1) : .nan
                }
            }
            start += n
        }
    }
}

/// The three probabilities for each row (NaN where a model does not predict one).
public struct Predictions: Sendable {
    public var ctr: [Float]
    public var cvr: [Float]
    public var ctcvr: [Float]

    public init(count: Int) {
        ctr = [Float](repeating: 0, count: count)
        cvr = ctr
        ctcvr = ctr
    }
}
