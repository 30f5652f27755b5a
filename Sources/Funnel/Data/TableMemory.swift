import Foundation

/// What holding a table's rows costs, known from its header (the layout) and a sample of its
/// lines before a row is read, so a table too large or too wide for the machine is refused in
/// words instead of growing until the kernel stops it.
public enum TableMemory {
    /// Bytes per row: the raw table (8-byte keys, 4-byte dense values, labels, day, source row)
    /// and its encoding (4-byte ids and values), both alive while a schema is fitted.
    public static func bytesPerRow(_ layout: TableLayout) -> Double {
        let categorical = Double(layout.categorical.count), dense = Double(layout.dense.count)
        return (8 * categorical + 4 * dense + 20) + (4 * categorical + 4 * dense + 12)
    }

    /// The share of this machine's memory a read may take (as `NetworkSize.check`).
    public static var budgetBytes: Double { Double(ProcessInfo.processInfo.physicalMemory) * 0.8 }

    /// Refuses to hold `rows` rows of `layout` at once when they exceed the budget, saying how
    /// many rows would fit and what to do instead.
    public static func check(rows: Int, layout: TableLayout, file: String, streamedHint: String) throws {
        let perRow = bytesPerRow(layout), need = Double(rows) * perRow
        guard need > budgetBytes else { return }
        let fit = Int(budgetBytes / perRow)
        func gib(_ b: Double) -> String { String(format: "%.1f GiB", b / 1_073_741_824) }
        throw DataError(file: file, "about \(rows) rows × \(layout.categorical.count + layout.dense.count) columns need about \(gib(need)) "
                        + "in memory; the budget is \(gib(budgetBytes)) (80% of this machine): at most about \(fit) rows fit. \(streamedHint)")
    }
}
