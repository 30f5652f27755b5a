/// One on-disk table format: recognise its files, infer a training file's layout, read rows
/// against a layout in chunks, with bad rows decided by the one `BadRowPolicy`. Which format a
/// file is in is decided in one place, `TableFormats.detect`; every reading command (train,
/// eval, predict, prepare, gbdt) goes through it.
public protocol TableFormat: Sendable {
    /// Its name in messages and `--json` (`csv`, `recsys2023`, `paddlerec`, `cache`, `ali-ccp-raw`).
    var name: String { get }
    /// Whether `path` is in this format, judged from its first bytes (or its header).
    func recognises(_ path: String) -> Bool
    /// The layout of a training file: column roles from `options` and the first `sampleRows`
    /// rows (nil: every row; every line where the format needs it: PaddleRec's fields).
    func inferLayout(_ path: String, options: ReadOptions, sampleRows: Int?) throws -> TableLayout
    /// The read options this format implies over the user's (RecSys 2023: its roles, delimiter
    /// and day column); the options as given for the others.
    func impliedOptions(_ options: ReadOptions) -> ReadOptions
    /// Whether `path` holds both labels of `layout` (a file to predict on may have none).
    func hasLabels(_ path: String, layout: TableLayout, options: ReadOptions) throws -> Bool
    /// The rows of `path` against `layout`, handed to `sink` in tables of at most `chunkRows`
    /// kept rows (at least one table); returns the whole file's report. Labels are required when
    /// `requireLabels`; mapped pages already read are released with `releasePages`.
    func readChunks(_ path: String, layout: TableLayout, options: ReadOptions, requireLabels: Bool, chunkRows: Int,
                    releasePages: Bool, sink: (RawTable) throws -> Void) throws -> ReadReport
}

extension TableFormat {
    public func impliedOptions(_ options: ReadOptions) -> ReadOptions { options }

    /// The whole file as one table.
    public func read(_ path: String, layout: TableLayout, options: ReadOptions, requireLabels: Bool) throws -> RawTable {
        var whole: RawTable?
        _ = try readChunks(path, layout: layout, options: options, requireLabels: requireLabels, chunkRows: .max,
                           releasePages: false) { whole = $0 }
        return whole!
    }
}

/// The registry of table formats and the one place a file's format is decided.
public enum TableFormats {
    /// Every format, most specific first: a cache by its magic bytes, a raw Ali-CCP skeleton and a
    /// PaddleRec file by their first line, the RecSys 2023 layout by its header; anything else is
    /// a delimited text file.
    public static let all: [any TableFormat] = [CacheFormat(), RawAliCCPFormat(), PaddleRecFormat(), RecSys2023Format(), DelimitedTextFormat()]

    /// The format of `path`. `preset` is the user's `--layout`: `.generic` reads a RecSys 2023
    /// header as plain CSV/TSV with the given options (what `train`/`eval`/`predict` do), `.auto`
    /// recognises it, `.recsys2023` requires it (naming the file otherwise), `.aliCCP` names the
    /// command that reads the raw layout.
    public static func detect(_ path: String, preset: TableLayoutPreset = .generic, options: ReadOptions = ReadOptions()) throws -> any TableFormat {
        for format in all {
            // `.generic` reads delimited text with the options as given: no header to look at.
            if preset == .generic && format is RecSys2023Format { continue }
            guard format.recognises(path) else { continue }
            if preset == .generic && format is DelimitedTextFormat { return format }
            if format is RecSys2023Format || format is DelimitedTextFormat {
                // The preset decides between them (and refuses a header that is not RecSys 2023's when asked for it).
                let header = try CSVFile(path: path, delimiter: options.delimiter).header
                let (resolved, _) = try preset.resolve(header: header, file: path, options: options)
                return resolved == .recsys2023 ? RecSys2023Format() : DelimitedTextFormat()
            }
            // A cache brings the layout it was prepared in (`GBDTData` checks it against the preset).
            if preset == .recsys2023 && !(format is CacheFormat) {
                throw DataError(file: path, line: 1, "not the RecSys 2023 layout (this is a \(format.name) file)")
            }
            return format
        }
        return DelimitedTextFormat()
    }
}
