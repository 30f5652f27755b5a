/// Where a table comes from: whatever `TableFormats.detect` finds at the path — CSV/TSV,
/// PaddleRec text, a `funnel prepare` cache — read through its `TableFormat`. Every neural
/// command reads through here, so each accepts any of them.
public enum TableSource {
    /// Reads a training table: its layout inferred with `options` (a cache brings the layout it
    /// was prepared with; column-role options are then refused, not silently ignored).
    public static func readTraining(_ path: String, options: ReadOptions) throws -> RawTable {
        let format = try TableFormats.detect(path, options: options)
        let layout = try format.inferLayout(path, options: options, sampleRows: nil)
        return try format.read(path, layout: layout, options: options, requireLabels: true)
    }

    /// Reads a table against a known layout (a trained model's).
    public static func read(_ path: String, layout: TableLayout, options: ReadOptions, requireLabels: Bool) throws -> RawTable {
        try TableFormats.detect(path, options: options).read(path, layout: layout, options: options, requireLabels: requireLabels)
    }
}
