/// The models Funnel trains. Every one is a point in one small space of switches
/// (`Architecture`), never a class of its own.
public enum ModelKind: String, Codable, CaseIterable, Sendable {
    /// esmm-sigir2018 §2.2: an Embedding&MLP CVR network trained on clicked impressions only,
    /// plus (per §3.1's CTCVR protocol) an independent CTR network trained on all impressions.
    case base
    /// BASE whose CVR network also sees unclicked impressions as negatives, sampled at `negativeRate`.
    case aman
    /// BASE with converted clicks replicated `oversample` times in the CVR training set.
    case oversampling
    /// BASE with clicked samples importance-weighted by 1/pCTR of its CTR network (clipped, normalised).
    case unbias
    /// Independent CTR and CTCVR networks on all impressions; pCVR = pCTCVR / pCTR clipped to [0, 1].
    case division
    /// ESMM without shared parameters (esmm-sigir2018 §3.1; esmm-ablation "ESMM-NS").
    case esmmNS = "esmm-ns"
    /// esmm-sigir2018 §2.3: shared embedding, pCTCVR = pCTR × pCVR, loss on CTR and CTCVR over all impressions.
    case esmm
    /// esmm-ablation "Independent Predictions": disjoint CTR (all impressions) and CVR (clicked) networks.
    case ip
    /// esmm-ablation "IP, Shared Parameters": one trunk, CVR head weighted 0 on unclicked rows.
    case ipsp
    /// esmm-ablation: shared parameters, independent pCTR and pCTCVR heads (no product).
    case esspSplit = "essp-split"
    /// esmm-ablation "Entire Space Prediction": one network predicting pCTCVR only.
    case esp
    /// taml-www2023's MLP baseline: separate per-task MLPs (the switches of IP).
    case mlp
    /// A shared bottom under CTR and CVR towers, CVR on clicked rows (IPSP's losses on `--arch shared-bottom`).
    case sharedbottom
    /// Multi-gate mixture of experts (Ma et al., KDD 2018): shared experts, a softmax gate per task,
    /// CTR on all rows and CVR on clicked rows (IPSP's losses on `--arch mmoe`).
    case mmoe
    /// Progressive layered extraction (Tang et al., RecSys 2020) with IPSP's losses (`--arch ple`).
    case ple
    /// AITM (Xi et al., KDD 2021): the CTR tower's representation is transferred into the CTCVR
    /// tower by attention; CE on CTR and CTCVR over all rows plus α·max(pCTCVR − pCTR, 0).
    case aitm
    /// TAML (taml-www2023 §2): HTAKR experts and gates, `learners` learners per task whose mean
    /// logit is the task's, self-distillation from the fused prediction, pCTCVR = pCTR × pCVR (Eq. 6).
    case taml
    /// The RecSys Challenge 2023 multi-task deep model (lightgbm-two-stage appendix A): MMoE with
    /// CTR, CVR and CTCVR heads in parallel; CVR loss on clicked rows, CTR and CTCVR on all rows.
    case mtdm
    /// Multi-IPW (Zhang et al., WWW 2020, "Large-scale Causal Approaches to Debiasing Post-click
    /// Conversion Rate Estimation with Multi-task Learning"): shared embeddings, CE(y, pCTR) on
    /// all impressions plus the CVR loss on clicked impressions weighted by 1 / max(pCTR, clip),
    /// the propensity taken from the CTR tower with its gradient stopped.
    case multiIPW = "multi-ipw"
    /// ESCM²-IPW (Wang et al., SIGIR 2022, "ESCM²: Entire Space Counterfactual Multi-Task Model
    /// for Post-Click Conversion Rate Estimation"): ESMM's CTR and CTCVR losses plus λ times the
    /// counterfactual CVR risk, the same inverse-propensity-weighted CVR loss, as a regulariser.
    case escm2IPW = "escm2-ipw"
    /// Multi-DR (Zhang et al., WWW 2020): CE(y, pCTR) plus the doubly robust CVR risk with an
    /// imputation tower predicting the CVR error, trained jointly (`DoublyRobustRisk`).
    case multiDR = "multi-dr"
    /// ESCM²-DR (Wang et al., SIGIR 2022): ESMM's losses plus λ times the doubly robust risk.
    case escm2DR = "escm2-dr"
    /// DCMT (Zhu et al., ICDE 2023, "DCMT: A Direct Entire-Space Causal Multi-Task Framework for
    /// Post-Click Conversion Estimation"): a twin CVR tower — the factual tower (pCVR, trained on
    /// clicked impressions weighted 1/p̂) beside a counterfactual one trained on the unclicked
    /// impressions weighted 1/(1 − p̂) towards non-conversion, the two held together by the soft
    /// constraint pCVR + pCVR* ≈ 1 — plus ESMM's CTR and CTCVR losses.
    case dcmt

