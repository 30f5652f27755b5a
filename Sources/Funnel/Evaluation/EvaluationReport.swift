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
    public var aucCTR: Double?
    public var aucCVR: Double?
    public var aucCTCVR: Double?
    public var loglossCTR: Double?
    public var loglossCVR: Double?
    public var loglossCTCVR: Double?
    public var prAUCCTCVR: Double?
    /// Mean prediction / observed rate per space.
    public var calibrationCTR: Double?
    public var calibrationCVR: Double?
    public var calibrationCTCVR: Double?
    /// Expected calibration error (10 equal-mass bins) per space.
    public var eceCTR: Double?
    public var eceCVR: Double?
    public var eceCTCVR: Double?
    public var aucCVREntireSpace: Double?
    public var loglossCVREntireSpace: Double?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case rows, clicks, conversions
        case aucCTR = "auc_ctr", aucCVR = "auc_cvr", aucCTCVR = "auc_ctcvr"
        case loglossCTR = "logloss_ctr", loglossCVR = "logloss_cvr", loglossCTCVR = "logloss_ctcvr"
        case prAUCCTCVR = "pr_auc_ctcvr"
        case calibrationCTR = "calibration_ctr", calibrationCVR = "calibration_cvr", calibrationCTCVR = "calibration_ctcvr"
        case eceCTR = "ece_ctr", eceCVR = "ece_cvr", eceCTCVR = "ece_ctcvr"
        case aucCVREntireSpace = "auc_cvr_entire_space", loglossCVREntireSpace = "logloss_cvr_entire_space"
    }

    public init(rows: Int, clicks: Int, conversions: Int) {
        self.rows = rows; self.clicks = clicks; self.conversions = conversions
    }

    /// Encodes undefined metrics as JSON null rather than dropping the key.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(rows, forKey: .rows)
        try c.encode(clicks, forKey: .clicks)
        try c.encode(conversions, forKey: .conversions)
        for key in CodingKeys.allCases {
            switch key {
            case .rows, .clicks, .conversions: continue
            case .aucCVREntireSpace, .loglossCVREntireSpace:
                if aucCVREntireSpace == nil && loglossCVREntireSpace == nil { continue }
            default: break
            }
            try c.encode(self[key], forKey: key)
        }
    }

    /// The metric named by a JSON key (nil for counts and undefined metrics).
    public subscript(key: CodingKeys) -> Double? {
        switch key {
        case .rows, .clicks, .conversions: return nil
        case .aucCTR: return aucCTR
        case .aucCVR: return aucCVR
        case .aucCTCVR: return aucCTCVR
        case .loglossCTR: return loglossCTR
        case .loglossCVR: return loglossCVR
        case .loglossCTCVR: return loglossCTCVR
        case .prAUCCTCVR: return prAUCCTCVR
        case .calibrationCTR: return calibrationCTR
        case .calibrationCVR: return calibrationCVR
        case .calibrationCTCVR: return calibrationCTCVR
        case .eceCTR: return eceCTR
        case .eceCVR: return eceCVR
        case .eceCTCVR: return eceCTCVR
        case .aucCVREntireSpace: return aucCVREntireSpace
        case .loglossCVREntireSpace: return loglossCVREntireSpace
        }
    }

    /// Every metric by its JSON key, for tables and statistics.
    public var metrics: [String: Double] {
        var out: [String: Double] = [:]
        for key in CodingKeys.allCases { if let v = self[key] { out[key.rawValue] = v } }
        return out
    }

    /// The metrics of one sample space.
    struct Space {
        var auc: Double?, logloss: Double?, calibration: Double?, ece: Double?
        init(_ p: [Float], _ y: [Float], _ w: [Float]?) {
            guard !p.isEmpty, !p.contains(where: \.isNaN) else { return }
            auc = Metrics.auc(scores: p, labels: y, weights: w)
            logloss = Metrics.logLoss(predictions: p, labels: y, weights: w)
            calibration = Metrics.calibrationRatio(predictions: p, labels: y, weights: w)
            ece = Metrics.expectedCalibrationError(predictions: p, labels: y, weights: w)
        }
    }

    /// Evaluates `p` against the labels of `data`; `counterfactual` is the simulator's conversion
    /// draw for every row (clicked or not), aligned with `data`'s rows.
    public static func evaluate(_ p: Predictions, on data: EncodedDataset, counterfactual: [Float]? = nil) -> EvaluationReport {
        guard let click = data.click, let conversion = data.conversion else {
            preconditionFailure("evaluation needs labels")
        }
        let w = data.weights
        let ctcvr = zip(click, conversion).map { $0 * $1 }
        var clickedCVR: [Float] = [], clickedLabels: [Float] = [], clickedWeights: [Float] = []
        for i in 0..<data.rowCount where click[i] == 1 {
            clickedCVR.append(p.cvr[i])
            clickedLabels.append(conversion[i])
            clickedWeights.append(data.weight(i))
        }
        var r = EvaluationReport(rows: data.rowCount, clicks: clickedLabels.count, conversions: Int(ctcvr.reduce(0, +)))
        let ctr = Space(p.ctr, click, w), cvr = Space(clickedCVR, clickedLabels, w == nil ? nil : clickedWeights)
        let all = Space(p.ctcvr, ctcvr, w)
        (r.aucCTR, r.loglossCTR, r.calibrationCTR, r.eceCTR) = (ctr.auc, ctr.logloss, ctr.calibration, ctr.ece)
        (r.aucCVR, r.loglossCVR, r.calibrationCVR, r.eceCVR) = (cvr.auc, cvr.logloss, cvr.calibration, cvr.ece)
        (r.aucCTCVR, r.loglossCTCVR, r.calibrationCTCVR, r.eceCTCVR) = (all.auc, all.logloss, all.calibration, all.ece)
        if !p.ctcvr.contains(where: \.isNaN) { r.prAUCCTCVR = Metrics.prAUC(scores: p.ctcvr, labels: ctcvr, weights: w) }
        if let cf = counterfactual {
            let es = Space(p.cvr, cf, w)
            r.aucCVREntireSpace = es.auc
            r.loglossCVREntireSpace = es.logloss
        }
        return r
    }

    /// A metric as table text: four decimals, or "undefined".
    public static func format(_ v: Double?) -> String {
        guard let v else { return "undefined" }
        return String(format: "%.4f", v)
    }
}
