import Foundation
import XCTest
@testable import Funnel

final class NetworkSizeTests: XCTestCase {
    /// The estimate counts exactly the parameters the network allocates.
    func testParameterCountMatchesTheNetwork() {
        for kind in ModelKind.allCases {
            var c = ModelConfig(kind: kind)
            c.embeddingDim = 3
            c.hidden = c.learners > 1 ? [6, 4] : [5]
            let net = FunnelNetwork(config: c, embeddingRows: 40, fields: 3, denseCount: 2, maxBatch: 8)
            let real = Double(net.parameters.reduce(0) { $0 + $1.count })
            let estimate = NetworkSize(config: c, embeddingRows: 40, fields: 3, denseCount: 2, maxBatch: 8, workers: 1).parameters
            // Gated trunks are estimated from above (PLE and TAML expert counts are bounded, not exact).
            if c.trunk.isGated { XCTAssertGreaterThanOrEqual(estimate, real, kind.rawValue) } else {
                XCTAssertEqual(estimate, real, kind.rawValue)
            }
        }
    }

    func testHostileSizesAreRefusedBeforeAllocating() {
        var c = ModelConfig(kind: .esmm)
        c.hidden = [2_000_000_000, 2_000_000_000]
        XCTAssertThrowsError(try NetworkSize.check(config: c, embeddingRows: 100, fields: 3, denseCount: 1, maxBatch: 10, workers: 1)) {
            XCTAssertTrue("\($0)".contains("exceeds 65536"), "\($0)")
        }
        c = ModelConfig(kind: .esmm)
        c.embeddingDim = 1_000_000_000
        XCTAssertThrowsError(try NetworkSize.check(config: c, embeddingRows: 100, fields: 3, denseCount: 1, maxBatch: 10, workers: 1))
        c = ModelConfig(kind: .esmm)
        c.embeddingDim = 4000
        c.hidden = [65_000, 65_000]
        XCTAssertThrowsError(try NetworkSize.check(config: c, embeddingRows: 10_000_000, fields: 16, denseCount: 1, maxBatch: 2000, workers: 2)) {
            XCTAssertTrue("\($0)".contains("GiB"), "\($0)")
        }
        // A wide table: 100,000 columns at the default dimension is refused for its input width.
        XCTAssertThrowsError(try NetworkSize.check(config: ModelConfig(kind: .esmm), embeddingRows: 1_100_000, fields: 100_000, denseCount: 0,
                                                   maxBatch: 1000, workers: 2)) {
            XCTAssertTrue("\($0)".contains("the input is 100000 categorical fields × 18 dimensions + 0 dense values = 1800000 wide"), "\($0)")
            XCTAssertTrue("\($0)".contains("about 3640 fields"), "\($0)")
        }
        XCTAssertNoThrow(try NetworkSize.check(config: ModelConfig(kind: .esmm), embeddingRows: 150_000, fields: 15, denseCount: 4,
                                               maxBatch: 1000, workers: 2))
    }

    /// A model.json asking for a huge network, or weights with a NaN, is refused with the file
    /// and the quantity or tensor named — never an abort.
    func testHostileModelDirectoriesAreRefused() throws {
        let dir = makeTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let raw = RawTable(layout: TableLayout(clickColumn: "click", conversionColumn: "purchase", categorical: ["a"], dense: ["d"],
                                               ignored: []), hasLabels: true, file: "x")
        var table = raw
        for i in 0..<50 { table.appendRow(keys: [Int64(i % 7)], dense: [Float(i)], labels: (Float(i % 2), 0), day: nil, sourceRow: Int32(i)) }
        let schema = FeatureSchema.fit(table, minCount: 1)
        var c = ModelConfig(kind: .esmm)
        c.hidden = [4]
        c.embeddingDim = 2
        let net = FunnelNetwork(config: c, embeddingRows: schema.embeddingRows, fields: 1, denseCount: 1)
        try TrainedModel(config: c, schema: schema, network: net, training: nil).save(to: dir + "/m")
        XCTAssertNoThrow(try TrainedModel.load(from: dir + "/m"))
        // Hidden sizes of 2e9 in model.json.
        let path = dir + "/m/model.json"
        let original = try String(contentsOfFile: path, encoding: .utf8)
        let huge = original.replacingOccurrences(of: "\"hidden\" : [\n      4\n    ]", with: "\"hidden\" : [2000000000, 2000000000]")
        XCTAssertNotEqual(huge, original)
        try huge.write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrainedModel.load(from: dir + "/m")) { XCTAssertTrue("\($0)".contains("model.json"), "\($0)") }
        try original.write(toFile: path, atomically: true, encoding: .utf8)
        // A NaN weight, with the checksum recomputed so only the value is wrong.
        net.parameters[1].value[0] = .nan
        try TrainedModel(config: c, schema: schema, network: net, training: nil).save(to: dir + "/nan")
        XCTAssertThrowsError(try TrainedModel.load(from: dir + "/nan")) {
            XCTAssertTrue("\($0)".contains("non-finite") && "\($0)".contains(net.parameters[1].name), "\($0)")
        }
    }
}
