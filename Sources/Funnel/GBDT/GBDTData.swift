import Foundation

/// How a GBDT model reads files: fixed at training, stored in the model directory, applied to
/// every later file so validation, test and serving rows are read exactly like the training rows.
public struct GBDTReadSettings: Codable, Equatable, Sendable {
    public var preset: TableLayoutPreset
    public var delimiter: UInt8?
    public var dayColumn: String?

    enum CodingKeys: String, CodingKey { case preset, delimiter, dayColumn = "day_column" }

    /// Read options for a later file (labels named by the stored layout; installs without a click kept).
    public func readOptions(skipBadRows: Bool) -> ReadOptions {
        var o = preset == .recsys2023 ? RecSys2023Layout.readOptions() : ReadOptions()
        o.delimiter = delimiter ?? o.delimiter
        o.dayColumn = dayColumn
        o.inconsistent = .data
        o.skipBadRows = skipBadRows
        return o
    }
}

/// File → `RawTable` for the GBDT path.
public enum GBDTData {
    /// Reads a training file: picks the layout, infers column roles, reads with labels. Rows with
    /// an install but no click are kept (the two-step model's `is_like` counts them).
    ///
    /// With `ranks`, this rank reads only its contiguous run of the file's rows (rank r: rows
    /// r·n/N ..< (r+1)·n/N); column roles are still inferred from the file's first rows.
    public static func readTraining(_ path: String, preset: TableLayoutPreset, options: ReadOptions,
                                    ranks: Communicator = .single) throws
        -> (table: RawTable, settings: GBDTReadSettings)
    {
        guard options.multiValued.isEmpty else { throw FunnelError("the GBDT pipeline reads single-valued columns only") }
        let format = try TableFormats.detect(path, preset: preset, options: options)
        if format is CacheFormat {
            let (table, settings) = try readTrainingCache(path, preset: preset)
            return (contiguousShard(of: table, ranks), settings)
        }
        try checkTabular(format, path)
        let resolved: TableLayoutPreset = format is RecSys2023Format ? .recsys2023 : .generic
        var o = format.impliedOptions(options)
        o.inconsistent = .data  // installs without a click are data here, not an inconsistency
        let csv = try CSVFile(path: path, delimiter: o.delimiter)
        let layout = try TableReader.inferLayout(csv, options: o)
        o.shard = ranks.contiguousShard { csv.dataRowCount() }
        let table = try TableReader.read(csv, layout: layout, options: o, requireLabels: true)
        return (table, GBDTReadSettings(preset: resolved, delimiter: options.delimiter ?? (resolved == .recsys2023 ? 9 : nil),
                                        dayColumn: o.dayColumn))
    }

    /// A `funnel prepare` cache: its layout and day column were fixed when it was prepared
    /// (`funnel prepare --layout recsys2023` for the challenge's files).
    static func readTrainingCache(_ path: String, preset: TableLayoutPreset) throws -> (table: RawTable, settings: GBDTReadSettings) {
        let cache = try ColumnarCache(path: path)
        let isRecSys = cache.layout.clickColumn == RecSys2023Layout.click && cache.layout.categorical == RecSys2023Layout.categorical
        if preset == .recsys2023 && !isRecSys {
            throw DataError(file: path, "this cache was not prepared in the RecSys 2023 layout (funnel prepare --layout recsys2023)")
        }
        // A cache keeps every row, installs without a click included, as this path wants.
        let table = try InconsistentPolicy.data.apply(
            to: cache.table(layout: cache.layout, requireLabels: true, dayColumn: cache.footer.dayColumn))
        return (table, GBDTReadSettings(preset: isRecSys && preset != .generic ? .recsys2023 : .generic, delimiter: nil,
                                        dayColumn: cache.footer.dayColumn))
    }

    /// Reads a later file (CSV/TSV or cache) against a trained model's layout.
    public static func read(_ path: String, layout: TableLayout, settings: GBDTReadSettings, requireLabels: Bool,
                            skipBadRows: Bool = false, ranks: Communicator = .single) throws -> RawTable {
        var o = settings.readOptions(skipBadRows: skipBadRows)
        let format = try TableFormats.detect(path, options: o)
        if format is CacheFormat {
            o.inconsistent = .data
            return contiguousShard(of: try format.read(path, layout: layout, options: o, requireLabels: requireLabels), ranks)
        }
        try checkTabular(format, path)
        let csv = try CSVFile(path: path, delimiter: o.delimiter)
        o.shard = ranks.contiguousShard { csv.dataRowCount() }
        return try TableReader.read(csv, layout: layout, options: o, requireLabels: requireLabels)
    }

    /// The GBDT pipeline reads single-valued columns: delimited text (RecSys 2023 included) or a
    /// cache of one; any other format is refused, named.
    static func checkTabular(_ format: any TableFormat, _ path: String) throws {
        guard format is DelimitedTextFormat || format is RecSys2023Format || format is CacheFormat else {
            throw DataError(file: path, "the GBDT pipeline reads CSV/TSV (RecSys 2023 included) or a cache of one; this is a \(format.name) file")
        }
    }

    /// This rank's contiguous run of a table every rank loaded (a cache is decoded whole; only
    /// the rows kept per rank are sharded).
    static func contiguousShard(of table: RawTable, _ ranks: Communicator) -> RawTable {
        guard let range = ranks.contiguousShard(of: { table.rowCount })?.range else { return table }
        return table.rows(Array(range))
    }

    /// Splits one day-stamped table by the temporal protocol (train days / validation day).
    /// `table` is this rank's rows; the emptiness checks count every rank's.
    public static func split(_ table: RawTable, by split: TemporalSplit, ranks: Communicator = .single) throws -> (train: RawTable, valid: RawTable) {
        guard !table.days.isEmpty || table.rowCount == 0 else {
            throw DataError(file: table.report.file, "no day column to split by: give --valid FILE or --day-column")
        }
        let train = table.filter { split.trainRange.contains($0) }
        let valid = table.filter { $0 == split.validDay }
        // Every rank's rows count (a rank may hold none of a day).
        let totals = try ranks.allgather([Int64(train.rowCount), Int64(valid.rowCount)]).reduce((0, 0)) { ($0.0 + Int($1[0]), $0.1 + Int($1[1])) }
        guard totals.0 > 0 else {
            throw DataError(file: table.report.file, "no rows on training days \(split.trainDays[0])-\(split.trainDays[1])")
        }
        guard totals.1 > 0 else { throw DataError(file: table.report.file, "no rows on validation day \(split.validDay)") }
        return (train, valid)
    }
}
