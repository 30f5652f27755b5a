import Foundation
import XCTest
@testable import Funnel

/// `weights.safetensors` opens with the Python `safetensors` package (installed by
/// `make deps`), and its tensors are exactly the ones Funnel trained.
final class PythonInteropTests: XCTestCase {
    func testPythonSafetensorsReadsFunnelWeights() throws {
        let dir = makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        BLAS.setThreads(1)
        let data = randomDataset(rows: 300, fields: 3, vocab: 10, dense: 2, seed: 3)
        var config = ModelConfig(kind: .esmm)
        config.hidden = [8, 4]; config.embeddingDim = 5; config.batchSize = 64
        let net = FunnelNetwork(config: config, embeddingRows: 30, fields: 3, denseCount: 2)
        _ = try Trainer(config: config).train(net, on: data)
        let layout = TableLayout(clickColumn: "click", conversionColumn: "purchase", categorical: [], dense: [], ignored: [])
        let schema = FeatureSchema(layout: layout, minCount: 1, fields: [], dense: [])
        try TrainedModel(config: config, schema: schema, network: net, training: nil).save(to: dir)

        // Python prints name, shape and the float64 sum and first value of every tensor.
        let script = """
            import json, sys
            from safetensors.numpy import load_file
            t = load_file(sys.argv[1])
            print(json.dumps({k: [list(v.shape), str(v.dtype), float(v.astype('float64').sum()), float(v.reshape(-1)[0])] for k, v in t.items()}))
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, dir + "/weights.safetensors"]
        let pipe = Pipe(), errPipe = Pipe()
        process.standardOutput = pipe
        process.standardError = errPipe
        try process.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        let err = String(decoding: errPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            return XCTFail("python3 could not read the weights (run `make deps` to install safetensors): \(err)")
        }
        let parsed = try JSONSerialization.jsonObject(with: out) as! [String: [Any]]
        XCTAssertEqual(Set(parsed.keys), Set(net.parameters.map(\.name)))
        for p in net.parameters {
            let entry = parsed[p.name]!
            XCTAssertEqual(entry[0] as? [Int], p.shape, p.name)
            XCTAssertEqual(entry[1] as? String, "float32", p.name)
            let sum = p.value.array.reduce(0.0) { $0 + Double($1) }
            XCTAssertEqual(entry[2] as! Double, sum, accuracy: 1e-9 * max(1, abs(sum)) + 1e-9, p.name)
            XCTAssertEqual(entry[3] as! Double, Double(p.value[0]), accuracy: 1e-12, p.name)  // JSON text round trip
        }
    }
}
