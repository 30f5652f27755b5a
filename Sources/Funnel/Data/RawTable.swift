/// A table read from disk but not yet encoded: categorical keys, raw dense values
/// (NaN marks an empty cell) and 0/1 labels, column-major.
public struct RawTable {
    public var layout: TableLayout
    public var rowCount = 0
    public var keys: [[Int64]]
    public var dense: [[Float]]
    public var click: [Float] = []
    public var conversion: [Float] = []
    public var hasLabels: Bool
    /// 0-based index of each kept row among the file's data rows, to align side files (truth).
    public var sourceRows: [Int32] = []
    /// Original text of non-integer categorical values, by key (integer keys are their own text).
    public var textTokens: [Int64: String] = [:]
    public var report: ReadReport

    init(layout: TableLayout, hasLabels: Bool, file: String) {
        self.layout = layout
        self.hasLabels = hasLabels
        keys = Array(repeating: [], count: layout.categorical.count)
        dense = Array(repeating: [], count: layout.dense.count)
        report = ReadReport(file: file)
    }
}
