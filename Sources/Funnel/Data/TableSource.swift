/// Where a table comes from: a CSV/TSV file (parsed) or a `funnel prepare` cache (memory-mapped
/// columns). Every command reads through here, so each accepts either.
public enum TableSource {
    /// Reads a training table: a CSV's layout is inferred with `options`; a cache brings the
    /// layout it was prepared with (column-role options are then refused, not silently ignored).
    public static func readTraining(_ path: String, options: ReadOptions) throws -> RawTable {
        if PaddleRecLayout.matches(path) {
            var layout = try PaddleRecLayout.inferLayout(path)
            layout.maxValues = layout.multiValued.isEmpty ? nil : options.maxValues
            return try PaddleRecLayout.read(path, layout: layout, options: options, requireLabels: true)
        }
        guard ColumnarCache.isCache(path) else {
            let csv = try CSVFile(path: path, delimiter: options.delimiter)
            let layout = try TableReader.inferLayout(csv, options: options)
            return try TableReader.read(csv, layout: layout, options: options, requireLabels: true)
        }
        if options.clickColumn != nil || options.conversionColumn != nil || !options.categorical.isEmpty
            || !options.dense.isEmpty || !options.ignore.isEmpty || !options.multiValued.isEmpty {
            throw DataError(file: path, "column roles of a cache are fixed by `funnel prepare`; give the column options there")
        }
        let cache = try ColumnarCache(path: path)
        // A cache keeps every value of a multi-valued column; --max-values applies when it is read.
        var layout = cache.layout
        layout.maxValues = layout.multiValued.isEmpty ? nil : options.maxValues
        // A cache keeps every row; the reading command's inconsistent-row policy applies here, as a CSV read applies it.
        return try options.inconsistent.apply(to: cache.table(layout: layout, requireLabels: true, dayColumn: options.dayColumn, shard: options.shard))
    }

    /// Reads a table against a known layout (a trained model's).
    public static func read(_ path: String, layout: TableLayout, options: ReadOptions, requireLabels: Bool) throws -> RawTable {
        if PaddleRecLayout.matches(path) { return try PaddleRecLayout.read(path, layout: layout, options: options, requireLabels: requireLabels) }
        guard ColumnarCache.isCache(path) else {
            let csv = try CSVFile(path: path, delimiter: options.delimiter)
            return try TableReader.read(csv, layout: layout, options: options, requireLabels: requireLabels)
        }
        let cache = try ColumnarCache(path: path)
        return try options.inconsistent.apply(to: cache.table(layout: layout, requireLabels: requireLabels, dayColumn: options.dayColumn))
    }
}
