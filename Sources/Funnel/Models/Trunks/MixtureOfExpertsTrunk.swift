/// MMoE (Ma et al., KDD 2018): shared experts, one softmax gate per head (learner).
enum MixtureOfExpertsTrunk: TrunkBuilder {
    static let isGated = true

    static func validate(_ config: ModelConfig) throws { try ExpertChecks.validate(config) }

    static func build(_ shape: TrunkShape, config: ModelConfig, rng: () -> RandomSource) -> TrunkBody {
        var r = rng()
        return .gated(MixtureOfExperts(name: shape.name + "mmoe", inputWidth: shape.inputWidth, experts: config.experts,
                                       expertHidden: config.expertHidden, gates: shape.gates, maxBatch: shape.maxBatch,
                                       workers: shape.workers, rng: &r))
    }
}
