import Foundation

/// Knobs of the synthetic RecSys-2023-layout data.
public struct RecSysSimulatorConfig: Codable, Sendable {
    public var rows = 300_000
    public var seed: UInt64 = 1
    public var firstDay = 45
    public var lastDay = 67
    /// Target share of impressions with a click.
    public var clickRate = 0.15
    /// Target install rate among clicked impressions.
    public var installRateGivenClick = 0.35
    /// Target install rate among impressions without a click (installs without a click, paper footnote 2).
    public var installRateWithoutClick = 0.03
    /// Logit shift of install per day: the base rate drifts, so the last days differ from the
    /// training average (what calibration on the validation day corrects).
    public var installDriftPerDay = 0.02
    /// Users and ads (ads launch over time; those launched on the last day are unseen in training).
    public var users = 30_000
    public var ads = 3_000
    /// Share of numeric cells left empty.
    public var missingRate = 0.03

    public init() {}

    public func validate() throws {
        guard rows >= 100 else { throw FunnelError("rows must be at least 100") }
        guard firstDay >= 0, lastDay > firstDay + 1 else { throw FunnelError("need at least three days") }
        for (name, v) in [("click rate", clickRate), ("install rate given click", installRateGivenClick),
                          ("install rate without click", installRateWithoutClick)] where !(v > 0 && v < 1) {
            throw FunnelError("\(name) must be in (0, 1)")
        }
        guard users >= 10, ads >= 10 else { throw FunnelError("users and ads must be at least 10") }
        guard (0..<1).contains(missingRate) else { throw FunnelError("missing rate must be in [0, 1)") }
    }
}

/// Synthetic impressions in the RecSys Challenge 2023 layout (`RecSys2023Layout`), for tests and
/// the demo: the real data is not redistributable.
///
/// Story. A user (Zipf) sees an ad (Zipf among the ads launched by that day). User columns
/// (f_5, f_8, f_10–f_18, f_32, the binary flags) are functions of the user, ad columns (f_2–f_4,
/// f_6, f_19–f_22) of the ad; f_4 is a function of f_6 (the collinearity §3.3 found); f_7 is
/// constant, f_9 alternates by day and f_23 is almost always 0 (the anomalies of §2.1.3).
/// Numerical columns are noisy counts in the paper's base units (Table 2) that leak the user's
/// and the ad's propensities, as real history counters do. A like propensity drives the click;
/// an install propensity, partly shared, drives installs after a click and (rarely) without one.
public struct RecSysSimulator {
    public let config: RecSysSimulatorConfig
    private let userCDF: [Double]
    private let adCDF: [Double]
    private var clickBias = 0.0
    private var installBias = 0.0
    private var directBias = 0.0

    /// Informative categorical columns: (column, source, vocabulary, like effect scale, install effect scale).
    private static let categoricalSpecs: [(Int, Source, Int, Double, Double)] = {
        var s: [(Int, Source, Int, Double, Double)] = [
            (2, .ad, 0, 0.3, 0.4), (3, .ad, 400, 0.3, 0.3), (4, .ad, 12, 0, 0), (6, .ad, 60, 0.3, 0.5),
            (5, .user, 0, 0.2, 0.2), (8, .user, 40, 0.3, 0.1), (7, .constant, 1, 0, 0), (9, .dayParity, 2, 0, 0),
            (23, .rare, 2, 0, 0), (32, .user, 300, 0.1, 0.3),
        ]
        for c in 10...18 { s.append((c, .user, [3, 5, 8, 20, 50, 100, 7, 4, 200][c - 10], c % 3 == 0 ? 0.3 : 0.1, c % 2 == 0 ? 0.3 : 0.05)) }
        for c in 19...22 { s.append((c, .ad, [6, 30, 80, 15][c - 19], 0.2, c == 20 ? 0.4 : 0.1)) }
        for c in 24...31 { s.append((c, .context, [2, 5, 10, 30, 100, 3, 8, 50][c - 24], c == 25 ? 0.2 : 0, c == 27 ? 0.2 : 0)) }
        return s.sorted { $0.0 < $1.0 }
    }()

    enum Source { case user, ad, context, constant, dayParity, rare }

    public init(config: RecSysSimulatorConfig) {
        self.config = config
        userCDF = Self.zipfCDF(config.users, exponent: 0.9)
        adCDF = Self.zipfCDF(config.ads, exponent: 1.0)
        calibrate()
    }

    // MARK: deterministic effects

    private func hash(_ a: UInt64, _ b: UInt64, _ c: UInt64 = 0) -> UInt64 {
        var x = a &* 0x9E37_79B9_7F4A_7C15 ^ (b &+ 0x632B_E59B_D9B4_E019) &* 0xBF58_476D_1CE4_E5B9 ^ c &* 0x94D0_49BB_1331_11EB
        x ^= config.seed &* 0xD6E8_FEB8_6659_FD93
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        return x ^ (x >> 31)
    }

