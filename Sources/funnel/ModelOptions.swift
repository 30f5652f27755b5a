import ArgumentParser
import Foundation
import Funnel

/// Model hyperparameters shared by `train` and `experiment`.
struct ModelOptions: ParsableArguments {
    @Option(help: "Trunk: esmm (shared embedding, separate towers), shared-bottom (embedding + shared hidden layers), mmoe, ple, taml (gated experts) or dcn (DCN-v2 cross layers under the towers).")
    var arch: TrunkKind = .esmm
    @Option(parsing: .unconditional, help: "Epochs over each stage's sample space.") var epochs = 1
    @Option(help: "Epochs of stages over clicked impressions only (BASE-style CVR networks); default: --epochs.")
    var clickedEpochs: Int?
    @Option(parsing: .unconditional, help: "Mini-batch size.") var batchSize = 2000
    @Option(parsing: .unconditional, help: "Adam learning rate.") var lr = 1e-3
    @Option(parsing: .unconditional, help: "Adam beta1.") var beta1 = 0.9
    @Option(parsing: .unconditional, help: "Adam beta2.") var beta2 = 0.999
    @Option(parsing: .unconditional, help: "Adam epsilon.") var adamEpsilon = 1e-8
    @Option(help: "L2 penalty on all weights, coupled as PyTorch's weight_decay (default 0; 1e-6 for the TAML comparison models).")
    var l2: Double?
    @Option(parsing: .unconditional, help: "Embedding dimension per field.") var embeddingDim = 18
    @Option(help: "Hidden layer sizes of each head, comma-separated (default 200,80; 80 with --arch shared-bottom; 192,64,32 for mlp, sharedbottom, mmoe, ple, aitm; 64,32 for taml's learners).")
    var hidden: String?
    @Option(help: "Shared hidden layers of --arch shared-bottom (default 200,80).") var bottom: String?
    @Option(parsing: .unconditional, help: "Experts per group of --arch mmoe/ple (PLE: per task and shared).") var experts = 3
    @Option(help: "Layer sizes of each expert of --arch mmoe.") var expertHidden = "64"
    @Option(parsing: .unconditional, help: "Extraction levels of --arch ple.") var levels = 2
    @Option(parsing: .unconditional, help: "AITM: weight of the label constraint max(pCTCVR − pCTR, 0).") var aitmAlpha = 0.6
    @Option(parsing: .unconditional, help: "Learners per task (default 1; taml: 2); a head's logit is its learners' mean.") var learners: Int?
    @Option(parsing: .unconditional, help: "TAML: self-distillation weight α of the CTR learners.") var distillationCtr = 0.1
    @Option(parsing: .unconditional, help: "TAML: self-distillation weight β of the CVR learners.") var distillationCvr = 0.1
    @Option(parsing: .unconditional, help: "AMAN: share of unclicked impressions sampled as CVR negatives.") var negativeRate = 0.2
    @Option(parsing: .unconditional, help: "OVERSAMPLING: copies of each converted click.") var oversample = 3
    @Option(parsing: .unconditional, help: "UNBIAS: pCTR floor before inverting (weights ≤ 1/clip).") var unbiasClip = 0.01
    @Option(parsing: .unconditional, help: "multi-ipw, escm2-ipw, multi-dr, escm2-dr, dcmt: pCTR floor before inverting the propensity (default 1/15, PaddleRec's ESCM² clip of 15; dcmt floors 1 − pCTR alike).")
    var propensityClip: Double?
    @Option(parsing: .unconditional, help: "escm2-ipw, escm2-dr: λ, the weight of the counterfactual CVR risk (default 0.5, PaddleRec's ESCM² counterfactual_w); dcmt: w, the weight of its twin-tower risk (default 1).")
    var counterfactualWeight: Double?
    @Option(parsing: .unconditional, help: "dcmt: λ₁, the weight of the twin towers' soft constraint |1 − pCVR − pCVR*| (default 0.001, the public DCMT implementations').")
    var twinConstraintWeight: Double?
    @Option(parsing: .unconditional, help: "multi-dr, escm2-dr: κ, the weight of the imputation loss (default 1, PaddleRec's ESCM²).")
    var imputationWeight: Double?
    @Option(parsing: .unconditional, help: "DCN-v2 cross layers over the embedding concatenation, under any trunk's body (default 0; 3 with --arch dcn).")
    var crossLayers: Int?
    @Option(parsing: .unconditional, help: "Low-rank cross layers of this rank r (W = U·Vᵀ, U and V d × r; default: full rank).")
    var crossRank: Int?
    @Option(help: "Keep 1/f of the unclicked rows, weighted f (training and evaluation alike).")
    var downsampleNegatives = 1.0
    @Flag(help: "Keep file order instead of shuffling every epoch.") var noShuffle = false
    @Option(help: "How a multi-valued field's values pool: sum (weighted), mean (weighted) or attention (DIN's target attention; needs --attention-query).")
    var pooling: BagPooling = .sum
    @Option(help: "--pooling attention: each list's query, LIST=CANDIDATE pairs separated by commas, e.g. 109_14=206,110_14=207.")
    var attentionQuery: String?
    @Option(parsing: .unconditional, help: "Hidden units of the attention's activation unit (default 36).") var attentionHidden: Int?
    @Flag(help: "Softmax over each list's attention scores (default: unnormalised, as DIN).") var attentionNormalize = false
    @Flag(help: "Multi-valued fields: give every value weight 1 (ignore the id:weight weights).") var ignoreValues = false
    @Option(help: "Learning-rate schedule per stage: constant, cosine (to 0 over the stage) or step (× --lr-gamma every --lr-step-size steps).")
    var lrSchedule: LRSchedule = .constant
    @Option(parsing: .unconditional, help: "Linear learning-rate warm-up over this many steps of each stage.") var warmupSteps = 0
    @Option(parsing: .unconditional, help: "Step schedule: the factor applied every --lr-step-size steps.") var lrGamma = 0.1
    @Option(parsing: .unconditional, help: "Step schedule: steps between decays (default: one epoch of the stage).") var lrStepSize: Int?

