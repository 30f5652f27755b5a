import Foundation

/// A trunk of experts under several gates, one per head that reads it (MMoE, PLE). Each gate's
/// output feeds one head; backward takes each used gate's output gradient (nil when unused).
public protocol GatedTrunk: AnyObject {
    var outputWidth: Int { get }
    var parameters: [Parameter] { get }
    /// Experts a top-level gate weighs, with their names for introspection.
    var gateLabels: [String] { get }
    func forward(_ x: UnsafePointer<Float>, batch: Int, worker: Int)
    /// Whether `forward(_:LayerInput…)` and its backward take a request split (the first
    /// layers of its experts and gates read the concatenation, and split).
    var splitsRequests: Bool { get }
    func forward(_ x: LayerInput, batch: Int, worker: Int)
    func backward(_ x: LayerInput, dOutputs: [UnsafePointer<Float>?], batch: Int, dx: UnsafeMutablePointer<Float>?,
                  accumulateInputGradient: Bool, worker: Int)
    func output(gate g: Int, worker: Int) -> UnsafePointer<Float>
    func gateWeights(gate g: Int, worker: Int) -> UnsafePointer<Float>
    func backward(_ x: UnsafePointer<Float>, dOutputs: [UnsafePointer<Float>?], batch: Int, dx: UnsafeMutablePointer<Float>,
                  accumulateInputGradient: Bool, worker: Int)
}

extension GatedTrunk {
    public var splitsRequests: Bool { false }

    /// A trunk that does not split reads rows only (`RequestSharing` never hands it a split).
    public func forward(_ x: LayerInput, batch: Int, worker: Int) {
        guard case .rows(let rows) = x else { preconditionFailure("\(Self.self) cannot read a request split") }
        forward(rows, batch: batch, worker: worker)
    }

    public func backward(_ x: LayerInput, dOutputs: [UnsafePointer<Float>?], batch: Int, dx: UnsafeMutablePointer<Float>?,
                         accumulateInputGradient: Bool, worker: Int) {
        guard case .rows(let rows) = x, let dx else { preconditionFailure("\(Self.self) cannot read a request split") }
        backward(rows, dOutputs: dOutputs, batch: batch, dx: dx, accumulateInputGradient: accumulateInputGradient, worker: worker)
    }
}

/// Multi-gate mixture of experts (Ma et al., KDD 2018): K expert MLPs read the same input; each
/// of G gates is a softmax over its experts computed from the input, and gate g's output is
/// Σ_k softmax(W_g x + b_g)_k · expert_k(x). Every head (task) that reads the trunk owns a gate.
/// A gate may see a subset of the experts (`gateExperts`): TAML's learner gates each weigh the
/// general experts, their task's experts and their own learner's experts.
///
/// Backward, for gate g with output gradient dy_g:
///   d expert_k += g_k · dy_g,    d g_k = ⟨dy_g, expert_k⟩,    d z = g ⊙ (d g − ⟨d g, g⟩)
/// and the input gradient sums the experts' and the gates' contributions.
public final class MixtureOfExperts: GatedTrunk {
    public let experts: [MLP]
    public let gates: [DenseLayer]
    /// Expert indices each gate mixes, in gate-output order.
    public let gateExperts: [[Int]]
    private let expertNames: [String]
    public let inputWidth: Int
    public var outputWidth: Int { experts[0].outputWidth }
    public var expertCount: Int { experts.count }
    public var gateLabels: [String] { labels ?? gateExperts[0].map { expertNames[$0] } }
    /// Names of a gate's inputs by position, when positions mean the same for every gate (TAML).
    private let labels: [String]?

    // Per worker.
    private let gateProbabilities: [[FloatBuffer]]  // [worker][gate] B×K
    private let outputs: [[FloatBuffer]]  // [worker][gate] B×H
    private let expertGradients: [[FloatBuffer]]  // [worker][expert] B×H
    private let gateGradients: [FloatBuffer]  // [worker] B×K scratch
    private var expertOutputs: [[UnsafeMutablePointer<Float>]]  // [worker][expert], set by forward

