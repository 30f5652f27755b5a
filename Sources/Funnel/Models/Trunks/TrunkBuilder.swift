/// The layers of one trunk between its embedding table and the heads.
public enum TrunkBody {
    /// The heads read the embedding output itself.
    case identity
    /// Shared hidden layers; every head reads their output.
    case dense(MLP)
    /// Gated experts; each head (learner) reads its own gate's mixture.
    case gated(any GatedTrunk)

    public var parameters: [Parameter] {
        switch self {
        case .identity: return []
        case .dense(let mlp): return mlp.parameters
        case .gated(let trunk): return trunk.parameters
        }
    }

    /// Width of what the heads read, given the embedding output's width.
    func outputWidth(input: Int) -> Int {
        switch self {
        case .identity: return input
        case .dense(let mlp): return mlp.outputWidth
        case .gated(let trunk): return trunk.outputWidth
        }
    }
}

/// What a trunk is built for: its parameter-name prefix, input width, how many gates (heads ×
/// learners) read it and the learners per head.
public struct TrunkShape {
    public var name: String
    public var inputWidth: Int
    public var gates: Int
    public var learners: Int
    public var maxBatch: Int
    public var workers: Int
}

/// One trunk kind: checks the configuration it needs and builds its layers. Registered in
/// `TrunkKind.builder`.
public protocol TrunkBuilder {
    /// Heads read their own gate's mixture (`TrunkBody.gated`).
    static var isGated: Bool { get }
    /// The trunk uses `ModelConfig.bottom`.
    static var usesBottom: Bool { get }
    /// The trunk's own configuration checks (messages name the quantity).
    static func validate(_ config: ModelConfig) throws
    /// Builds the layers; `rng` hands out the parameter stream of this trunk (call it once,
    /// and only when the trunk has parameters, so other tensors' initialisation never shifts).
    static func build(_ shape: TrunkShape, config: ModelConfig, rng: () -> RandomSource) -> TrunkBody
}

extension TrunkBuilder {
    public static var usesBottom: Bool { false }
    public static func validate(_ config: ModelConfig) throws {}
}

/// The shared checks of every gated trunk.
enum ExpertChecks {
    static func validate(_ config: ModelConfig) throws {
        guard config.experts >= 1, !config.expertHidden.isEmpty, config.expertHidden.allSatisfy({ $0 >= 1 }) else {
            throw FunnelError("the \(config.trunk.rawValue) trunk needs at least 1 expert and positive expert layer sizes")
        }
    }
}
