import XCTest
@testable import Funnel

/// Finite-difference checks of every layer's backward pass and of the full BASE and ESMM losses.
final class GradientCheckTests: XCTestCase {
    override func setUp() { BLAS.setThreads(1) }

    private func randomBuffer(_ n: Int, _ rng: inout RandomSource, scale: Double = 1) -> FloatBuffer {
        let b = FloatBuffer(count: n)
        for i in 0..<n { b[i] = Float(rng.normal() * scale) }
        return b
    }

    private func weightedSum(_ y: UnsafePointer<Float>, _ c: FloatBuffer) -> Double {
        var s = 0.0
        for i in 0..<c.count { s += Double(y[i]) * Double(c[i]) }
        return s
    }

    func testDenseLayer() {
        var rng = RandomSource(seed: 1)
        let batch = 5, inF = 7, outF = 4
        let layer = DenseLayer(name: "d", inFeatures: inF, outFeatures: outF, rng: &rng)
        let x = randomBuffer(batch * inF, &rng)
        let c = randomBuffer(batch * outF, &rng)
        let y = FloatBuffer(count: batch * outF)
        let dx = FloatBuffer(count: batch * inF)
        func loss() -> Double { layer.forward(x.base, batch: batch, into: y.base); return weightedSum(y.base, c) }
        _ = loss()
        layer.backward(x.base, dy: c.base, batch: batch, dx: dx.base)
        checkGradient(name: "W", values: layer.weight.value.base, count: layer.weight.count, analytic: { layer.weight.grad[$0] }, loss: loss)
        checkGradient(name: "b", values: layer.bias.value.base, count: layer.bias.count, analytic: { layer.bias.grad[$0] }, loss: loss)
        checkGradient(name: "x", values: x.base, count: x.count, analytic: { dx[$0] }, loss: loss)
    }

    func testDenseLayerAccumulatesInputGradient() {
        var rng = RandomSource(seed: 2)
        let layer = DenseLayer(name: "d", inFeatures: 3, outFeatures: 2, rng: &rng)
        let x = randomBuffer(6, &rng), dy = randomBuffer(4, &rng)
        let once = FloatBuffer(count: 6), twice = FloatBuffer(count: 6)
        layer.backward(x.base, dy: dy.base, batch: 2, dx: once.base)
        layer.backward(x.base, dy: dy.base, batch: 2, dx: twice.base)
        layer.backward(x.base, dy: dy.base, batch: 2, dx: twice.base, accumulateInputGradient: true)
        for i in 0..<6 { XCTAssertEqual(twice[i], 2 * once[i], accuracy: 1e-6) }
    }

    func testMLPWithReLU() {
        var rng = RandomSource(seed: 3)
        let batch = 6, inF = 5
        let mlp = MLP(name: "t", inputWidth: inF, hidden: [8, 4], maxBatch: batch, rng: &rng)
        let x = randomBuffer(batch * inF, &rng)
        let c = randomBuffer(batch, &rng)
        let dx = FloatBuffer(count: batch * inF)
        func loss() -> Double { weightedSum(mlp.forward(x.base, batch: batch), c) }
        _ = loss()
        mlp.backward(x.base, dLogits: c.base, batch: batch, dx: dx.base, accumulateInputGradient: false)
        for p in mlp.parameters {
            checkGradient(name: p.name, values: p.value.base, count: p.count, analytic: { p.grad[$0] }, loss: loss)
        }
        checkGradient(name: "x", values: x.base, count: x.count, analytic: { dx[$0] }, loss: loss)
    }

