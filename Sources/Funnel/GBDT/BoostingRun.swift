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
    /// With `ranks` (a data-parallel job), `train` holds this rank's rows — positions
    /// `ranks.partition.positions` of one machine's training table, each rank starting on a multiple
    /// of 1,024 rows (`RowPartition.balanced`) — and `valid` this rank's validation rows (any share,
    /// possibly none); every rank receives the same model.
    public static func train(model name: String, train: FeatureMatrix, trainLabels: [Float],
                             valid: FeatureMatrix?, validLabels: [Float]?,
                             parameters: LightGBMParameters, iterations: Int, earlyStoppingRounds: Int,
                             ranks: BoostingRanks? = nil,
                             progress: ((BoostingProgress) -> Void)? = nil) throws -> (booster: LightGBMBooster, result: BoostingResult) {
        guard iterations >= 1 else { throw FunnelError("num_iterations must be at least 1") }
        try parameters.validate()
        var params = parameters
        params["objective"] = params["objective"] ?? "binary"
        params["metric"] = "binary_logloss"
        let start = Date()
        let (trainSet, network) = try trainingSet(train, labels: trainLabels, parameters: &params, ranks: ranks)
        defer { _ = network }  // outlives the boosting below
        let booster = try LightGBMBooster(train: trainSet, parameters: params)
        var localValid = false
        if let valid, let validLabels, valid.rows > 0 {
            try booster.addValidation(try LightGBMDataset(valid, labels: validLabels, parameters: params, reference: trainSet))
            localValid = true
        }
        let hasValid = try ranks.map { try $0.communicator.maximum(localValid ? 1 : 0) == 1 } ?? localValid  // any rank's
        var history: [Double] = []
        var best = 0
        var bestLoss: Double?
        var stoppedEarly = false
        for it in 1...iterations {
            let finished = try booster.updateOneIteration()
            var loss: Double?
            if hasValid {
                loss = try validLoss(booster, localRows: localValid ? valid!.rows : 0, ranks: ranks)
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

    /// The training set, and LightGBM's network when the run is data-parallel: the bins come from
    /// one machine's bin sample (gathered from the ranks holding its rows; found before the
    /// network exists, so LightGBM bins locally — the same bins on every rank and on one
    /// machine); each rank then boosts on its rows with LightGBM's data-parallel tree learner,
    /// whose histograms travel through the transport (`LightGBMNetwork`). Bagging: LightGBM draws
    /// each block of 1,024 rows from its own generator seeded `bagging_seed + block`; every rank
    /// starts on a block boundary and is given `bagging_seed + its first block`, so each rank bags
    /// its rows as one machine bags them.
    private static func trainingSet(_ train: FeatureMatrix, labels: [Float], parameters params: inout LightGBMParameters,
                                    ranks: BoostingRanks?) throws -> (LightGBMDataset, LightGBMNetwork?) {
        guard let ranks else { return (try LightGBMDataset(train, labels: labels, parameters: params), nil) }
        let comm = ranks.communicator
        let trainSet = try LightGBMDataset(train, labels: labels, partition: ranks.partition, parameters: params, communicator: comm)
        let network = try LightGBMNetwork(comm)
        let learner = params["tree_learner"] ?? "data"
        // LightGBM's C API runs the row-partitioned learners only (feature-parallel is refused there).
        guard learner == "data" || learner == "voting" else {
            throw FunnelError("lightgbm.tree_learner '\(learner)' does not run over mpirun; use data (default) or voting")
        }
        params["tree_learner"] = learner
        params["num_machines"] = String(comm.size)
        params["pre_partition"] = "true"
        params["bagging_seed"] = String(baggingSeed(params) + ranks.partition.offset / RowPartition.baggingBlock)
        return (trainSet, network)
    }

    /// The validation log loss after the latest iteration: this rank's, or over a data-parallel
    /// job's every validation row (the same on every rank, so all stop at the same iteration).
    private static func validLoss(_ booster: LightGBMBooster, localRows: Int, ranks: BoostingRanks?) throws -> Double? {
        let loss = localRows > 0 ? try booster.evaluate(dataset: 1).first : nil
        guard let ranks else { return loss }
        var sums = [(loss ?? 0) * Double(localRows), Double(localRows)]
        try ranks.communicator.allreduceSum(&sums)
        return sums[1] > 0 ? sums[0] / sums[1] : nil
    }
}

/// The ranks a boosting run is spread over and where this rank's training rows sit.
public struct BoostingRanks {
    public var communicator: Communicator
    public var partition: RowPartition

    /// The training rows spread evenly over the ranks, each rank starting on a bagging block (few
    /// rows move), and the ranks to boost over; one rank keeps its rows and boosts alone (nil).
    static func spread(_ x: FeatureMatrix, labels: [Float], partition part: RowPartition, model: String,
                       _ comm: Communicator) throws -> (FeatureMatrix, [Float], BoostingRanks?) {
        guard comm.isDistributed else { return (x, labels, nil) }
        let balanced = part.balanced(block: RowPartition.baggingBlock)
        guard balanced.counts.allSatisfy({ $0 > 0 }) else {
            throw FunnelError("the \(model) model has \(part.total) training rows: too few for \(comm.size) ranks "
                              + "(each rank takes whole blocks of \(RowPartition.baggingBlock) rows)")
        }
        let (mx, my) = try RowRebalancing.move(x, labels: labels, from: part, to: balanced, comm)
        return (mx, my, BoostingRanks(communicator: comm, partition: balanced))
    }
}

extension BoostingRun {
    /// The `bagging_seed` LightGBM uses for `params`: given explicitly, else derived from `seed`
    /// as LightGBM's `Config::Set` derives it (its LCG: data_random_seed is the first draw,
    /// bagging_seed the second), else LightGBM's default 3.
    static func baggingSeed(_ params: LightGBMParameters) -> Int {
        for alias in ["bagging_seed", "bagging_fraction_seed"] {
            if let v = params[alias], let seed = Int(v) { return seed }
        }
        guard let s = params["seed"], let seed = Int32(s) else { return 3 }
        var x = UInt32(bitPattern: seed)
        func next() -> Int {
            x = x &* 214013 &+ 2531011
            return Int((x >> 16) & 0x7FFF) % 32767
        }
        _ = next()
        return next()
    }
}

/// LightGBM's network set to the job's ranks for the lifetime of the object
/// (`LGBM_NetworkInitWithFunctions` with the transport's reduce-scatter and all-gather: MPI's, from the CMPI shim).
/// LightGBM keeps it per thread: boosting must run on the thread that made it.
final class LightGBMNetwork {
    let library: LightGBMLibrary

    init(_ comm: Communicator) throws {
        library = try LightGBMLibrary.shared()
        guard let functions = comm.transport.lightGBMFunctions else {
            throw FunnelError("LightGBM's data-parallel learner needs MPI ranks (mpirun); this job's ranks cannot carry its collectives")
        }
        try library.check(library.networkInitWithFunctions(Int32(comm.size), Int32(comm.rank), functions.reduceScatter,
                                                           functions.allgather), "network initialisation")
    }

    deinit { _ = library.networkFree() }
}
