/// PLE (Tang et al., RecSys 2020): task-specific and shared experts over `levels` extraction levels.
enum ProgressiveLayeredExtractionTrunk: TrunkBuilder {
    static let isGated = true

    static func validate(_ config: ModelConfig) throws {
        try ExpertChecks.validate(config)
        guard (1...8).contains(config.levels) else { throw FunnelError("PLE extraction levels must be between 1 and 8") }
    }

    static func build(_ shape: TrunkShape, config: ModelConfig, rng: () -> RandomSource) -> TrunkBody {
        var r = rng()
        return .gated(ProgressiveLayeredExtraction(
            name: shape.name + "ple", inputWidth: shape.inputWidth, tasks: shape.gates, levels: config.levels,
            expertsPerTask: config.experts, sharedExperts: config.experts, expertHidden: config.expertHidden,
            maxBatch: shape.maxBatch, workers: shape.workers, rng: &r))
    }
}
