import Foundation

/// Metrics of one model on one data set, each on its own sample space:
/// CTR and CTCVR over all impressions, CVR over clicked impressions, and — when the simulator's
/// counterfactual truth is given — CVR over the entire space. Sample weights (negative
/// downsampling) weight every metric. A metric is nil ("undefined") when its space has a single
/// class or the model does not predict that quantity (ESP has no pCTR).
public struct EvaluationReport: Codable, Sendable {
    public var rows: Int
    public var clicks: Int
    public var conversions: Int
    /// Each defined metric by key; an absent key is "undefined".
    public var values: [MetricKey: Double] = [:]
    /// Whether the group AUCs were asked for (a group column given): then they are reported,
    /// as null when undefined, like every metric of the report.
    public var groupsGiven = false

    public var aucCTR: Double? { get { values[.aucCTR] } set { values[.aucCTR] = newValue } }
    public var aucCVR: Double? { get { values[.aucCVR] } set { values[.aucCVR] = newValue } }
    public var aucCTCVR: Double? { get { values[.aucCTCVR] } set { values[.aucCTCVR] = newValue } }
    public var loglossCTR: Double? { get { values[.loglossCTR] } set { values[.loglossCTR] = newValue } }
    public var loglossCVR: Double? { get { values[.loglossCVR] } set { values[.loglossCVR] = newValue } }
    public var loglossCTCVR: Double? { get { values[.loglossCTCVR] } set { values[.loglossCTCVR] = newValue } }
    public var aucCVREntireSpace: Double? { get { values[.aucCVREntireSpace] } set { values[.aucCVREntireSpace] = newValue } }
    public var loglossCVREntireSpace: Double? {
        get { values[.loglossCVREntireSpace] } set { values[.loglossCVREntireSpace] = newValue }
    }

    private enum CountKeys: String, CodingKey { case rows, clicks, conversions }
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(rows: Int, clicks: Int, conversions: Int) {
        self.rows = rows; self.clicks = clicks; self.conversions = conversions
    }

