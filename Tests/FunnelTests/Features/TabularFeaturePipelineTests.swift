import Foundation
import XCTest
@testable import Funnel

/// The GBDT feature transform on a hand-made table: every feature checked by hand.
final class TabularFeaturePipelineTests: XCTestCase {
    private var dir = ""

    override func setUp() { dir = makeTempDirectory("funnel-features") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// day, two categorical columns, two numeric columns, labels.
    private let trainText = """
        day,a,b,x,y,click,purchase
        45,1,7,1.0,10,1,1
        46,1,7,3.0,,1,0
        47,2,8,,20,0,1
        48,2,7,5.0,30,0,0
        49,1,8,7.0,40,0,0

        """

    private func options() -> ReadOptions {
        var o = ReadOptions()
        o.dayColumn = "day"
        o.categorical = ["a", "b"]
        o.dense = ["x", "y"]
        return o
    }

    private func read(_ text: String, name: String) throws -> (RawTable, GBDTReadSettings) {
        try GBDTData.readTraining(writeFile(dir, name, text), preset: .generic, options: options())
    }

    func testEveryFeatureByHand() throws {
        let (table, _) = try read(trainText, name: "train.csv")
        XCTAssertEqual(table.rowCount, 5, "an install without a click is kept (is_like counts it)")
        var config = TabularFeatureConfig()
        config.crosses = [["a", "b"]]
        config.groupStatistics = [GroupStatisticSpec(by: "a", of: "x")]
        config.targetEncoding.targets = [.install]
        config.targetEncoding.statistics = [.mean]
        config.targetEncoding.columns = ["a"]
        config.targetEncoding.priorStrength = 2
        config.targetEncoding.minCount = 1
        config.targetEncoding.folds = 2
        let (p, m) = try TabularFeaturePipeline.fit(table, config: config, seed: 1)
        XCTAssertEqual(m.names, ["x", "y", "a", "b", "day_of_week", "a*b", "te_is_installed_mean(a)",
                                 "mean(x|a)", "variance(x|a)", "median(x|a)"])
        func column(_ name: String) -> [Float] { m.column(m.names.firstIndex(of: name)!) }
        XCTAssertEqual(column("x"), [1, 3, 0, 5, 7], "missing → 0")
        XCTAssertEqual(column("y"), [10, 0, 20, 30, 40])
        XCTAssertEqual(column("a"), [1, 1, 2, 2, 1], "a=1 is the most frequent: code 1")
        XCTAssertEqual(column("b"), [1, 1, 2, 1, 2])
        XCTAssertEqual(column("day_of_week"), [3, 4, 5, 6, 0])
        // Crosses (1,7) ×2, then (2,8), (2,7), (1,8) once each: ties ordered by key, codes 1…4.
        let cross = column("a*b")
        XCTAssertEqual(cross[0], 1); XCTAssertEqual(cross[1], 1)
        XCTAssertEqual(Set(cross[2...]), [2, 3, 4])
        // x by a: a=1 → {1, 3, 7}, a=2 → {5} (the empty x is not counted).
        XCTAssertEqual(column("mean(x|a)"), [11.0 / 3, 11.0 / 3, 5, 5, 11.0 / 3].map { Float($0) })
        let v1 = Float(((1.0 - 11.0 / 3) * (1.0 - 11.0 / 3) + (3 - 11.0 / 3) * (3 - 11.0 / 3) + (7 - 11.0 / 3) * (7 - 11.0 / 3)) / 3)
        XCTAssertEqual(column("variance(x|a)")[0], v1, accuracy: 1e-5)
        XCTAssertEqual(column("variance(x|a)")[2], 0)
        XCTAssertEqual(column("median(x|a)"), [3, 3, 5, 5, 3])

        // A later table: an unseen category and an empty numeric.
        let later = try GBDTData.read(writeFile(dir, "later.csv", "day,a,b,x,y,click,purchase\n66,9,7,,5,0,0\n67,1,8,2.0,6,0,0\n"),
                                      layout: p.layout, settings: GBDTReadSettings(preset: .generic, delimiter: nil, dayColumn: "day"),
                                      requireLabels: false)
        let t = try p.transform(later)
        func laterColumn(_ name: String) -> [Float] { t.column(t.names.firstIndex(of: name)!) }
        XCTAssertEqual(laterColumn("a"), [0, 1], "unseen → 0")
        XCTAssertEqual(laterColumn("x"), [0, 2])
        XCTAssertEqual(laterColumn("day_of_week"), [3, 4])
        XCTAssertEqual(laterColumn("mean(x|a)")[0], 0, "unseen group → missing value")
        // Target encoding of later rows uses all training rows: a=1 has 1 install in 3 rows, μ = 2/5,
        // N₀ = 2 → Beta(0.8 + 1, 1.2 + 2); unseen → the prior Beta(0.8, 1.2).
        XCTAssertEqual(laterColumn("te_is_installed_mean(a)")[1], Float(1.8 / 5), accuracy: 1e-6)
        XCTAssertEqual(laterColumn("te_is_installed_mean(a)")[0], 0.4, accuracy: 1e-6)

        // The fitted pipeline survives JSON (what the model directory stores) unchanged.
        let decoded = try JSONDecoder().decode(TabularFeaturePipeline.self, from: try JSONEncoder().encode(p))
        XCTAssertEqual(decoded, p)
        XCTAssertEqual(try decoded.transform(later).values, t.values)
    }

    func testMissingValueCanBeLeftToLightGBM() throws {
        let (table, _) = try read(trainText, name: "train.csv")
        var config = TabularFeatureConfig()
        config.missingValue = nil
        config.targetEncoding.enabled = false
        let (_, m) = try TabularFeaturePipeline.fit(table, config: config, seed: 1)
        XCTAssertTrue(m.column(0)[2].isNaN)
    }

    func testConfigErrorsNameTheColumn() throws {
        let (table, _) = try read(trainText, name: "train.csv")
        var config = TabularFeatureConfig()
        config.drop = ["nope"]
        XCTAssertThrowsError(try TabularFeaturePipeline.fit(table, config: config, seed: 1)) { e in
            XCTAssertTrue("\(e)".contains("'nope'"), "\(e)")
        }
        config = TabularFeatureConfig()
        config.crosses = [["a", "x"]]
        XCTAssertThrowsError(try TabularFeaturePipeline.fit(table, config: config, seed: 1)) { e in
            XCTAssertTrue("\(e)".contains("'x'"), "\(e)")
        }
        config = TabularFeatureConfig()
        config.groupStatistics = [GroupStatisticSpec(by: "x", of: "y")]
        XCTAssertThrowsError(try TabularFeaturePipeline.fit(table, config: config, seed: 1))
        config = TabularFeatureConfig()
        config.targetEncoding.folds = 1
        XCTAssertThrowsError(try TabularFeaturePipeline.fit(table, config: config, seed: 1))
    }

    func testDroppedColumnsAreGone() throws {
        let (table, _) = try read(trainText, name: "train.csv")
        var config = TabularFeatureConfig()
        config.drop = ["b", "y"]
        config.targetEncoding.statistics = [.mean, .kurtosis]
        config.targetEncoding.targets = [.like]
        let (p, m) = try TabularFeaturePipeline.fit(table, config: config, seed: 1)
        XCTAssertEqual(p.numeric, ["x"])
        XCTAssertEqual(p.categorical, ["a"])
        XCTAssertFalse(m.names.contains { $0.contains("(b)") || $0 == "y" })
        XCTAssertTrue(m.names.contains("te_is_like_kurtosis(a)"))
    }
}
