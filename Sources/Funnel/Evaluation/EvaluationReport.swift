import Foundation

/// Metrics of one model on one data set, each on its own sample space:
/// CTR and CTCVR over all impressions, CVR over clicked impressions, and — when the simulator's
/// counterfactual truth is given — CVR over the entire space.
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
    public var aucCVREntireSpace: Double?
    public var loglossCVREntireSpace: Double?

    enum CodingKeys: String, CodingKey {
        case rows, clicks, conversions
        case aucCTR = "auc_ctr", aucCVR = "auc_cvr", aucCTCVR = "auc_ctcvr"
        case loglossCTR = "logloss_ctr", loglossCVR = "logloss_cvr", loglossCTCVR = "logloss_ctcvr"
        case aucCVREntireSpace = "auc_cvr_entire_space", loglossCVREntireSpace = "logloss_cvr_entire_space"
    }

    /// Encodes undefined metrics as JSON null rather than dropping the key.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(rows, forKey: .rows)
        try c.encode(clicks, forKey: .clicks)
        try c.encode(conversions, forKey: .conversions)
        try c.encode(aucCTR, forKey: .aucCTR)
        try c.encode(aucCVR, forKey: .aucCVR)
        try c.encode(aucCTCVR, forKey: .aucCTCVR)
        try c.encode(loglossCTR, forKey: .loglossCTR)
        try c.encode(loglossCVR, forKey: .loglossCVR)
        try c.encode(loglossCTCVR, forKey: .loglossCTCVR)
        if aucCVREntireSpace != nil || loglossCVREntireSpace != nil {
            try c.encode(aucCVREntireSpace, forKey: .aucCVREntireSpace)
            try c.encode(loglossCVREntireSpace, forKey: .loglossCVREntireSpace)
        }
    }

    /// Evaluates `p` against the labels of `data`; `counterfactual` is the simulator's conversion
    /// draw for every row (clicked or not), aligned with `data`'s rows.
    public static func evaluate(_ p: Predictions, on data: EncodedDataset, counterfactual: [Float]? = nil) -> EvaluationReport {
        guard let click = data.click, let conversion = data.conversion else {
            preconditionFailure("evaluation needs labels")
        }
        let ctcvr = zip(click, conversion).map { $0 * $1 }
        var clickedCVR: [Float] = [], clickedLabels: [Float] = []
        for i in 0..<data.rowCount where click[i] == 1 {
            clickedCVR.append(p.cvr[i])
            clickedLabels.append(conversion[i])
        }
        var r = EvaluationReport(
            rows: data.rowCount, clicks: clickedLabels.count, conversions: Int(ctcvr.reduce(0, +)),
            aucCTR: Metrics.auc(scores: p.ctr, labels: click),
            aucCVR: Metrics.auc(scores: clickedCVR, labels: clickedLabels),
            aucCTCVR: Metrics.auc(scores: p.ctcvr, labels: ctcvr),
            loglossCTR: Metrics.logLoss(predictions: p.ctr, labels: click),
            loglossCVR: Metrics.logLoss(predictions: clickedCVR, labels: clickedLabels),
            loglossCTCVR: Metrics.logLoss(predictions: p.ctcvr, labels: ctcvr))
        if let cf = counterfactual {
            r.aucCVREntireSpace = Metrics.auc(scores: p.cvr, labels: cf)
            r.loglossCVREntireSpace = Metrics.logLoss(predictions: p.cvr, labels: cf)
        }
        return r
    }

    /// A metric as table text: four decimals, or "undefined" (single-class space).
    public static func format(_ v: Double?) -> String {
        guard let v else { return "undefined" }
        return String(format: "%.4f", v)
    }
}
