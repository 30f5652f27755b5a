/// Model-ready rows: global embedding ids `[rows × fields]`, standardised dense values
/// `[rows × denseCount]` and labels, each one contiguous array.
public final class EncodedDataset {
    public let rowCount: Int
    public let fields: Int
    public let denseCount: Int
    public let ids: [Int32]
    public let dense: [Float]
    /// Labels; nil when the file had none (prediction input).
    public let click: [Float]?
    public let conversion: [Float]?
    public let sourceRows: [Int32]

    public init(rowCount: Int, fields: Int, denseCount: Int, ids: [Int32], dense: [Float],
                click: [Float]?, conversion: [Float]?, sourceRows: [Int32]) {
        precondition(ids.count == rowCount * fields && dense.count == rowCount * denseCount)
        self.rowCount = rowCount
        self.fields = fields
        self.denseCount = denseCount
        self.ids = ids
        self.dense = dense
        self.click = click
        self.conversion = conversion
        self.sourceRows = sourceRows
    }

    public var hasLabels: Bool { click != nil }

    public var clickCount: Int { Int(click?.reduce(0, +) ?? 0) }
    public var conversionCount: Int {
        guard let click, let conversion else { return 0 }
        var n = 0
        for i in 0..<rowCount where click[i] == 1 && conversion[i] == 1 { n += 1 }
        return n
    }

    /// Indices of clicked rows (the CVR sample space).
    public var clickedRows: [Int32] {
        guard let click else { return [] }
        var out: [Int32] = []
        for i in 0..<rowCount where click[i] == 1 { out.append(Int32(i)) }
        return out
    }
}
