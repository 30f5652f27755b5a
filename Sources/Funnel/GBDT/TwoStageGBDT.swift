import Foundation

/// The predictions of every row of paper Table 5 for a set of rows.
public struct GBDTPredictions: Sendable {
    public var like: [Double]
    public var installGivenLike: [Double]
    /// Eq. 9: P(like) · P(install | like).
    public var twoStep: [Double]
    public var endToEnd: [Double]
    public var twoStepCalibrated: [Double]
    public var endToEndCalibrated: [Double]
    /// The weighted ensemble of the two calibrated predictions: Funnel's `p_install`.
    public var ensemble: [Double]

    public var rows: Int { ensemble.count }

    /// (name, predictions) in Table 5's order.
    public var table5: [(String, [Double])] {
        [("two-step", twoStep), ("end-to-end", endToEnd), ("two-step calibrated", twoStepCalibrated),
         ("end-to-end calibrated", endToEndCalibrated), ("ensemble", ensemble)]
    }
}

/// One row of the Table 5 report: a model's log loss and AUC of is_installed.
public struct GBDTEvaluationRow: Codable, Sendable {
    public var model: String
    public var logLoss: Double?
    public var auc: Double?
    public var meanPrediction: Double

    enum CodingKeys: String, CodingKey { case model, logLoss = "logloss", auc, meanPrediction = "mean_prediction" }
}

/// Table 5 on a labelled set of rows: every model's is_installed log loss and AUC (all rows), plus
/// the like model's AUC on is_like.
public struct GBDTEvaluation: Codable, Sendable {
    /// The conversion label column (`is_installed` in the RecSys layout).
    public var target: String
    public var rows: Int
    public var installs: Int
    public var installRate: Double
    public var likeAUC: Double?
    public var models: [GBDTEvaluationRow]

    enum CodingKeys: String, CodingKey { case target, rows, installs, installRate = "install_rate", likeAUC = "auc_like", models }

    public static func evaluate(_ p: GBDTPredictions, on table: RawTable) -> GBDTEvaluation {
        evaluate(p, install: table.conversion, like: FunnelTarget.like.values(of: table), target: table.layout.conversionColumn)
    }

    /// Table 5 from the labels themselves (`install`: the conversion label; `like`: is_like).
    public static func evaluate(_ p: GBDTPredictions, install: [Float], like: [Float], target: String) -> GBDTEvaluation {
        let installs = Int(install.reduce(0, +))
        let rows = p.table5.map { name, values -> GBDTEvaluationRow in
            let f = values.map { Float($0) }
            return GBDTEvaluationRow(model: name, logLoss: Metrics.logLoss(predictions: f, labels: install),
                                     auc: Metrics.auc(scores: f, labels: install),
                                     meanPrediction: values.reduce(0, +) / Double(max(values.count, 1)))
        }
        return GBDTEvaluation(target: target, rows: install.count, installs: installs,
                              installRate: Double(installs) / Double(max(install.count, 1)),
                              likeAUC: Metrics.auc(scores: p.like.map { Float($0) }, labels: like), models: rows)
    }
}

/// One search trial of one model.
public struct SearchTrial: Codable, Sendable {
    public var trial: Int
    public var parameters: String
    public var bestIteration: Int
    public var validLogLoss: Double?

    enum CodingKeys: String, CodingKey { case trial, parameters, bestIteration = "best_iteration", validLogLoss = "valid_logloss" }
}

/// What training one of the three LightGBM models left.
public struct GBDTComponent: Codable, Sendable {
    public var role: GBDTModelRole
    public var file: String
    public var checksum: String
    public var trainRows: Int
    public var trainPositives: Int
    public var validRows: Int
    public var parameters: String
    public var bestIteration: Int
    public var iterations: Int
    public var bestValidLogLoss: Double?
    public var stoppedEarly: Bool
    public var seconds: Double
    public var searchTrials: [SearchTrial]
    /// The ten features with the highest split gain.
    public var topFeatures: [String]

    enum CodingKeys: String, CodingKey {
        case role, file, checksum, parameters, iterations, seconds
        case trainRows = "train_rows", trainPositives = "train_positives", validRows = "valid_rows"
        case bestIteration = "best_iteration", bestValidLogLoss = "best_valid_logloss", stoppedEarly = "stopped_early"
        case searchTrials = "search_trials", topFeatures = "top_features"
    }
}

/// Calibration factors ω = p_real / p_pred measured on the validation rows (paper §4.2).
public struct GBDTCalibration: Codable, Equatable, Sendable {
    public var twoStep: Double
    public var endToEnd: Double

