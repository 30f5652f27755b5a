/// PaddleRec's Ali-CCP text (`PaddleRecLayout`): no header, `sample_id,click,buy,field:feaid,…`;
/// the layout is every field of every line (multi-valued where a line repeats it).
public struct PaddleRecFormat: TableFormat {
    public init() {}
    public var name: String { "paddlerec" }
    public func recognises(_ path: String) -> Bool { PaddleRecLayout.matches(path) }

    public func inferLayout(_ path: String, options: ReadOptions, sampleRows: Int?) throws -> TableLayout {
        var layout = try PaddleRecLayout.inferLayout(path, skipBadRows: options.skipBadRows)
        layout.maxValues = layout.multiValued.isEmpty ? nil : options.maxValues
        return layout
    }

    public func hasLabels(_ path: String, layout: TableLayout, options: ReadOptions) throws -> Bool { true }

    public func readChunks(_ path: String, layout: TableLayout, options: ReadOptions, requireLabels: Bool, chunkRows: Int,
                           releasePages: Bool, sink: (RawTable) throws -> Void) throws -> ReadReport {
        try PaddleRecLayout.readChunks(path, layout: layout, options: options, chunkRows: chunkRows, releasePages: releasePages, sink: sink)
    }
}