    /// The models of taml-www2023's comparison (Table 2), whose defaults follow its §3.2.
    public var isTAMLComparison: Bool { [.mlp, .sharedbottom, .mmoe, .ple, .aitm, .taml, .mtdm].contains(self) }

    /// The trunk a model is defined by, if any (otherwise `--arch` chooses).
    public var requiredTrunk: TrunkKind? {
        switch self {
        case .sharedbottom: return .sharedBottom
        case .mmoe: return .mmoe
        case .ple: return .ple
        case .taml: return .taml
        case .mtdm: return .mmoe
        default: return nil
        }
    }
}

/// What the second head (the one beside the CTR head) predicts.
public enum SecondHead: String, Codable, Sendable {
    /// Post-click pCVR; pCTCVR = pCTR × pCVR.
    case cvr
    /// pCTCVR directly; pCVR = pCTCVR / pCTR clipped to [0, 1] where a CTR head exists.
    case ctcvr
}

/// A loss over one batch. Labels: y = click, z = conversion.
public enum Objective: String, Codable, Sendable {
    /// CE(y, pCTR).
    case ctr
    /// CE(z, pCVR) — on clicked rows this is the post-click CVR loss.
    case cvr
    /// CE(y·z, pCTCVR) from the second head alone.
    case ctcvr
    /// ESMM: CE(y, pCTR) + CE(y·z, pCTR·pCVR).
    case entireSpace = "entire_space"
    /// ESSP-Split: CE(y, pCTR) + CE(y·z, pCTCVR) from two unconstrained heads.
    case splitHeads = "split_heads"
    /// IPSP: CE(y, pCTR) + y·CE(z, pCVR) (CVR weighted 0 on unclicked rows).
    case clickMaskedCVR = "click_masked_cvr"
    /// AITM: CE(y, pCTR) + CE(y·z, pCTCVR) + α·max(pCTCVR − pCTR, 0).
    case transferWithConstraint = "transfer_with_constraint"
    /// TAML: ESMM's loss on the fused heads + α·KD(CTR learners) + β·KD(CVR learners).
    case multiLearner = "multi_learner"
    /// MTDM: CE(y, pCTR) + y·CE(z, pCVR) + CE(y·z, pCTCVR) with pCTCVR from its own head.
    case parallelHeads = "parallel_heads"
    /// Multi-IPW: CE(y, pCTR) + (y / max(sg(pCTR), clip))·CE(z, pCVR), both over all impressions.
    case ipwCVR = "ipw_cvr"
    /// ESCM²-IPW: ESMM's loss + λ·(y / max(sg(pCTR), clip))·CE(z, pCVR).
    case entireSpaceIPW = "entire_space_ipw"
    /// Multi-DR: CE(y, pCTR) + the doubly robust CVR risk (`DoublyRobustRisk`), imputation head included.
    case doublyRobustCVR = "doubly_robust_cvr"
    /// ESCM²-DR: ESMM's loss + λ·the doubly robust CVR risk.
    case entireSpaceDR = "entire_space_dr"
    /// DCMT: ESMM's loss + w·(the factual and counterfactual IPW risks + λ₁·|1 − pCVR − pCVR*|).
    case counterfactualTwin = "counterfactual_twin"

    /// The CVR loss is weighted by inverse propensities from the CTR head.
    var usesPropensities: Bool { [.ipwCVR, .entireSpaceIPW, .doublyRobustCVR, .entireSpaceDR, .counterfactualTwin].contains(self) }
    /// The objective trains the imputation head (the third head slot).
    var usesImputation: Bool { self == .doublyRobustCVR || self == .entireSpaceDR }
    /// The objective trains the third head slot, whichever head it holds.
    var usesThirdHead: Bool { self == .parallelHeads || usesImputation || self == .counterfactualTwin }

