import ArgumentParser
import Foundation
import Funnel

/// `train --init-from PREV`: the configuration comes from PREV's `model.json`; a flag given on
/// the command line overrides a training setting (learning rate, epochs, batch size, loss
/// weights, …), and a flag that would change a shape (architecture, layer sizes, embedding
/// dimension, pooling, …) is refused unless it repeats PREV's value.
extension ModelOptions {
    /// Flags that only change how training runs: (flag, copy the command line's value over PREV's).
    static let trainingSettings: [(String, (inout ModelConfig, ModelConfig) -> Void)] = [
        ("--epochs", { $0.epochs = $1.epochs }), ("--clicked-epochs", { $0.clickedEpochs = $1.clickedEpochs }),
        ("--batch-size", { $0.batchSize = $1.batchSize }), ("--lr", { $0.learningRate = $1.learningRate }),
        ("--beta1", { $0.beta1 = $1.beta1 }), ("--beta2", { $0.beta2 = $1.beta2 }),
        ("--adam-epsilon", { $0.epsilon = $1.epsilon }), ("--l2", { $0.l2 = $1.l2 }),
        ("--aitm-alpha", { $0.aitmAlpha = $1.aitmAlpha }),
        ("--distillation-ctr", { $0.distillationCTR = $1.distillationCTR }),
        ("--distillation-cvr", { $0.distillationCVR = $1.distillationCVR }),
        ("--negative-rate", { $0.negativeRate = $1.negativeRate }), ("--oversample", { $0.oversample = $1.oversample }),
        ("--unbias-clip", { $0.unbiasClip = $1.unbiasClip }), ("--propensity-clip", { $0.propensityClip = $1.propensityClip }),
        ("--counterfactual-weight", { $0.counterfactualWeight = $1.counterfactualWeight }),
        ("--twin-constraint-weight", { $0.twinConstraintWeight = $1.twinConstraintWeight }),
        ("--imputation-weight", { $0.imputationWeight = $1.imputationWeight }),
        ("--downsample-negatives", { $0.downsampleNegatives = $1.downsampleNegatives }),
        ("--no-shuffle", { $0.shuffle = $1.shuffle }), ("--seed", { $0.seed = $1.seed }),
        ("--lr-schedule", { $0.lrSchedule = $1.lrSchedule; $0.lrGamma = $1.lrGamma; $0.lrStepSize = $1.lrStepSize }),
        ("--warmup-steps", { $0.warmupSteps = $1.warmupSteps }),
        ("--lr-gamma", { $0.lrGamma = $1.lrGamma }), ("--lr-step-size", { $0.lrStepSize = $1.lrStepSize }),
    ]

    /// Flags that shape the network: given, they must repeat PREV's value.
    static let shapeSettings: [(String, (inout ModelConfig, ModelConfig) -> Void)] = [
        ("--arch", { $0.trunk = $1.trunk }), ("--embedding-dim", { $0.embeddingDim = $1.embeddingDim }),
        ("--hidden", { $0.hidden = $1.hidden }), ("--bottom", { $0.bottom = $1.bottom }),
        ("--experts", { $0.experts = $1.experts }), ("--expert-hidden", { $0.expertHidden = $1.expertHidden }),
        ("--levels", { $0.levels = $1.levels }), ("--learners", { $0.learners = $1.learners }),
        ("--cross-layers", { $0.crossLayers = $1.crossLayers }), ("--cross-rank", { $0.crossRank = $1.crossRank }),
        ("--pooling", { $0.pooling = $1.pooling }), ("--attention-query", { $0.attentionQueries = $1.attentionQueries }),
        ("--attention-hidden", { $0.attentionHidden = $1.attentionHidden }),
        ("--attention-normalize", { $0.attentionNormalize = $1.attentionNormalize }),
        ("--ignore-values", { $0.ignoreValues = $1.ignoreValues }),
    ]

    /// The flags written on the command line (`--name` or `--name=value`), which tells an
    /// explicit value from a default.
    static func givenFlags(_ arguments: [String] = CommandLine.arguments) -> Set<String> {
        Set(arguments.dropFirst().filter { $0.hasPrefix("--") }.map { String($0.split(separator: "=", maxSplits: 1)[0]) })
    }

    /// PREV's configuration with the command line's training settings; `kind`, when given, must
    /// be PREV's model.
    func continuedConfig(from prev: ModelConfig, kind: ModelKind?, seed: UInt64, given: Set<String>) throws -> ModelConfig {
        if let kind, kind != prev.kind {
            throw FunnelError("--model \(kind.rawValue): the model to continue is \(prev.kind.rawValue) (continuing keeps it)")
        }
        // The command line's values, read as for PREV's model (its trunk, so --bottom parses).
        var options = self
        if !given.contains("--arch") { options.arch = prev.trunk }
        let cli = try options.config(kind: prev.kind, seed: seed)
        var c = prev
        for (flag, copy) in Self.trainingSettings where given.contains(flag) { copy(&c, cli) }
        var shaped = prev
        for (flag, copy) in Self.shapeSettings where given.contains(flag) { copy(&shaped, cli) }
        if let difference = prev.shapeDifference(from: shaped) {
            throw FunnelError("\(difference): a shape cannot change when continuing a model")
        }
        try c.validate()
        return c
    }
}