    func testReLUAndSigmoidPairs() {
        var rng = RandomSource(seed: 4)
        let n = 12
        let z = randomBuffer(n, &rng), c = randomBuffer(n, &rng)
        let y = FloatBuffer(count: n)
        // ReLU: d/dz Σ c·relu(z) = c·1[z > 0]
        func reluLoss() -> Double {
            y.base.update(from: z.base, count: n); ReLU.forward(y.base, count: n); return weightedSum(y.base, c)
        }
        _ = reluLoss()
        let dRelu = FloatBuffer(c.array)
        ReLU.backward(output: y.base, gradient: dRelu.base, count: n)
        checkGradient(name: "relu", values: z.base, count: n, analytic: { dRelu[$0] }, loss: reluLoss)
        // Sigmoid
        func sigLoss() -> Double { Sigmoid.forward(z.base, count: n, into: y.base); return weightedSum(y.base, c) }
        _ = sigLoss()
        let dz = FloatBuffer(count: n)
        Sigmoid.backward(output: y.base, dp: c.base, count: n, into: dz.base)
        checkGradient(name: "sigmoid", values: z.base, count: n, analytic: { dz[$0] }, loss: sigLoss)
    }

    func testMixtureOfExpertsAndSoftmax() {
        var rng = RandomSource(seed: 21)
        let batch = 5, inF = 6
        let moe = MixtureOfExperts(name: "m", inputWidth: inF, experts: 3, expertHidden: [4], gates: 2, maxBatch: batch,
                                   workers: 1, rng: &rng)
        let x = randomBuffer(batch * inF, &rng)
        let c0 = randomBuffer(batch * 4, &rng), c1 = randomBuffer(batch * 4, &rng)
        let dx = FloatBuffer(count: batch * inF)
        for useSecondGate in [true, false] {
            func loss() -> Double {
                moe.forward(x.base, batch: batch)
                return weightedSum(moe.output(gate: 0), c0) + (useSecondGate ? weightedSum(moe.output(gate: 1), c1) : 0)
            }
            _ = loss()
            moe.backward(x.base, dOutputs: [UnsafePointer(c0.base), useSecondGate ? UnsafePointer(c1.base) : nil], batch: batch,
                         dx: dx.base, accumulateInputGradient: false)
            for p in moe.parameters {
                checkGradient(name: "\(p.name) (second gate \(useSecondGate))", values: p.value.base, count: p.count,
                              analytic: { p.grad[$0] }, loss: loss)
            }
            checkGradient(name: "x", values: x.base, count: x.count, analytic: { dx[$0] }, loss: loss)
        }
        // Gate weights are a distribution over the experts.
        moe.forward(x.base, batch: batch)
        for b in 0..<batch {
            let w = moe.gateWeights(gate: 1) + b * 3
            XCTAssertEqual(Double(w[0] + w[1] + w[2]), 1, accuracy: 1e-6)
        }
    }

    func testProgressiveLayeredExtraction() {
        var rng = RandomSource(seed: 22)
        let batch = 4, inF = 5
        let ple = ProgressiveLayeredExtraction(name: "p", inputWidth: inF, tasks: 2, levels: 2, expertsPerTask: 2, sharedExperts: 1,
                                               expertHidden: [3], maxBatch: batch, workers: 1, rng: &rng)
        let x = randomBuffer(batch * inF, &rng)
        let c0 = randomBuffer(batch * 3, &rng), c1 = randomBuffer(batch * 3, &rng)
        let dx = FloatBuffer(count: batch * inF)
        for useSecond in [true, false] {
            func loss() -> Double {
                ple.forward(x.base, batch: batch)
                return weightedSum(ple.output(gate: 0), c0) + (useSecond ? weightedSum(ple.output(gate: 1), c1) : 0)
            }
            _ = loss()
            ple.backward(x.base, dOutputs: [UnsafePointer(c0.base), useSecond ? UnsafePointer(c1.base) : nil], batch: batch, dx: dx.base,
                         accumulateInputGradient: false)
            for p in ple.parameters {
                checkGradient(name: "\(p.name) (second task \(useSecond))", values: p.value.base, count: p.count,
                              analytic: { p.grad[$0] }, loss: loss)
            }
            checkGradient(name: "x", values: x.base, count: x.count, analytic: { dx[$0] }, loss: loss)
        }
    }