    /// Whether the objective trains the CTR head and the second head.
    var usesCTRHead: Bool { self != .cvr && self != .ctcvr }
    var usesSecondHead: Bool { self != .ctr }
}

/// What a network's third head (beside the CTR head and the second one) is.
public enum ThirdHead: String, Codable, Sendable {
    /// MTDM: pCTCVR predicted directly.
    case ctcvr
    /// Multi-DR / ESCM²-DR: the imputed conversion, trained but never predicted or exported.
    case imputation
    /// DCMT: the counterfactual CVR tower pCVR*, trained but never predicted or exported.
    case counterfactualCVR = "counterfactual_cvr"

    /// The tower's parameter names begin with this.
    var towerName: String { rawValue }
}

/// Which rows a training stage iterates over.
public enum SampleSpace: String, Codable, Sendable {
    case all
    case clicked
    /// Clicked rows plus unclicked rows sampled at the config's `negativeRate` (AMAN).
    case clickedWithSampledNegatives = "clicked_with_sampled_negatives"
    /// Clicked rows with converted ones repeated `oversample` times (OVERSAMPLING).
    case clickedWithOversampledConversions = "clicked_with_oversampled_conversions"
}

/// Per-row loss weights a stage adds on top of the data's own weights.
public enum StageWeighting: String, Codable, Sendable {
    case none
    /// 1 / max(pCTR, clip) from the CTR head trained in an earlier stage, normalised to mean 1 (UNBIAS).
    case inverseCTR = "inverse_ctr"
}

/// One training stage: an objective over a sample space, with optional extra weights.
public struct Stage: Codable, Equatable, Sendable {
    public var objective: Objective
    public var space: SampleSpace
    public var weighting: StageWeighting

    public init(_ objective: Objective, on space: SampleSpace, weighting: StageWeighting = .none) {
        self.objective = objective
        self.space = space
        self.weighting = weighting
    }
}

/// The switches that define a model of the family. The ablation's three characteristics
/// (esmm-ablation Table 1) are read off them: shared parameters, entire space, weighted CVR.
public struct Architecture: Codable, Equatable, Sendable {
    /// One trunk feeds both heads (shared parameters) or each head has its own.
    public var sharedParameters: Bool
    public var ctrHead: Bool
    public var secondHead: SecondHead
    /// Trained in order; each stage runs `epochs` epochs.
    public var stages: [Stage]
    /// AITM: the second head also reads the CTR tower's transferred representation.
    public var transfer = false
    /// A third head beside the CTR and second heads, if any (MTDM's pCTCVR, DR's imputation,
    /// DCMT's counterfactual CVR).
    public var third: ThirdHead?
    /// MTDM: the third head predicts pCTCVR directly (the only third head that is predicted).
    public var ctcvrHead: Bool { third == .ctcvr }
    /// Multi-DR / ESCM²-DR: the third head is an imputation tower.
    public var imputationHead: Bool { third == .imputation }
    /// A third head, whichever it is.
    public var thirdHead: Bool { third != nil }

