import ArgumentParser
import Foundation
import Funnel

struct Prepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a CSV/TSV into a binary columnar cache (memory-mapped, checksummed) that train, eval, predict and experiment read instead.",
        discussion: """
            One streaming pass in bounded memory; column roles are inferred from the first --sample-rows rows unless the column options fix them.
            Raw Ali-CCP: --layout ali-ccp --data sample_skeleton_X.csv --common common_features_X.csv (the common features are stored once \
            per md5, the skeleton's rows point at them; every field id is a field, its behaviour lists multi-valued with their values as weights).
            """)

    @Option(help: "Source CSV/TSV with a header (raw Ali-CCP: the sample skeleton).") var data: String
    @Option(help: "Raw Ali-CCP: the common-features file the skeleton's md5 column points into (implies --layout ali-ccp).")
    var common: String?
    @Option(help: "Output cache file (written atomically).") var out: String
    @Option(help: "An integer day column to keep (for experiment --train-days and day splits).") var dayColumn: String?
    @Option(help: "Table layout: auto (RecSys 2023 when the header has f_0…f_79; raw Ali-CCP with --common), recsys2023, generic or ali-ccp.")
    var layout: TableLayoutPreset = .auto
    @Option(parsing: .unconditional, help: "Rows per row group.") var groupRows = 65_536
    @Option(parsing: .unconditional, help: "Rows used to infer column roles.") var sampleRows = 1_000_000
    @OptionGroup var dataOptions: DataOptions
    @Flag(help: "Print one JSON object.") var json = false
    @Flag(help: "Replace an output that is not a regular file (a device, FIFO or symbolic link).") var force = false

    func validate() throws {
        try refuseManyRanks("prepare")
        guard groupRows >= 1 else { throw ValidationError("--group-rows must be ≥ 1") }
        guard sampleRows >= 1 else { throw ValidationError("--sample-rows must be ≥ 1") }
        if layout == .aliCCP && common == nil { throw ValidationError("--layout ali-ccp needs --common (the common-features file)") }
        if common != nil && layout != .aliCCP && layout != .auto { throw ValidationError("--common is read with --layout ali-ccp only") }
        if common != nil && dayColumn != nil { throw ValidationError("raw Ali-CCP has no day column (--day-column)") }
        if common != nil && dataOptions.requestColumn != nil {
            throw ValidationError("raw Ali-CCP's requests are its common-feature records: no --request-column")
        }
    }

    func run() throws {
        try guarded {
            try OutputPath.checkFile(out, force: force)
            var options = try dataOptions.readOptions()
            options.dayColumn = dayColumn
            if let rawCommon = common {  // raw Ali-CCP: the skeleton and its common features
                let s = try AliCCPRawLayout.prepare(skeleton: data, common: rawCommon, options: options, to: out, groupRows: groupRows,
                                                    sampleRows: sampleRows, force: force)
                return try report(s, source: "\(data) + \(rawCommon)")
            }
            let format = try TableFormats.detect(data, preset: layout, options: options)
            if format is RecSys2023Format && !json { Terminal.note("\(data): RecSys 2023 layout (day column f_1)") }
            let s = try ColumnarCache.prepare(source: data, format: format, options: options, to: out, groupRows: groupRows,
                                              sampleRows: sampleRows, force: force)
            try report(s, source: data)
        }
    }

    private func report(_ s: ColumnarCache.PrepareSummary, source: String) throws {
        if json {
            try Terminal.printJSON(s)
        } else {
            for n in s.report.notes where !n.contains("conversion=1 and click=0") { Terminal.note(n) }
            let shared = s.sharedRecords.map { ", \($0) common-feature records" } ?? ""
            try Terminal.say("prepared \(s.rows) rows in \(s.groups) row groups\(shared): \(source) (\(String(format: "%.1f", Double(s.sourceBytes) / 1e6)) MB) → "
                  + "\(out) (\(String(format: "%.1f", Double(s.cacheBytes) / 1e6)) MB) in \(Terminal.duration(s.seconds)), "
                  + String(format: "%.1f MB/s, peak RSS %.0f MB", s.megabytesPerSecond, s.peakRSSMegabytes))
        }
    }
}
