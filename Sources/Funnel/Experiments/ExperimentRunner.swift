import Foundation

/// How a model's pCTCVR is formed for the CTCVR metrics.
public enum CTCVRProtocol: String, Codable, CaseIterable, Sendable {
    /// Each model's own pCTCVR.
    case own
    /// esmm-sigir2018 §3.1: pCTCVR = pCTR of one independently trained CTR network (per run)
    /// × the model's pCVR; models without a pCVR (ESP) keep their own pCTCVR.
    case sharedCTR = "shared-ctr"
}

/// Curves kept per run for the report.
public struct RunCurves: Codable, Sendable {
    public var rocCTCVR: [[Double]]
    public var reliabilityCTR: [Metrics.ReliabilityBin]
    public var reliabilityCVR: [Metrics.ReliabilityBin]
    public var reliabilityCTCVR: [Metrics.ReliabilityBin]
}

/// One trained-and-evaluated model.
public struct RunResult: Codable, Sendable {
    public var model: String
    public var run: Int
    public var seed: UInt64
    /// The configuration the run trained with; a resumed experiment reuses the run only if it matches.
    public var config: ModelConfig?
    public var trainSeconds: Double
    public var trainSamplesPerSecond: Double
    public var report: EvaluationReport
    /// The same model evaluated on later days (`--decay-days`), keyed by day.
    public var decay: [String: EvaluationReport]?
    public var curves: RunCurves
}

/// What an experiment trains and how it evaluates.
public struct ExperimentPlan: Sendable {
    public var models: [ModelKind]
    public var runs: Int
    public var baseSeed: UInt64
    public var ctcvrProtocol: CTCVRProtocol
    /// Concurrent runs; each trains single-threaded, so runs (not batches) use the cores.
    public var concurrency: Int
    /// The configuration of one model at one seed.
    public var config: @Sendable (ModelKind, UInt64) -> ModelConfig

    public init(models: [ModelKind], runs: Int, baseSeed: UInt64, ctcvrProtocol: CTCVRProtocol, concurrency: Int,
                config: @escaping @Sendable (ModelKind, UInt64) -> ModelConfig) {
        self.models = models; self.runs = runs; self.baseSeed = baseSeed
        self.ctcvrProtocol = ctcvrProtocol; self.concurrency = concurrency; self.config = config
    }

    func seed(run: Int) -> UInt64 { baseSeed &+ UInt64(run) }
}

/// Data an experiment runs on, already encoded with the training schema.
public struct ExperimentData: @unchecked Sendable {
    public var schema: FeatureSchema
    public var train: EncodedDataset
    public var test: EncodedDataset
    /// The simulator's counterfactual conversions in *file* order; rows find theirs through
    /// `EncodedDataset.sourceRows`, so subsets and day splits stay aligned.
    public var truth: [Float]?
    /// Later days for decay evaluation.
    public var decay: [(day: Int, data: EncodedDataset)]
    /// The test rows' groups (`--group-column`): adds the group AUCs to every report.
    public var groups: GroupColumn?
    /// Compute a request's shared part once (`FunnelNetwork.training`) where the rows carry
    /// requests: raw Ali-CCP, or `--request-column`.
    public var requestSharing = true
    /// True when runs share requests: asked for, and the training rows carry them.
    public var sharesRequests: Bool { requestSharing && train.requests != nil }

    public init(schema: FeatureSchema, train: EncodedDataset, test: EncodedDataset, truth: [Float]?,
                decay: [(day: Int, data: EncodedDataset)] = []) {
        self.schema = schema; self.train = train; self.test = test
        self.truth = truth; self.decay = decay
    }

    func counterfactual(for d: EncodedDataset) -> [Float]? { truth.map { t in d.sourceRows.map { t[Int($0)] } } }

    /// Every metric of `p` on `d`, with the truth and the groups where the experiment has them.
    func evaluate(_ p: Predictions, on d: EncodedDataset) throws -> EvaluationReport {
        EvaluationReport.evaluate(p, on: d, counterfactual: counterfactual(for: d), groups: try groups?.keys(for: d))
    }
}

