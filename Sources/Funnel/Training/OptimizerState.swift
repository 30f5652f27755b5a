import Foundation

/// Adam's state carried between runs (`train --save-optimizer-state`, read back by
/// `train --init-from`): each parameter's two moments and each stage's step count, so a run that
/// continues a saved model takes the very steps the uninterrupted run would have taken.
///
/// Stored as `optimizer.safetensors` in the model directory — tensors `NAME.adam_m` and
/// `NAME.adam_v` (a parameter's moments exist once it was updated), metadata `steps` (one count
/// per stage, comma-separated) — its FNV-1a 64 recorded in `model.json` like the weights'.
/// The moments are the last step's; under early stopping the weights kept are the best
/// checkpoint's, the moments still the last step's.
public struct OptimizerState {
    public static let fileName = "optimizer.safetensors"

    /// Optimizer steps taken per stage of the architecture.
    public var steps: [Int]
    /// Per parameter name: first and second moments (the parameter's shape).
    public var moments: [String: (shape: [Int], m: [Float], v: [Float])]

    /// The state of `network`'s parameters after a run that ended at `steps`.
    public static func capture(_ network: FunnelNetwork, steps: [Int]) -> OptimizerState {
        var moments: [String: (shape: [Int], m: [Float], v: [Float])] = [:]
        for p in network.parameters {
            guard let m = p.moment1, let v = p.moment2 else { continue }
            moments[p.name] = (p.shape, m.array, v.array)
        }
        return OptimizerState(steps: steps, moments: moments)
    }

    public func encode() -> Data {
        var tensors: [SafeTensors.Tensor] = []
        for name in moments.keys.sorted() {
            let s = moments[name]!
            tensors.append(.init(name: name + ".adam_m", shape: s.shape, values: s.m))
            tensors.append(.init(name: name + ".adam_v", shape: s.shape, values: s.v))
        }
        return SafeTensors.encode(tensors, metadata: ["producer": "funnel", "optimizer": "adam",
                                                      "steps": steps.map(String.init).joined(separator: ",")])
    }

    public static func decode(_ data: Data, path: String) throws -> OptimizerState {
        let (tensors, metadata) = try SafeTensors.decode(data, path: path)
        guard metadata["optimizer"] == "adam", let stepText = metadata["steps"] else {
            throw FunnelError("\(path): not a Funnel optimizer state (no Adam step counts)")
        }
        let steps = stepText.split(separator: ",").map { Int($0) }
        guard !steps.isEmpty, steps.allSatisfy({ ($0 ?? -1) >= 0 }) else {
            throw FunnelError("\(path): step counts '\(stepText)' are not non-negative integers")
        }
        var moments: [String: (shape: [Int], m: [Float], v: [Float])] = [:]
        for (name, m) in tensors where name.hasSuffix(".adam_m") {
            let base = String(name.dropLast(".adam_m".count))
            guard let v = tensors[base + ".adam_v"], v.shape == m.shape else {
                throw FunnelError("\(path): '\(base)' has a first moment without a matching second moment")
            }
            guard m.values.allSatisfy(\.isFinite), v.values.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw FunnelError("\(path): the moments of '\(base)' hold non-finite or negative values")
            }
            moments[base] = (m.shape, m.values, v.values)
        }
        guard tensors.count == moments.count * 2 else { throw FunnelError("\(path): a second moment has no first moment") }
        return OptimizerState(steps: steps.map { $0! }, moments: moments)
    }

    /// Sets the moments of `network`'s parameters. A grown or evicted embedding table (`rows`:
    /// where the saved table's rows went) gets the carried rows' moments in their new places and
    /// zeros for the new rows — the state Adam gives a row it has not updated yet.
    public func restore(into network: FunnelNetwork, rows map: EmbeddingRowMap, path: String) throws {
        for p in network.parameters {
            guard let saved = moments[p.name] else { p.moment1 = nil; p.moment2 = nil; continue }
            let m = FloatBuffer(count: p.count), v = FloatBuffer(count: p.count)
            let fits = saved.m.withUnsafeBufferPointer { map.carry($0.baseAddress!, saved: saved.shape, into: m.base, shape: p.shape, sparse: p.isSparse) }
                && saved.v.withUnsafeBufferPointer { map.carry($0.baseAddress!, saved: saved.shape, into: v.base, shape: p.shape, sparse: p.isSparse) }
            guard fits else {
                throw FunnelError("\(path): the moments of '\(p.name)' have shape \(saved.shape), the model needs \(p.shape)")
            }
            p.moment1 = m
            p.moment2 = v
        }
    }
}