    func testLabelConstraint() {
        let n = 6
        let a = FloatBuffer([0.5, -1, 2, 0.1, -0.3, 1]), b = FloatBuffer([1.5, -2, 2.5, 0.3, 0.4, -1])
        let w = FloatBuffer([1, 2, 1, 1, 3, 1])
        let da = FloatBuffer(count: n), db = FloatBuffer(count: n)
        func loss() -> Double {
            da.zero(); db.zero()
            return LabelConstraint.forwardBackward(upper: a.base, lower: b.base, weights: w.base, count: n, alpha: 0.6,
                                                   normalizer: Double(n), dUpper: da.base, dLower: db.base)
        }
        var expected = 0.0
        for i in 0..<n {
            let pa = 1 / (1 + exp(-Double(a[i]))), pb = 1 / (1 + exp(-Double(b[i])))
            expected += Double(w[i]) * max(pb - pa, 0)
        }
        XCTAssertEqual(loss(), 0.6 * expected / Double(n), accuracy: 1e-9)
        let ga = FloatBuffer(da.array), gb = FloatBuffer(db.array)
        XCTAssertEqual(ga[1], 0, "no penalty where pCTCVR ≤ pCTR")
        checkGradient(name: "upper", values: a.base, count: n, analytic: { ga[$0] }, loss: loss)
        checkGradient(name: "lower", values: b.base, count: n, analytic: { gb[$0] }, loss: loss)
    }

    func testAdaptiveInformationTransfer() {
        var rng = RandomSource(seed: 23)
        let batch = 4, k = 5
        let ait = AdaptiveInformationTransfer(name: "ait", width: k, maxBatch: batch, workers: 1, rng: &rng)
        let q1 = randomBuffer(batch * k, &rng), q2 = randomBuffer(batch * k, &rng), c = randomBuffer(batch * k, &rng)
        let d1 = FloatBuffer(count: batch * k), d2 = FloatBuffer(count: batch * k)
        func loss() -> Double { weightedSum(ait.forward(previous: q1.base, current: q2.base, batch: batch, worker: 0), c) }
        _ = loss()
        ait.backward(dz: c.base, batch: batch, dPrevious: d1.base, dCurrent: d2.base, worker: 0)
        for p in ait.parameters {
            checkGradient(name: p.name, values: p.value.base, count: p.count, analytic: { p.grad[$0] }, loss: loss)
        }
        checkGradient(name: "q1", values: q1.base, count: q1.count, analytic: { d1[$0] }, loss: loss)
        checkGradient(name: "q2", values: q2.base, count: q2.count, analytic: { d2[$0] }, loss: loss)
    }

    /// DCN-v2's cross layers, full rank and low rank, two layers deep: every parameter and x₀
    /// (which each layer reads twice: through the residual chain and the cross).
    func testCrossNetwork() {
        for rank in [nil, 2] as [Int?] {
            var rng = RandomSource(seed: 29)
            let batch = 4, d = 6
            let cross = CrossNetwork(name: "cross", width: d, layers: 2, rank: rank, maxBatch: batch, workers: 1, rng: &rng)
            let x0 = randomBuffer(batch * d, &rng), c = randomBuffer(batch * d, &rng), dx0 = FloatBuffer(count: batch * d)
            func loss() -> Double { weightedSum(cross.forward(x0.base, batch: batch, worker: 0), c) }
            _ = loss()
            cross.backward(dy: c.base, batch: batch, worker: 0, dx0: dx0.base, accumulate: false)
            XCTAssertEqual(cross.parameters.count, rank == nil ? 4 : 6)
            for p in cross.parameters {
                checkGradient(name: "\(p.name) rank \(rank.map(String.init) ?? "full")", values: p.value.base, count: p.count,
                              analytic: { p.grad[$0] }, loss: loss)
            }
            checkGradient(name: "x0", values: x0.base, count: x0.count, analytic: { dx0[$0] }, loss: loss)
        }
    }