    public static func of(_ kind: ModelKind) -> Architecture {
        let independentCTR = Stage(.ctr, on: .all)
        switch kind {
        case .base, .ip, .mlp:
            return Architecture(sharedParameters: false, ctrHead: true, secondHead: .cvr,
                                stages: [independentCTR, Stage(.cvr, on: .clicked)])
        case .aman:
            return Architecture(sharedParameters: false, ctrHead: true, secondHead: .cvr,
                                stages: [independentCTR, Stage(.cvr, on: .clickedWithSampledNegatives)])
        case .oversampling:
            return Architecture(sharedParameters: false, ctrHead: true, secondHead: .cvr,
                                stages: [independentCTR, Stage(.cvr, on: .clickedWithOversampledConversions)])
        case .unbias:
            return Architecture(sharedParameters: false, ctrHead: true, secondHead: .cvr,
                                stages: [independentCTR, Stage(.cvr, on: .clicked, weighting: .inverseCTR)])
        case .division:
            return Architecture(sharedParameters: false, ctrHead: true, secondHead: .ctcvr,
                                stages: [independentCTR, Stage(.ctcvr, on: .all)])
        case .esmmNS:
            return Architecture(sharedParameters: false, ctrHead: true, secondHead: .cvr, stages: [Stage(.entireSpace, on: .all)])
        case .esmm:
            return Architecture(sharedParameters: true, ctrHead: true, secondHead: .cvr, stages: [Stage(.entireSpace, on: .all)])
        case .ipsp, .sharedbottom, .mmoe, .ple:
            return Architecture(sharedParameters: true, ctrHead: true, secondHead: .cvr, stages: [Stage(.clickMaskedCVR, on: .all)])
        case .esspSplit:
            return Architecture(sharedParameters: true, ctrHead: true, secondHead: .ctcvr, stages: [Stage(.splitHeads, on: .all)])
        case .esp:
            return Architecture(sharedParameters: false, ctrHead: false, secondHead: .ctcvr, stages: [Stage(.ctcvr, on: .all)])
        case .mtdm:
            return Architecture(sharedParameters: true, ctrHead: true, secondHead: .cvr, stages: [Stage(.parallelHeads, on: .all)],
                                third: .ctcvr)
        case .taml:
            return Architecture(sharedParameters: true, ctrHead: true, secondHead: .cvr, stages: [Stage(.multiLearner, on: .all)])
        case .multiIPW:
            return Architecture(sharedParameters: true, ctrHead: true, secondHead: .cvr, stages: [Stage(.ipwCVR, on: .all)])
        case .escm2IPW:
            return Architecture(sharedParameters: true, ctrHead: true, secondHead: .cvr, stages: [Stage(.entireSpaceIPW, on: .all)])
        case .multiDR:
            return Architecture(sharedParameters: true, ctrHead: true, secondHead: .cvr, stages: [Stage(.doublyRobustCVR, on: .all)],
                                third: .imputation)
        case .escm2DR:
            return Architecture(sharedParameters: true, ctrHead: true, secondHead: .cvr, stages: [Stage(.entireSpaceDR, on: .all)],
                                third: .imputation)
        case .dcmt:
            return Architecture(sharedParameters: true, ctrHead: true, secondHead: .cvr, stages: [Stage(.counterfactualTwin, on: .all)],
                                third: .counterfactualCVR)
        case .aitm:
            return Architecture(sharedParameters: true, ctrHead: true, secondHead: .ctcvr,
                                stages: [Stage(.transferWithConstraint, on: .all)], transfer: true)
        }
    }

    /// The CVR-side loss sees unclicked impressions.
    public var entireSpace: Bool {
        stages.contains { [.entireSpace, .splitHeads, .ctcvr, .transferWithConstraint, .multiLearner, .parallelHeads, .entireSpaceIPW, .doublyRobustCVR, .entireSpaceDR, .counterfactualTwin]
            .contains($0.objective) }
    }

    /// The CVR loss is implicitly weighted by pCTR (pCTCVR = pCTR × pCVR is what is supervised).
    public var weightedCVR: Bool { stages.contains { [.entireSpace, .multiLearner, .entireSpaceIPW, .entireSpaceDR, .counterfactualTwin]
        .contains($0.objective) } }

    /// Trunks in the network: one when shared or when there is a single head.
    public var trunkCount: Int { sharedParameters || !ctrHead ? 1 : 2 }
}

