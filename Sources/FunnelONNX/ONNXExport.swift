import Foundation
import Funnel
import SwiftProtobuf

/// `funnel export --format onnx`: a trained model as one self-contained ONNX graph — raw ids and
/// raw dense values in, `pctr`, `pcvr`, `pctcvr` out, exactly as `funnel predict` computes them.
///
/// Inputs, one per column of the training file, named as the column, batch dimension `N`:
/// - a single-valued categorical field: `int64 [N]` when every value of its vocabulary is an
///   integer, else `string [N]` (the value's text); the vocabulary lookup is inside the graph
///   (`ai.onnx.ml` `LabelEncoder`, unseen or missing → the field's out-of-vocabulary row), then
///   the field's offset into the shared table;
/// - a dense column: `float [N]`, NaN for an empty cell; standardised inside the graph with the
///   training mean and standard deviation, NaN → 0 (the training mean);
/// - a multi-valued field: its values (`int64`/`string [V]`, every row's values back to back),
///   `<field>.offsets` (`int64 [N + 1]`, row r's values are `offsets[r] ..< offsets[r+1]`) and
///   `<field>.weights` (`float [V]`); pooled inside the graph as training pooled them (weighted
///   sum or mean; a matrix of row membership × weights times the gathered rows).
/// Outputs `pctr`, `pcvr`, `pctcvr`: `float [N]`; an output the model does not define (ESP's
/// pCTR and pCVR) is NaN, as `funnel predict` prints it.
///
/// Weights are initializers; the model metadata carries Funnel's model name, the export format
/// version and the weights checksum. The protobuf is written by swift-protobuf from ONNX's own
/// `onnx.proto` (`scripts/generate-onnx-proto.sh`).
public enum ONNXExport {
    /// Version of the graph's contract (inputs, outputs, metadata), in `funnel.export_format_version`.
    public static let formatVersion = 1
    public static let defaultOpset = 17
    public static let opsets = 13...21

    /// Exports the model directory at `path` (the bytes of a `.onnx` file).
    public static func export(modelAt path: String, opset: Int = defaultOpset) throws -> Data {
        let model = try TrainedModel.load(from: path)
        return try export(model, opset: opset)
    }

    public static func export(_ model: TrainedModel, opset: Int = defaultOpset) throws -> Data {
        guard opsets.contains(opset) else {
            throw FunnelError("ONNX opset \(opset) is not supported (use \(opsets.lowerBound)…\(opsets.upperBound); default \(defaultOpset))")
        }
        let schema = model.schema
        if let hashed = schema.fields.first(where: { $0.hashBuckets != nil }) {
            throw FunnelError("field \(hashed.name) is hashed into \(hashed.hashBuckets!) buckets (--hash-buckets); the ONNX export "
                              + "carries vocabularies only (ONNX has no 64-bit integer hash to reproduce the bucket), so this model cannot be exported")
        }
        let graph = NetworkGraph(model: model, builder: ONNXGraphBuilder(name: "funnel_" + model.config.kind.rawValue))
        try graph.build()
        var m = Onnx_ModelProto()
        m.irVersion = opset <= 18 ? 8 : opset <= 20 ? 9 : 10
        m.producerName = "funnel"
        m.producerVersion = "\(formatVersion)"
        m.docString = "Funnel \(model.config.kind.rawValue): raw ids and dense values in, pctr/pcvr/pctcvr out"
        var core = Onnx_OperatorSetIdProto()
        core.domain = ""
        core.version = Int64(opset)
        var ml = Onnx_OperatorSetIdProto()
        ml.domain = "ai.onnx.ml"
        ml.version = 3
        m.opsetImport = [core, ml]
        m.graph = graph.builder.graph
        m.metadataProps = [
            ("funnel.model", model.config.kind.rawValue),
            ("funnel.export_format_version", "\(formatVersion)"),
            ("funnel.weights_checksum", model.manifest.weightsChecksum),
            ("funnel.trunk", model.config.trunk.rawValue),
        ].map { k, v in
            var e = Onnx_StringStringEntryProto()
            e.key = k
            e.value = v
            return e
        }
        return try m.serializedData()
    }
}

