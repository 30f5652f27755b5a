/// ESMM's trunk (esmm-sigir2018 §2.3): the heads read the concatenated field embeddings.
enum EmbeddingOnlyTrunk: TrunkBuilder {
    static let isGated = false
    static func build(_ shape: TrunkShape, config: ModelConfig, rng: () -> RandomSource) -> TrunkBody { .identity }
}