/// Hyperparameters; defaults are esmm-sigir2018 §3.1's.
public struct ModelConfig: Codable, Equatable, Sendable {
    public var kind: ModelKind
    public var trunk = TrunkKind.esmm
    public var embeddingDim = 18
    /// Hidden layers of each head (tower), before its 1-unit output layer.
    public var hidden = [200, 80]
    /// Hidden layers of the shared bottom (`trunk == .sharedBottom` only).
    public var bottom: [Int] = []
    /// MMoE and PLE trunks: experts per group and each expert's layers (taml-www2023 §3.2: 3
    /// experts per group, each one 64-unit layer); PLE's extraction levels.
    public var experts = 3
    public var expertHidden = [64]
    public var levels = 2
    /// AITM's label-constraint weight α (the AITM paper's 0.6).
    public var aitmAlpha = 0.6
    /// Learners per task (TAML: 2) and the self-distillation weights α (CTR) and β (CVR), taml-www2023 §3.2.
    public var learners = 1
    public var distillationCTR = 0.1
    public var distillationCVR = 0.1
    public var learningRate = 1e-3
    public var beta1 = 0.9
    public var beta2 = 0.999
    public var epsilon = 1e-8
    public var l2 = 0.0
    public var batchSize = 2000
    public var epochs = 1
    /// Epochs of stages over clicked-impression spaces (BASE's, AMAN's, … CVR networks); nil:
    /// `epochs`. Those spaces are ~25× smaller, so equal epochs mean far fewer optimizer steps.
    public var clickedEpochs: Int? = nil
    /// Learning-rate schedule per stage (nil: constant) with linear warm-up steps, and the step
    /// schedule's factor and interval (default: 0.1 every epoch's worth of steps). Left out of
    /// model.json when unset, so older files and results are unchanged.
    public var lrSchedule: LRSchedule? = nil
    /// Multi-valued fields: how their values pool (nil: weighted sum) and whether the values'
    /// weights are ignored (each value weighs 1). Left out of model.json when unset.
    public var pooling: BagPooling? = nil
    public var ignoreValues: Bool? = nil
    public var warmupSteps: Int? = nil
    public var lrGamma: Double? = nil
    public var lrStepSize: Int? = nil
    public var seed: UInt64 = 42
    /// Shuffle rows every epoch (off: file order, e.g. for time-ordered logs or parity checks).
    public var shuffle = true
    /// AMAN: share of unclicked impressions sampled as CVR negatives (esmm-sigir2018 searched 0.1, 0.2, 0.5, 1.0).
    public var negativeRate = 0.2
    /// OVERSAMPLING: copies of each converted click in the CVR training set (searched 2, 3, 5, 10).
    public var oversample = 3
    /// UNBIAS: pCTR floor before inverting, so no weight exceeds 1/clip.
    public var unbiasClip = 0.01
    /// Multi-IPW / ESCM²: the propensity floor before inverting (nil: `defaultPropensityClip`).
    public var propensityClip: Double?
    /// ESCM²: λ, the weight of the counterfactual CVR risk; DCMT: w, its E^DCMT's (nil:
    /// `defaultCounterfactualWeight(for:)`).
    public var counterfactualWeight: Double?
    /// DCMT: λ₁, the weight of the twin towers' soft constraint |1 − pCVR − pCVR*| (nil: `defaultTwinConstraintWeight`).
    public var twinConstraintWeight: Double?
    /// Multi-DR / ESCM²-DR: κ, the weight of the imputation loss o(e − ê)²/p̂ (nil: 1, PaddleRec's ESCM²).
    public var imputationWeight: Double?
    /// 1/15: the inverse propensities of PaddleRec's ESCM² are clipped at 15 (its "online
    /// trick", `models/multitask/escm2/dygraph_model.py`), i.e. pCTR is floored at 1/15.
    public static let defaultPropensityClip = 1.0 / 15
    /// 0.5: PaddleRec's ESCM² `counterfactual_w` (config_bigdata.yaml).
    public static let defaultCounterfactualWeight = 0.5
    /// The counterfactual weight a model kind trains with when none is given: ESCM²'s 0.5, and
    /// DCMT's 1 (its objective E^CTR + w·E^DCMT + E^CTCVR, the reference implementations' sum).
    public static func defaultCounterfactualWeight(for kind: ModelKind) -> Double { kind == .dcmt ? 1 : defaultCounterfactualWeight }
    /// 0.001: the twin constraint's weight in the public DCMT implementations (torch-rechub's
    /// multi-task trainers); the paper leaves it a hyperparameter.
    public static let defaultTwinConstraintWeight = 0.001
    /// The counterfactual weight this configuration trains with.
    public var effectiveCounterfactualWeight: Double { counterfactualWeight ?? ModelConfig.defaultCounterfactualWeight(for: kind) }
    /// Unclicked training rows kept with probability 1/f and weighted f (esmm-ablation §2.1.1); 1 = off.
    public var downsampleNegatives = 1.0
    /// `--pooling attention`: each multi-valued field's query field, by name (list → candidate).
    public var attentionQueries: [String: String]?
    /// Hidden units of DIN's activation unit (nil: `defaultAttentionHidden`).
    public var attentionHidden: Int?
    /// Softmax over a list's attention scores (nil/false: unnormalised, as the DIN paper).
    public var attentionNormalize: Bool?
    /// 36: the activation unit's hidden layer in DIN's released code (a 36-unit PReLU layer; ReLU here).
    public static let defaultAttentionHidden = 36
    /// DCN-v2 cross layers between each trunk's embedding concatenation and its body (nil: none,
    /// or `defaultCrossLayers` under `--arch dcn`); `crossRank` makes them low rank.
    public var crossLayers: Int?
    public var crossRank: Int?
    /// `--arch dcn` without `--cross-layers`: DCN-v2's experiments stack 2–4 cross layers; 3.
    public static let defaultCrossLayers = 3
    /// Cross layers every trunk of this configuration has (0: none).
    public var effectiveCrossLayers: Int { crossLayers ?? (trunk == .dcn ? ModelConfig.defaultCrossLayers : 0) }

