import Foundation
import Yams

/// A LightGBM parameter value as written in a config file: string, integer, number or boolean.
public enum ParameterValue: Codable, Equatable, Sendable, CustomStringConvertible {
    case string(String), int(Int), double(Double), bool(Bool)

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Bool.self) { self = .bool(v) }
        else if let v = try? c.decode(Int.self) { self = .int(v) }
        else if let v = try? c.decode(Double.self) { self = .double(v) }
        else { self = .string(try c.decode(String.self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let v): try c.encode(v)
        case .int(let v): try c.encode(v)
        case .double(let v): try c.encode(v)
        case .bool(let v): try c.encode(v)
        }
    }

    /// How LightGBM's `key=value` string spells it.
    public var description: String {
        switch self {
        case .string(let v): return v
        case .int(let v): return String(v)
        case .double(let v): return v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)
        case .bool(let v): return v ? "true" : "false"
        }
    }
}

/// Which days train, validate and test when one file holds several days (paper §2.2).
public struct TemporalSplit: Codable, Equatable, Sendable {
    public var trainDays: [Int] = [RecSys2023Layout.trainDays.lowerBound, RecSys2023Layout.trainDays.upperBound]
    public var validDay = RecSys2023Layout.validDay
    public var testDay = RecSys2023Layout.testDay

    public init() {}

    enum CodingKeys: String, CodingKey { case trainDays = "train_days", validDay = "valid_day", testDay = "test_day" }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TemporalSplit()
        trainDays = try c.decodeIfPresent([Int].self, forKey: .trainDays) ?? d.trainDays
        validDay = try c.decodeIfPresent(Int.self, forKey: .validDay) ?? d.validDay
        testDay = try c.decodeIfPresent(Int.self, forKey: .testDay) ?? d.testDay
    }

    public var trainRange: ClosedRange<Int> { trainDays[0]...trainDays[1] }

    public func validate() throws {
        guard trainDays.count == 2, trainDays[0] <= trainDays[1] else {
            throw FunnelError("split.train_days must be [first, last] with first ≤ last")
        }
        guard !trainRange.contains(validDay), !trainRange.contains(testDay) else {
            throw FunnelError("split: the validation and test days must lie outside the training days")
        }
    }
}

/// One dimension of the random search: a range (uniform, or log-uniform with `log`; rounded with
/// `integer`) or a list of `values`.
public struct SearchDimension: Codable, Equatable, Sendable {
    public var min: Double?
    public var max: Double?
    public var log = false
    public var integer = false
    public var values: [ParameterValue]?

    enum CodingKeys: String, CodingKey { case min, max, log, integer, values }

    public init(min: Double, max: Double, log: Bool = false, integer: Bool = false) {
        self.min = min; self.max = max; self.log = log; self.integer = integer
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        min = try c.decodeIfPresent(Double.self, forKey: .min)
        max = try c.decodeIfPresent(Double.self, forKey: .max)
        log = try c.decodeIfPresent(Bool.self, forKey: .log) ?? false
        integer = try c.decodeIfPresent(Bool.self, forKey: .integer) ?? false
        values = try c.decodeIfPresent([ParameterValue].self, forKey: .values)
    }

    func validate(_ name: String) throws {
        if let values {
            guard !values.isEmpty else { throw FunnelError("search.space.\(name): values must not be empty") }
            return
        }
        guard let lo = min, let hi = max, lo <= hi else { throw FunnelError("search.space.\(name): needs min ≤ max (or values)") }
        if log && lo <= 0 { throw FunnelError("search.space.\(name): a log range needs min > 0") }
    }

    func sample(_ rng: inout RandomSource) -> ParameterValue {
        if let values { return values[rng.below(values.count)] }
        let lo = min!, hi = max!, u = rng.uniform()
        let x = log ? Foundation.exp(Foundation.log(lo) + u * (Foundation.log(hi) - Foundation.log(lo))) : lo + u * (hi - lo)
        return integer ? .int(Int(x.rounded())) : .double((x * 1e6).rounded() / 1e6)
    }
}

