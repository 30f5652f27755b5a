import Foundation

/// Knobs of the synthetic funnel.
public struct SimulatorConfig: Codable, Sendable {
    /// Total impressions, split into train and test by `testFraction` (the last rows go to test).
    public var rows = 500_000
    public var seed: UInt64 = 1
    /// Target click-through rate over all impressions.
    public var ctr = 0.04
    /// Target post-click conversion rate (over clicked impressions).
    public var cvr = 0.05
    /// 0: clicking and converting are driven by the same feature effects; 0.5: independent
    /// drivers; 1: opposite drivers. The stronger it is, the less the clicked sample looks like
    /// the entire space from the CVR model's point of view (sample selection bias).
    public var selectionBias = 0.5
    /// Multiplies the id vocabularies (users, items, shops, brands, intentions).
    public var vocabScale = 1.0
    public var testFraction = 0.2
    /// Days of traffic (1: no time, train/test files). With more, rows are spread evenly over
    /// days 1…D in time order, effects drift slowly, and one file with a `day` column is written.
    public var days = 1
    /// Radians per day by which every effect rotates towards an independent one (slow drift).
    public var drift = 0.05
    /// Share of the users and of the items replaced per day (`--days` above 1): on day d a
    /// user's popularity rank r is the id ⌊churn·N·d⌋ + N − 1 − r, so new ids arrive as the most
    /// popular, sink in popularity day by day and stop being drawn after 1/churn days — ids are
    /// born after day 1 and old ones fade, as in a real log. 0: the same ids every day.
    public var churn = 0.0

    public init() {}

    public func validate() throws {
        guard rows >= 10 else { throw FunnelError("rows must be at least 10") }
        guard ctr > 0 && ctr < 1 else { throw FunnelError("the click-through rate must be in (0, 1)") }
        guard cvr > 0 && cvr < 1 else { throw FunnelError("the conversion rate must be in (0, 1)") }
        guard (0...1).contains(selectionBias) else { throw FunnelError("the selection bias must be in [0, 1]") }
        guard vocabScale > 0 && vocabScale <= 1000 else { throw FunnelError("the vocabulary scale must be in (0, 1000]") }
        guard testFraction > 0 && testFraction < 1 else { throw FunnelError("the test fraction must be in (0, 1)") }
        guard days >= 1 && days <= 10_000 else { throw FunnelError("days must be between 1 and 10000") }
        guard drift >= 0 && drift.isFinite else { throw FunnelError("the drift must be ≥ 0") }
        guard churn >= 0 && churn <= 1 else { throw FunnelError("the churn must be between 0 and 1") }
    }
}

/// A synthetic impression → click → conversion funnel in the Ali-CCP processed layout, with
/// ground truth that real logs never have: the true pCTR, the true post-click pCVR and a
/// counterfactual conversion draw for *every* impression, clicked or not.
///
/// Generative story. A user (Zipf) sees an item (Zipf) in a scenario. User profile fields
/// are fixed functions of the user, item fields (category, shop, brand, intention) of the item.
/// Each field value has a click effect and a conversion effect; the conversion effect is
/// ρ·(click effect) + √(1−ρ²)·(fresh noise) with ρ = 1 − 2·selectionBias. Users and items also
/// carry latent vectors whose dot product adds a personalised term to each logit, mixed the
/// same way (ρ·click interaction + √(1−ρ²)·an independent one). Biases are
/// solved so the rates hit `ctr` and `cvr`. Then conversion_if_clicked ~ Bernoulli(pCVR),
/// click ~ Bernoulli(pCTR), purchase = click · conversion_if_clicked.
public struct FunnelSimulator {
    public struct Field {
        public let name: String
        public let vocabulary: Int
        public let effectScale: Double
        enum Source { case user, item, context }
        let source: Source
    }

    public let config: SimulatorConfig
    public let fields: [Field]
    public let denseNames = ["D109_14", "D110_14", "D127_14", "D150_14"]
    private let users: Int
    private let items: Int
    private let userCDF: [Double]
    private let itemCDF: [Double]
    private let rho: Double
    private var ctrBias = 0.0
    private var cvrBias = 0.0

