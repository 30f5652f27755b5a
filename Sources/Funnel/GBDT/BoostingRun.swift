import CMPI
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
                             communicator: Communicator? = nil,
                             progress: ((BoostingProgress) -> Void)? = nil) throws -> (booster: LightGBMBooster, result: BoostingResult) {
        guard iterations >= 1 else { throw FunnelError("num_iterations must be at least 1") }
        try parameters.validate()
        var params = parameters
        params["objective"] = params["objective"] ?? "binary"
        params["metric"] = "binary_logloss"
        let start = Date()
        var trainSet = try LightGBMDataset(train, labels: trainLabels, parameters: params)
        // Data-parallel LightGBM over the job's ranks: the bins come from every row (built above,
        // before the network exists, so LightGBM bins locally — the same bins one machine
        // finds); each rank then boosts on its rows (i mod N) with LightGBM's data-parallel tree
        // learner, whose histograms travel through MPI (`LightGBMNetwork`).
        var network: LightGBMNetwork?
        var allRows: LightGBMDataset?
        if let comm = communicator, comm.size > 1 {
            network = try LightGBMNetwork(comm)
            let learner = params["tree_learner"] ?? "data"
            // LightGBM's C API runs the row-partitioned learners only (feature-parallel is refused there).
            guard learner == "data" || learner == "voting" else {
                throw FunnelError("lightgbm.tree_learner '\(learner)' does not run over mpirun; use data (default) or voting")
            }
            params["tree_learner"] = learner
            params["num_machines"] = String(comm.size)
            params["pre_partition"] = "true"
            let mine = (0..<train.rows).filter { $0 % comm.size == comm.rank }
            allRows = trainSet
            trainSet = try LightGBMDataset(train.subset(mine), labels: mine.map { trainLabels[$0] }, parameters: params, reference: allRows)
        }
        defer { _ = network; _ = allRows }  // both outlive the boosting below
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

/// LightGBM's network set to the job's ranks for the lifetime of the object
/// (`LGBM_NetworkInitWithFunctions` with MPI reduce-scatter and all-gather from the CMPI shim).
/// LightGBM keeps it per thread: boosting must run on the thread that made it.
final class LightGBMNetwork {
    let library: LightGBMLibrary

    init(_ comm: Communicator) throws {
        library = try LightGBMLibrary.shared()
        try library.check(library.networkInitWithFunctions(Int32(comm.size), Int32(comm.rank), funnel_lgbm_reduce_scatter_function(),
                                                           funnel_lgbm_allgather_function()), "network initialisation")
    }

    deinit { _ = library.networkFree() }
}