    enum CodingKeys: String, CodingKey { case twoStep = "two_step", endToEnd = "end_to_end" }

    /// p' = p / (p + (1 − p)/ω): multiplies the odds by ω.
    public static func apply(_ p: Double, omega: Double) -> Double {
        let denominator = p + (1 - p) / omega
        return denominator > 0 ? p / denominator : 0
    }

    /// ω = mean label / mean prediction (1 when undefined).
    public static func factor(predictions: [Double], labels: [Float]) -> Double {
        let mp = predictions.reduce(0, +) / Double(max(predictions.count, 1))
        let ml = labels.reduce(0.0) { $0 + Double($1) } / Double(max(labels.count, 1))
        return mp > 0 && ml > 0 ? ml / mp : 1
    }
}

/// `model.json` of a GBDT model directory.
public struct GBDTManifest: Codable, Sendable {
    public static let formatName = "funnel-gbdt"
    public static let currentVersion = 1

    public var format = formatName
    public var formatVersion = currentVersion
    public var config: GBDTConfig
    public var read: GBDTReadSettings
    public var featuresFile = "features.json"
    public var featuresChecksum = ""
    public var calibration: GBDTCalibration
    public var components: [GBDTComponent]
    /// Table 5 on the validation rows.
    public var validation: GBDTEvaluation
    public var trainRows: Int
    public var validRows: Int
    public var seconds: Double
    public var readNotes: [String]
    /// Order-sensitive checksums of the training and validation feature matrices (one machine's
    /// rows in order; the same for any number of ranks): proof that a data-parallel job computed
    /// one machine's features. Absent in models trained before they existed.
    public var trainFeaturesChecksum: String?
    public var validFeaturesChecksum: String?

    enum CodingKeys: String, CodingKey {
        case trainFeaturesChecksum = "train_features_checksum", validFeaturesChecksum = "valid_features_checksum"
        case format, config, read, calibration, components, validation, seconds
        case formatVersion = "format_version", featuresFile = "features_file", featuresChecksum = "features_checksum"
        case trainRows = "train_rows", validRows = "valid_rows", readNotes = "read_notes"
    }
}

/// The paper's whole pipeline: fitted features, the two-step and end-to-end LightGBM models,
/// calibration and ensemble.
public final class TwoStageGBDT: @unchecked Sendable {
    public private(set) var manifest: GBDTManifest
    public let pipeline: TabularFeaturePipeline
    let boosters: [GBDTModelRole: LightGBMBooster]
    let modelTexts: [GBDTModelRole: String]

    init(manifest: GBDTManifest, pipeline: TabularFeaturePipeline, boosters: [GBDTModelRole: LightGBMBooster],
         modelTexts: [GBDTModelRole: String]) {
        self.manifest = manifest
        self.pipeline = pipeline
        self.boosters = boosters
        self.modelTexts = modelTexts
    }

    /// Fits features on `train`, trains the three models with early stopping on `valid`, measures
    /// calibration on `valid`.
    ///
    /// With a communicator (several ranks), `train` and `valid` are this rank's contiguous runs of
    /// one machine's tables: feature statistics are aggregated over the ranks, LightGBM boosts
    /// data-parallel, and calibration and the validation report use every rank's validation rows
    /// (gathered), so every rank returns one machine's model.
    public static func train(train: RawTable, valid: RawTable, config: GBDTConfig, read: GBDTReadSettings,
                             threads: Int, notes: [String] = [], communicator comm: Communicator = .single,
                             progress: ((BoostingProgress) -> Void)? = nil) throws -> TwoStageGBDT {
        try config.validate()
        let trainPartition = try RowPartition.gather(localRows: train.rowCount, comm)
        let validPartition = try RowPartition.gather(localRows: valid.rowCount, comm)
        guard valid.hasLabels, validPartition.total > 0 else {
            throw DataError(file: valid.report.file, "validation rows need both labels (early stopping and calibration use them)")
        }
        let start = Date()
        let (pipeline, trainX) = try TabularFeaturePipeline.fit(train, config: config.features, seed: config.seed,
                                                                communicator: comm, partition: trainPartition)
        let validX = try pipeline.transform(valid)
        let trainLike = FunnelTarget.like.values(of: train), validLike = FunnelTarget.like.values(of: valid)
        var boosters: [GBDTModelRole: LightGBMBooster] = [:]
        var texts: [GBDTModelRole: String] = [:]
        var components: [GBDTComponent] = []
        let inputs = RoleInputs(trainX: trainX, validX: validX, train: train, valid: valid, trainLike: trainLike, validLike: validLike)
        for role in GBDTModelRole.allCases {
            let (booster, text, component) = try trainRole(role, inputs, config: config, threads: threads, comm: comm, progress: progress)
            boosters[role] = booster
            texts[role] = text
            components.append(component)
        }
        var manifest = GBDTManifest(
            config: config, read: read, calibration: GBDTCalibration(twoStep: 1, endToEnd: 1), components: components,
            validation: GBDTEvaluation(target: train.layout.conversionColumn, rows: 0, installs: 0, installRate: 0, likeAUC: nil, models: []),
            trainRows: trainPartition.total, validRows: validPartition.total, seconds: 0, readNotes: notes)
        manifest.trainFeaturesChecksum = try FeatureMatrix.checksum(of: trainX, partition: trainPartition, comm)
        manifest.validFeaturesChecksum = try FeatureMatrix.checksum(of: validX, partition: validPartition, comm)
        let model = TwoStageGBDT(manifest: manifest, pipeline: pipeline, boosters: boosters, modelTexts: texts)
        try model.calibrate(on: validX, valid: valid, validLike: validLike, threads: threads, comm: comm)
        model.manifest.seconds = Date().timeIntervalSince(start)
        return model
    }