    /// A list of layer sizes: positive integers separated by commas, none empty (`200,,80` is refused).
    static func sizes(_ text: String, flag: String) throws -> [Int] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw ValidationError("\(flag) must be positive integers separated by commas, e.g. 200,80; got '\(text)'")
        }
        return parts.map { $0! }
    }

    /// `LIST=QUERY,…` as a list → query map; a list named twice or a pair without `=` is refused.
    static func attentionPairs(_ text: String) throws -> [String: String] {
        var pairs: [String: String] = [:]
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let sides = part.split(separator: "=", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard sides.count == 2, !sides[0].isEmpty, !sides[1].isEmpty else {
                throw ValidationError("--attention-query takes LIST=CANDIDATE pairs separated by commas, e.g. 109_14=206; got '\(part)'")
            }
            guard pairs[sides[0]] == nil else { throw ValidationError("--attention-query names '\(sides[0])' twice") }
            pairs[sides[0]] = sides[1]
        }
        return pairs
    }

    /// Each flag on its own, named in the message (the library checks the combined configuration again).
    func validate() throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw ValidationError(message) } }
        try check(epochs >= 1, "--epochs must be ≥ 1")
        try check((clickedEpochs ?? 1) >= 1, "--clicked-epochs must be ≥ 1")
        try check(batchSize >= 1, "--batch-size must be ≥ 1")
        try check(lr > 0 && lr.isFinite, "--lr must be a positive number")
        try check((0..<1).contains(beta1), "--beta1 must be in [0, 1)")
        try check((0..<1).contains(beta2), "--beta2 must be in [0, 1)")
        try check(adamEpsilon > 0 && adamEpsilon.isFinite, "--adam-epsilon must be a positive number")
        try check((l2 ?? 0) >= 0 && (l2 ?? 0).isFinite, "--l2 must be ≥ 0")
        try check(embeddingDim >= 1, "--embedding-dim must be ≥ 1")
        try check(embeddingDim <= NetworkSize.maxEmbeddingDim, "--embedding-dim must be ≤ \(NetworkSize.maxEmbeddingDim)")
        try check(batchSize <= NetworkSize.maxBatch, "--batch-size must be ≤ \(NetworkSize.maxBatch)")
        for (flag, text) in [("--hidden", hidden), ("--bottom", bottom), ("--expert-hidden", expertHidden)] {
            guard let text else { continue }
            let sizes = try ModelOptions.sizes(text, flag: flag)
            try check(sizes.allSatisfy { $0 <= NetworkSize.maxLayerWidth }, "\(flag) layer sizes must be ≤ \(NetworkSize.maxLayerWidth)")
        }
        try check(experts <= NetworkSize.maxExperts, "--experts must be ≤ \(NetworkSize.maxExperts)")
        try check(experts >= 1, "--experts must be ≥ 1")
        try check((1...8).contains(levels), "--levels must be between 1 and 8")
        try check(aitmAlpha >= 0 && aitmAlpha.isFinite, "--aitm-alpha must be ≥ 0")
        try check((1...16).contains(learners ?? 1), "--learners must be between 1 and 16")
        try check(distillationCtr >= 0 && distillationCtr.isFinite, "--distillation-ctr must be ≥ 0")
        try check(distillationCvr >= 0 && distillationCvr.isFinite, "--distillation-cvr must be ≥ 0")
        try check(negativeRate > 0 && negativeRate <= 1, "--negative-rate must be in (0, 1]")
        try check(oversample >= 1, "--oversample must be ≥ 1")
        try check(unbiasClip > 0 && unbiasClip <= 1, "--unbias-clip must be in (0, 1]")
        try check(propensityClip.map { $0 > 0 && $0 <= 1 } ?? true, "--propensity-clip must be in (0, 1]")
        try check(counterfactualWeight.map { $0 >= 0 && $0.isFinite } ?? true, "--counterfactual-weight must be ≥ 0")
        try check(imputationWeight.map { $0 >= 0 && $0.isFinite } ?? true, "--imputation-weight must be ≥ 0")
        try check(twinConstraintWeight.map { $0 >= 0 && $0.isFinite } ?? true, "--twin-constraint-weight must be ≥ 0")
        try check((0...16).contains(crossLayers ?? 0), "--cross-layers must be between 0 and 16")
        try check((crossRank ?? 1) >= 1 && (crossRank ?? 1) <= NetworkSize.maxLayerWidth, "--cross-rank must be between 1 and \(NetworkSize.maxLayerWidth)")
        try check((1...NetworkSize.maxLayerWidth).contains(attentionHidden ?? 1), "--attention-hidden must be between 1 and \(NetworkSize.maxLayerWidth)")
        if let attentionQuery { _ = try Self.attentionPairs(attentionQuery) }
        try check(downsampleNegatives >= 1 && downsampleNegatives.isFinite, "--downsample-negatives must be ≥ 1")
        try check(warmupSteps >= 0, "--warmup-steps must be ≥ 0")
        try check(lrGamma > 0 && lrGamma <= 1, "--lr-gamma must be in (0, 1]")
        try check((lrStepSize ?? 1) >= 1, "--lr-step-size must be ≥ 1")
    }

    func config(kind: ModelKind, seed: UInt64) throws -> ModelConfig {
        var c = ModelConfig(kind: kind)
        if let required = kind.requiredTrunk, arch != .esmm, arch != required {
            throw FunnelError("model \(kind.rawValue) is defined by --arch \(required.rawValue)")
        }
        let arch = kind.requiredTrunk ?? self.arch
        if c.trunk != arch {
            // --arch shared-bottom on a model that is not defined by it: the ablation's layout.
            c.trunk = arch
            if arch == .sharedBottom { c.useSharedBottomLayout() }
        }
        c.epochs = epochs; c.clickedEpochs = clickedEpochs; c.batchSize = batchSize; c.learningRate = lr
        c.beta1 = beta1; c.beta2 = beta2; c.epsilon = adamEpsilon
        if let l2 { c.l2 = l2 }
        c.embeddingDim = embeddingDim; c.seed = seed; c.shuffle = !noShuffle
        if let hidden { c.hidden = try ModelOptions.sizes(hidden, flag: "--hidden") }
        if arch == .sharedBottom {
            if let bottom { c.bottom = try ModelOptions.sizes(bottom, flag: "--bottom") }
        } else if bottom != nil {
            throw FunnelError("--bottom needs --arch shared-bottom")
        }
        c.experts = experts
        c.levels = levels
        c.aitmAlpha = aitmAlpha
        if let learners { c.learners = learners }
        c.distillationCTR = distillationCtr; c.distillationCVR = distillationCvr
        c.expertHidden = try ModelOptions.sizes(expertHidden, flag: "--expert-hidden")
        c.negativeRate = negativeRate; c.oversample = oversample; c.unbiasClip = unbiasClip
        c.downsampleNegatives = downsampleNegatives
        c.propensityClip = propensityClip; c.counterfactualWeight = counterfactualWeight; c.imputationWeight = imputationWeight
        c.twinConstraintWeight = twinConstraintWeight
        c.crossLayers = crossLayers; c.crossRank = crossRank
        // --arch dcn's layer count is written into model.json, so a later default cannot change a saved model.
        if c.trunk == .dcn && c.crossLayers == nil { c.crossLayers = ModelConfig.defaultCrossLayers }
        // Defaults leave the config (and model.json) exactly as before schedules existed.
        if lrSchedule != .constant { c.lrSchedule = lrSchedule }
        if pooling != .sum { c.pooling = pooling }
        if let attentionQuery { c.attentionQueries = try Self.attentionPairs(attentionQuery) }
        c.attentionHidden = attentionHidden
        if attentionNormalize { c.attentionNormalize = true }
        if ignoreValues { c.ignoreValues = true }
        if warmupSteps > 0 { c.warmupSteps = warmupSteps }
        if lrSchedule == .step { c.lrGamma = lrGamma; c.lrStepSize = lrStepSize }
        try c.validate()
        return c
    }
}

extension TrunkKind: ExpressibleByArgument {}
extension LRSchedule: ExpressibleByArgument {}
extension BagPooling: ExpressibleByArgument {}
