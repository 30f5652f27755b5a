import Foundation
import Yams

/// A hyperparameter search space for the neural models: `funnel train` flag names (without the
/// dashes; snake_case accepted) mapped to a range `{min, max, log, integer}` or a list of values
/// — the syntax of the GBDT config's `search.space`. Unknown names and bad ranges are refused
/// when the file is read, before any training.
public struct SearchSpace: Sendable {
    public var dimensions: [(name: String, dimension: SearchDimension)]

    /// The flags a space may set, and how each sets a configuration.
    static let setters: [String: @Sendable (inout ModelConfig, ParameterValue) throws -> Void] = [
        "lr": { $0.learningRate = try number($1, "lr") },
        "batch-size": { $0.batchSize = try integer($1, "batch-size") },
        "embedding-dim": { $0.embeddingDim = try integer($1, "embedding-dim") },
        "hidden": { $0.hidden = try sizes($1, "hidden") },
        "bottom": { $0.bottom = try sizes($1, "bottom") },
        "expert-hidden": { $0.expertHidden = try sizes($1, "expert-hidden") },
        "experts": { $0.experts = try integer($1, "experts") },
        "levels": { $0.levels = try integer($1, "levels") },
        "learners": { $0.learners = try integer($1, "learners") },
        "l2": { $0.l2 = try number($1, "l2") },
        "epochs": { $0.epochs = try integer($1, "epochs") },
        "clicked-epochs": { $0.clickedEpochs = try integer($1, "clicked-epochs") },
        "negative-rate": { $0.negativeRate = try number($1, "negative-rate") },
        "oversample": { $0.oversample = try integer($1, "oversample") },
        "unbias-clip": { $0.unbiasClip = try number($1, "unbias-clip") },
        "propensity-clip": { $0.propensityClip = try number($1, "propensity-clip") },
        "counterfactual-weight": { $0.counterfactualWeight = try number($1, "counterfactual-weight") },
        "imputation-weight": { $0.imputationWeight = try number($1, "imputation-weight") },
        "twin-constraint-weight": { $0.twinConstraintWeight = try number($1, "twin-constraint-weight") },
        "cross-layers": { $0.crossLayers = try integer($1, "cross-layers") },
        "attention-hidden": { $0.attentionHidden = try integer($1, "attention-hidden") },
        "cross-rank": { $0.crossRank = try integer($1, "cross-rank") },
        "aitm-alpha": { $0.aitmAlpha = try number($1, "aitm-alpha") },
        "distillation-ctr": { $0.distillationCTR = try number($1, "distillation-ctr") },
        "distillation-cvr": { $0.distillationCVR = try number($1, "distillation-cvr") },
        "beta1": { $0.beta1 = try number($1, "beta1") },
        "beta2": { $0.beta2 = try number($1, "beta2") },
        "adam-epsilon": { $0.epsilon = try number($1, "adam-epsilon") },
        "downsample-negatives": { $0.downsampleNegatives = try number($1, "downsample-negatives") },
        "warmup-steps": { $0.warmupSteps = try integer($1, "warmup-steps") },
        "lr-gamma": { $0.lrGamma = try number($1, "lr-gamma") },
        "lr-step-size": { $0.lrStepSize = try integer($1, "lr-step-size") },
        "lr-schedule": {
            guard let s = LRSchedule(rawValue: $1.description) else { throw FunnelError("lr-schedule: '\($1)' is not constant, cosine or step") }
            $0.lrSchedule = s == .constant ? nil : s
        },
    ]

    static func number(_ v: ParameterValue, _ name: String) throws -> Double {
        switch v {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: throw FunnelError("\(name): '\(v)' is not a number")
        }
    }

    static func integer(_ v: ParameterValue, _ name: String) throws -> Int {
        switch v {
        case .int(let i): return i
        case .double(let d) where d == d.rounded() && abs(d) < 1e9: return Int(d)
        default: throw FunnelError("\(name): '\(v)' is not an integer")
        }
    }