    /// What every role's training draws on: the feature matrices, the tables (labels) and is_like.
    struct RoleInputs {
        var trainX: FeatureMatrix, validX: FeatureMatrix
        var train: RawTable, valid: RawTable
        var trainLike: [Float], validLike: [Float]

        /// The role's rows: every row, or the liked rows for P(install | like).
        func rows(for role: GBDTModelRole) -> (tx: FeatureMatrix, ty: [Float], vx: FeatureMatrix, vy: [Float]) {
            let ty = role.target.values(of: train), vy = role.target.values(of: valid)
            guard role == .installGivenLike else { return (trainX, ty, validX, vy) }
            let tr = trainLike.indices.filter { trainLike[$0] == 1 }, vr = validLike.indices.filter { validLike[$0] == 1 }
            return (trainX.subset(tr), tr.map { ty[$0] }, validX.subset(vr), vr.map { vy[$0] })
        }
    }

    /// One role's model: its rows checked (not constant; liked rows present), spread over the
    /// ranks, the configured trial and the search's trials boosted, the best kept.
    static func trainRole(_ role: GBDTModelRole, _ inputs: RoleInputs, config: GBDTConfig, threads: Int, comm: Communicator,
                          progress: ((BoostingProgress) -> Void)?) throws -> (LightGBMBooster, String, GBDTComponent) {
        var (tx, ty, vx, vy) = inputs.rows(for: role)
        let part = try RowPartition.gather(localRows: ty.count, comm)
        let validRows = try RowPartition.gather(localRows: vy.count, comm).total
        let positives = try comm.allgather([Int64(ty.reduce(0, +))]).reduce(0) { $0 + Int($1[0]) }
        if role == .installGivenLike {
            guard part.total > 0, validRows > 0 else {
                throw DataError(file: inputs.train.report.file, "no liked rows (is_clicked or is_installed) to train P(install | like) on")
            }
        }
        guard positives > 0, positives < part.total else {
            throw DataError(file: inputs.train.report.file, "\(role.target.rawValue) is constant on the \(role.rawValue) model's training rows")
        }
        let ranks: BoostingRanks?
        (tx, ty, ranks) = try BoostingRanks.spread(tx, labels: ty, partition: part, model: role.rawValue, comm)
        var trials: [SearchTrial] = []
        var best: (LightGBMBooster, BoostingResult, LightGBMParameters)?
        let trialCount = max(1, config.search.trials + (config.search.trials > 0 ? 1 : 0))
        for t in 0..<trialCount {
            // Trial 0 is the configured parameters; trials 1… draw from the search space.
            let extra = t == 0 ? LightGBMParameters() : config.search.draw(seed: config.seed, role: role, trial: t)
            let params = config.parameters(for: role, threads: threads, extra: extra)
            let name = trialCount > 1 ? "\(role.rawValue) trial \(t)/\(trialCount - 1)" : role.rawValue
            let (booster, result) = try BoostingRun.train(model: name, train: tx, trainLabels: ty, valid: vx, validLabels: vy,
                                                          parameters: params, iterations: config.numIterations,
                                                          earlyStoppingRounds: config.earlyStoppingRounds, ranks: ranks, progress: progress)
            trials.append(SearchTrial(trial: t, parameters: params.string, bestIteration: result.bestIteration, validLogLoss: result.bestValidLoss))
            if best == nil || (result.bestValidLoss ?? .infinity) < (best!.1.bestValidLoss ?? .infinity) { best = (booster, result, params) }
        }
        let (booster, result, params) = best!
        let gains = try booster.gainImportance()
        let top = gains.indices.sorted { gains[$0] != gains[$1] ? gains[$0] > gains[$1] : $0 < $1 }.prefix(10)
            .filter { gains[$0] > 0 }.map { inputs.trainX.names[$0] }
        let component = GBDTComponent(
            role: role, file: role.file, checksum: Checksum.fnv64Hex(Data(result.modelText.utf8)), trainRows: part.total,
            trainPositives: positives, validRows: validRows, parameters: params.string, bestIteration: result.bestIteration,
            iterations: result.iterations, bestValidLogLoss: result.bestValidLoss, stoppedEarly: result.stoppedEarly,
            seconds: result.seconds, searchTrials: trialCount > 1 ? trials : [], topFeatures: top)
        return (booster, result.modelText, component)
    }

