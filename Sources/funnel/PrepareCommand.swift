import ArgumentParser
import Foundation
import Funnel

struct Prepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a CSV/TSV into a binary columnar cache (memory-mapped, checksummed) that train, eval, predict and experiment read instead.",
        discussion: "One streaming pass in bounded memory; column roles are inferred from the first --sample-rows rows unless the column options fix them.")

    @Option(help: "Source CSV/TSV with a header.") var data: String
    @Option(help: "Output cache file (written atomically).") var out: String
    @Option(help: "An integer day column to keep (for experiment --train-days and day splits).") var dayColumn: String?
    @Option(help: "Table layout: auto (RecSys 2023 when the header has f_0…f_79), recsys2023 or generic.")
    var layout: TableLayoutPreset = .auto
    @Option(parsing: .unconditional, help: "Rows per row group.") var groupRows = 65_536
    @Option(parsing: .unconditional, help: "Rows used to infer column roles.") var sampleRows = 1_000_000
    @OptionGroup var dataOptions: DataOptions
    @Flag(help: "Print one JSON object.") var json = false
    @Flag(help: "Replace an output that is not a regular file (a device, FIFO or symbolic link).") var force = false

    func validate() throws {
        guard groupRows >= 1 else { throw ValidationError("--group-rows must be ≥ 1") }
        guard sampleRows >= 1 else { throw ValidationError("--sample-rows must be ≥ 1") }
    }

    func run() throws {
        try guarded {
            try OutputPath.checkFile(out, force: force)
            var options = try dataOptions.readOptions()
            options.dayColumn = dayColumn
            let header = try CSVFile(path: data, delimiter: options.delimiter).header
            let resolved: TableLayoutPreset
            (resolved, options) = try layout.resolve(header: header, file: data, options: options)
            if resolved == .recsys2023 && !json { Terminal.note("\(data): RecSys 2023 layout (day column f_1)") }
            let s = try ColumnarCache.prepare(source: data, options: options, to: out, groupRows: groupRows, sampleRows: sampleRows,
                                              force: force)
            if json {
                Terminal.printJSON(s)
            } else {
                for n in s.report.notes where !n.contains("conversion=1 and click=0") { Terminal.note(n) }
                print("prepared \(s.rows) rows in \(s.groups) row groups: \(data) (\(String(format: "%.1f", Double(s.sourceBytes) / 1e6)) MB) → "
                      + "\(out) (\(String(format: "%.1f", Double(s.cacheBytes) / 1e6)) MB) in \(Terminal.duration(s.seconds)), "
                      + String(format: "%.1f MB/s, peak RSS %.0f MB", s.megabytesPerSecond, s.peakRSSMegabytes))
            }
        }
    }
}