/// Trains every model `runs` times, evaluating each on the same test data, several runs at once.
/// With an output directory each finished run is saved (atomically) as it completes, and a
/// restarted experiment loads those instead of training them again.
public final class ExperimentRunner {
    public let plan: ExperimentPlan
    public let data: ExperimentData
    public let directory: String?

    public init(plan: ExperimentPlan, data: ExperimentData, directory: String?) {
        self.plan = plan
        self.data = data
        self.directory = directory
    }

    private var runsDirectory: String? { directory.map { $0 + "/runs" } }

    private func path(model: String, run: Int) -> String? { runsDirectory.map { "\($0)/\(model)-\(run).json" } }

    /// Loads a saved run if it exists; one made with other hyperparameters is an error rather
    /// than a silent mix of two experiments in one table.
    private func saved(_ kind: ModelKind, run: Int) throws -> RunResult? {
        guard let p = path(model: kind.rawValue, run: run), let d = FileManager.default.contents(atPath: p),
              let r = try? JSONDecoder().decode(RunResult.self, from: d) else { return nil }
        let expected = plan.config(kind, plan.seed(run: run))
        guard r.seed == expected.seed, r.config == nil || r.config == expected else {
            throw FunnelError("\(p) was trained with other hyperparameters than this experiment's; use another --out or delete it")
        }
        return r
    }

    /// Runs everything not already saved. `progress` receives one line per finished run.
    public func run(progress: @escaping @Sendable (String) -> Void) throws -> [RunResult] {
        BLAS.setThreads(1)
        // Every model's network must fit, `concurrency` of them at once, before any is built.
        for kind in plan.models {
            let c = plan.config(kind, plan.baseSeed + 1)
            try NetworkSize.check(config: c, embeddingRows: data.schema.embeddingRows, fields: data.schema.fields.count,
                                  denseCount: data.schema.dense.count, maxBatch: c.batchSize, workers: 1,
                                  memoryFraction: 0.8 / Double(max(1, plan.concurrency)))
        }
        if let rd = runsDirectory { try FileManager.default.createDirectory(atPath: rd, withIntermediateDirectories: true) }
        // Runs in order (run, model), which is also the order of the results.
        var runs = try ResumableJobs((1...plan.runs).flatMap { run in plan.models.map { ($0, run) } }) { try saved($0.0, run: $0.1) }
        if let line = runs.resumeLine("run") { progress(line) }
        let sharedCTR = try sharedCTRPredictions(runs: Set(runs.todo.map(\.1)), progress: progress)
        let total = runs.jobs.count, resumed = runs.doneCount, started = Date()
        var done = resumed
        return try runs.run(concurrency: plan.concurrency, savePath: { path(model: $0.0.rawValue, run: $0.1) }, progress: progress) { job in
            try self.runOne(job.0, run: job.1, sharedCTR: sharedCTR[job.1])
        } finished: { job, r in
            done += 1
            let left = total - done
            let eta = Date().timeIntervalSince(started) / Double(done - resumed) * Double(left)
            return String(format: "[%d/%d] %@ run %d: %.1fs, %.0f samples/s; AUC ctr %@ cvr %@ ctcvr %@%@", done, total, job.0.rawValue, job.1,
                          r.trainSeconds, r.trainSamplesPerSecond, EvaluationReport.format(r.report.aucCTR), EvaluationReport.format(r.report.aucCVR),
                          EvaluationReport.format(r.report.aucCTCVR), r.report.aucCVREntireSpace.map { String(format: " cvr-es %.4f", $0) } ?? "")
                + (left > 0 ? "  (ETA \(Int(eta))s)" : "")
        }
    }

    private func network(_ config: ModelConfig) throws -> FunnelNetwork {
        try FunnelNetwork.training(config: config, schema: data.schema, on: data.train, sharing: data.requestSharing)
    }

    private func trainingData(_ config: ModelConfig) -> EncodedDataset {
        data.train.downsamplingNegatives(factor: config.downsampleNegatives, seed: config.seed)
    }

