import ArgumentParser
import Foundation
import Funnel
import FunnelONNX

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export a trained model as one self-contained ONNX graph: raw ids and dense values in, pctr/pcvr/pctcvr out.",
        discussion: """
            The vocabularies (unseen → the out-of-vocabulary row) and the dense standardisation are inside the graph, so \
            ONNX Runtime alone reproduces `funnel predict`. Inputs are named as the training file's columns (int64, or \
            string for non-integer vocabularies; float for dense, NaN = empty); multi-valued fields take FIELD (values), \
            FIELD.offsets (int64 [N+1]) and FIELD.weights. See docs/onnx.md.
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case onnx }

    @Option(help: "Model directory.") var model: String
    @Option(help: "Export format (onnx).") var format: Format = .onnx
    @Option(help: "Output file (.onnx).") var out: String
    @Option(help: "ONNX opset (\(ONNXExport.opsets.lowerBound)…\(ONNXExport.opsets.upperBound)).") var opset = ONNXExport.defaultOpset
    @Flag(help: "Print a JSON summary.") var json = false
    @Flag(help: "Replace an output that is not a regular file (a device, FIFO or symbolic link).") var force = false

    func validate() throws {
        try refuseManyRanks("export")
        guard ONNXExport.opsets.contains(opset) else {
            throw ValidationError("--opset must be between \(ONNXExport.opsets.lowerBound) and \(ONNXExport.opsets.upperBound)")
        }
    }

    func run() throws {
        try guarded {
            try OutputPath.checkFile(out, force: force)
            let bytes = try ONNXExport.export(modelAt: model, opset: opset)
            try AtomicFile.write(bytes, to: out, force: force)
            if json {
                struct Output: Encodable {
                    var out: String, format: String, opset: Int, bytes: Int, exportFormatVersion: Int
                    enum CodingKeys: String, CodingKey { case out, format, opset, bytes, exportFormatVersion = "export_format_version" }
                }
                try Terminal.printJSON(Output(out: out, format: format.rawValue, opset: opset, bytes: bytes.count,
                                          exportFormatVersion: ONNXExport.formatVersion))
            } else {
                try Terminal.say("wrote \(out) (ONNX opset \(opset), \(bytes.count) bytes)")
            }
        }
    }
}
