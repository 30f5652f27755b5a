/// A `funnel prepare` cache (`ColumnarCache`): its layout was fixed when it was prepared, so
/// column-role options are refused rather than silently ignored; every row was kept, so the
/// reading command's `--inconsistent` policy applies here as a text read applies it.
public struct CacheFormat: TableFormat {
    public init() {}
    public var name: String { "cache" }
    public func recognises(_ path: String) -> Bool { ColumnarCache.isCache(path) }

    public func inferLayout(_ path: String, options: ReadOptions, sampleRows: Int?) throws -> TableLayout {
        if options.clickColumn != nil || options.conversionColumn != nil || !options.categorical.isEmpty
            || !options.dense.isEmpty || !options.ignore.isEmpty || !options.multiValued.isEmpty {
            throw DataError(file: path, "column roles of a cache are fixed by `funnel prepare`; give the column options there")
        }
        let cache = try ColumnarCache(path: path)
        try Self.checkRequestOptions(options, of: cache)
        // A cache keeps every value of a multi-valued column; --max-values applies when it is read.
        var layout = cache.layout
        layout.maxValues = layout.multiValued.isEmpty ? nil : options.maxValues
        return layout
    }

    /// `--request-column`/`--request-fields` on a cache: the ones it was prepared with (its rows
    /// then share by them with no flag), or an error saying what the cache holds.
    static func checkRequestOptions(_ options: ReadOptions, of cache: ColumnarCache) throws {
        guard let column = options.requestColumn else { return }
        let footer = cache.footer
        guard let stored = footer.requestColumn else {
            throw DataError(file: cache.path, column: column, "the cache was prepared without a request column: "
                            + "give --request-column and --request-fields to funnel prepare")
        }
        guard stored == column, options.requestFields.isEmpty || options.requestFields == footer.requestColumnFields ?? [] else {
            throw DataError(file: cache.path, column: column, "the cache's requests are fixed by funnel prepare: column '\(stored)', "
                            + "fields \((footer.requestColumnFields ?? []).joined(separator: ","))")
        }
    }

    public func hasLabels(_ path: String, layout: TableLayout, options: ReadOptions) throws -> Bool {
        try ColumnarCache(path: path).footer.hasLabels
    }

    /// The cache's rows in one table (its row groups are decoded whole).
    public func readChunks(_ path: String, layout: TableLayout, options: ReadOptions, requireLabels: Bool, chunkRows: Int,
                           releasePages: Bool, sink: (RawTable) throws -> Void) throws -> ReadReport {
        let table = try options.inconsistent.apply(to: ColumnarCache(path: path).table(
            layout: layout, requireLabels: requireLabels, dayColumn: options.dayColumn, shard: options.shard,
            requestLevel: options.requestLevel && options.dayColumn == nil))
        try sink(table)
        return table.report
    }
}
