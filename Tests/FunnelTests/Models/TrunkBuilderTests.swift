import XCTest
@testable import Funnel

final class TrunkBuilderTests: XCTestCase {
    private func network(_ trunk: TrunkKind, kind: ModelKind = .esmm) -> FunnelNetwork {
        var c = ModelConfig(kind: kind)
        c.trunk = trunk
        c.bottom = trunk.builder.usesBottom ? [8] : []
        c.hidden = [8]
        c.embeddingDim = 3
        c.expertHidden = [6]
        c.experts = 2
        return FunnelNetwork(config: c, embeddingRows: 50, fields: 3, denseCount: 2, maxBatch: 16, workers: 2)
    }

    /// The registry and what each builder builds agree: gated kinds give gated bodies, the
    /// shared bottom a dense one, ESMM none.
    func testEveryKindBuildsWhatItDeclares() throws {
        for trunk in TrunkKind.allCases {
            let net = network(trunk)
            XCTAssertEqual(trunk.isGated, !net.mixtures.isEmpty, trunk.rawValue)
            XCTAssertEqual(trunk.builder.usesBottom, !net.bottoms.isEmpty, trunk.rawValue)
            XCTAssertEqual(net.bodies.count, 1, "ESMM shares one trunk")
            XCTAssertEqual(net.parameters.count, Set(net.parameters.map(\.name)).count, "unique parameter names")
        }
        XCTAssertEqual(network(.mmoe, kind: .esmmNS).bodies.count, 2, "no shared parameters: a trunk per head")
    }

    func testKindSpecificChecks() {
        var c = ModelConfig(kind: .esmm)
        c.trunk = .mmoe
        c.experts = 0
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("at least 1 expert"), "\($0)") }
        c.trunk = .ple
        c.experts = 2
        c.levels = 9
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("levels"), "\($0)") }
        c.trunk = .sharedBottom
        c.bottom = []
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("bottom layer sizes"), "\($0)") }
        c.trunk = .esmm
        c.bottom = [8]
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("shared-bottom trunk"), "\($0)") }
    }

    /// The scratch block: every worker's slices are 64-byte aligned, disjoint, and inside the one allocation.
    func testScratchSlicesAreAlignedAndDisjoint() {
        let net = network(.taml, kind: .taml)
        var ranges: [(Int, Int)] = []
        for w in net.scratch.workers {
            let slices = w.embeddingOutputs + w.embeddingGradients + w.logits + w.logitGradients
                + w.learnerLogits.flatMap { $0 } + w.learnerGradients.flatMap { $0 } + [w.teacher, w.maskedWeights]
                + w.headInputGradients
            for p in slices {
                XCTAssertEqual(Int(bitPattern: p) % 64, 0)
                ranges.append((Int(bitPattern: p), 16))
            }
        }
        let starts = ranges.map(\.0).sorted()
        XCTAssertEqual(Set(starts).count, starts.count, "no two slices share a start")
    }
}