    /// DIN's target attention, unnormalised and softmax: the activation unit's parameters, every
    /// value embedding and every query, with value weights and an empty bag among the bags.
    func testTargetAttention() {
        for normalize in [false, true] {
            var rng = RandomSource(seed: 31)
            let d = 3, offsets: [Int32] = [0, 2, 2, 5, 6], bagCount = 4, values = 6
            let unit = TargetAttention(name: "att", dim: d, hiddenUnits: 5, normalize: normalize, maxValues: values, workers: 1, rng: &rng)
            let e = randomBuffer(values * d, &rng), q = randomBuffer(bagCount * d, &rng), c = randomBuffer(bagCount * d, &rng)
            let w = FloatBuffer([1, 2, 0.5, 1, 3, 1.5])
            let out = FloatBuffer(count: bagCount * d), de = FloatBuffer(count: values * d), dq = FloatBuffer(count: bagCount * d)
            offsets.withUnsafeBufferPointer { o in
                let bags = TargetAttention.Bags(count: bagCount, offsets: o.baseAddress!, values: e.base, queries: q.base, weights: w.base)
                func loss() -> Double { unit.forward(bags, out: out.base, outStride: d, worker: 0); return weightedSum(out.base, c) }
                _ = loss()
                XCTAssertEqual((0..<d).map { out[d + $0] }, [0, 0, 0], "an empty bag pools to zeros")
                unit.backward(bags, dOut: c.base, outStride: d, worker: 0, dValues: de.base, dQueries: dq.base)
                let label = normalize ? "softmax" : "unnormalised"
                for p in unit.parameters {
                    if normalize && p === unit.score.bias {
                        // The softmax is shift-invariant: the score's bias has no effect, its gradient is 0 up to rounding.
                        XCTAssertEqual(p.grad[0], 0, accuracy: 1e-4)
                        continue
                    }
                    checkGradient(name: "\(label) \(p.name)", values: p.value.base, count: p.count, analytic: { p.grad[$0] }, loss: loss)
                }
                checkGradient(name: "\(label) values", values: e.base, count: e.count, analytic: { de[$0] }, loss: loss)
                checkGradient(name: "\(label) queries", values: q.base, count: q.count, analytic: { dq[$0] }, loss: loss)
            }
        }
    }

    func testEmbeddingSparseBackward() {
        var rng = RandomSource(seed: 5)
        let fields = 3, dim = 4, dense = 2, batch = 5, rows = 30
        let emb = EmbeddingLayer(name: "e", rows: rows, fields: fields, dim: dim, denseCount: dense, maxBatch: batch, rng: &rng)
        // Row 7 repeats across rows and fields, so accumulation is exercised.
        var ids: [Int32] = [7, 12, 21, 3, 7, 25, 7, 14, 29, 0, 12, 7, 5, 19, 7]
        let denseIn = randomBuffer(batch * dense, &rng)
        let out = FloatBuffer(count: batch * emb.outputWidth)
        let c = randomBuffer(batch * emb.outputWidth, &rng)
        func loss() -> Double {
            ids.withUnsafeBufferPointer { emb.forward(ids: $0.baseAddress!, dense: denseIn.base, batch: batch, into: out.base) }
            return weightedSum(out.base, c)
        }
        _ = loss()
        ids.withUnsafeMutableBufferPointer { emb.backward(ids: $0.baseAddress!, dOut: c.base, batch: batch) }
        let touched = emb.table.touchedRows
        XCTAssertEqual(Set(touched).count, touched.count, "each touched row appears once")
        XCTAssertEqual(Set(touched), Set(ids))
        func analytic(_ i: Int) -> Float {
            guard let slot = touched.firstIndex(of: Int32(i / dim)) else { return 0 }
            return emb.table.rowGradients[slot * dim + i % dim]
        }
        checkGradient(name: "table", values: emb.table.value.base, count: emb.table.count, analytic: analytic,
                      samples: rows * dim, loss: loss)
    }

