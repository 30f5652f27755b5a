/// File → model-ready rows, the one path every command uses, so training and every later
/// read apply the same layout, vocabularies and normalisation.
public enum DatasetLoader {
    /// Reads a training file: infers the layout, fits the schema, encodes. With a communicator
    /// (a data-parallel job), this rank reads and encodes its shard of the rows, the schema is
    /// fitted on the ranks' merged counts and moments, and the report covers the whole file.
    /// `growing`: continue a model — its schema grown by this file's (`ContinuedSchema`).
    public static func loadForTraining(_ path: String, options: ReadOptions, minCount: Int, communicator: Communicator = .single,
                                       growing previous: PreviousSchema? = nil)
        throws -> (schema: FeatureSchema, data: EncodedDataset, report: ReadReport)
    {
        let load = try loadForTraining(path, options: options, minCount: minCount, communicator: communicator, growing: previous,
                                       splittingVocabularies: nil)
        return (load.schema, load.data, load.report)
    }

    /// `loadForTraining`, where a data-parallel job may split its vocabularies over its ranks
    /// (`VocabularyShard`): `splittingVocabularies` is asked with the fitted table's rows, and
    /// when it answers true the vocabularies stay split and the returned schema holds counts
    /// only; otherwise every rank receives them whole. Nil, or a job continuing a model or
    /// under an admission policy (whose decisions need every value): merged as before.
    static func loadForTraining(_ path: String, options: ReadOptions, minCount: Int, communicator: Communicator,
                                growing previous: PreviousSchema?, splittingVocabularies split: ((Int) throws -> Bool)?)
        throws -> (schema: FeatureSchema, data: EncodedDataset, report: ReadReport, vocabulary: VocabularyShard?)
    {
        guard minCount >= 1 else { throw FunnelError("the vocabulary minimum count must be at least 1") }
        var options = options
        options.shard = communicator.shard
        let raw = try TableSource.readTraining(path, options: options)
        try options.hashBuckets.check(raw.layout, file: path)
        try options.sharedVocabularies.check(raw.layout, hashing: options.hashBuckets)
        var acc = FeatureSchema.Accumulator(layout: raw.layout)
        acc.add(raw)
        var report = try raw.report.merged(across: communicator)
        if let split, VocabularyShard.applies(communicator, previous: previous, options: options) {
            let fit = try VocabularyShard.fit(acc, minCount: minCount, options: options, communicator: communicator, file: path)
            (report.rowsKept, report.schemaNotes) = (fit.rows, fit.hashNotes)
            let (schema, shard) = try fit.decided(by: split)
            return (schema, try shard?.encode(raw, schema: schema) ?? schema.encode(raw), report, shard)
        }
        acc = try acc.merged(across: communicator)
        report.rowsKept = acc.rows  // every rank's rows (one rank: its table's)
        report.schemaNotes = acc.hashNotes(options.hashBuckets)
        let (schema, notes) = try FeatureSchema.fitted(acc, minCount: minCount, options: options, growing: previous, file: path)
        report.schemaNotes += notes
        return (schema, schema.encode(raw), report, nil)
    }

    /// Reads one day-stamped file and splits it by day: the schema is fitted on `trainDays` only,
    /// then the train rows and each of `evaluationDays` are encoded with it.
    public static func loadByDay(_ path: String, options: ReadOptions, minCount: Int, trainDays: ClosedRange<Int>,
                                 evaluationDays: [Int]) throws
        -> (schema: FeatureSchema, train: EncodedDataset, days: [Int: EncodedDataset], report: ReadReport)
    {
        guard let dayColumn = options.dayColumn else { throw FunnelError("splitting by day needs a day column") }
        let raw = try TableSource.readTraining(path, options: options)
        let trainRaw = raw.filter { trainDays.contains($0) }
        guard trainRaw.rowCount > 0 else {
            throw DataError(file: path, column: dayColumn, "no rows on training days \(trainDays.lowerBound)-\(trainDays.upperBound)")
        }
        try options.hashBuckets.check(raw.layout, file: path)
        try options.sharedVocabularies.check(raw.layout, hashing: options.hashBuckets)
        let (schema, notes) = FeatureSchema.fitWithNotes(trainRaw, minCount: minCount, hashing: options.hashBuckets,
                                                         sharing: options.sharedVocabularies)
        var days: [Int: EncodedDataset] = [:]
        for d in evaluationDays {
            let part = raw.filter { $0 == d }
            guard part.rowCount > 0 else { throw DataError(file: path, column: dayColumn, "no rows on day \(d)") }
            days[d] = schema.encode(part)
        }
        var report = raw.report
        report.schemaNotes = notes
        return (schema, schema.encode(trainRaw), days, report)
    }

