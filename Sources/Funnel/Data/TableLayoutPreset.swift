/// Which table layout a file is read in. Resolved once, here, for every command that reads a
/// file by layout (`funnel prepare`, `funnel gbdt train`).
public enum TableLayoutPreset: String, Codable, CaseIterable, Sendable {
    /// RecSys 2023 when the header has its columns, generic otherwise.
    case auto
    case recsys2023
    /// Any CSV/TSV of the foundation layout: label columns named by options, roles inferred.
    case generic
    /// Raw Ali-CCP: a sample skeleton with its common features, read by
    /// `funnel prepare --layout ali-ccp --common …` into a cache that every command reads.
    case aliCCP = "ali-ccp"

    /// The concrete layout of a file with `header`, and the read options it implies: the RecSys
    /// 2023 roles, labels and day column (installs without a click kept as data), or `options`
    /// as given. Asking for RecSys 2023 on another header is an error naming the file.
    public func resolve(header: [String], file: String, options: ReadOptions) throws -> (preset: TableLayoutPreset, options: ReadOptions) {
        let matches = RecSys2023Layout.matches(header)
        switch self {
        case .aliCCP:
            throw DataError(file: file, "the raw Ali-CCP layout (skeleton + common features) is read by "
                            + "`funnel prepare --layout ali-ccp --data SKELETON --common COMMON --out CACHE`; give the cache to this command")
        case .generic: return (.generic, options)
        case .auto where !matches: return (.generic, options)
        case .auto, .recsys2023:
            guard matches else {
                throw DataError(file: file, line: 1, "not the RecSys 2023 layout (needs f_0, f_1, f_2 … f_79, is_clicked, is_installed)")
            }
            return (.recsys2023, RecSys2023Layout.readOptions(base: options))
        }
    }
}