    func testLogitCrossEntropyWithWeights() {
        var rng = RandomSource(seed: 6)
        let n = 10
        let z = randomBuffer(n, &rng, scale: 2)
        let y = FloatBuffer((0..<n).map { Float($0 % 3 == 0 ? 1 : 0) })
        let w = FloatBuffer((0..<n).map { Float(0.5 + Double($0) / 4) })
        let dz = FloatBuffer(count: n)
        func loss() -> Double {
            LogitCrossEntropy.forwardBackward(logits: z.base, labels: y.base, weights: w.base, count: n, normalizer: Double(n), dLogits: dz.base)
        }
        // Value: −Σ w[y log σ(z) + (1−y) log(1−σ(z))]/n by the textbook formula.
        var expected = 0.0
        for i in 0..<n {
            let p = 1 / (1 + exp(-Double(z[i])))
            expected -= Double(w[i]) * (Double(y[i]) * log(p) + (1 - Double(y[i])) * log(1 - p))
        }
        XCTAssertEqual(loss(), expected / Double(n), accuracy: 1e-9)
        let analytic = FloatBuffer(dz.array)
        checkGradient(name: "dz", values: z.base, count: n, analytic: { analytic[$0] }, loss: loss)
    }

    func testProductCrossEntropy() {
        var rng = RandomSource(seed: 7)
        let n = 10
        let a = randomBuffer(n, &rng, scale: 2), b = randomBuffer(n, &rng, scale: 2)
        let y = FloatBuffer((0..<n).map { Float($0 % 4 == 0 ? 1 : 0) })
        let w = FloatBuffer((0..<n).map { Float(1 + Double($0 % 3)) })
        let da = FloatBuffer(count: n), db = FloatBuffer(count: n)
        func loss() -> Double {
            ProductCrossEntropy.forwardBackward(logitsA: a.base, logitsB: b.base, labels: y.base, weights: w.base,
                                                count: n, normalizer: Double(n), dA: da.base, dB: db.base)
        }
        var expected = 0.0
        for i in 0..<n {
            let p = 1 / (1 + exp(-Double(a[i]))) / (1 + exp(-Double(b[i])))
            expected -= Double(w[i]) * (Double(y[i]) * log(p) + (1 - Double(y[i])) * log(1 - p))
        }
        XCTAssertEqual(loss(), expected / Double(n), accuracy: 1e-7)
        let ga = FloatBuffer(da.array), gb = FloatBuffer(db.array)
        checkGradient(name: "da", values: a.base, count: n, analytic: { ga[$0] }, loss: loss)
        checkGradient(name: "db", values: b.base, count: n, analytic: { gb[$0] }, loss: loss)
    }