/// Walks a `FunnelNetwork` and emits its forward pass, the ONNX twin of
/// `FunnelNetwork.forward` / `predict` (same layers, same routing of heads, trunks and gates).
private final class NetworkGraph {
    let model: TrainedModel
    let builder: ONNXGraphBuilder
    var network: FunnelNetwork { model.network }
    private let batch = ONNXGraphBuilder.Dimension.named("N")
    /// Per trunk: the embedding layer's output, the body's output, and gated trunks' per-gate outputs.
    private var trunkInputs: [Int: String] = [:]
    private var trunkOutputs: [Int: String] = [:]
    private var expertOutputs: [String: String] = [:]
    private var gateOutputs: [String: String] = [:]
    /// Per categorical field: the embedding-table row ids `int64 [N]` (single-valued), or the
    /// pooling matrix and gathered rows (multi-valued).
    private var fieldIDs: [String] = []

    init(model: TrainedModel, builder: ONNXGraphBuilder) {
        self.model = model
        self.builder = builder
    }

    private typealias B = ONNXGraphBuilder

    func build() throws {
        let schema = model.schema
        let bagNames = Set(schema.layout.multiValued)
        // Inputs in the training file's column order (categorical, then dense).
        for vocab in schema.fields {
            let type: B.ElementType = Self.isIntegerVocabulary(vocab) ? .int64 : .string
            if bagNames.contains(vocab.name) {
                builder.input(vocab.name, type, [.named("V_" + vocab.name)])
                builder.input(vocab.name + ".offsets", .int64, [.named("N+1")])
                builder.input(vocab.name + ".weights", .float, [.named("V_" + vocab.name)])
            } else {
                builder.input(vocab.name, type, [batch])
            }
        }
        for d in schema.dense { builder.input(d.name, .float, [batch]) }
        let heads = network.predictedHeads
        var logits: [FunnelNetwork.Head: String] = [:]
        if network.transfer != nil {
            logits = transferLogits()
        } else {
            for h in heads { logits[h] = headLogit(h) }
        }
        try outputs(logits)
    }

    static func isIntegerVocabulary(_ v: FieldVocabulary) -> Bool { v.values.allSatisfy { Int64($0) != nil } }

    // MARK: Input layer

    /// Row ids (`int64 [n]`) of a field's raw values: vocabulary lookup (unseen → 0), plus the
    /// field's offset into the shared table.
    private func rowIDs(_ k: Int, values: String) -> String {
        let vocab = model.schema.fields[k], offset = Int64(model.schema.fieldOffsets[k])
        let ids = vocab.values.indices.map { Int64($0 + 1) }
        var attributes = [B.attribute("values_int64s", ints: ids), B.attribute("default_int64", int: 0)]
        if Self.isIntegerVocabulary(vocab) {
            attributes.append(B.attribute("keys_int64s", ints: vocab.values.map { CategoryKey.of($0) }))
        } else {
            attributes.append(B.attribute("keys_strings", strings: vocab.values))
        }
        // A field with no kept value (every value rarer than --min-count) maps every row to its
        // out-of-vocabulary row: zeros shaped like the input, whatever its element type.
        let local = vocab.values.isEmpty
            ? builder.op("ConstantOfShape", builder.op("Shape", values), attributes: [B.attribute("value", tensor: builder.int64Tensor([0]))])
            : builder.op("LabelEncoder", values, hint: "ids_" + vocab.name, domain: "ai.onnx.ml", attributes: attributes)
        return builder.op("Add", local, builder.constant(int64s: [offset]), hint: "rows_" + vocab.name)
    }