    /// - Parameters:
    ///   - expertNames: one name per expert (its parameters are `name.<expert name>`); by default `expert.k`.
    ///   - gateExperts: the experts each gate mixes; by default every gate mixes all of them.
    public init(name: String, inputWidth: Int, experts count: Int, expertHidden: [Int], gates gateCount: Int,
                maxBatch: Int, workers: Int, rng: inout RandomSource, expertNames names: [String]? = nil,
                gateExperts subsets: [[Int]]? = nil, gateLabels: [String]? = nil) {
        self.inputWidth = inputWidth
        labels = gateLabels
        let names = names ?? (0..<count).map { "expert.\($0)" }
        expertNames = names.map { $0.replacingOccurrences(of: ".", with: " ") }
        let subsets = subsets ?? Array(repeating: Array(0..<count), count: gateCount)
        gateExperts = subsets
        experts = (0..<count).map { k in
            MLP(name: "\(name).\(names[k])", inputWidth: inputWidth, hidden: expertHidden, logitOutput: false,
                maxBatch: maxBatch, workers: workers, rng: &rng)
        }
        gates = (0..<gateCount).map { g in
            DenseLayer(name: "\(name).gate.\(g)", inFeatures: inputWidth, outFeatures: subsets[g].count, workers: workers, rng: &rng)
        }
        let h = expertHidden.last!
        gateProbabilities = (0..<workers).map { _ in (0..<gateCount).map { FloatBuffer(count: maxBatch * subsets[$0].count) } }
        outputs = (0..<workers).map { _ in (0..<gateCount).map { _ in FloatBuffer(count: maxBatch * h) } }
        expertGradients = (0..<workers).map { _ in (0..<count).map { _ in FloatBuffer(count: maxBatch * h) } }
        gateGradients = (0..<workers).map { _ in FloatBuffer(count: maxBatch * (subsets.map(\.count).max() ?? count)) }
        expertOutputs = Array(repeating: [], count: workers)
    }

    public var parameters: [Parameter] { experts.flatMap(\.parameters) + gates.flatMap(\.parameters) }

    /// Runs every expert and every gate; `output(gate:)` then holds each gate's mixture.
    public var splitsRequests: Bool { true }

    public func forward(_ x: UnsafePointer<Float>, batch: Int, worker: Int = 0) { forward(.rows(x), batch: batch, worker: worker) }

    public func forward(_ x: LayerInput, batch: Int, worker: Int = 0) {
        let h = outputWidth
        expertOutputs[worker] = experts.map { $0.forward(x, batch: batch, worker: worker) }
        let e = expertOutputs[worker]
        for (g, gate) in gates.enumerated() {
            let p = gateProbabilities[worker][g].base
            gate.forward(x, batch: batch, into: p)
            GatedSum.forward(experts: gateExperts[g].map { UnsafePointer(e[$0]) }, probabilities: p, batch: batch, width: h,
                             into: outputs[worker][g].base)
        }
    }

    public func output(gate g: Int, worker: Int = 0) -> UnsafePointer<Float> { UnsafePointer(outputs[worker][g].base) }

    /// Gate probabilities `[batch × experts]` of the last forward, for introspection.
    public func gateWeights(gate g: Int, worker: Int = 0) -> UnsafePointer<Float> { UnsafePointer(gateProbabilities[worker][g].base) }

    /// Back-propagates the gradients of the gates that were used (nil: gate unused this step)
    /// and writes or adds the input gradient into `dx`.
    public func backward(_ x: UnsafePointer<Float>, dOutputs: [UnsafePointer<Float>?], batch: Int, dx: UnsafeMutablePointer<Float>,
                         accumulateInputGradient: Bool, worker: Int = 0) {
        backward(.rows(x), dOutputs: dOutputs, batch: batch, dx: dx, accumulateInputGradient: accumulateInputGradient, worker: worker)
    }

