/// The RecSys Challenge 2023 (ShareChat) layout: tab-separated, header, `f_0` row id, `f_1` day,
/// `f_2`–`f_32` categorical, `f_33`–`f_41` binary, `f_42`–`f_79` numerical, then `is_clicked`,
/// `is_installed` (training files only); any field may be empty.
public enum RecSys2023Layout {
    public static let rowId = "f_0"
    public static let day = "f_1"
    public static let categorical = (2...32).map { "f_\($0)" }
    public static let binary = (33...41).map { "f_\($0)" }
    public static let numerical = (42...79).map { "f_\($0)" }
    public static let click = "is_clicked"
    public static let install = "is_installed"
    public static var header: [String] { [rowId, day] + categorical + binary + numerical + [click, install] }
    /// The paper's split: train days 45–65, validate on 66, test on 67.
    public static let trainDays = 45...65
    public static let validDay = 66
    public static let testDay = 67

    /// True when `header` has this layout's identifying columns.
    public static func matches(_ header: [String]) -> Bool {
        let h = Set(header)
        return h.contains(rowId) && h.contains(day) && h.contains("f_2") && h.contains("f_79")
    }

    /// How to read such a file: tab-delimited, is_clicked / is_installed as labels, installs
    /// without a click kept (they are real here, paper footnote 2), binary flags as numbers.
    public static func readOptions(base: ReadOptions = ReadOptions()) -> ReadOptions {
        var o = base
        o.delimiter = o.delimiter ?? 9
        o.clickColumn = click
        o.conversionColumn = install
        o.categorical = categorical
        o.dense = binary + numerical
        o.ignore = [rowId]
        o.dayColumn = day
        o.inconsistent = .data  // installs without a click are data in this layout
        return o
    }
}