    /// The embedding layer's output `[N × (fields·dim + dense)]` of trunk `t`.
    private func embeddingOutput(_ t: Int) -> String {
        if let done = trunkInputs[t] { return done }
        let layer = network.embeddings[t]
        let schema = model.schema
        let table = builder.weights(layer.table.name, layer.table.value.array, dims: [layer.rows, layer.dim])
        var columns: [String] = []
        let bagNames = Set(schema.layout.multiValued)
        for (k, vocab) in schema.fields.enumerated() {
            if let attended = layer.attentionPool(of: k) {
                columns.append(attendedBag(k, query: attended.query, unit: attended.unit, table: table, layer: layer))
            } else if bagNames.contains(vocab.name) {
                columns.append(pooledBag(k, table: table, layer: layer))
            } else {
                let rows = rowIDs(k, values: vocab.name)
                columns.append(builder.op("Gather", table, rows, hint: "emb_" + vocab.name, attributes: [B.attribute("axis", int: 0)]))
            }
        }
        for (k, d) in schema.dense.enumerated() {
            // Funnel: (v − mean) · (1/std) in double, NaN → 0; here in float (within 1e-6 relative).
            let x = d.name
            let scaled = builder.op("Mul", builder.op("Sub", x, builder.constant([Float(d.mean)], dims: [1])),
                                    builder.constant([Float(1 / d.std)], dims: [1]))
            let clean = builder.op("Where", builder.op("IsNaN", x), builder.constant([0], dims: [1]), scaled, hint: "dense_\(k)")
            columns.append(builder.op("Unsqueeze", clean, builder.constant(int64s: [1])))
        }
        let out = columns.count == 1 ? columns[0]
            : builder.node("Concat", columns, hint: "embedding_\(t)", attributes: [B.attribute("axis", int: 1)])[0]
        trunkInputs[t] = out
        return out
    }

    /// What trunk `t`'s body reads: `FunnelNetwork.bodyInput` — the embedding output through the
    /// DCN-v2 cross layers when the model has them, x_{l+1} = x₀ ⊙ (W_l·x_l + b_l) + x_l
    /// (low rank: W_l·x_l = U_l(V_lᵀ·x_l), a Gemm without bias, then U_l's).
    private func bodyInput(_ t: Int) -> String {
        let x0 = embeddingOutput(t)
        guard let cross = network.crosses[t] else { return x0 }
        var x = x0
        for l in 0..<cross.layerCount {
            var projected = x
            if let r = cross.rank {
                let v = cross.projections[l]
                let vt = builder.weights(v.name, v.value.array, dims: [r, cross.width])
                projected = builder.node("Gemm", [x, vt], hint: v.name, attributes: [B.attribute("transB", int: 1)])[0]
            }
            let u = dense(cross.mixes[l], projected)
            x = builder.op("Add", builder.op("Mul", x0, u), x, hint: "cross_\(t)_\(l)")
        }
        return x
    }

    /// [N × V]: entry (r, j) is 1 where value j belongs to row r (offsets[r] ≤ j < offsets[r+1]).
    private func membership(_ name: String) -> String {
        let offsets = name + ".offsets"
        let count = builder.op("Shape", name)  // [V]
        let positions = builder.op("Range", builder.constant(int64s: [0]).asScalar(builder), builder.op("Squeeze", count, builder.constant(int64s: [0])),
                                   builder.constant(int64s: [1]).asScalar(builder))
        let starts = builder.node("Slice", [offsets, builder.constant(int64s: [0]), builder.constant(int64s: [-1])])[0]
        let ends = builder.node("Slice", [offsets, builder.constant(int64s: [1]), builder.constant(int64s: [Int64.max])])[0]
        let j = builder.op("Unsqueeze", positions, builder.constant(int64s: [0]))  // [1 × V]
        return builder.op("And", builder.op("GreaterOrEqual", j, builder.op("Unsqueeze", starts, builder.constant(int64s: [1]))),
                          builder.op("Less", j, builder.op("Unsqueeze", ends, builder.constant(int64s: [1]))))
    }