    /// Encodes undefined metrics as JSON null rather than dropping the key (the entire-space
    /// ones only when the truth was given).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CountKeys.self)
        try c.encode(rows, forKey: .rows)
        try c.encode(clicks, forKey: .clicks)
        try c.encode(conversions, forKey: .conversions)
        var m = encoder.container(keyedBy: Key.self)
        let truth = MetricKey.allCases.contains { $0.needsTruth && values[$0] != nil }
        let groups = MetricKey.allCases.contains { $0.needsGroups && values[$0] != nil } || groupsGiven
        for key in MetricKey.allCases where (truth || !key.needsTruth) && (groups || !key.needsGroups) {
            try m.encode(values[key], forKey: Key(key.rawValue))
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CountKeys.self)
        rows = try c.decode(Int.self, forKey: .rows)
        clicks = try c.decode(Int.self, forKey: .clicks)
        conversions = try c.decode(Int.self, forKey: .conversions)
        let m = try decoder.container(keyedBy: Key.self)
        for key in MetricKey.allCases {
            if let v = try m.decodeIfPresent(Double.self, forKey: Key(key.rawValue)) { values[key] = v }
        }
    }

    /// The metric of `key` (nil: undefined).
    public subscript(key: MetricKey) -> Double? { values[key] }

    /// Every defined metric by its JSON key, for tables and statistics.
    public var metrics: [String: Double] {
        Dictionary(uniqueKeysWithValues: values.map { ($0.key.rawValue, $0.value) })
    }

    /// The metrics of one sample space.
    struct Space {
        var auc: Double?, logloss: Double?, calibration: Double?, ece: Double?, ks: Double?, gauc: Double?
        init(_ p: [Float], _ y: [Float], _ w: [Float]?, groups: [Int64]? = nil) {
            guard !p.isEmpty, !p.contains(where: \.isNaN) else { return }
            auc = Metrics.auc(scores: p, labels: y, weights: w)
            ks = Metrics.ks(scores: p, labels: y, weights: w)
            gauc = groups.flatMap { Metrics.gauc(scores: p, labels: y, groups: $0, weights: w) }
            logloss = Metrics.logLoss(predictions: p, labels: y, weights: w)
            calibration = Metrics.calibrationRatio(predictions: p, labels: y, weights: w)
            ece = Metrics.expectedCalibrationError(predictions: p, labels: y, weights: w)
        }
    }

    /// Evaluates `p` against the labels of `data`; `counterfactual` is the simulator's conversion
    /// draw for every row (clicked or not), aligned with `data`'s rows; `groups` (aligned too)
    /// adds the group AUCs.
    public static func evaluate(_ p: Predictions, on data: EncodedDataset, counterfactual: [Float]? = nil,
                                groups: [Int64]? = nil) -> EvaluationReport {
        guard let click = data.click, let conversion = data.conversion else {
            preconditionFailure("evaluation needs labels")
        }
        let w = data.weights
        let ctcvr = zip(click, conversion).map { $0 * $1 }
        let clicked = (0..<data.rowCount).filter { click[$0] == 1 }
        var r = EvaluationReport(rows: data.rowCount, clicks: clicked.count, conversions: Int(ctcvr.reduce(0, +)))
        r.groupsGiven = groups != nil
        let ctr = Space(p.ctr, click, w, groups: groups)
        let cvr = Space(clicked.map { p.cvr[$0] }, clicked.map { conversion[$0] }, w == nil ? nil : clicked.map { data.weight($0) },
                        groups: groups.map { g in clicked.map { g[$0] } })
        let all = Space(p.ctcvr, ctcvr, w, groups: groups)
        r.record(ctr, [.aucCTR, .loglossCTR, .calibrationCTR, .eceCTR, .ksCTR, .gaucCTR])
        r.record(cvr, [.aucCVR, .loglossCVR, .calibrationCVR, .eceCVR, .ksCVR, .gaucCVR])
        r.record(all, [.aucCTCVR, .loglossCTCVR, .calibrationCTCVR, .eceCTCVR, .ksCTCVR, .gaucCTCVR])
        if !p.ctcvr.contains(where: \.isNaN) { r.values[.prAUCCTCVR] = Metrics.prAUC(scores: p.ctcvr, labels: ctcvr, weights: w) }
        if let cf = counterfactual {
            let es = Space(p.cvr, cf, w)
            r.aucCVREntireSpace = es.auc
            r.loglossCVREntireSpace = es.logloss
            r.values[.calibrationCVREntireSpace] = es.calibration
        }
        return r
    }

    /// A space's metrics under their keys: auc, logloss, calibration, ece, ks, gauc.
    private mutating func record(_ s: Space, _ keys: [MetricKey]) {
        for (key, v) in zip(keys, [s.auc, s.logloss, s.calibration, s.ece, s.ks, s.gauc]) { values[key] = v }
    }

    /// Why metrics the model should have are undefined: non-finite predictions, or a space
    /// with a single class (e.g. no conversion among the clicked rows). Empty when all are defined.
    public func undefinedReasons(_ p: Predictions, model: ModelConfig) -> [String] {
        var out: [String] = []
        let arch = model.architecture
        for (name, values, predicted) in [("pCTR", p.ctr, arch.ctrHead), ("pCVR", p.cvr, arch.ctrHead || arch.secondHead == .cvr),
                                          ("pCTCVR", p.ctcvr, true)] where predicted {
            let bad = values.reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
            if bad > 0 { out.append("\(bad) of \(values.count) \(name) predictions are not finite; its metrics are undefined") }
        }
        guard out.isEmpty else { return out }
        if arch.ctrHead && aucCTR == nil { out.append("auc_ctr undefined: every impression has the same click label") }
        if (arch.ctrHead || arch.secondHead == .cvr) && aucCVR == nil {
            out.append("auc_cvr undefined: the clicked impressions have a single conversion label (or none)")
        }
        if aucCTCVR == nil { out.append("auc_ctcvr undefined: every impression has the same click·conversion label") }
        return out
    }

    /// A metric as table text: four decimals, or "undefined".
    public static func format(_ v: Double?) -> String {
        guard let v else { return "undefined" }
        return String(format: "%.4f", v)
    }
}