    public init(config: SimulatorConfig) {
        self.config = config
        let s = config.vocabScale
        func scaled(_ n: Double) -> Int { max(2, Int((n * s).rounded())) }
        users = scaled(60_000)
        items = scaled(70_000)
        fields = [
            Field(name: "101", vocabulary: users, effectScale: 0.5, source: .user),
            Field(name: "121", vocabulary: 98, effectScale: 0.2, source: .user),
            Field(name: "122", vocabulary: 14, effectScale: 0.15, source: .user),
            Field(name: "124", vocabulary: 3, effectScale: 0.1, source: .user),
            Field(name: "125", vocabulary: 8, effectScale: 0.15, source: .user),
            Field(name: "126", vocabulary: 4, effectScale: 0.15, source: .user),
            Field(name: "127", vocabulary: 4, effectScale: 0.1, source: .user),
            Field(name: "128", vocabulary: 3, effectScale: 0.1, source: .user),
            Field(name: "129", vocabulary: 5, effectScale: 0.1, source: .user),
            Field(name: "205", vocabulary: items, effectScale: 0.5, source: .item),
            Field(name: "206", vocabulary: scaled(900), effectScale: 0.4, source: .item),
            Field(name: "207", vocabulary: scaled(8_000), effectScale: 0.3, source: .item),
            Field(name: "210", vocabulary: scaled(3_000), effectScale: 0.3, source: .item),
            Field(name: "216", vocabulary: scaled(5_000), effectScale: 0.3, source: .item),
            Field(name: "301", vocabulary: 3, effectScale: 0.3, source: .context),
        ]
        userCDF = FunnelSimulator.zipfCDF(users, exponent: 1.05)
        itemCDF = FunnelSimulator.zipfCDF(items, exponent: 1.1)
        rho = 1 - 2 * config.selectionBias
        calibrate()
    }

    /// Total distinct ids over all categorical fields.
    public var idSpace: Int { fields.reduce(0) { $0 + $1.vocabulary } }

    // MARK: - Deterministic per-id randomness (no tables, so any vocabulary scale fits in memory)

    @inline(__always)
    private func hash(_ a: UInt64, _ b: UInt64, _ c: UInt64) -> UInt64 { noise.hash(a, b, c) }

    @inline(__always)
    private func gaussian(_ a: UInt64, _ b: UInt64, _ c: UInt64) -> Double { noise.gaussian(a, b, c) }

    private var noise: SeededNoise { SeededNoise(seed: config.seed) }

    private static func zipfCDF(_ n: Int, exponent: Double) -> [Double] { SeededNoise.zipfCDF(n, exponent: exponent) }

    @inline(__always)
    private static func sample(_ cdf: [Double], _ u: Double) -> Int { SeededNoise.sample(cdf, u) }

    // MARK: - One impression

    public struct Impression {
        public var values: [Int]  // per field
        public var dense: [Double]
        public var pCTR: Double
        public var pCVR: Double
    }

    private func draw(_ rng: inout RandomSource, day: Int = 0) -> (values: [Int], dense: [Double], zc: Double, zv: Double) {
        // Drift: each effect is cos θ·(its day-0 value) + sin θ·(an independent one), θ = drift·day,
        // so effects wander slowly while their variance, and hence the base rates, stay put.
        let theta = config.drift * Double(day)
        let (cosT, sinT) = (cos(theta), sin(theta))
        let user = churned(FunnelSimulator.sample(userCDF, rng.uniform()), of: users, day: day)
        let item = churned(FunnelSimulator.sample(itemCDF, rng.uniform()), of: items, day: day)
        let context = rng.below(3)
        var values = [Int](repeating: 0, count: fields.count)
        var zc = 0.0, zv = 0.0
        for (f, field) in fields.enumerated() {
            let v: Int
            switch field.source {
            case .user: v = f == 0 ? user : Int(hash(UInt64(user), 1_000 + UInt64(f), 0) % UInt64(field.vocabulary))
            case .item: v = f == 9 ? item : Int(hash(UInt64(item), 2_000 + UInt64(f), 0) % UInt64(field.vocabulary))
            case .context: v = context
            }
            values[f] = v + 1  // id 0 is reserved for "missing" as in processed Ali-CCP
            var ec = gaussian(UInt64(f), UInt64(v), 1) * field.effectScale
            var noise = gaussian(UInt64(f), UInt64(v), 2) * field.effectScale
            if day > 0 {
                ec = cosT * ec + sinT * gaussian(UInt64(f), UInt64(v), 7) * field.effectScale
                noise = cosT * noise + sinT * gaussian(UInt64(f), UInt64(v), 8) * field.effectScale
            }
            zc += ec
            zv += rho * ec + (1 - rho * rho).squareRoot() * noise
        }
        let personal = noise.interaction(user: user, item: item, rho: rho)
        zc += personal.click
        zv += personal.conversion
        // User behaviour intensities in [0, 1]: noisy views of the user's latent taste.
        var dense = [Double](repeating: 0, count: denseNames.count)
        for k in 0..<denseNames.count {
            let signal = gaussian(UInt64(user), 10 + UInt64(k), 3)
            dense[k] = Sigmoid.value(0.8 * signal + 0.5 * rng.normal())
        }
        return (values, dense, zc, zv)
    }