    /// Calibration on the validation day, then the validation report with it applied — over every
    /// rank's validation rows, gathered in one machine's order.
    func calibrate(on validX: FeatureMatrix, valid: RawTable, validLike: [Float], threads: Int, comm: Communicator) throws {
        var raw = try predict(matrix: validX, threads: threads)
        raw.like = try comm.allgather(values: raw.like).flatMap { $0 }
        raw.installGivenLike = try comm.allgather(values: raw.installGivenLike).flatMap { $0 }
        raw.endToEnd = try comm.allgather(values: raw.endToEnd).flatMap { $0 }
        raw.twoStep = zip(raw.like, raw.installGivenLike).map { $0 * $1 }  // as `predict` computes it
        let validInstall = try comm.allgather(values: valid.conversion).flatMap { $0 }
        let validLikeAll = try comm.allgather(values: validLike).flatMap { $0 }
        manifest.calibration = GBDTCalibration(
            twoStep: GBDTCalibration.factor(predictions: raw.twoStep, labels: validInstall),
            endToEnd: GBDTCalibration.factor(predictions: raw.endToEnd, labels: validInstall))
        // Same model outputs, now with the measured calibration: no second pass through the trees.
        let calibrated = combine(like: raw.like, given: raw.installGivenLike, e2e: raw.endToEnd)
        manifest.validation = GBDTEvaluation.evaluate(calibrated, install: validInstall, like: validLikeAll, target: valid.layout.conversionColumn)
    }

    /// Every Table 5 prediction for the rows of `table`.
    public func predict(_ table: RawTable, threads: Int? = nil) throws -> GBDTPredictions {
        try predict(matrix: try pipeline.transform(table), threads: threads)
    }

    func predict(matrix x: FeatureMatrix, threads: Int?) throws -> GBDTPredictions {
        combine(like: try boosters[.like]!.predict(x, threads: threads),
                    given: try boosters[.installGivenLike]!.predict(x, threads: threads),
                    e2e: try boosters[.install]!.predict(x, threads: threads))
    }

    /// The three models' outputs → Eq. 9's product, the calibrated predictions and the ensemble.
    private func combine(like: [Double], given: [Double], e2e: [Double]) -> GBDTPredictions {
        let two = zip(like, given).map { $0 * $1 }
        let c = manifest.calibration
        let twoCal = two.map { GBDTCalibration.apply($0, omega: c.twoStep) }
        let e2eCal = e2e.map { GBDTCalibration.apply($0, omega: c.endToEnd) }
        let w = manifest.config.ensemble
        let a = w.twoStep / (w.twoStep + w.endToEnd), b = 1 - a
        let ensemble = zip(twoCal, e2eCal).map { a * $0 + b * $1 }
        return GBDTPredictions(like: like, installGivenLike: given, twoStep: two, endToEnd: e2e,
                               twoStepCalibrated: twoCal, endToEndCalibrated: e2eCal, ensemble: ensemble)
    }

    /// Reads a later file the way the training file was read.
    public func read(_ path: String, requireLabels: Bool, skipBadRows: Bool = false) throws -> RawTable {
        try GBDTData.read(path, layout: pipeline.layout, settings: manifest.read, requireLabels: requireLabels, skipBadRows: skipBadRows)
    }
}
