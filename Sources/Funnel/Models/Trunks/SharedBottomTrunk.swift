/// Shared hidden layers above the embeddings (esmm-ablation §2.3), read by every head.
enum SharedBottomTrunk: TrunkBuilder {
    static let isGated = false
    static let usesBottom = true

    static func validate(_ config: ModelConfig) throws {
        guard !config.bottom.isEmpty, config.bottom.allSatisfy({ $0 >= 1 }) else {
            throw FunnelError("a shared-bottom trunk needs positive bottom layer sizes, e.g. 200,80")
        }
    }

    static func build(_ shape: TrunkShape, config: ModelConfig, rng: () -> RandomSource) -> TrunkBody {
        var r = rng()
        return .dense(MLP(name: shape.name + "bottom", inputWidth: shape.inputWidth, hidden: config.bottom, logitOutput: false,
                          maxBatch: shape.maxBatch, workers: shape.workers, rng: &r))
    }
}