    public init(kind: ModelKind) {
        self.kind = kind
        if let t = kind.requiredTrunk { trunk = t }
        if kind.isTAMLComparison {
            // taml-www2023 §3.2: towers [192, 64, 32, 1], L2 1e-6; TAML's learners [64, 32, 1], two per task.
            hidden = [192, 64, 32]
            l2 = 1e-6
        }
        if trunk == .sharedBottom { useSharedBottomLayout(); if kind.isTAMLComparison { hidden = [64, 32] } }
        if kind == .taml { learners = 2; hidden = [64, 32] }
    }

    /// This configuration for another model kind: same hyperparameters, and the trunk that kind
    /// requires (MMoE, shared bottom), else this one's.
    public func adapted(to kind: ModelKind) -> ModelConfig {
        var c = self
        c.kind = kind
        if let t = kind.requiredTrunk, t != trunk {
            c.trunk = t
            if t == .sharedBottom && c.bottom.isEmpty { c.useSharedBottomLayout() }
            if t != .sharedBottom { c.bottom = [] }
        }
        if kind == .taml { c.learners = max(c.learners, 2) } else if kind != self.kind && self.kind == .taml { c.learners = 1 }
        return c
    }

    /// The shared-bottom layout of esmm-ablation §2.3: bottom layers 200-80 shared by the heads,
    /// each head's tower 80 wide (then its output). One place for the sizes, for every way a
    /// configuration reaches a shared-bottom trunk (the model's own, `--arch`, another kind's).
    public mutating func useSharedBottomLayout() {
        bottom = [200, 80]
        hidden = [80]
    }

    public var architecture: Architecture { Architecture.of(kind) }

    /// Epochs of a stage over `space`.
    public func epochs(for space: SampleSpace) -> Int { space == .all ? epochs : clickedEpochs ?? epochs }

    enum CodingKeys: String, CodingKey {
        case kind, trunk, hidden, bottom, l2, epochs, seed, shuffle, beta1, beta2, epsilon, oversample, experts
        case levels
        case aitmAlpha = "aitm_alpha"
        case learners
        case distillationCTR = "distillation_ctr", distillationCVR = "distillation_cvr"
        case expertHidden = "expert_hidden"
        case embeddingDim = "embedding_dim", learningRate = "learning_rate", batchSize = "batch_size"
        case clickedEpochs = "clicked_epochs"
        case lrSchedule = "lr_schedule", warmupSteps = "warmup_steps", lrGamma = "lr_gamma", lrStepSize = "lr_step_size"
        case pooling, ignoreValues = "ignore_values"
        case negativeRate = "negative_rate", unbiasClip = "unbias_clip", downsampleNegatives = "downsample_negatives"
        case propensityClip = "propensity_clip", counterfactualWeight = "counterfactual_weight", imputationWeight = "imputation_weight"
        case twinConstraintWeight = "twin_constraint_weight"
        case crossLayers = "cross_layers", crossRank = "cross_rank"
        case attentionQueries = "attention_queries", attentionHidden = "attention_hidden", attentionNormalize = "attention_normalize"
    }