    /// The whole network: every parameter of the stage, through embedding, (bottom,) towers and
    /// loss, with non-uniform sample weights.
    private func checkNetwork(kind: ModelKind, objective: Objective, trunk: TrunkKind = .esmm, clickedOnly: Bool = false,
                              bag: BagPooling? = nil, cross: (layers: Int, rank: Int?)? = nil, normalizeAttention: Bool = false,
                              file: StaticString = #filePath, line: UInt = #line) {
        var config = ModelConfig(kind: kind)
        config.embeddingDim = 3
        config.trunk = trunk
        if let cross { (config.crossLayers, config.crossRank) = (cross.layers, cross.rank) }
        // --arch dcn's default 3 layers at this tiny width put a tower's ReLU on a kink: 2 (low rank 2).
        if trunk == .dcn && cross == nil { (config.crossLayers, config.crossRank) = (2, 2) }
        config.hidden = trunk == .esmm ? [6, 4] : [4]
        config.bottom = trunk == .sharedBottom ? [6, 5] : []
        config.experts = 2
        config.expertHidden = [5]
        config.batchSize = 8
        config.seed = 11
        var data = randomDataset(rows: 40, fields: 3, vocab: 5, dense: 2, seed: 12, clickRate: clickedOnly ? 1 : 0.5)
        if let bag {
            config.pooling = bag
            if bag == .attention { (config.attentionHidden, config.attentionNormalize) = (4, normalizeAttention) }
            data = withBag(data, field: 1, vocab: 5, seed: 14)
        }
        // Attention pools field 1's list with field 0's embedding as the query.
        let net = FunnelNetwork(config: config, embeddingRows: 15, fields: 3, denseCount: 2, bagFields: bag == nil ? [] : [1],
                                maxBagValues: bag == nil ? 0 : 3, attention: bag == .attention ? [1: 0] : [:])
        if bag == .attention {
            // At the table's N(0, 0.05) the attention's own gradients (∝ e·q) sit below a Float
            // difference's noise: O(1) embeddings make them measurable.
            for e in net.embeddings { for i in 0..<e.table.count { e.table.value[i] *= 15 } }
        }
        let batch = Batch(capacity: 8, fields: 3, denseCount: 2)
        let rows: [Int32] = [0, 3, 5, 9, 14, 22, 30, 39]
        var weights = [Float](repeating: 1, count: 40)
        for (k, r) in rows.enumerated() { weights[Int(r)] = 0.5 + Float(k % 3) }
        rows.withUnsafeBufferPointer { batch.fill(from: data, rows: $0, rowWeights: weights) }
        let reported = net.computeGradients(batch, objective: objective)
        XCTAssertEqual(reported, net.loss(batch, objective: objective), accuracy: 1e-5, file: file, line: line)
        let params = net.parameters(for: objective)
        XCTAssertFalse(params.isEmpty)
        for p in params {
            if bag == .attention && normalizeAttention && p.name.hasSuffix("attention.1.score.bias") {
                XCTAssertEqual(p.grad[0], 0, accuracy: 1e-5, "a softmax ignores its scores' common shift", file: file, line: line)
                continue
            }
            if p.isSparse {
                let touched = p.touchedRows, dim = p.rowWidth
                checkGradient(name: "\(kind.rawValue)/\(objective.rawValue)/\(p.name)", values: p.value.base, count: p.count, analytic: { i in
                    guard let s = touched.firstIndex(of: Int32(i / dim)) else { return 0 }
                    return p.rowGradients[s * dim + i % dim]
                }, samples: p.count, loss: { net.loss(batch, objective: objective) }, file: file, line: line)
            } else {
                checkGradient(name: "\(kind.rawValue)/\(objective.rawValue)/\(p.name)", values: p.value.base, count: p.count,
                              analytic: { p.grad[$0] }, loss: { net.loss(batch, objective: objective) }, file: file, line: line)
            }
        }
    }

    func testESMMLossGradient() { checkNetwork(kind: .esmm, objective: .entireSpace) }
    func testBaseCTRLossGradient() { checkNetwork(kind: .base, objective: .ctr) }
    func testBaseCVRLossGradient() { checkNetwork(kind: .base, objective: .cvr, clickedOnly: true) }

    /// Every stage of every model of the family, on both trunks.
    func testEveryModelStageGradient() {
        for kind in ModelKind.allCases {
            for stage in Architecture.of(kind).stages {
                for trunk in TrunkKind.allCases {
                    checkNetwork(kind: kind, objective: stage.objective, trunk: trunk, clickedOnly: stage.space != .all)
                }
            }
        }
    }

    /// DIN attention pooling (unnormalised and softmax) in every model's network, on its own
    /// trunk and on MMoE: the table (values and queries), the activation units, everything above.
    func testEveryModelWithAttentionPooling() {
        for (k, kind) in ModelKind.allCases.enumerated() {
            for stage in Architecture.of(kind).stages {
                for trunk in [kind.requiredTrunk ?? .esmm, .dcn] where kind.requiredTrunk == nil || trunk == kind.requiredTrunk {
                    checkNetwork(kind: kind, objective: stage.objective, trunk: trunk, clickedOnly: stage.space != .all, bag: .attention,
                                 normalizeAttention: k % 2 == 0)
                }
            }
        }
    }

    /// DCN-v2 cross layers (full and low rank) under every trunk's body, for one- and two-trunk
    /// models, AITM's transfer and TAML's learners: the crosses' parameters and, through them,
    /// the embeddings.
    func testCrossLayersUnderEveryTrunk() {
        for (k, trunk) in TrunkKind.allCases.enumerated() {
            for kind in [ModelKind.esmm, .esmmNS, .aitm, .taml] where kind.requiredTrunk == nil || kind.requiredTrunk == trunk {
                let objective = Architecture.of(kind).stages.last!.objective
                checkNetwork(kind: kind, objective: objective, trunk: kind.requiredTrunk ?? trunk, cross: (2, k % 2 == 0 ? nil : 2))
            }
        }
    }

