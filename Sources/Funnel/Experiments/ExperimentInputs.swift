import Foundation

/// The files and split of an experiment: a train file and a test file, or one day-stamped file
/// split into training days, a test day and later decay days (esmm-ablation: past vs. future).
public struct ExperimentInputs: Sendable {
    public var train: String
    public var test: String?
    /// The simulator's truth file aligned with the test file (with days: with the train file).
    public var truth: String?
    public var trainDays: ClosedRange<Int>?
    /// Default: the day after the training days.
    public var testDay: Int?
    /// Offsets after the last training day to also evaluate on.
    public var decayDays: ClosedRange<Int>?
    public var dayColumn = "day"
    public var minCount = 1
    public var read = ReadOptions()
    /// A column of the test rows' file grouping them (a user, a request): adds the group AUCs.
    public var groupColumn: String?
    /// Runs share requests where the rows carry them (`ExperimentData.requestSharing`); a raw
    /// cache's request-only lists are then read once per request.
    public var requestSharing = true

    /// `read` as sharing reads a raw cache.
    private var reading: ReadOptions {
        var options = read
        options.requestLevel = requestSharing
        return options
    }

    public init(train: String) { self.train = train }

    /// What `load` read, with notes for the user and a name for the test rows.
    public struct Loaded {
        public var data: ExperimentData
        public var notes: [String]
        public var testName: String
    }

    /// Reads and encodes the rows: the schema is fitted on the training rows only.
    public func load() throws -> Loaded {
        if let trainDays { return try loadByDay(trainDays) }
        guard let test else { throw FunnelError("an experiment needs a test file, or training days to split the train file by") }
        guard testDay == nil, decayDays == nil else { throw FunnelError("a test day and decay days need training days") }
        let (schema, trainData, report) = try DatasetLoader.loadForTraining(train, options: reading, minCount: minCount)
        let (testData, testReport) = try DatasetLoader.load(test, schema: schema, options: reading, requireLabels: true)
        let truthColumn = try truth.map { try DatasetLoader.loadCounterfactual($0, for: nil, dataLines: testReport.dataLines) }
        var data = ExperimentData(schema: schema, train: trainData, test: testData, truth: truthColumn)
        data.requestSharing = requestSharing
        data.groups = try groupColumn.map { try GroupColumn(test, column: $0, options: read, layout: schema.layout) }
        return Loaded(data: data, notes: report.notes + testReport.notes, testName: test)
    }

    private func loadByDay(_ range: ClosedRange<Int>) throws -> Loaded {
        guard test == nil else { throw FunnelError("training days split the train file; a separate test file does not combine with them") }
        let day = testDay ?? range.upperBound + 1
        let decayOffsets = decayDays.map(Array.init) ?? []
        var options = reading
        options.dayColumn = dayColumn
        let loaded = try DatasetLoader.loadByDay(train, options: options, minCount: minCount, trainDays: range,
                                                 evaluationDays: [day] + decayOffsets.map { range.upperBound + $0 })
        let truthColumn = try truth.map { try DatasetLoader.loadCounterfactual($0, for: nil, dataLines: loaded.report.dataLines) }
        let decay = decayOffsets.map { o in (range.upperBound + o, loaded.days[range.upperBound + o]!) }
        var data = ExperimentData(schema: loaded.schema, train: loaded.train, test: loaded.days[day]!, truth: truthColumn, decay: decay)
        data.requestSharing = requestSharing
        data.groups = try groupColumn.map { try GroupColumn(train, column: $0, options: options, layout: loaded.schema.layout) }
        return Loaded(data: data, notes: loaded.report.notes, testName: "\(train) day \(day)")
    }

    /// Rows to tune on, never the test rows: with training days, the days before `validDays`
    /// train and `validDays` (the last training days) validate; otherwise the train file trains
    /// and `validFile` validates.
    public func tuningData(validDays: ClosedRange<Int>?, validFile: String?) throws -> Tuner.Data {
        if let days = trainDays {
            guard let v = validDays else { throw FunnelError("tuning with training days needs validation days among them") }
            guard v.upperBound == days.upperBound, v.lowerBound > days.lowerBound else {
                throw FunnelError("validation days \(v.lowerBound)-\(v.upperBound) must be the last training days, after at least one day to tune on")
            }
            var options = reading
            options.dayColumn = dayColumn
            let loaded = try DatasetLoader.loadByDay(train, options: options, minCount: minCount,
                                                     trainDays: days.lowerBound...(v.lowerBound - 1), evaluationDays: Array(v))
            return Tuner.Data(schema: loaded.schema, train: loaded.train, valid: EncodedDataset.concatenated(v.map { loaded.days[$0]! }))
        }
        guard let validFile else { throw FunnelError("tuning needs a validation file (or training days with validation days)") }
        let (schema, trainRows, _) = try DatasetLoader.loadForTraining(train, options: reading, minCount: minCount)
        let (valid, _) = try DatasetLoader.load(validFile, schema: schema, options: reading, requireLabels: true)
        return Tuner.Data(schema: schema, train: trainRows, valid: valid)
    }

    /// What identifies the experiment's data and protocol in a resumable output directory.
    /// `sharing`: the runs share requests (their batches hold whole requests, so they differ from
    /// the per-row runs of an earlier experiment on the same files).
    public func fingerprint(protocol ctcvr: CTCVRProtocol, seed: UInt64, sharing: Bool = false) -> String {
        func days(_ r: ClosedRange<Int>?) -> String { r.map { $0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" } ?? "" }
        // The group column joins the fingerprint only when given (directories of earlier experiments still resume).
        return "\(train)|\(test ?? "")|\(truth ?? "")|\(days(trainDays))|\(testDay ?? 0)|\(days(decayDays))|\(ctcvr.rawValue)|\(minCount)|\(seed)"
            + (groupColumn.map { "|groups:\($0)" } ?? "") + (sharing ? "|requests:shared" : "")
    }

    /// Claims `directory` for this experiment: creates it, and refuses one that holds runs of a
    /// different experiment (other files, days or protocol).
    public func claim(_ directory: String, protocol ctcvr: CTCVRProtocol, seed: UInt64, sharing: Bool = false) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let fingerprint = fingerprint(protocol: ctcvr, seed: seed, sharing: sharing)
        let path = directory + "/experiment.fingerprint"
        if let old = FileManager.default.contents(atPath: path).map({ String(decoding: $0, as: UTF8.self) }), old != fingerprint {
            throw FunnelError("\(directory) holds runs of a different experiment (other files, days, protocol or request sharing); use another output directory")
        }
        try AtomicFile.write(Data(fingerprint.utf8), to: path)
    }
}