    /// A multi-valued field pooled by DIN's target attention (`TargetAttention`): each value's
    /// query is its row's candidate embedding (membershipᵀ·Q), z = [e, q, e − q, e ⊙ q], the
    /// activation unit's score s, the weights s (or a masked softmax of s per row, a row
    /// without values pooling to zeros) times the value weights, then W · E `[N × dim]`.
    private func attendedBag(_ k: Int, query q: Int, unit: TargetAttention, table: String, layer: EmbeddingLayer) -> String {
        let name = model.schema.fields[k].name, queryName = model.schema.fields[q].name
        let e = builder.op("Gather", table, rowIDs(k, values: name), attributes: [B.attribute("axis", int: 0)])  // [V × d]
        let query = builder.op("Gather", table, rowIDs(q, values: queryName), attributes: [B.attribute("axis", int: 0)])  // [N × d]
        let inside = membership(name)
        let member = builder.op("Cast", inside, attributes: [B.attribute("to", int: Int(B.ElementType.float.rawValue))])  // [N × V]
        let qv = builder.node("Gemm", [member, query], attributes: [B.attribute("transA", int: 1)])[0]  // [V × d]
        let z = builder.node("Concat", [e, qv, builder.op("Sub", e, qv), builder.op("Mul", e, qv)], attributes: [B.attribute("axis", int: 1)])[0]
        let s = dense(unit.score, builder.op("Relu", dense(unit.hidden, z)))  // [V × 1]
        let scores = builder.op("Transpose", s, attributes: [B.attribute("perm", ints: [1, 0])])  // [1 × V]
        var w: String
        if unit.normalize {
            let masked = builder.op("Where", inside, scores, builder.constant([-Float.infinity], dims: [1]))
            w = builder.op("Where", inside, builder.op("Softmax", masked, attributes: [B.attribute("axis", int: 1)]), builder.constant([0], dims: [1]))
        } else {
            w = builder.op("Mul", member, scores)
        }
        if !layer.bag.ignoreValues { w = builder.op("Mul", w, builder.op("Unsqueeze", name + ".weights", builder.constant(int64s: [0]))) }
        return builder.op("MatMul", w, e, hint: "attended_" + name)
    }

    /// A multi-valued field pooled per row: W[r, j] = [offsets[r] ≤ j < offsets[r+1]] · wⱼ (divided
    /// by the row's weight sum under mean pooling; a row whose weights sum to 0 pools to zeros),
    /// then W · table[ids] `[N × dim]`.
    private func pooledBag(_ k: Int, table: String, layer: EmbeddingLayer) -> String {
        let name = model.schema.fields[k].name
        let rows = builder.op("Gather", table, rowIDs(k, values: name), attributes: [B.attribute("axis", int: 0)])  // [V × dim]
        var w = builder.op("Cast", membership(name), attributes: [B.attribute("to", int: Int(B.ElementType.float.rawValue))])  // [N × V]
        if !layer.bag.ignoreValues {
            w = builder.op("Mul", w, builder.op("Unsqueeze", name + ".weights", builder.constant(int64s: [0])))
        }
        if layer.bag.pooling == .mean {
            let total = builder.node("ReduceSum", [w, builder.constant(int64s: [1])], attributes: [B.attribute("keepdims", int: 1)])[0]
            let zero = builder.op("Equal", total, builder.constant([0], dims: [1]))
            let safe = builder.op("Where", zero, builder.constant([1], dims: [1]), total)
            w = builder.op("Where", zero, builder.constant([0], dims: [1]), builder.op("Div", w, safe))
        }
        return builder.op("MatMul", w, rows, hint: "pooled_" + name)
    }

    // MARK: Layers

    private func dense(_ layer: DenseLayer, _ x: String) -> String {
        let w = builder.weights(layer.weight.name, layer.weight.value.array, dims: [layer.outFeatures, layer.inFeatures])
        let b = builder.weights(layer.bias.name, layer.bias.value.array, dims: [layer.outFeatures])
        return builder.node("Gemm", [x, w, b], hint: layer.weight.name.replacingOccurrences(of: ".weight", with: ""),
                            attributes: [B.attribute("transB", int: 1)])[0]
    }