    static func sizes(_ v: ParameterValue, _ name: String) throws -> [Int] {
        let parts = v.description.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? 0) >= 1 }) else { throw FunnelError("\(name): '\(v)' is not layer sizes like 200,80") }
        return parts.map { $0! }
    }

    /// A flag name as written in a space file, normalised (`batch_size` → `batch-size`).
    public static func normalize(_ name: String) -> String {
        var n = name.replacingOccurrences(of: "_", with: "-")
        while n.hasPrefix("-") { n.removeFirst() }
        return n
    }

    /// Reads a YAML or JSON space file.
    public static func load(path: String) throws -> SearchSpace {
        let text = String(decoding: try InputFile.contents(path, limit: 1 << 20), as: UTF8.self)
        let root: Any?
        do { root = try Yams.load(yaml: text) } catch { throw FunnelError("\(path): not YAML or JSON: \(error)") }
        guard var map = root as? [String: Any] else { throw FunnelError("\(path): must map flag names to ranges or lists") }
        if map.count == 1, let inner = map["space"] as? [String: Any] { map = inner }
        var dims: [(String, SearchDimension)] = []
        for key in map.keys.sorted() {
            let name = normalize(key)
            guard setters[name] != nil else {
                throw FunnelError("\(path): '\(key)' is not a tunable flag; tunable: \(setters.keys.sorted().joined(separator: ", "))")
            }
            dims.append((name, try dimension(map[key]!, name: name, path: path)))
        }
        guard !dims.isEmpty else { throw FunnelError("\(path): the space is empty") }
        let space = SearchSpace(dimensions: dims)
        try space.validate(path: path)
        return space
    }

    static func value(_ any: Any) -> ParameterValue {
        switch any {
        case let b as Bool: return .bool(b)
        case let i as Int: return .int(i)
        case let d as Double: return .double(d)
        default: return .string("\(any)")
        }
    }

    static func dimension(_ node: Any, name: String, path: String) throws -> SearchDimension {
        if let list = node as? [Any] {
            var d = SearchDimension(min: 0, max: 0)
            d.min = nil; d.max = nil
            d.values = list.map(value)
            return d
        }
        guard let m = node as? [String: Any] else { throw FunnelError("\(path): \(name): give {min, max[, log, integer]} or a list") }
        let unknown = Set(m.keys).subtracting(["min", "max", "log", "integer", "values"])
        guard unknown.isEmpty else { throw FunnelError("\(path): \(name): unknown key(s) \(unknown.sorted().joined(separator: ", "))") }
        if let list = m["values"] as? [Any] { return try dimension(list, name: name, path: path) }
        guard let lo = m["min"].map(value), let hi = m["max"].map(value) else { throw FunnelError("\(path): \(name): needs min and max (or values)") }
        return SearchDimension(min: try number(lo, name), max: try number(hi, name), log: m["log"] as? Bool ?? false,
                               integer: m["integer"] as? Bool ?? false)
    }

    /// Every value the space can produce must make a valid configuration on its own: bad
    /// ranges are refused here.
    func validate(path: String) throws {
        for (name, d) in dimensions {
            do { try d.validate(name) } catch let e as FunnelError { throw FunnelError("\(path): \(e.message)") }
            let probes: [ParameterValue] = d.values ?? [.double(d.min!), .double(d.max!)].map { d.integer ? .int(Int(SearchSpace.rounded($0))) : $0 }
            for v in probes {
                var c = ModelConfig(kind: .esmm)
                do {
                    try SearchSpace.setters[name]!(&c, v)
                    if name == "bottom" { c.trunk = .sharedBottom }
                    try c.validate()
                } catch let e as FunnelError {
                    throw FunnelError("\(path): \(name) = \(v): \(e.message)")
                }
            }
        }
    }

    static func rounded(_ v: ParameterValue) -> Double { ((try? number(v, "")) ?? 0).rounded() }

    /// The overrides of trial `t`. Random: trial 0 is the base configuration (no overrides),
    /// then each dimension is drawn from the trial's own stream. Grid: the `t`-th combination of
    /// the lists, in name order (ranges have no grid and are refused).
    public func trial(_ t: Int, strategy: SearchStrategy, seed: UInt64) throws -> [String: ParameterValue] {
        switch strategy {
        case .random:
            guard t > 0 else { return [:] }
            var rng = RandomSource(seed: seed &+ 0x7_0E5E, stream: UInt64(t))
            return Dictionary(uniqueKeysWithValues: dimensions.map { ($0.name, $0.dimension.sample(&rng)) })
        case .grid:
            var index = t, out: [String: ParameterValue] = [:]
            for (name, d) in dimensions.reversed() {
                guard let values = d.values else { throw FunnelError("grid search needs a list of values for \(name), not a range") }
                out[name] = values[index % values.count]
                index /= values.count
            }
            return out
        }
    }

    /// Combinations of a grid (nil when a dimension is a range).
    public var gridSize: Int? {
        dimensions.reduce(Optional(1)) { acc, d in acc.flatMap { a in d.dimension.values.map { a * $0.count } } }
    }

    /// `config` with a trial's overrides applied and checked.
    public static func apply(_ overrides: [String: ParameterValue], to config: ModelConfig) throws -> ModelConfig {
        var c = config
        for name in overrides.keys.sorted() { try setters[name]!(&c, overrides[name]!) }
        try c.validate()
        return c
    }
}

public enum SearchStrategy: String, Codable, CaseIterable, Sendable {
    case grid, random
}