    public func backward(_ x: LayerInput, dOutputs: [UnsafePointer<Float>?], batch: Int, dx: UnsafeMutablePointer<Float>?,
                         accumulateInputGradient: Bool, worker: Int = 0) {
        let h = outputWidth
        let e = expertOutputs[worker]
        let de = expertGradients[worker].map(\.base)
        for j in 0..<expertCount { de[j].update(repeating: 0, count: batch * h) }
        var accumulate = accumulateInputGradient
        for (g, gate) in gates.enumerated() {
            guard let dy = dOutputs[g] else {
                gate.zeroGradients(worker: worker)
                continue
            }
            let dz = gateGradients[worker].base
            GatedSum.backward(experts: gateExperts[g].map { UnsafePointer(e[$0]) }, probabilities: gateProbabilities[worker][g].base,
                              dy: dy, batch: batch, width: h, expertGradients: gateExperts[g].map { de[$0] }, dLogits: dz)
            gate.backward(x, dy: dz, batch: batch, dx: dx, accumulateInputGradient: accumulate, worker: worker)
            accumulate = true
        }
        for (j, expert) in experts.enumerated() {
            expert.backward(x, dLogits: de[j], batch: batch, dx: dx, accumulateInputGradient: accumulate, worker: worker)
            accumulate = true
        }
    }
}

/// The mixing step shared by MMoE and PLE gates: y = Σ_k p_k · e_k per row, with p a softmax
/// over gate logits.
public enum GatedSum {
    /// `probabilities` holds the gate logits on entry and the softmax on exit.
    public static func forward(experts e: [UnsafePointer<Float>], probabilities p: UnsafeMutablePointer<Float>,
                               batch: Int, width h: Int, into out: UnsafeMutablePointer<Float>) {
        let k = e.count
        out.update(repeating: 0, count: batch * h)
        for b in 0..<batch {
            Softmax.forward(p + b * k, count: k)
            let o = out + b * h
            for j in 0..<k {
                let w = p[b * k + j], src = e[j] + b * h
                for d in 0..<h { o[d] += w * src[d] }
            }
        }
    }

    /// Adds g_k · dy to each expert's gradient and writes the gate-logit gradient into `dLogits`.
    public static func backward(experts e: [UnsafePointer<Float>], probabilities p: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                batch: Int, width h: Int, expertGradients de: [UnsafeMutablePointer<Float>],
                                dLogits dz: UnsafeMutablePointer<Float>) {
        let k = e.count
        for b in 0..<batch {
            let row = dy + b * h
            for j in 0..<k {
                let w = p[b * k + j], src = e[j] + b * h, dst = de[j] + b * h
                var dot: Float = 0
                for d in 0..<h { dst[d] += w * row[d]; dot += row[d] * src[d] }
                dz[b * k + j] = dot
            }
            Softmax.backward(probabilities: p + b * k, gradient: dz + b * k, count: k)
        }
    }
}

/// Row-wise softmax as a forward/backward pair.
public enum Softmax {
    /// In place over `count` values, max-shifted for stability.
    @inline(__always)
    public static func forward(_ z: UnsafeMutablePointer<Float>, count: Int) {
        var m = -Float.infinity
        for i in 0..<count { m = max(m, z[i]) }
        var s: Float = 0
        for i in 0..<count { z[i] = expf(z[i] - m); s += z[i] }
        for i in 0..<count { z[i] /= s }
    }

    /// Given p = softmax(z) and dL/dp in `gradient`, writes dL/dz = p ⊙ (dL/dp − ⟨dL/dp, p⟩) in place.
    @inline(__always)
    public static func backward(probabilities p: UnsafePointer<Float>, gradient g: UnsafeMutablePointer<Float>, count: Int) {
        var dot: Float = 0
        for i in 0..<count { dot += g[i] * p[i] }
        for i in 0..<count { g[i] = p[i] * (g[i] - dot) }
    }
}