    /// The id of popularity rank `rank` among `n` on `day` (`SimulatorConfig.churn`).
    @inline(__always)
    private func churned(_ rank: Int, of n: Int, day: Int) -> Int {
        guard config.churn > 0, day > 0 else { return rank }
        return Int(config.churn * Double(n) * Double(day)) + n - 1 - rank
    }

    /// Solves the two biases by bisection on a calibration sample.
    private mutating func calibrate() {
        var rng = RandomSource(seed: config.seed, stream: 999)
        let n = 20_000
        var zcs = [Double](), zvs = [Double]()
        for _ in 0..<n { let d = draw(&rng); zcs.append(d.zc); zvs.append(d.zv) }
        (ctrBias, cvrBias) = SeededNoise.biases(clickLogits: zcs, conversionLogits: zvs, ctr: config.ctr, cvr: config.cvr)
    }

    public func impression(_ rng: inout RandomSource, day: Int = 0) -> Impression {
        let d = draw(&rng, day: day)
        return Impression(values: d.values, dense: d.dense,
                          pCTR: Sigmoid.value(ctrBias + d.zc), pCVR: Sigmoid.value(cvrBias + d.zv))
    }

    // MARK: - Writing

    public struct Summary: Codable, Sendable {
        public var trainRows: Int
        public var testRows: Int
        public var clicks: Int
        public var conversions: Int
        public var idSpace: Int
        public var files: [String]
        /// The raw Ali-CCP layout written beside (`funnel simulate --layout ali-ccp`).
        public var raw: AliCCPRawSimulator.Summary? = nil
    }

    /// Writes `train.csv`, `test.csv`, `train_truth.csv`, `test_truth.csv` into `dir`; with
    /// `days` > 1, `data.csv` and `data_truth.csv` with a `day` column instead.
    public func write(to dir: String) throws -> Summary {
        try config.validate()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let timed = config.days > 1
        let testRows = timed ? 0 : max(1, Int((Double(config.rows) * config.testFraction).rounded()))
        let trainRows = config.rows - testRows
        var rng = RandomSource(seed: config.seed, stream: 1)
        var clicks = 0, conversions = 0
        let header = (["click", "purchase"] + (timed ? ["day"] : []) + fields.map(\.name) + denseNames).joined(separator: ",") + "\n"
        let truthHeader = "p_ctr,p_cvr,conversion_if_clicked\n"
        var files: [String] = []
        let parts = timed ? [("data", config.rows)] : [("train", trainRows), ("test", testRows)]
        for (name, count) in parts {
            var data = CSVWriter()
            var truth = CSVWriter()
            data.append(header)
            truth.append(truthHeader)
            for i in 0..<count {
                let day = timed ? 1 + i * config.days / count : 0
                let imp = impression(&rng, day: day)
                let click = rng.uniform() < imp.pCTR ? 1 : 0
                let converts = rng.uniform() < imp.pCVR ? 1 : 0
                let purchase = click * converts
                clicks += click
                conversions += purchase
                data.appendInt(click); data.comma()
                data.appendInt(purchase)
                if timed { data.comma(); data.appendInt(day) }
                for v in imp.values { data.comma(); data.appendInt(v) }
                for v in imp.dense { data.comma(); data.appendFixed(v, decimals: 4) }
                data.newline()
                truth.appendFixed(imp.pCTR, decimals: 7); truth.comma()
                truth.appendFixed(imp.pCVR, decimals: 7); truth.comma()
                truth.appendInt(converts); truth.newline()
            }
            try AtomicFile.write(data.data, to: dir + "/\(name).csv")
            try AtomicFile.write(truth.data, to: dir + "/\(name)_truth.csv")
            files += [dir + "/\(name).csv", dir + "/\(name)_truth.csv"]
        }
        return Summary(trainRows: trainRows, testRows: testRows, clicks: clicks, conversions: conversions,
                       idSpace: idSpace, files: files)
    }
}