    /// Keys added in later versions fall back to their defaults, so older model files still load.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decode(ModelKind.self, forKey: .kind)
        let d = ModelConfig(kind: kind)
        trunk = try c.decodeIfPresent(TrunkKind.self, forKey: .trunk) ?? d.trunk
        embeddingDim = try c.decodeIfPresent(Int.self, forKey: .embeddingDim) ?? d.embeddingDim
        hidden = try c.decodeIfPresent([Int].self, forKey: .hidden) ?? d.hidden
        bottom = try c.decodeIfPresent([Int].self, forKey: .bottom) ?? d.bottom
        experts = try c.decodeIfPresent(Int.self, forKey: .experts) ?? d.experts
        expertHidden = try c.decodeIfPresent([Int].self, forKey: .expertHidden) ?? d.expertHidden
        levels = try c.decodeIfPresent(Int.self, forKey: .levels) ?? d.levels
        aitmAlpha = try c.decodeIfPresent(Double.self, forKey: .aitmAlpha) ?? d.aitmAlpha
        learners = try c.decodeIfPresent(Int.self, forKey: .learners) ?? d.learners
        distillationCTR = try c.decodeIfPresent(Double.self, forKey: .distillationCTR) ?? d.distillationCTR
        distillationCVR = try c.decodeIfPresent(Double.self, forKey: .distillationCVR) ?? d.distillationCVR
        learningRate = try c.decodeIfPresent(Double.self, forKey: .learningRate) ?? d.learningRate
        beta1 = try c.decodeIfPresent(Double.self, forKey: .beta1) ?? d.beta1
        beta2 = try c.decodeIfPresent(Double.self, forKey: .beta2) ?? d.beta2
        epsilon = try c.decodeIfPresent(Double.self, forKey: .epsilon) ?? d.epsilon
        l2 = try c.decodeIfPresent(Double.self, forKey: .l2) ?? d.l2
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        epochs = try c.decodeIfPresent(Int.self, forKey: .epochs) ?? d.epochs
        clickedEpochs = try c.decodeIfPresent(Int.self, forKey: .clickedEpochs)
        lrSchedule = try c.decodeIfPresent(LRSchedule.self, forKey: .lrSchedule)
        warmupSteps = try c.decodeIfPresent(Int.self, forKey: .warmupSteps)
        lrGamma = try c.decodeIfPresent(Double.self, forKey: .lrGamma)
        lrStepSize = try c.decodeIfPresent(Int.self, forKey: .lrStepSize)
        pooling = try c.decodeIfPresent(BagPooling.self, forKey: .pooling)
        ignoreValues = try c.decodeIfPresent(Bool.self, forKey: .ignoreValues)
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        shuffle = try c.decodeIfPresent(Bool.self, forKey: .shuffle) ?? d.shuffle
        negativeRate = try c.decodeIfPresent(Double.self, forKey: .negativeRate) ?? d.negativeRate
        oversample = try c.decodeIfPresent(Int.self, forKey: .oversample) ?? d.oversample
        unbiasClip = try c.decodeIfPresent(Double.self, forKey: .unbiasClip) ?? d.unbiasClip
        propensityClip = try c.decodeIfPresent(Double.self, forKey: .propensityClip)
        counterfactualWeight = try c.decodeIfPresent(Double.self, forKey: .counterfactualWeight)
        imputationWeight = try c.decodeIfPresent(Double.self, forKey: .imputationWeight)
        twinConstraintWeight = try c.decodeIfPresent(Double.self, forKey: .twinConstraintWeight)
        crossLayers = try c.decodeIfPresent(Int.self, forKey: .crossLayers)
        crossRank = try c.decodeIfPresent(Int.self, forKey: .crossRank)
        attentionQueries = try c.decodeIfPresent([String: String].self, forKey: .attentionQueries)
        attentionHidden = try c.decodeIfPresent(Int.self, forKey: .attentionHidden)
        attentionNormalize = try c.decodeIfPresent(Bool.self, forKey: .attentionNormalize)
        downsampleNegatives = try c.decodeIfPresent(Double.self, forKey: .downsampleNegatives) ?? d.downsampleNegatives
    }

    public func validate() throws {
        guard embeddingDim >= 1 else { throw FunnelError("the embedding dimension must be at least 1") }
        guard hidden.allSatisfy({ $0 >= 1 }) else { throw FunnelError("tower layer sizes must be positive") }
        guard trunk.builder.usesBottom || bottom.isEmpty else { throw FunnelError("bottom layers need a shared-bottom trunk") }
        try trunk.builder.validate(self)
        guard aitmAlpha >= 0, aitmAlpha.isFinite else { throw FunnelError("the AITM constraint weight must be ≥ 0") }
        guard (1...16).contains(learners) else { throw FunnelError("learners per task must be between 1 and 16") }
        guard learners == 1 || !architecture.transfer else { throw FunnelError("aitm has one learner per task") }
        guard distillationCTR >= 0, distillationCVR >= 0 else { throw FunnelError("distillation weights must be ≥ 0") }
        guard batchSize >= 1 else { throw FunnelError("the batch size must be at least 1") }
        guard epochs >= 1 else { throw FunnelError("epochs must be at least 1") }
        guard (clickedEpochs ?? 1) >= 1 else { throw FunnelError("clicked-space epochs must be at least 1") }
        guard (warmupSteps ?? 0) >= 0 else { throw FunnelError("warm-up steps must be ≥ 0") }
        guard (lrGamma ?? 0.1) > 0, (lrGamma ?? 0.1) <= 1 else { throw FunnelError("the step schedule's factor must be in (0, 1]") }
        guard (lrStepSize ?? 1) >= 1 else { throw FunnelError("the step schedule's interval must be ≥ 1 step") }
        guard learningRate > 0, learningRate.isFinite else { throw FunnelError("the learning rate must be a positive number") }
        guard l2 >= 0, l2.isFinite else { throw FunnelError("the L2 penalty must be ≥ 0") }
        guard (0..<1).contains(beta1), (0..<1).contains(beta2), epsilon > 0 else { throw FunnelError("Adam betas must be in [0, 1) and epsilon > 0") }
        guard negativeRate > 0, negativeRate <= 1 else { throw FunnelError("the AMAN negative rate must be in (0, 1]") }
        guard oversample >= 1 else { throw FunnelError("oversampling copies must be at least 1") }
        guard unbiasClip > 0, unbiasClip <= 1 else { throw FunnelError("the UNBIAS pCTR clip must be in (0, 1]") }
        guard (propensityClip ?? 0.5) > 0, (propensityClip ?? 0.5) <= 1 else { throw FunnelError("the propensity clip must be in (0, 1]") }
        guard (counterfactualWeight ?? 0) >= 0, (counterfactualWeight ?? 0).isFinite else {
            throw FunnelError("the counterfactual weight must be ≥ 0")
        }
        guard (imputationWeight ?? 0) >= 0, (imputationWeight ?? 0).isFinite else { throw FunnelError("the imputation weight must be ≥ 0") }
        guard (twinConstraintWeight ?? 0) >= 0, (twinConstraintWeight ?? 0).isFinite else {
            throw FunnelError("the twin constraint weight must be ≥ 0")
        }
        guard (1...NetworkSize.maxLayerWidth).contains(attentionHidden ?? 1) else {
            throw FunnelError("the attention unit's hidden units must be between 1 and \(NetworkSize.maxLayerWidth)")
        }
        guard (0...16).contains(crossLayers ?? 0) else { throw FunnelError("cross layers must be between 0 and 16") }
        guard (crossRank ?? 1) >= 1, (crossRank ?? 1) <= NetworkSize.maxLayerWidth else {
            throw FunnelError("the cross rank must be between 1 and \(NetworkSize.maxLayerWidth)")
        }
        guard crossRank == nil || effectiveCrossLayers > 0 else { throw FunnelError("a cross rank needs cross layers (--cross-layers or --arch dcn)") }
        guard downsampleNegatives >= 1, downsampleNegatives.isFinite else { throw FunnelError("the negative downsampling factor must be ≥ 1") }
    }
}