    /// Every stage of every model with a multi-valued field (weighted sum and weighted mean
    /// pooling): the embedding table's gradient includes the pooled values' shares.
    func testEveryModelWithAMultiValuedField() {
        for (k, kind) in ModelKind.allCases.enumerated() {
            for stage in Architecture.of(kind).stages {
                for trunk in [TrunkKind.esmm, kind.requiredTrunk ?? .mmoe] {
                    checkNetwork(kind: kind, objective: stage.objective, trunk: trunk, clickedOnly: stage.space != .all,
                                 bag: k % 2 == 0 ? .sum : .mean)
                }
            }
        }
    }

    func testAblationSwitchesMatchTheTable() {
        // esmm-ablation Table 1: shared parameters, entire space, weighted CVR.
        let expected: [ModelKind: (Bool, Bool, Bool)] = [
            .ip: (false, false, false), .esmm: (true, true, true), .esmmNS: (false, true, true),
            .esspSplit: (true, true, false), .ipsp: (true, false, false), .esp: (false, true, false),
        ]
        for (kind, (shared, entire, weighted)) in expected {
            let a = Architecture.of(kind)
            XCTAssertEqual(a.sharedParameters, shared, kind.rawValue)
            XCTAssertEqual(a.entireSpace, entire, kind.rawValue)
            XCTAssertEqual(a.weightedCVR, weighted, kind.rawValue)
        }
    }

    /// Gradients are a function of the batch alone: nothing leaks from the previous step.
    /// Every model's every stage: the same batch after another gives the same gradients — no
    /// logit gradient buffer is added to without being written first in a step.
    func testGradientsDoNotCarryOverBetweenSteps() {
        let cases = ModelKind.allCases.flatMap { kind in Architecture.of(kind).stages.map { (kind, $0.objective) } }
        for (kind, objective) in cases {
            var config = ModelConfig(kind: kind)
            config.embeddingDim = 3; config.hidden = [5]; config.batchSize = 6
            let data = randomDataset(rows: 12, fields: 2, vocab: 4, dense: 1, seed: 2, clickRate: 0.7)
            let net = FunnelNetwork(config: config, embeddingRows: 8, fields: 2, denseCount: 1)
            let batch = Batch(capacity: 6, fields: 2, denseCount: 1)
            func grads() -> [[Float]] {
                net.computeGradients(batch, objective: objective)
                return net.parameters(for: objective).map { $0.isSparse ? Array($0.rowGradients.array.prefix($0.touchedRows.count * $0.rowWidth)) : $0.grad.array }
            }
            [Int32](0..<6).withUnsafeBufferPointer { batch.fill(from: data, rows: $0) }
            let first = grads()
            [Int32](6..<12).withUnsafeBufferPointer { batch.fill(from: data, rows: $0) }
            _ = grads()
            [Int32](0..<6).withUnsafeBufferPointer { batch.fill(from: data, rows: $0) }
            XCTAssertEqual(grads(), first, "\(kind) \(objective)")
        }
    }


    func testBaseStagesTouchOnlyTheirOwnNetwork() {
        var config = ModelConfig(kind: .base)
        config.hidden = [4]
        let net = FunnelNetwork(config: config, embeddingRows: 10, fields: 2, denseCount: 0)
        let ctr = Set(net.parameters(for: .ctr).map(\.name))
        let cvr = Set(net.parameters(for: .cvr).map(\.name))
        XCTAssertTrue(ctr.isDisjoint(with: cvr))
        XCTAssertTrue(ctr.allSatisfy { $0.hasPrefix("ctr.") })
        XCTAssertTrue(cvr.allSatisfy { $0.hasPrefix("cvr.") })
        let esmm = FunnelNetwork(config: ModelConfig(kind: .esmm), embeddingRows: 10, fields: 2, denseCount: 0)
        XCTAssertEqual(esmm.embeddings.count, 1, "ESMM shares one embedding dictionary")
    }
}
