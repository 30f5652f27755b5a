import Foundation

/// A binary target a tabular model or encoder can be fitted on.
public enum FunnelTarget: String, Codable, CaseIterable, Sendable {
    /// `is_like = is_clicked OR is_installed` (two-stage LightGBM paper §4.1.2).
    case like = "is_like"
    case install = "is_installed"
    case click = "is_clicked"

    /// The target's 0/1 values for a labelled table (click = the layout's click column,
    /// install = its conversion column).
    public func values(of table: RawTable) -> [Float] {
        switch self {
        case .click: return table.click
        case .install: return table.conversion
        case .like: return zip(table.click, table.conversion).map { max($0, $1) }
        }
    }
}

/// A statistic of a numeric column within the rows sharing a categorical value.
public enum GroupStatistic: String, Codable, CaseIterable, Sendable {
    case mean, variance, median
}

/// "B grouped by A": per value of categorical A, statistics of numeric B (paper §3.3).
public struct GroupStatisticSpec: Codable, Equatable, Sendable {
    public var by: String
    public var of: String
    public var statistics: [GroupStatistic]

    public init(by: String, of: String, statistics: [GroupStatistic] = GroupStatistic.allCases) {
        self.by = by; self.of = of; self.statistics = statistics
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        by = try c.decode(String.self, forKey: .by)
        of = try c.decode(String.self, forKey: .of)
        statistics = try c.decodeIfPresent([GroupStatistic].self, forKey: .statistics) ?? GroupStatistic.allCases
    }
}

/// Beta target encoding settings (paper §3.2).
public struct TargetEncodingConfig: Codable, Equatable, Sendable {
    public var enabled = true
    /// Categorical columns (and cross names `a*b`) to encode; nil = every kept categorical column and every cross.
    public var columns: [String]? = nil
    public var targets: [FunnelTarget] = [.install, .like]
    public var statistics: [BetaStatistic] = BetaStatistic.allCases
    /// N₀ of the prior Beta(μN₀, (1 − μ)N₀).
    public var priorStrength = 100.0
    /// N_min: categories seen fewer times get the prior.
    public var minCount = 20
    /// Folds of the out-of-fold encoding of training rows (≥ 2).
    public var folds = 5
    public var formulas: BetaFormulas = .standard

    public init() {}

    enum CodingKeys: String, CodingKey {
        case enabled, columns, targets, statistics, formulas, folds
        case priorStrength = "prior_strength", minCount = "min_count"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TargetEncodingConfig()
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? d.enabled
        columns = try c.decodeIfPresent([String].self, forKey: .columns)
        targets = try c.decodeIfPresent([FunnelTarget].self, forKey: .targets) ?? d.targets
        statistics = try c.decodeIfPresent([BetaStatistic].self, forKey: .statistics) ?? d.statistics
        priorStrength = try c.decodeIfPresent(Double.self, forKey: .priorStrength) ?? d.priorStrength
        minCount = try c.decodeIfPresent(Int.self, forKey: .minCount) ?? d.minCount
        folds = try c.decodeIfPresent(Int.self, forKey: .folds) ?? d.folds
        formulas = try c.decodeIfPresent(BetaFormulas.self, forKey: .formulas) ?? d.formulas
    }
}

/// The tabular feature engineering of the two-stage LightGBM paper (§2–3), as data: fitted on the
/// training rows, stored with the model, applied identically to every later row.
public struct TabularFeatureConfig: Codable, Equatable, Sendable {
    /// What an empty numeric cell (and an unseen or empty category's code) becomes; nil leaves it
    /// missing (NaN) for LightGBM's own handling. The paper found constant 0 best (§2.1.2).
    public var missingValue: Float? = 0
    /// Columns removed before anything else (the paper drops f_9, f_23, f_24, f_47, f_49).
    public var drop: [String] = []
    /// Adds `day mod 7` when the table has a day column.
    public var dayOfWeek = true
    /// Keeps each categorical column as a frequency-rank code (1 = most frequent, 0 = missing/unseen).
    public var labelEncode = true
    /// Pairs of categorical columns concatenated into one category (`a*b`), label-encoded.
    public var crosses: [[String]] = []
    public var groupStatistics: [GroupStatisticSpec] = []
    public var targetEncoding = TargetEncodingConfig()

    public init() {}

    enum CodingKeys: String, CodingKey {
        case missingValue = "missing_value", drop, dayOfWeek = "day_of_week", labelEncode = "label_encode"
        case crosses, groupStatistics = "group_statistics", targetEncoding = "target_encoding"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TabularFeatureConfig()
        if c.contains(.missingValue) {
            missingValue = try c.decodeNil(forKey: .missingValue) ? nil : try c.decode(Float.self, forKey: .missingValue)
        }
        drop = try c.decodeIfPresent([String].self, forKey: .drop) ?? d.drop
        dayOfWeek = try c.decodeIfPresent(Bool.self, forKey: .dayOfWeek) ?? d.dayOfWeek
        labelEncode = try c.decodeIfPresent(Bool.self, forKey: .labelEncode) ?? d.labelEncode
        crosses = try c.decodeIfPresent([[String]].self, forKey: .crosses) ?? d.crosses
        groupStatistics = try c.decodeIfPresent([GroupStatisticSpec].self, forKey: .groupStatistics) ?? d.groupStatistics
        targetEncoding = try c.decodeIfPresent(TargetEncodingConfig.self, forKey: .targetEncoding) ?? d.targetEncoding
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if let missingValue { try c.encode(missingValue, forKey: .missingValue) } else { try c.encodeNil(forKey: .missingValue) }
        try c.encode(drop, forKey: .drop)
        try c.encode(dayOfWeek, forKey: .dayOfWeek)
        try c.encode(labelEncode, forKey: .labelEncode)
        try c.encode(crosses, forKey: .crosses)
        try c.encode(groupStatistics, forKey: .groupStatistics)
        try c.encode(targetEncoding, forKey: .targetEncoding)
    }

    /// The paper's choices for the RecSys Challenge 2023 columns.
    public static var recsys2023Paper: TabularFeatureConfig {
        var c = TabularFeatureConfig()
        c.drop = ["f_9", "f_23", "f_24", "f_47", "f_49"]
        c.crosses = [["f_4", "f_6"]]
        c.groupStatistics = [GroupStatisticSpec(by: "f_6", of: "f_51"), GroupStatisticSpec(by: "f_2", of: "f_64")]
        return c
    }
}