    /// The test rows of one run: downsampled like training (same factor, the run's seed), the same
    /// for every model of the run.
    private func evaluationSet(_ config: ModelConfig) -> EncodedDataset {
        data.test.downsamplingNegatives(factor: config.downsampleNegatives, seed: config.seed &+ 1)
    }

    /// Per run, the pCTR of one independently trained CTR network on every test (and decay) row.
    private func sharedCTRPredictions(runs: Set<Int>, progress: @Sendable (String) -> Void) throws -> [Int: [[Float]]] {
        guard plan.ctcvrProtocol == .sharedCTR, !runs.isEmpty else { return [:] }
        var out: [Int: [[Float]]] = [:]
        let lock = NSLock()
        let list = runs.sorted()
        var failure: Error?
        Parallel.forEach(min(plan.concurrency, list.count)) { w in
            var k = w
            while k < list.count {
                let run = list[k]
                do {
                    let config = self.plan.config(.ip, self.plan.seed(run: run))
                    let net = try self.network(config)
                    _ = try Trainer(config: config).train(net, on: self.trainingData(config), onlyStages: [0])
                    let p = [net.predict(self.evaluationSet(config)).ctr] + self.data.decay.map { net.predict($0.data).ctr }
                    lock.lock(); out[run] = p; lock.unlock()
                    progress("shared CTR network for run \(run) trained")
                } catch {
                    lock.lock(); failure = error; lock.unlock()
                }
                k += self.plan.concurrency
            }
        }
        if let failure { throw failure }
        return out
    }

    private func apply(_ p: inout Predictions, sharedCTR: [Float]?, config: ModelConfig) {
        guard let ctr = sharedCTR else { return }
        for i in 0..<p.ctcvr.count where !p.cvr[i].isNaN { p.ctcvr[i] = ctr[i] * p.cvr[i] }
    }

    private func runOne(_ kind: ModelKind, run: Int, sharedCTR: [[Float]]?) throws -> RunResult {
        let seed = plan.seed(run: run)
        let config = plan.config(kind, seed)
        let net = try network(config)
        let result = try Trainer(config: config).train(net, on: trainingData(config))
        let test = evaluationSet(config)
        var p = net.predict(test)
        apply(&p, sharedCTR: sharedCTR?[0], config: config)
        let report = try data.evaluate(p, on: test)
        var decay: [String: EvaluationReport]?
        if !data.decay.isEmpty {
            decay = [:]
            for (k, d) in data.decay.enumerated() {
                var pd = net.predict(d.data)
                apply(&pd, sharedCTR: sharedCTR?[k + 1], config: config)
                decay![String(d.day)] = try data.evaluate(pd, on: d.data)
            }
        }
        let ctcvrLabels = zip(test.click!, test.conversion!).map { $0 * $1 }
        var clickedP: [Float] = [], clickedY: [Float] = []
        for i in 0..<test.rowCount where test.click![i] == 1 { clickedP.append(p.cvr[i]); clickedY.append(test.conversion![i]) }
        let hasCTR = !p.ctr.contains(where: \.isNaN), hasCVR = !clickedP.contains(where: \.isNaN)
        let curves = RunCurves(
            rocCTCVR: Metrics.rocCurve(scores: p.ctcvr, labels: ctcvrLabels, weights: test.weights),
            reliabilityCTR: hasCTR ? Metrics.reliability(predictions: p.ctr, labels: test.click!, weights: test.weights) : [],
            reliabilityCVR: hasCVR ? Metrics.reliability(predictions: clickedP, labels: clickedY) : [],
            reliabilityCTCVR: Metrics.reliability(predictions: p.ctcvr, labels: ctcvrLabels, weights: test.weights))
        return RunResult(model: kind.rawValue, run: run, seed: seed, config: config, trainSeconds: result.seconds,
                         trainSamplesPerSecond: result.samplesPerSecond, report: report, decay: decay, curves: curves)
    }
}
