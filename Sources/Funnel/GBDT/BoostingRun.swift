import Foundation

/// Progress of one boosting run, reported after every iteration.
public struct BoostingProgress: Sendable {
    public var model: String
    public var iteration: Int
    public var maxIterations: Int
    public var validLoss: Double?
    public var bestIteration: Int
    public var bestLoss: Double?
    public var iterationsPerSecond: Double
}

/// What one boosting run leaves: the model text cut at the best iteration and its history.
public struct BoostingResult: Codable, Sendable {
    /// LightGBM's model text truncated to `bestIteration` iterations.
    public var modelText: String
    public var bestIteration: Int
    public var iterations: Int
    public var bestValidLoss: Double?
    public var validLossHistory: [Double]
    public var seconds: Double
    public var stoppedEarly: Bool

    enum CodingKeys: String, CodingKey {
        case bestIteration = "best_iteration", iterations, bestValidLoss = "best_valid_logloss"
        case validLossHistory = "valid_logloss", seconds, stoppedEarly = "stopped_early"
        case modelText = "model_text"
    }
}

/// Boosting with early stopping on validation log loss.
///
/// LightGBM's C API has no early stopping of its own (the Python package does it in a callback),
/// so the loop is here: one `UpdateOneIter` at a time, validation `binary_logloss` after each,
/// stop after `earlyStoppingRounds` without improvement, keep the best iteration's model.
public enum BoostingRun {
    public static func train(model name: String, train: FeatureMatrix, trainLabels: [Float],
                             valid: FeatureMatrix?, validLabels: [Float]?,
                             parameters: LightGBMParameters, iterations: Int, earlyStoppingRounds: Int,
                             progress: ((BoostingProgress) -> Void)? = nil) throws -> (booster: LightGBMBooster, result: BoostingResult) {
        guard iterations >= 1 else { throw FunnelError("num_iterations must be at least 1") }
        try parameters.validate()
        var params = parameters
        params["objective"] = params["objective"] ?? "binary"
        params["metric"] = "binary_logloss"
        let start = Date()
        let trainSet = try LightGBMDataset(train, labels: trainLabels, parameters: params)
        let booster = try LightGBMBooster(train: trainSet, parameters: params)
        var hasValid = false
        if let valid, let validLabels, valid.rows > 0 {
            try booster.addValidation(try LightGBMDataset(valid, labels: validLabels, parameters: params, reference: trainSet))
            hasValid = true
        }
        var history: [Double] = []
        var best = 0
        var bestLoss: Double?
        var stoppedEarly = false
        for it in 1...iterations {
            let finished = try booster.updateOneIteration()
            var loss: Double?
            if hasValid {
                loss = try booster.evaluate(dataset: 1).first
                if let l = loss {
                    history.append(l)
                    if bestLoss == nil || l < bestLoss! - 1e-12 { bestLoss = l; best = it }
                }
            } else {
                best = it
            }
            let elapsed = Date().timeIntervalSince(start)
            progress?(BoostingProgress(model: name, iteration: it, maxIterations: iterations, validLoss: loss,
                                       bestIteration: best, bestLoss: bestLoss,
                                       iterationsPerSecond: Double(it) / max(elapsed, 1e-9)))
            if finished { break }
            if hasValid, earlyStoppingRounds > 0, it - best >= earlyStoppingRounds { stoppedEarly = true; break }
        }
        let done = booster.currentIteration
        best = max(1, min(best, done))
        let text = try booster.modelText(iterations: best)
        let result = BoostingResult(modelText: text, bestIteration: best, iterations: done, bestValidLoss: bestLoss,
                                    validLossHistory: history, seconds: Date().timeIntervalSince(start),
                                    stoppedEarly: stoppedEarly)
        return (try LightGBMBooster(modelText: text, source: "\(name) (best iteration \(best))"), result)
    }
}