    private func mlp(_ m: MLP, _ x: String) -> String {
        var y = x
        for (i, layer) in m.layers.enumerated() {
            y = dense(layer, y)
            if i < m.layers.count - 1 || m.activatesLast { y = builder.op("Relu", y) }
        }
        return y
    }

    /// Σⱼ softmax(gate logits)ⱼ · expertⱼ: `GatedSum.forward`.
    private func gatedSum(_ experts: [String], logits: String) -> String {
        let p = builder.op("Softmax", logits, attributes: [B.attribute("axis", int: -1)])
        let axis1 = builder.constant(int64s: [1])
        let stacked = builder.node("Concat", experts.map { builder.op("Unsqueeze", $0, axis1) },
                                   attributes: [B.attribute("axis", int: 1)])[0]  // [N × K × H]
        let mixed = builder.op("MatMul", builder.op("Unsqueeze", p, axis1), stacked)  // [N × 1 × H]
        return builder.op("Squeeze", mixed, axis1, hint: "mixture")
    }

    private func expert(_ key: String, _ m: MLP, _ x: String) -> String {
        if let done = expertOutputs[key] { return done }
        let y = mlp(m, x)
        expertOutputs[key] = y
        return y
    }

    /// Trunk `t`'s output (the heads' input when not gated).
    private func trunkOutput(_ t: Int) -> String {
        if let done = trunkOutputs[t] { return done }
        let x = bodyInput(t)
        let y: String
        switch network.bodies[t] {
        case .identity, .gated: y = x
        case .dense(let bottom): y = mlp(bottom, x)
        }
        trunkOutputs[t] = y
        return y
    }

    /// What head `h`'s learner `l` reads: `FunnelNetwork.headInput`.
    private func headInput(_ h: FunnelNetwork.Head, learner l: Int) -> String {
        let t = network.trunk(of: h)
        guard case .gated(let mixture) = network.bodies[t] else { return trunkOutput(t) }
        let g = network.gate(of: h, learner: l)
        let key = "\(t).\(g)"
        if let done = gateOutputs[key] { return done }
        let x = bodyInput(t)
        let out: String
        switch mixture {
        case let moe as MixtureOfExperts:
            let experts = moe.gateExperts[g].map { expert("\(t).moe.\($0)", moe.experts[$0], x) }
            out = gatedSum(experts, logits: dense(moe.gates[g], x))
        case let ple as ProgressiveLayeredExtraction:
            out = pleOutput(ple, trunk: t, task: g, x: x)
        default:
            fatalError("a gated trunk the ONNX export does not know: \(type(of: mixture))")
        }
        gateOutputs[key] = out
        return out
    }

    /// PLE's top-level output of `task`: `ProgressiveLayeredExtraction.forward`, level by level.
    private func pleOutput(_ ple: ProgressiveLayeredExtraction, trunk t: Int, task: Int, x: String) -> String {
        let key = "\(t).ple"
        if gateOutputs[key + ".done"] == nil {
            var taskIn = [String](repeating: x, count: ple.tasks), sharedIn = x
            for (l, lv) in ple.levels.enumerated() {
                let shared = lv.sharedExperts.enumerated().map { expert("\(t).ple.\(l).shared.\($0.offset)", $0.element, sharedIn) }
                var all: [String] = []
                var nextTask: [String] = []
                for k in 0..<ple.tasks {
                    let own = lv.taskExperts[k].enumerated().map { expert("\(t).ple.\(l).task\(k).\($0.offset)", $0.element, taskIn[k]) }
                    all += own
                    nextTask.append(gatedSum(own + shared, logits: dense(lv.taskGates[k], taskIn[k])))
                }
                if let sg = lv.sharedGate { sharedIn = gatedSum(all + shared, logits: dense(sg, sharedIn)) }
                taskIn = nextTask
            }
            for k in 0..<ple.tasks { gateOutputs["\(key).task\(k)"] = taskIn[k] }
            gateOutputs[key + ".done"] = ""
        }
        return gateOutputs["\(key).task\(task)"]!
    }

    // MARK: Heads and outputs

