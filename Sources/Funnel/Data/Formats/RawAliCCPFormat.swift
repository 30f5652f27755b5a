#if canImport(Glibc)
import Glibc
#endif

/// A raw Ali-CCP sample skeleton (`sample_id,click,buy,md5,feature_num,feature_list` with
/// `\x01 \x02 \x03` inside the list): its user side lives in the common-features file, which
/// one path cannot bring, so it is recognised here and read by `funnel prepare --layout ali-ccp
/// --common COMMON` (`AliCCPRawLayout.prepare`, which keeps each common record once); every other
/// command is told so, naming the file, instead of parsing it as CSV.
public struct RawAliCCPFormat: TableFormat {
    public init() {}
    public var name: String { "ali-ccp-raw" }

    public func recognises(_ path: String) -> Bool {
        guard let fd = try? InputFile.openForReading(path) else { return false }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 4096)
        let n = pread(fd, &head, head.count, 0)
        guard n > 0 else { return false }
        let line = head[0..<n].prefix { $0 != 10 && $0 != 13 }
        let cells = line.split(separator: 44, maxSplits: 5, omittingEmptySubsequences: false)
        // Six cells, a numeric feature_num, and a feature list with field\x02id\x03value features.
        return cells.count == 6 && !cells[4].isEmpty && cells[4].allSatisfy(NumberParsing.isDigit) && cells[5].contains(2) && cells[5].contains(3)
    }

    private func refuse(_ path: String) -> DataError {
        DataError(file: path, "a raw Ali-CCP sample skeleton: its common features are in another file. Run "
                  + "`funnel prepare --layout ali-ccp --data \(path) --common COMMON --out CACHE` and give CACHE to this command")
    }

    public func inferLayout(_ path: String, options: ReadOptions, sampleRows: Int?) throws -> TableLayout { throw refuse(path) }
    public func hasLabels(_ path: String, layout: TableLayout, options: ReadOptions) throws -> Bool { throw refuse(path) }
    public func readChunks(_ path: String, layout: TableLayout, options: ReadOptions, requireLabels: Bool, chunkRows: Int,
                           releasePages: Bool, sink: (RawTable) throws -> Void) throws -> ReadReport { throw refuse(path) }
}
