/// The RecSys Challenge 2023 layout (`RecSys2023Layout`): delimited text whose header has its
/// columns; read with its roles, labels (`is_clicked`, `is_installed`), day column `f_1` and
/// installs without a click kept as data, whatever the options name.
public struct RecSys2023Format: TableFormat {
    public init() {}
    public var name: String { "recsys2023" }

    public func recognises(_ path: String) -> Bool {
        guard let header = try? CSVFile(path: path, delimiter: 9).header else { return false }
        return RecSys2023Layout.matches(header)
    }

    public func impliedOptions(_ options: ReadOptions) -> ReadOptions { RecSys2023Layout.readOptions(base: options) }

    public func inferLayout(_ path: String, options: ReadOptions, sampleRows: Int?) throws -> TableLayout {
        try DelimitedTextFormat().inferLayout(path, options: RecSys2023Layout.readOptions(base: options), sampleRows: sampleRows)
    }

    public func hasLabels(_ path: String, layout: TableLayout, options: ReadOptions) throws -> Bool {
        try DelimitedTextFormat().hasLabels(path, layout: layout, options: RecSys2023Layout.readOptions(base: options))
    }

    public func readChunks(_ path: String, layout: TableLayout, options: ReadOptions, requireLabels: Bool, chunkRows: Int,
                           releasePages: Bool, sink: (RawTable) throws -> Void) throws -> ReadReport {
        try DelimitedTextFormat().readChunks(path, layout: layout, options: RecSys2023Layout.readOptions(base: options),
                                             requireLabels: requireLabels, chunkRows: chunkRows, releasePages: releasePages, sink: sink)
    }
}
