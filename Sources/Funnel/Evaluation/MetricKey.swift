/// Where a metric is measured (esmm-sigir2018 §2.1: each quantity on its own space).
public enum MetricSpace: String, Codable, Sendable {
    /// Every impression (CTR, CTCVR).
    case allImpressions = "all impressions"
    /// Clicked impressions only (post-click CVR).
    case clicked = "clicked impressions"
    /// Every impression against the simulator's counterfactual conversions (CVR entire space).
    case entireSpaceTruth = "all impressions, counterfactual truth"
}

/// Which way a metric improves.
public enum MetricDirection: String, Codable, Sendable {
    case higherIsBetter = "higher"
    case lowerIsBetter = "lower"
    /// Calibration ratios: mean prediction / observed rate, best at 1.
    case closerToOne = "closer to 1"
}

/// Every metric Funnel reports, by its JSON key. Eval's JSON, the experiment summary, its
/// t-tests and its report all go through these keys; adding a metric is a case here (name,
/// space, direction) and its computation in `EvaluationReport.evaluate`.
public enum MetricKey: String, CaseIterable, Codable, Sendable, Comparable {
    case aucCTR = "auc_ctr", aucCVR = "auc_cvr", aucCTCVR = "auc_ctcvr"
    case loglossCTR = "logloss_ctr", loglossCVR = "logloss_cvr", loglossCTCVR = "logloss_ctcvr"
    case prAUCCTCVR = "pr_auc_ctcvr"
    case calibrationCTR = "calibration_ctr", calibrationCVR = "calibration_cvr", calibrationCTCVR = "calibration_ctcvr"
    case eceCTR = "ece_ctr", eceCVR = "ece_cvr", eceCTCVR = "ece_ctcvr"
    case aucCVREntireSpace = "auc_cvr_entire_space", loglossCVREntireSpace = "logloss_cvr_entire_space"
    /// Mean pCVR over all impressions ÷ the mean counterfactual conversion: how far the CVR the
    /// model predicts for the whole space is from the truth (1 = unbiased on average).
    case calibrationCVREntireSpace = "calibration_cvr_entire_space"
    case ksCTR = "ks_ctr", ksCVR = "ks_cvr", ksCTCVR = "ks_ctcvr"
    /// Group AUCs: only with a group column (`eval --group-column`).
    case gaucCTR = "gauc_ctr", gaucCVR = "gauc_cvr", gaucCTCVR = "gauc_ctcvr"

    /// The quantity's space.
    public var space: MetricSpace {
        switch self {
        case .aucCVR, .loglossCVR, .calibrationCVR, .eceCVR, .ksCVR, .gaucCVR: return .clicked
        case .aucCVREntireSpace, .loglossCVREntireSpace, .calibrationCVREntireSpace: return .entireSpaceTruth
        default: return .allImpressions
        }
    }

    public var direction: MetricDirection {
        switch self {
        case .loglossCTR, .loglossCVR, .loglossCTCVR, .loglossCVREntireSpace, .eceCTR, .eceCVR, .eceCTCVR: return .lowerIsBetter
        case .calibrationCTR, .calibrationCVR, .calibrationCTCVR, .calibrationCVREntireSpace: return .closerToOne
        default: return .higherIsBetter
        }
    }

    public var lowerIsBetter: Bool { direction == .lowerIsBetter }

    /// Larger is better, whatever the metric: for comparing two values.
    public func score(_ v: Double) -> Double {
        switch direction {
        case .higherIsBetter: return v
        case .lowerIsBetter: return -v
        case .closerToOne: return -abs(v - 1)
        }
    }

    /// Only defined with the simulator's counterfactual truth.
    public var needsTruth: Bool { space == .entireSpaceTruth }

    /// Only defined with a group column.
    public var needsGroups: Bool { self == .gaucCTR || self == .gaucCVR || self == .gaucCTCVR }

    /// The metrics experiment tables show, in order.
    public static let display: [MetricKey] = [
        .aucCTR, .aucCVR, .aucCTCVR, .aucCVREntireSpace, .gaucCTR, .gaucCVR, .gaucCTCVR, .loglossCTR, .loglossCVR, .loglossCTCVR,
        .loglossCVREntireSpace, .calibrationCVREntireSpace, .prAUCCTCVR, .ksCTCVR, .calibrationCTCVR, .eceCTCVR,
    ]

    public static func < (a: MetricKey, b: MetricKey) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }

    /// A metric named on the command line or in a file, or an error listing the keys.
    public static func named(_ name: String) throws -> MetricKey {
        guard let k = MetricKey(rawValue: name) else {
            throw FunnelError("unknown metric '\(name)'; metrics: \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return k
    }
}
