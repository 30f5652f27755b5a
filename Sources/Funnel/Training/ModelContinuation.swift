import Foundation

/// `train --init-from PREV --train NEW`: training that continues a saved model on new data.
///
/// The next model has PREV's architecture and its schema grown by NEW (`ContinuedSchema`): ids
/// PREV knew keep their embedding rows, ids new in NEW get rows initialised as a fresh model's,
/// every other weight starts at PREV's. With PREV's optimizer state (`OptimizerState`) Adam goes
/// on from PREV's moments and step counts, so continuing equals not having stopped; without it
/// Adam starts afresh (a warm start).
public struct ModelContinuation {
    public let directory: String
    public let previous: TrainedModel
    public let optimizer: OptimizerState?

    /// Loads PREV and checks that `config` can continue it: the same model and the same shapes.
    public init(directory: String, config: ModelConfig, workers: Int = 1) throws {
        self.directory = directory
        previous = try TrainedModel.load(from: directory, workers: workers)
        if let difference = previous.config.shapeDifference(from: config) {
            throw FunnelError("--init-from \(directory): \(difference); continuing keeps the saved model's architecture")
        }
        optimizer = try previous.optimizerState(in: directory)
        if let optimizer, optimizer.steps.count != previous.network.architecture.stages.count {
            throw FunnelError("\(directory)/\(OptimizerState.fileName): \(optimizer.steps.count) stage step count(s) for a model of "
                              + "\(previous.network.architecture.stages.count) stage(s)")
        }
    }

    /// What the new data's schema grows from.
    public var schema: PreviousSchema {
        PreviousSchema(schema: previous.schema, rows: previous.manifest.training?.rows ?? 0, directory: directory)
    }

    /// What continuing changed in the tables.
    public struct Growth: Sendable, Codable {
        /// Embedding rows carried over from PREV, added for ids new in the data, and left
        /// behind (evicted ids).
        public var keptRows: Int
        public var addedRows: Int
        public var evictedRows: Int
        /// Whether Adam's moments and step counts were carried over.
        public var optimizerState: Bool
        /// Each stage's step count the run starts from.
        public var startingSteps: [Int]

        enum CodingKeys: String, CodingKey {
            case keptRows = "kept_rows", addedRows = "added_rows", evictedRows = "evicted_rows", optimizerState = "optimizer_state"
            case startingSteps = "starting_steps"
        }
    }

    /// Starts `net` (built for `schema`, PREV's grown) from PREV: weights, and Adam's state when saved.
    public func start(_ net: FunnelNetwork, schema: FeatureSchema) throws -> Growth {
        let rows = EmbeddingRowMap(from: previous.schema, to: schema)
        let path = directory + "/" + previous.manifest.weightsFile
        let old = Dictionary(uniqueKeysWithValues: previous.network.parameters.map { ($0.name, $0) })
        for p in net.parameters {
            guard let q = old[p.name] else { throw FunnelError("\(path): tensor '\(p.name)' is missing") }
            guard rows.carry(q.value.base, saved: q.shape, into: p.value.base, shape: p.shape, sparse: p.isSparse) else {
                throw FunnelError("\(path): tensor '\(p.name)' has shape \(q.shape), the model needs \(p.shape)")
            }
        }
        try optimizer?.restore(into: net, rows: rows, path: directory + "/" + OptimizerState.fileName)
        return Growth(keptRows: rows.carriedRows, addedRows: rows.newRows - rows.carriedRows, evictedRows: rows.oldRows - rows.carriedRows,
                      optimizerState: optimizer != nil,
                      startingSteps: optimizer?.steps ?? [Int](repeating: 0, count: net.architecture.stages.count))
    }
}

extension ModelConfig {
    /// What makes a network of `other` shaped differently from one of this config (nil: nothing):
    /// the model, trunk and every setting that sizes or adds a parameter.
    public func shapeDifference(from other: ModelConfig) -> String? {
        func show<T>(_ v: T?) -> String { v.map { "\($0)" } ?? "default" }
        let checks: [(String, Bool, String, String)] = [
            ("model", kind == other.kind, kind.rawValue, other.kind.rawValue),
            ("--arch", trunk == other.trunk, trunk.rawValue, other.trunk.rawValue),
            ("--embedding-dim", embeddingDim == other.embeddingDim, "\(embeddingDim)", "\(other.embeddingDim)"),
            ("--hidden", hidden == other.hidden, "\(hidden)", "\(other.hidden)"),
            ("--bottom", bottom == other.bottom, "\(bottom)", "\(other.bottom)"),
            ("--experts", experts == other.experts, "\(experts)", "\(other.experts)"),
            ("--expert-hidden", expertHidden == other.expertHidden, "\(expertHidden)", "\(other.expertHidden)"),
            ("--levels", levels == other.levels, "\(levels)", "\(other.levels)"),
            ("--learners", learners == other.learners, "\(learners)", "\(other.learners)"),
            ("--cross-layers", effectiveCrossLayers == other.effectiveCrossLayers, "\(effectiveCrossLayers)", "\(other.effectiveCrossLayers)"),
            ("--cross-rank", crossRank == other.crossRank, show(crossRank), show(other.crossRank)),
            ("--pooling", (pooling ?? .sum) == (other.pooling ?? .sum), show(pooling), show(other.pooling)),
            ("--attention-query", attentionQueries == other.attentionQueries, show(attentionQueries), show(other.attentionQueries)),
            ("--attention-hidden", attentionHidden == other.attentionHidden, show(attentionHidden), show(other.attentionHidden)),
            ("--attention-normalize", (attentionNormalize ?? false) == (other.attentionNormalize ?? false),
             show(attentionNormalize), show(other.attentionNormalize)),
            ("--ignore-values", (ignoreValues ?? false) == (other.ignoreValues ?? false), show(ignoreValues), show(other.ignoreValues)),
        ]
        return checks.first { !$0.1 }.map { "\($0.0) is \($0.3) but the saved model's is \($0.2)" }
    }
}
