import ArgumentParser
import Foundation
import Funnel

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write pctr,pcvr,pctcvr for every input row, in input order (label columns may be absent).")

    @Option(help: "Model directory.") var model: String
    @Option(help: "CSV/TSV with the training columns.") var data: String
    @Option(help: "Output CSV.") var out: String
    @Option(help: "Threads (default: all cores).") var threads: Int?
    @OptionGroup var dataOptions: DataOptions
    @Flag(help: "Print a JSON summary.") var json = false

    func run() throws {
        try guarded {
            let workers = try resolveThreads(threads)
            BLAS.setThreads(1)
            var options = try dataOptions.readOptions()
            options.inconsistent = .keep  // prediction never drops a row for its labels
            let trained = try TrainedModel.load(from: model, maxBatch: 4096, workers: workers)
            let (encoded, report) = try DatasetLoader.load(data, schema: trained.schema, options: options, requireLabels: false)
            for n in report.notes { Terminal.note(n) }
            let start = Date()
            let p = trained.network.predict(encoded)
            let seconds = Date().timeIntervalSince(start)
            var w = CSVWriter()
            w.append("pctr,pcvr,pctcvr\n")
            // A quantity the model does not predict (ESP has no pCTR) is an empty cell.
            func cell(_ v: Float) { if !v.isNaN { w.appendFloat(v) } }
            for i in 0..<encoded.rowCount {
                cell(p.ctr[i]); w.comma()
                cell(p.cvr[i]); w.comma()
                cell(p.ctcvr[i]); w.newline()
            }
            try AtomicFile.write(w.data, to: out)
            let rate = seconds > 0 ? Double(encoded.rowCount) / seconds : 0
            if json {
                Terminal.printJSON(["rows": Double(encoded.rowCount), "predict_rows_per_second": rate,
                                    "skipped_rows": Double(report.skippedTotal),
                                    "peak_rss_mb": ResourceUsage.peakRSSMegabytes])
            } else {
                print("wrote \(encoded.rowCount) predictions to \(out) (\(Terminal.rate(rate)) rows/s)")
            }
        }
    }
}