    /// Head `h`'s logit `[N × 1]`: its learner, or the mean of its learners' logits.
    private func headLogit(_ h: FunnelNetwork.Head) -> String {
        let learners = network.learners(h)
        let logits = learners.enumerated().map { l, m in mlp(m, headInput(h, learner: l)) }
        guard logits.count > 1 else { return logits[0] }
        let sum = builder.node("Sum", logits)[0]
        return builder.op("Mul", sum, builder.constant([1 / Float(logits.count)], dims: [1]), hint: "mean_logit")
    }

    /// AITM: both towers' representations; the second head reads the transfer of the CTR one.
    private func transferLogits() -> [FunnelNetwork.Head: String] {
        let transfer = network.transfer!
        let qc = mlp(network.ctrTower!, headInput(.ctr, learner: 0))
        let qs = mlp(network.secondTower, headInput(.second, learner: 0))
        let ctr = dense(network.towerOutputs[0], qc)
        let p = builder.op("Relu", dense(transfer.transfer, qc))
        let scale = builder.constant([1 / Float(transfer.width).squareRoot()], dims: [1])
        var scores: [String] = [], values: [String] = []
        for u in [p, qs] {
            values.append(dense(transfer.value, u))
            let q = dense(transfer.query, u), k = dense(transfer.key, u)
            let dot = builder.node("ReduceSum", [builder.op("Mul", q, k), builder.constant(int64s: [1])],
                                   attributes: [B.attribute("keepdims", int: 1)])[0]  // [N × 1]
            scores.append(builder.op("Mul", dot, scale))
        }
        let w = builder.op("Softmax", builder.node("Concat", scores, attributes: [B.attribute("axis", int: 1)])[0],
                           attributes: [B.attribute("axis", int: -1)])  // [N × 2]
        let w0 = builder.node("Slice", [w, builder.constant(int64s: [0]), builder.constant(int64s: [1]), builder.constant(int64s: [1])])[0]
        let w1 = builder.node("Slice", [w, builder.constant(int64s: [1]), builder.constant(int64s: [2]), builder.constant(int64s: [1])])[0]
        let z = builder.op("Add", builder.op("Mul", w0, values[0]), builder.op("Mul", w1, values[1]), hint: "transferred")
        return [.ctr: ctr, .second: dense(network.towerOutputs[1], z)]
    }

    /// `FunnelNetwork.predict`'s three probabilities from the heads' logits.
    private func outputs(_ logits: [FunnelNetwork.Head: String]) throws {
        let arch = network.architecture
        let axis1 = builder.constant(int64s: [1])
        func probability(_ h: FunnelNetwork.Head) -> String {
            builder.op("Squeeze", builder.op("Sigmoid", logits[h]!), axis1)
        }
        let second = probability(.second)
        let nan = builder.op("Expand", builder.constant([.nan], dims: [1]), builder.op("Shape", second), hint: "undefined")
        let pctr = arch.ctrHead ? probability(.ctr) : nan
        let pcvr: String, pctcvr: String
        switch arch.secondHead {
        case .cvr:
            pcvr = second
            pctcvr = arch.ctcvrHead ? probability(.ctcvr) : builder.op("Mul", pctr, second)
        case .ctcvr:
            pctcvr = second
            if arch.ctrHead {
                let floor = builder.op("Max", pctr, builder.constant([Float.leastNormalMagnitude], dims: [1]))
                pcvr = builder.op("Clip", builder.op("Div", second, floor), builder.constant([0], dims: []), builder.constant([1], dims: []))
            } else {
                pcvr = nan
            }
        }
        for (name, value) in [("pctr", pctr), ("pcvr", pcvr), ("pctcvr", pctcvr)] {
            builder.node("Identity", [value], names: [name])
            builder.output(name, .float, [batch])
        }
    }
}

private extension String {
    /// A one-element int64 constant reshaped to a scalar (Range takes scalars).
    func asScalar(_ builder: ONNXGraphBuilder) -> String {
        builder.op("Squeeze", self, builder.constant(int64s: [0]))
    }
}
