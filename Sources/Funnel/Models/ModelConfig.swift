/// The models of the ESMM family Funnel trains, each one point in a small space of switches
/// (see `Architecture`), never a separate class.
public enum ModelKind: String, Codable, CaseIterable, Sendable {
    /// esmm-sigir2018 §2.2: an Embedding&MLP CVR network trained on clicked impressions only,
    /// plus (per §3.1's CTCVR protocol) an independent CTR network trained on all impressions.
    case base
    /// esmm-sigir2018 §2.3: shared embedding, CTR and CVR towers, pCTCVR = pCTR × pCVR,
    /// loss CE(click, pCTR) + CE(click∧conversion, pCTCVR) over all impressions.
    case esmm
}

/// Which rows a training stage sees.
public enum SampleSpace: String, Codable, Sendable {
    case allImpressions = "all"
    case clickedImpressions = "clicked"
}

/// One training stage: which towers it updates, over which rows, with which loss.
public enum Objective: String, Codable, Sendable {
    /// ESMM: CE(click, σ(ctr)) + CE(click·conversion, σ(ctr)·σ(cvr)), both towers.
    case entireSpace = "entire_space"
    /// CTR tower alone: CE(click, σ(ctr)).
    case clickOnly = "ctr"
    /// CVR tower alone: CE(conversion, σ(cvr)).
    case conversionOnly = "cvr"

    public var space: SampleSpace { self == .conversionOnly ? .clickedImpressions : .allImpressions }
}

/// The switches that define a model of the family.
public struct Architecture: Codable, Equatable, Sendable {
    /// One embedding table for both towers (ESMM) or one each (BASE's independent networks).
    public var sharedEmbedding: Bool
    /// Trained in order; each stage runs `epochs` epochs over its sample space.
    public var stages: [Objective]

    public static func of(_ kind: ModelKind) -> Architecture {
        switch kind {
        case .esmm: return Architecture(sharedEmbedding: true, stages: [.entireSpace])
        case .base: return Architecture(sharedEmbedding: false, stages: [.clickOnly, .conversionOnly])
        }
    }
}

/// Hyperparameters; defaults are esmm-sigir2018 §3.1's.
public struct ModelConfig: Codable, Equatable, Sendable {
    public var kind: ModelKind
    public var embeddingDim = 18
    public var hidden = [200, 80]
    public var learningRate = 1e-3
    public var beta1 = 0.9
    public var beta2 = 0.999
    public var epsilon = 1e-8
    public var l2 = 0.0
    public var batchSize = 2000
    public var epochs = 1
    public var seed: UInt64 = 42
    /// Shuffle rows every epoch (off: file order, e.g. for time-ordered logs or parity checks).
    public var shuffle = true

    public init(kind: ModelKind) { self.kind = kind }

    enum CodingKeys: String, CodingKey {
        case kind, hidden, l2, epochs, seed, shuffle, beta1, beta2, epsilon
        case embeddingDim = "embedding_dim", learningRate = "learning_rate", batchSize = "batch_size"
    }

    /// Keys added in later versions fall back to their defaults, so older model files still load.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decode(ModelKind.self, forKey: .kind)
        let d = ModelConfig(kind: kind)
        embeddingDim = try c.decodeIfPresent(Int.self, forKey: .embeddingDim) ?? d.embeddingDim
        hidden = try c.decodeIfPresent([Int].self, forKey: .hidden) ?? d.hidden
        learningRate = try c.decodeIfPresent(Double.self, forKey: .learningRate) ?? d.learningRate
        beta1 = try c.decodeIfPresent(Double.self, forKey: .beta1) ?? d.beta1
        beta2 = try c.decodeIfPresent(Double.self, forKey: .beta2) ?? d.beta2
        epsilon = try c.decodeIfPresent(Double.self, forKey: .epsilon) ?? d.epsilon
        l2 = try c.decodeIfPresent(Double.self, forKey: .l2) ?? d.l2
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        epochs = try c.decodeIfPresent(Int.self, forKey: .epochs) ?? d.epochs
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        shuffle = try c.decodeIfPresent(Bool.self, forKey: .shuffle) ?? d.shuffle
    }

    public var architecture: Architecture { Architecture.of(kind) }

    public func validate() throws {
        guard embeddingDim >= 1 else { throw FunnelError("--embedding-dim must be at least 1") }
        guard !hidden.isEmpty, hidden.allSatisfy({ $0 >= 1 }) else { throw FunnelError("--hidden must list positive layer sizes, e.g. 200,80") }
        guard batchSize >= 1 else { throw FunnelError("--batch-size must be at least 1") }
        guard epochs >= 1 else { throw FunnelError("--epochs must be at least 1") }
        guard learningRate > 0, learningRate.isFinite else { throw FunnelError("--lr must be a positive number") }
        guard l2 >= 0, l2.isFinite else { throw FunnelError("--l2 must be ≥ 0") }
        guard (0..<1).contains(beta1), (0..<1).contains(beta2), epsilon > 0 else { throw FunnelError("Adam betas must be in [0, 1) and epsilon > 0") }
    }
}
