import ArgumentParser
import Foundation
import Funnel

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write pctr,pcvr,pctcvr for every input row, in input order (label columns may be absent).")

    @Option(help: "Model directory.") var model: String
    @Option(help: "CSV/TSV with the training columns.") var data: String
    @Option(help: "Output CSV ('-': standard output).") var out: String
    @Option(parsing: .unconditional, help: "Threads (default: all cores).") var threads: Int?
    @OptionGroup var gemmOptions: GEMMOptions
    @OptionGroup var dataOptions: DataOptions
    @Flag(help: "Print a JSON summary.") var json = false
    @Flag(help: "Replace an output that is not a regular file (a device, FIFO or symbolic link).") var force = false
    @Option(help: "Refuse, before reading rows, to hold more than this many MiB (a prepared cache is always read a row group at a time).")
    var memoryBudget: Double?

    func validate() throws {
        if let memoryBudget { guard memoryBudget > 0, memoryBudget.isFinite else { throw ValidationError("--memory-budget must be a positive number of MiB") } }
        try validateThreads(threads)
        guard !(json && out == "-") else { throw ValidationError("--json prints to standard output; give --out a file") }
    }

    /// Under mpirun the ranks share the model's tables and the rows (`DistributedInference`);
    /// rank 0 writes and prints.
    func run() throws {
        try runRanks(explicit: false) { comm, quiet in
            var request = PredictionRequest(model: model, data: data, out: out)
            request.communicator = comm
            request.gemm = gemmOptions.settings
            request.threads = try resolveThreads(threads)
            request.read = try dataOptions.readOptions()
            request.force = force
            request.memoryBudgetMiB = memoryBudget
            request.requestSharing = !dataOptions.noRequestSharing
            let outcome = try PredictionJob.run(request)
            if quiet { return }
            if json {
                struct Output: Encodable {
                    var rows: Int, predictRowsPerSecond: Double, skippedRows: Int, peakRSS: Double, gemm: GEMMEngine
                    var precision: GEMMPrecision
                    enum CodingKeys: String, CodingKey {
                        case rows, gemm, precision
                        case predictRowsPerSecond = "predict_rows_per_second", skippedRows = "skipped_rows", peakRSS = "peak_rss_mb"
                    }
                }
                try Terminal.printJSON(Output(rows: outcome.rows, predictRowsPerSecond: outcome.rowsPerSecond, skippedRows: outcome.skippedRows,
                                          peakRSS: ResourceUsage.peakRSSMegabytes, gemm: request.gemm.engine,
                                          precision: request.gemm.precision))
            } else if out == "-" {
                for n in outcome.notes { Terminal.note(n) }
            } else {
                for n in outcome.notes { Terminal.note(n) }
                try Terminal.say("wrote \(outcome.rows) predictions to \(out) (\(Terminal.rate(outcome.rowsPerSecond)) rows/s)")
            }
        }
    }
}
