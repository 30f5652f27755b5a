/// The trunk under the heads: embeddings only (esmm-sigir2018), embeddings followed by shared
/// hidden layers (esmm-ablation §2.3), gated experts (MMoE, PLE, TAML), or DCN-v2's cross layers.
/// (Cross layers may also sit under any other trunk: `ModelConfig.crossLayers`.)
///
/// Adding a trunk: a file with its `TrunkBuilder`, a case here and its line in `builder`.
public enum TrunkKind: String, Codable, CaseIterable, Sendable {
    case esmm
    case sharedBottom = "shared-bottom"
    /// Shared experts with one softmax gate per head (MMoE, Ma et al. KDD 2018).
    case mmoe
    /// Progressive layered extraction: task-specific and shared experts over `levels` levels (Tang et al. 2020).
    case ple
    /// TAML's hierarchical task-adaptive knowledge representation: general, task and learner
    /// experts with one adaptive gate per learner (taml-www2023 §2.2).
    case taml
    /// DCN-v2 (Wang et al., WWW 2021) stacked: cross layers over the embedding concatenation
    /// (`--cross-layers`, default 3; `--cross-rank` for low rank), the heads' towers the deep part.
    case dcn

    /// The registry: how each kind builds its layers above the embedding table.
    public var builder: any TrunkBuilder.Type {
        switch self {
        case .esmm: return EmbeddingOnlyTrunk.self
        case .sharedBottom: return SharedBottomTrunk.self
        case .mmoe: return MixtureOfExpertsTrunk.self
        case .ple: return ProgressiveLayeredExtractionTrunk.self
        case .taml: return TAMLTrunk.self
        case .dcn: return DeepCrossTrunk.self
        }
    }

    /// Whether the heads read their own gate's mixture (rather than one shared trunk output).
    public var isGated: Bool { builder.isGated }
}