    /// Reads a file against a trained model's schema.
    /// `vocabulary`: the job's split vocabularies (`schema` holds counts only): encoded collectively.
    public static func load(_ path: String, schema: FeatureSchema, options: ReadOptions, requireLabels: Bool,
                            vocabulary: VocabularyShard? = nil) throws -> (data: EncodedDataset, report: ReadReport)
    {
        let read = try TableSource.read(path, layout: schema.layout, options: options, requireLabels: requireLabels)
        let raw = try schema.keepingDenseInRange(read, skipBadRows: options.skipBadRows)
        return (try vocabulary?.encode(raw, schema: schema) ?? schema.encode(raw), raw.report)
    }

    /// A prepared cache read with a trained schema one row group at a time: each group decoded,
    /// checked, encoded and handed to `body` before the next is read (its pages handed back).
    /// The same rows, in the same order, and the same read report as `load` of the whole cache.
    /// `requestLevel`: a request's own bags are kept once per request (`ColumnarCache.group`).
    public static func forEachGroup(of cache: ColumnarCache, schema: FeatureSchema, options: ReadOptions, requireLabels: Bool,
                                    requestLevel: Bool = false, _ body: (EncodedDataset) throws -> Void) throws -> ReadReport {
        var report = ReadReport.cache(cache.footer.report)
        for g in 0..<cache.footer.groups.count {
            let group = try options.inconsistent.apply(to: cache.group(g, layout: schema.layout, requireLabels: requireLabels,
                                                                       dayColumn: options.dayColumn, requestLevel: requestLevel))
            let raw = try schema.keepingDenseInRange(group, skipBadRows: options.skipBadRows)
            cache.release(group: g)
            report.addGroup(raw.report, over: cache.footer.report)
            try body(schema.encode(raw))
        }
        return report
    }

    /// Reads the simulator's truth file (`p_ctr,p_cvr,conversion_if_clicked`) and returns the
    /// counterfactual conversion of each row of `data`, aligned through `data.sourceRows`.
    /// With `data` nil, returns the whole column in file order.
    public static func loadCounterfactual(_ path: String, for data: EncodedDataset?, dataLines: Int) throws -> [Float] {
        let csv = try CSVFile(path: path)
        guard let col = csv.header.firstIndex(of: "conversion_if_clicked") else {
            throw DataError(file: path, line: 1, column: "conversion_if_clicked", "column is missing (is this a truth file from `funnel simulate`?)")
        }
        var values: [Float] = []
        values.reserveCapacity(dataLines)
        let width = csv.header.count
        try csv.forEachRow { line, bytes, cells in
            guard cells.count == width else {
                throw DataError(file: path, line: line, "expected \(width) columns, found \(cells.count)")
            }
            let c = cells[col]
            guard c.count == 1, bytes[c.start] == 48 || bytes[c.start] == 49 else {
                throw DataError(file: path, line: line, column: "conversion_if_clicked",
                                "must be 0 or 1, got '\(CSVFile.text(bytes, c))'")
            }
            values.append(bytes[c.start] == 49 ? 1 : 0)
            return true
        }
        guard values.count == dataLines else {
            throw DataError(file: path, "has \(values.count) rows but the data file has \(dataLines); truth and data must be row-aligned")
        }
        return data.map { $0.sourceRows.map { values[Int($0)] } } ?? values
    }
}