    private func gaussian(_ a: UInt64, _ b: UInt64, _ c: UInt64 = 0) -> Double {
        let u1 = (Double(hash(a, b, c) >> 11) + 0.5) / 9_007_199_254_740_992
        let u2 = Double(hash(a &+ 7919, b, c &+ 104_729) >> 11) / 9_007_199_254_740_992
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }

    private static func zipfCDF(_ n: Int, exponent: Double) -> [Double] {
        var c = [Double](repeating: 0, count: n)
        var acc = 0.0
        for i in 0..<n { acc += 1 / pow(Double(i + 1), exponent); c[i] = acc }
        return c.map { $0 / acc }
    }

    private static func sample(_ cdf: [Double], _ u: Double, limit: Int) -> Int {
        let top = cdf[limit - 1]
        var lo = 0, hi = limit - 1
        let target = u * top
        while lo < hi { let mid = (lo + hi) / 2; if cdf[mid] < target { lo = mid + 1 } else { hi = mid } }
        return lo
    }

    /// The day an ad launches: most before the first day, a steady trickle after, so the last day
    /// brings ads never seen in training.
    private func launchDay(_ ad: Int) -> Int {
        let u = Double(hash(UInt64(ad), 77) >> 11) / 9_007_199_254_740_992
        if u < 0.6 { return config.firstDay }
        return config.firstDay + Int((u - 0.6) / 0.4 * Double(config.lastDay - config.firstDay + 1))
    }

    /// Ads launched by `day`, in popularity order (a prefix of the Zipf ranks, mapped to ad ids).
    private func adsLive(on day: Int) -> [Int] {
        (0..<config.ads).filter { launchDay($0) <= day }
    }

    public struct Impression {
        public var categorical: [Int64]  // f_2 … f_32
        public var binary: [Int]         // f_33 … f_41
        public var numerical: [Double]   // f_42 … f_79 (NaN = empty)
        public var pClick: Double
        public var pInstallGivenClick: Double
        public var pInstallWithoutClick: Double
    }

    private func value(_ column: Int, _ source: Source, _ vocabulary: Int, user: Int, ad: Int, day: Int,
                       rng: inout RandomSource) -> Int {
        switch source {
        case .constant: return 0
        case .dayParity: return day % 2
        case .rare: return rng.uniform() < 0.0005 ? 1 : 0
        case .context: return rng.below(vocabulary)
        case .user: return vocabulary == 0 ? user : Int(hash(UInt64(user), 1_000 + UInt64(column)) % UInt64(vocabulary))
        case .ad:
            if column == 2 { return ad }
            if column == 4 {  // a function of f_6
                return Int(hash(UInt64(value(6, .ad, 60, user: user, ad: ad, day: day, rng: &rng)), 4_000) % 12)
            }
            return Int(hash(UInt64(ad), 2_000 + UInt64(column)) % UInt64(vocabulary))
        }
    }

    /// Draws one impression on `day` (labels drawn by the caller from the probabilities).
    public func impression(_ rng: inout RandomSource, day: Int, liveAds: [Int]) -> Impression {
        let user = Self.sample(userCDF, rng.uniform(), limit: config.users)
        let ad = liveAds[Self.sample(adCDF, rng.uniform(), limit: liveAds.count)]
        var like = 0.0, install = 0.0
        var categorical: [Int64] = []
        categorical.reserveCapacity(31)
        for (column, source, vocabulary, likeScale, installScale) in Self.categoricalSpecs {
            let v = value(column, source, vocabulary, user: user, ad: ad, day: day, rng: &rng)
            if likeScale > 0 { like += likeScale * gaussian(UInt64(column), UInt64(v), 1) }
            if installScale > 0 { install += installScale * gaussian(UInt64(column), UInt64(v), 2) }
            // Hashed like the challenge's ids: large, unordered integers.
            categorical.append(Int64(hash(UInt64(column), UInt64(v), 3) % 100_000))
        }
        let userLike = gaussian(UInt64(user), 11), userInstall = 0.5 * userLike + 0.87 * gaussian(UInt64(user), 12)
        let adLike = gaussian(UInt64(ad), 13), adInstall = 0.4 * adLike + 0.9 * gaussian(UInt64(ad), 14)
        like += 0.6 * userLike + 0.5 * adLike
        install += 0.6 * userInstall + 0.6 * adInstall
        // Personalised match: a few latent dimensions.
        var match = 0.0
        for k in 0..<3 { match += gaussian(UInt64(user), 20 + UInt64(k)) * gaussian(UInt64(ad), 30 + UInt64(k)) }
        like += 0.25 * match
        install += 0.2 * match
        let binary = (0..<9).map { b -> Int in
            let p = 1 / (1 + exp(-(gaussian(UInt64(user), 40 + UInt64(b)) + (b < 3 ? 0.3 * userInstall : 0))))
            return rng.uniform() < p ? 1 : 0
        }
        for (b, v) in binary.enumerated() where b < 3 { install += 0.15 * Double(v) }
        let drift = config.installDriftPerDay * Double(day - config.firstDay)
        // Numerical history counters in the paper's base units: noisy, partly informative.
        let bases = [0.03856407, 0.57112147, 8.07946039, 0.147850899, 0.129299709, 0.355221093, 37.38457512]
        var numerical = [Double](repeating: 0, count: 38)
        for j in 0..<38 {
            let column = 42 + j
            let base = bases[j % bases.count]
            let signal: Double
            switch j % 4 {
            case 0: signal = userLike
            case 1: signal = userInstall
            case 2: signal = adInstall
            default: signal = gaussian(UInt64(user), 50 + UInt64(j))
            }
            let rate = exp(0.7 * signal + 0.5 * rng.normal())
            var count = Double(Int(rate * 3))
            if column == 51 || column == 64 { count = Double(launchDay(ad) - config.firstDay) + Double(ad % 7) }
            numerical[j] = rng.uniform() < config.missingRate ? .nan : count * base
        }
        return Impression(categorical: categorical, binary: binary, numerical: numerical,
                          pClick: sigmoid(clickBias + like),
                          pInstallGivenClick: sigmoid(installBias + drift + install),
                          pInstallWithoutClick: sigmoid(directBias + drift + install))
    }

