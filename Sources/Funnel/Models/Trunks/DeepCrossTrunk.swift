/// DCN-v2 in its stacked form (Wang et al., WWW 2021, §3.1, Fig. 2b): the cross network reads
/// the embedding concatenation and the deep part reads the cross network's output. Under a
/// multi-task head the deep part is each head's tower, so the body itself is the identity: the
/// cross layers (`FunnelNetwork.crosses`, `ModelConfig.effectiveCrossLayers`, 3 by default) sit
/// between the embeddings and the towers, as they sit under the experts of `--arch mmoe
/// --cross-layers K`. Stacked rather than parallel because the paper's stacked DCN-v2 is what its
/// production models use and it keeps one input for every head, expert and gate.
enum DeepCrossTrunk: TrunkBuilder {
    static let isGated = false
    static func build(_ shape: TrunkShape, config: ModelConfig, rng: () -> RandomSource) -> TrunkBody { .identity }
}