/// Random search over LightGBM parameters: each model is trained `trials` times with parameters
/// drawn from `space` (on top of the base parameters) and keeps the trial with the lowest
/// validation log loss.
public struct RandomSearchConfig: Codable, Equatable, Sendable {
    public var trials = 0
    public var space: [String: SearchDimension] = [:]

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        trials = try c.decodeIfPresent(Int.self, forKey: .trials) ?? 0
        space = try c.decodeIfPresent([String: SearchDimension].self, forKey: .space) ?? [:]
    }

    /// Parameters of trial `t` for model `role` (deterministic in seed, role and trial).
    func draw(seed: UInt64, role: GBDTModelRole, trial: Int) -> LightGBMParameters {
        var rng = RandomSource(seed: seed &+ 0x5EA4C4, stream: UInt64(GBDTModelRole.allCases.firstIndex(of: role)!) &* 1_000 &+ UInt64(trial))
        var p = LightGBMParameters()
        for key in space.keys.sorted() { p[key] = space[key]!.sample(&rng).description }
        return p
    }
}

/// The three LightGBM models of the paper (§4.1): is_like on all rows, is_installed on the liked
/// rows (two-step, Eq. 9: p = P(like)·P(install | like)), and is_installed end to end.
public enum GBDTModelRole: String, Codable, CaseIterable, Sendable {
    case like
    case installGivenLike = "install_given_like"
    case install

    public var target: FunnelTarget { self == .like ? .like : .install }
    public var file: String { rawValue + ".txt" }
}

/// Ensemble weights of the calibrated two-step and end-to-end predictions (paper: 0.5 / 0.5).
public struct EnsembleWeights: Codable, Equatable, Sendable {
    public var twoStep = 0.5
    public var endToEnd = 0.5

    public init() {}

    enum CodingKeys: String, CodingKey { case twoStep = "two_step", endToEnd = "end_to_end" }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        twoStep = try c.decodeIfPresent(Double.self, forKey: .twoStep) ?? 0.5
        endToEnd = try c.decodeIfPresent(Double.self, forKey: .endToEnd) ?? 0.5
    }
}

/// Everything `funnel gbdt train` can be told in a YAML or JSON file; every key is optional.
public struct GBDTConfig: Codable, Equatable, Sendable {
    public var seed: UInt64 = 1
    /// LightGBM threads (nil: all cores).
    public var threads: Int?
    public var split = TemporalSplit()
    public var features = TabularFeatureConfig()
    /// Base LightGBM parameters for every model (any LightGBM parameter name).
    public var lightgbm: [String: ParameterValue] = [:]
    /// Per-model overrides of `lightgbm`, keyed by like / install_given_like / install.
    public var models: [String: [String: ParameterValue]] = [:]
    public var numIterations = 1000
    public var earlyStoppingRounds = 50
    public var ensemble = EnsembleWeights()
    public var search = RandomSearchConfig()

    public init() {}

    enum CodingKeys: String, CodingKey {
        case seed, threads, split, features, lightgbm, models, ensemble, search
        case numIterations = "num_iterations", earlyStoppingRounds = "early_stopping_rounds"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = GBDTConfig()
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        threads = try c.decodeIfPresent(Int.self, forKey: .threads)
        split = try c.decodeIfPresent(TemporalSplit.self, forKey: .split) ?? d.split
        features = try c.decodeIfPresent(TabularFeatureConfig.self, forKey: .features) ?? d.features
        lightgbm = try c.decodeIfPresent([String: ParameterValue].self, forKey: .lightgbm) ?? d.lightgbm
        models = try c.decodeIfPresent([String: [String: ParameterValue]].self, forKey: .models) ?? d.models
        numIterations = try c.decodeIfPresent(Int.self, forKey: .numIterations) ?? d.numIterations
        earlyStoppingRounds = try c.decodeIfPresent(Int.self, forKey: .earlyStoppingRounds) ?? d.earlyStoppingRounds
        ensemble = try c.decodeIfPresent(EnsembleWeights.self, forKey: .ensemble) ?? d.ensemble
        search = try c.decodeIfPresent(RandomSearchConfig.self, forKey: .search) ?? d.search
    }

    /// Funnel's defaults: deterministic (fixed column-wise histograms, LightGBM's deterministic
    /// mode, seeded bagging) so the same seed and data give the same model files.
    public static let defaultLightGBM: [(String, String)] = [
        ("objective", "binary"), ("learning_rate", "0.05"), ("num_leaves", "63"), ("min_data_in_leaf", "50"),
        ("feature_fraction", "0.8"), ("bagging_fraction", "0.8"), ("bagging_freq", "1"), ("lambda_l2", "1"),
        ("max_bin", "255"), ("verbosity", "-1"), ("deterministic", "true"), ("force_col_wise", "true"),
    ]