    private func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }

    /// Solves the three biases on a pilot sample so the rates hit the targets (on the first day).
    private mutating func calibrate() {
        var rng = RandomSource(seed: config.seed, stream: 0xCA1)
        let live = adsLive(on: config.firstDay)
        var pilot: [Impression] = []
        for _ in 0..<4_000 { pilot.append(impression(&rng, day: config.firstDay, liveAds: live)) }
        func solve(_ target: Double, _ logits: [Double]) -> Double {
            var lo = -20.0, hi = 20.0
            for _ in 0..<60 {
                let mid = (lo + hi) / 2
                let mean = logits.reduce(0.0) { $0 + 1 / (1 + exp(-($1 + mid))) } / Double(logits.count)
                if mean < target { lo = mid } else { hi = mid }
            }
            return (lo + hi) / 2
        }
        func logit(_ p: Double) -> Double { log(p / (1 - p)) }
        clickBias = solve(config.clickRate, pilot.map { logit($0.pClick) })
        installBias = solve(config.installRateGivenClick, pilot.map { logit($0.pInstallGivenClick) })
        directBias = solve(config.installRateWithoutClick, pilot.map { logit($0.pInstallWithoutClick) })
    }

    public struct Summary: Codable, Sendable {
        public var rows: Int
        public var trainRows: Int
        public var testRows: Int
        public var clicks: Int
        public var installs: Int
        public var installsWithoutClick: Int
        public var files: [String]

        enum CodingKeys: String, CodingKey {
            case rows, clicks, installs, files
            case trainRows = "train_rows", testRows = "test_rows", installsWithoutClick = "installs_without_click"
        }
    }

    /// Writes `train.tsv` (every day but the last, as the challenge's training files) and
    /// `test.tsv` (the last day, with labels: simulated data can be scored).
    public func write(to dir: String) throws -> Summary {
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw FunnelError("\(dir): cannot create directory: \(error.localizedDescription)")
        }
        let days = Array(config.firstDay...config.lastDay)
        var rng = RandomSource(seed: config.seed, stream: 0x5EC)
        var summary = Summary(rows: 0, trainRows: 0, testRows: 0, clicks: 0, installs: 0, installsWithoutClick: 0, files: [])
        var train = CSVWriter(), test = CSVWriter()
        let header = RecSys2023Layout.header.joined(separator: "\t") + "\n"
        train.append(header)
        test.append(header)
        var rowId = 0
        for (i, day) in days.enumerated() {
            let live = adsLive(on: day)
            let count = config.rows * (i + 1) / days.count - config.rows * i / days.count
            for _ in 0..<count {
                let imp = impression(&rng, day: day, liveAds: live)
                let click = rng.uniform() < imp.pClick
                let install = rng.uniform() < (click ? imp.pInstallGivenClick : imp.pInstallWithoutClick)
                summary.clicks += click ? 1 : 0
                summary.installs += install ? 1 : 0
                summary.installsWithoutClick += install && !click ? 1 : 0
                func emit(_ w: inout CSVWriter) {
                    w.appendInt(rowId); w.tab(); w.appendInt(day)
                    for v in imp.categorical { w.tab(); w.appendInt(Int(v)) }
                    for v in imp.binary { w.tab(); w.appendInt(v) }
                    for v in imp.numerical {
                        w.tab()
                        if !v.isNaN { w.appendFixed(v, decimals: 6) }
                    }
                    w.tab(); w.appendInt(click ? 1 : 0)
                    w.tab(); w.appendInt(install ? 1 : 0)
                    w.newline()
                }
                if day == config.lastDay { emit(&test); summary.testRows += 1 } else { emit(&train); summary.trainRows += 1 }
                rowId += 1
            }
        }
        summary.rows = rowId
        try AtomicFile.write(train.data, to: dir + "/train.tsv")
        try AtomicFile.write(test.data, to: dir + "/test.tsv")
        summary.files = [dir + "/train.tsv", dir + "/test.tsv"]
        return summary
    }
}
