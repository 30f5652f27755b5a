import Foundation

/// What `funnel gbdt train` asks for.
public struct GBDTTrainingRequest: Sendable {
    public var train: String
    /// Without one, the train file is split by day (the config's temporal split).
    public var valid: String?
    public var out: String
    public var config = GBDTConfig()
    /// LightGBM threads (nil: the config's, else all cores).
    public var threads: Int?
    public var layout = TableLayoutPreset.auto
    public var read = ReadOptions()
    /// Write through a symbolic link or over a non-regular file at the output.
    public var force = false
    /// The ranks of a data-parallel job (`mpirun -np N funnel gbdt train`): each rank reads a
    /// contiguous run of the files' rows; the feature pipeline's statistics are aggregated over
    /// the ranks (so each computes exactly one machine's features for its rows); LightGBM boosts
    /// data-parallel over the ranks' rows; calibration and the validation report use every
    /// validation row; rank 0 alone writes the model directory.
    public var communicator = Communicator.single

    public init(train: String, out: String) {
        self.train = train
        self.out = out
    }
}

/// `funnel gbdt train`, `predict` and `eval` as library calls.
public enum GBDTJobs {
    /// Reads the training (and validation) rows, trains the two-stage model, saves the model
    /// directory; `note` receives what was read, `progress` each boosting iteration.
    public static func train(_ r: GBDTTrainingRequest, note: (String) -> Void = { _ in },
                             progress: ((BoostingProgress) -> Void)? = nil) throws -> TwoStageGBDT {
        _ = try LightGBMLibrary.shared()  // a missing library fails before any data is read
        try OutputPath.checkDirectory(r.out, force: r.force)
        let threads = r.threads ?? r.config.threads ?? ProcessInfo.processInfo.activeProcessorCount
        guard (1...1024).contains(threads) else { throw FunnelError("LightGBM threads must be between 1 and 1024") }
        let loadStart = Date()
        let comm = r.communicator
        try comm.checkSameInputs([r.train] + [r.valid].compactMap { $0 })
        let (full, settings) = try GBDTData.readTraining(r.train, preset: r.layout, options: r.read, ranks: comm)
        var notes = full.report.notes
        let trainTable: RawTable, validTable: RawTable
        if let valid = r.valid {
            trainTable = full
            validTable = try GBDTData.read(valid, layout: full.layout, settings: settings, requireLabels: true,
                                           skipBadRows: r.read.skipBadRows, ranks: comm)
            notes += validTable.report.notes
        } else {
            (trainTable, validTable) = try GBDTData.split(full, by: r.config.split, ranks: comm)
        }
        // Same command, same files: refused at start otherwise (the data rows are each file's, not a rank's share).
        try comm.checkSame([r.config, full.layout, full.report.dataLines, validTable.report.dataLines],
                           what: "GBDT configuration, columns and files")
        let trainRows = try RowPartition.gather(localRows: trainTable.rowCount, comm).total
        let validRows = try RowPartition.gather(localRows: validTable.rowCount, comm).total
        if r.valid == nil {
            let split = r.config.split
            notes.append("\(r.train): days \(split.trainDays[0])-\(split.trainDays[1]) train (\(trainRows) rows), "
                         + "day \(split.validDay) validates (\(validRows) rows)")
        }
        for n in notes { note(n) }
        note("read \(trainRows) training and \(validRows) validation rows (\(settings.preset.rawValue) layout) "
             + String(format: "in %.1fs", Date().timeIntervalSince(loadStart))
             + (comm.isDistributed ? ", \(comm.size) ranks each reading a contiguous run" : ""))
        let model = try TwoStageGBDT.train(train: trainTable, valid: validTable, config: r.config, read: settings,
                                           threads: threads, notes: notes, communicator: comm, progress: progress)
        if comm.isRoot { try model.save(to: r.out, force: r.force) }
        return model
    }

    /// Reads `path` as the model's training layout, optionally keeping only the rows of `day`.
    public static func rows(_ model: TwoStageGBDT, path: String, day: Int?, requireLabels: Bool, skipBadRows: Bool) throws -> RawTable {
        let table = try model.read(path, requireLabels: requireLabels, skipBadRows: skipBadRows)
        guard let day else { return table }
        guard !table.days.isEmpty else { throw DataError(file: path, "keeping one day needs a day column") }
        let kept = table.filter { $0 == day }
        guard kept.rowCount > 0 else { throw DataError(file: path, "no rows on day \(day)") }
        return kept
    }

    /// Predicts every row of `data` (or of one day) and writes `p_install` (the calibrated
    /// ensemble) and its parts, in input order, atomically.
    public static func predict(model path: String, data: String, out: String, day: Int?, threads: Int,
                               skipBadRows: Bool, force: Bool = false) throws -> PredictionOutcome {
        if out != "-" { try OutputPath.checkFile(out, force: force) }
        let m = try TwoStageGBDT.load(from: path)
        let table = try rows(m, path: data, day: day, requireLabels: false, skipBadRows: skipBadRows)
        let start = Date()
        let p = try m.predict(table, threads: threads)
        let seconds = Date().timeIntervalSince(start)
        var w = CSVWriter()
        w.append("p_install,p_like,p_install_given_like,p_two_step,p_end_to_end\n")
        for i in 0..<p.rows {
            for (k, v) in [p.ensemble[i], p.like[i], p.installGivenLike[i], p.twoStep[i], p.endToEnd[i]].enumerated() {
                if k > 0 { w.comma() }
                w.append(String(v))
            }
            w.newline()
        }
        if out == "-" { try StandardStreams.write(w.data) } else { try AtomicFile.write(w.data, to: out, force: force) }
        return PredictionOutcome(rows: p.rows, seconds: seconds, skippedRows: table.report.skippedTotal, notes: table.report.notes)
    }

    /// The paper's Table 5 on a labelled file, or on one day of it (`testDay`: the model's own
    /// test day from its configuration).
    public static func evaluate(model path: String, data: String, day: Int?, testDay: Bool, threads: Int,
                                skipBadRows: Bool, note: (String) -> Void = { _ in }) throws -> (GBDTEvaluation, day: Int?) {
        guard !(testDay && day != nil) else { throw FunnelError("give one day to keep, or the model's test day, not both") }
        let m = try TwoStageGBDT.load(from: path)
        let only = testDay ? m.manifest.config.split.testDay : day
        let table = try rows(m, path: data, day: only, requireLabels: true, skipBadRows: skipBadRows)
        for n in table.report.notes { note(n) }
        return (GBDTEvaluation.evaluate(try m.predict(table, threads: threads), on: table), only)
    }
}