    /// The parameters model `role` trains with: defaults, then `lightgbm`, then the model's overrides,
    /// then `extra` (a search trial); the seed and threads always come from this config.
    public func parameters(for role: GBDTModelRole, threads resolved: Int, extra: LightGBMParameters = .init()) -> LightGBMParameters {
        var p = LightGBMParameters(Self.defaultLightGBM)
        for k in lightgbm.keys.sorted() { p[k] = lightgbm[k]!.description }
        if let o = models[role.rawValue] { for k in o.keys.sorted() { p[k] = o[k]!.description } }
        p = p.merging(extra)
        p["seed"] = String(seed)
        p["num_threads"] = String(resolved)
        return p
    }

    public func validate() throws {
        try split.validate()
        guard numIterations >= 1 else { throw FunnelError("num_iterations must be at least 1") }
        guard earlyStoppingRounds >= 0 else { throw FunnelError("early_stopping_rounds must be ≥ 0") }
        guard ensemble.twoStep >= 0, ensemble.endToEnd >= 0, ensemble.twoStep + ensemble.endToEnd > 0 else {
            throw FunnelError("ensemble weights must be ≥ 0 and not both 0")
        }
        guard search.trials >= 0 else { throw FunnelError("search.trials must be ≥ 0") }
        for (k, v) in search.space { try v.validate(k) }
        for k in models.keys where GBDTModelRole(rawValue: k) == nil {
            throw FunnelError("models.\(k): unknown model (use \(GBDTModelRole.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        for key in ["num_iterations", "num_iteration", "n_iter", "num_tree", "num_trees", "num_round", "num_rounds", "n_estimators", "early_stopping_round", "early_stopping_rounds"]
        where lightgbm[key] != nil || models.values.contains(where: { $0[key] != nil }) {
            throw FunnelError("lightgbm.\(key): set num_iterations / early_stopping_rounds at the top level of the config")
        }
        try parameters(for: .like, threads: 1).validate()
    }

    /// Reads a YAML (`.yaml`/`.yml`) or JSON config file; unknown keys are refused so typos surface.
    public static func load(path: String) throws -> GBDTConfig {
        let data = try InputFile.contents(path, limit: 16 << 20)
        let text = String(decoding: data, as: UTF8.self)
        let config: GBDTConfig
        do {
            if path.hasSuffix(".json") {
                try checkKeys(try JSONSerialization.jsonObject(with: data), path: path)
                config = try JSONDecoder().decode(GBDTConfig.self, from: data)
            } else {
                try checkKeys(try Yams.load(yaml: text) ?? [String: Any](), path: path)
                config = try YAMLDecoder().decode(GBDTConfig.self, from: text)
            }
        } catch let e as FunnelError {
            throw e
        } catch {
            throw FunnelError("\(path): invalid config: \(DecodingErrorText.describe(error))")
        }
        try config.validate()
        return config
    }

    private static let knownKeys: [String: Set<String>] = [
        "": ["seed", "threads", "split", "features", "lightgbm", "models", "num_iterations", "early_stopping_rounds", "ensemble", "search"],
        "split": ["train_days", "valid_day", "test_day"],
        "features": ["missing_value", "drop", "day_of_week", "label_encode", "crosses", "group_statistics", "target_encoding"],
        "features.target_encoding": ["enabled", "columns", "targets", "statistics", "prior_strength", "min_count", "folds", "formulas"],
        "ensemble": ["two_step", "end_to_end"],
        "search": ["trials", "space"],
    ]

    private static func checkKeys(_ object: Any, path: String, at prefix: String = "") throws {
        guard let dict = object as? [String: Any] else {
            if prefix.isEmpty { throw FunnelError("\(path): a config file must be a mapping of keys") }
            return
        }
        if let known = knownKeys[prefix] {
            for k in dict.keys where !known.contains(k) {
                throw FunnelError("\(path): unknown key '\(prefix.isEmpty ? k : prefix + "." + k)' (known: \(known.sorted().joined(separator: ", ")))")
            }
            for (k, v) in dict { try checkKeys(v, path: path, at: prefix.isEmpty ? k : prefix + "." + k) }
        }
    }
}
