import Foundation

/// A synthetic funnel written in the raw Ali-CCP layout (`AliCCPRaw`): sample skeletons, common
/// features and a truth file in skeleton order, for train and test.
///
/// Generative story. Impressions come in requests: a user (Zipf) opens a request and sees
/// about `impressionsPerRecord` items (Zipf) in it; the request's user-side features are one
/// common-features line keyed by an md5 (Ali-CCP has ≈ 58 impressions per common line). A user
/// has profile fields (`101` user id, `121`…`129`) and, per request, four 14-day behaviour lists —
/// categories `109_14`, shops `110_14`, brands `127_14`, intentions `150_14` — each a list of
/// ids with counts (the feature values). An item has `205` (id), `206` category, `207` shop,
/// `210` intention, `216` brand; `301` is the scenario; the crosses `508`, `509`, `702`, `853`
/// hold the item's category/shop/brand/intention with the user's count when the user's list
/// has it.
///
/// Every value has a click effect and a conversion effect mixed as in `FunnelSimulator`
/// (ρ = 1 − 2·selectionBias). A list adds the count-weighted *sum* of its values' effects
/// (scaled to unit variance per list), so the whole list carries signal: a model that keeps one
/// value of a list sees a fraction of it. A cross adds an effect of log(1 + count). User and
/// item latent vectors add a personalised term. Biases are solved for `ctr` and `cvr`.
///
/// Besides the raw files, `{train,test}_last_value.csv` hold the same impressions in the
/// processed layout with one value per field — a list's last value, as processed copies of
/// Ali-CCP keep it — so the two feedings can be compared on the same rows.
public struct AliCCPRawSimulator {
    public struct List {
        let name: String
        let cross: String
        let vocabulary: Int
        let meanLength: Int
        let itemField: Int  // the item attribute it crosses with (index into itemFields)
    }

    public let config: SimulatorConfig
    public var impressionsPerRecord = 50
    let profile: [(name: String, vocabulary: Int, scale: Double)]
    let itemFields: [(name: String, vocabulary: Int, scale: Double)]
    let lists: [List]
    private let users: Int
    private let items: Int
    private let userCDF: [Double]
    private let itemCDF: [Double]
    private let rho: Double
    private let noise: SeededNoise
    private var ctrBias = 0.0
    private var cvrBias = 0.0
    static let listScale = 0.6
    static let crossScale = 0.3
    /// Feature values of a list: counts 1…5 (E[w²] = 11, for the unit-variance scaling).
    static let maxCount = 5

    public init(config: SimulatorConfig) {
        self.config = config
        let s = config.vocabScale
        func scaled(_ n: Double) -> Int { max(2, Int((n * s).rounded())) }
        users = scaled(60_000)
        items = scaled(70_000)
        profile = [("101", users, 0.3), ("121", 98, 0.2), ("122", 14, 0.15), ("124", 3, 0.1), ("125", 8, 0.15),
                   ("126", 4, 0.15), ("127", 4, 0.1), ("128", 3, 0.1), ("129", 5, 0.1)]
        itemFields = [("205", items, 0.4), ("206", scaled(900), 0.3), ("207", scaled(8_000), 0.25), ("210", scaled(3_000), 0.25),
                      ("216", scaled(5_000), 0.25), ("301", 3, 0.3)]
        lists = [List(name: "109_14", cross: "508", vocabulary: scaled(900), meanLength: 12, itemField: 1),
                 List(name: "110_14", cross: "509", vocabulary: scaled(8_000), meanLength: 20, itemField: 2),
                 List(name: "127_14", cross: "702", vocabulary: scaled(5_000), meanLength: 15, itemField: 4),
                 List(name: "150_14", cross: "853", vocabulary: scaled(3_000), meanLength: 10, itemField: 3)]
        userCDF = SeededNoise.zipfCDF(users, exponent: 1.05)
        itemCDF = SeededNoise.zipfCDF(items, exponent: 1.1)
        rho = 1 - 2 * config.selectionBias
        noise = SeededNoise(seed: config.seed ^ 0xA11C_CCB0)
        calibrate()
    }

    // MARK: - Users and items

    struct User {
        var id: Int
        var profile: [Int]
        var lists: [[(value: Int, count: Int)]]
    }

    /// User `u` at request `request`: the profile is the user's; the 14-day lists move from
    /// request to request (half their values from a small pool of the user's interests, half
    /// recent browsing), so no user id can stand in for them.
    func user(_ u: Int, request: UInt64) -> User {
        let prof = profile.enumerated().map { f, field in f == 0 ? u : Int(noise.hash(UInt64(u), 1_000 + UInt64(f), 0) % UInt64(field.vocabulary)) }
        let lists = self.lists.enumerated().map { l, list -> [(value: Int, count: Int)] in
            let length = 1 + Int(noise.hash(request, 3_000 + UInt64(l), 0) % UInt64(2 * list.meanLength - 1))
            var seen = Set<Int>(), out: [(value: Int, count: Int)] = []
            for j in 0..<length {
                let h = noise.hash(request, 4_000 + UInt64(l), UInt64(j))
                let v = h & 1 == 0 ? Int(noise.hash(UInt64(u), 5_000 + UInt64(l), (h >> 1) % 8) % UInt64(list.vocabulary))
                                   : Int((h >> 1) % UInt64(list.vocabulary))
                if seen.insert(v).inserted { out.append((v, 1 + Int((h >> 20) % UInt64(Self.maxCount)))) }
            }
            return out
        }
        return User(id: u, profile: prof, lists: lists)
    }

    func itemValues(_ i: Int, context: Int) -> [Int] {
        itemFields.enumerated().map { f, field in
            if f == 0 { return i }
            if f == itemFields.count - 1 { return context }
            return Int(noise.hash(UInt64(i), 2_000 + UInt64(f), 0) % UInt64(field.vocabulary))
        }
    }

    /// The click and conversion effects of value `v` of field tag `tag`, scaled.
    @inline(__always)
    private func effects(_ tag: UInt64, _ v: Int, _ scale: Double) -> (Double, Double) {
        let ec = noise.gaussian(tag, UInt64(v), 1) * scale, other = noise.gaussian(tag, UInt64(v), 2) * scale
        return (ec, rho * ec + (1 - rho * rho).squareRoot() * other)
    }

    /// Logits of one impression, and the crosses it has (list index → count).
    func logits(user: User, item: Int, values: [Int]) -> (zc: Double, zv: Double, crosses: [Int?]) {
        var zc = 0.0, zv = 0.0
        for (f, field) in profile.enumerated() { let e = effects(100 + UInt64(f), user.profile[f], field.scale); zc += e.0; zv += e.1 }
        for (f, field) in itemFields.enumerated() { let e = effects(200 + UInt64(f), values[f], field.scale); zc += e.0; zv += e.1 }
        var crosses = [Int?](repeating: nil, count: lists.count)
        for (l, list) in lists.enumerated() {
            let norm = Self.listScale / (Double(list.meanLength) * 11).squareRoot()
            for (v, c) in user.lists[l] {
                let e = effects(300 + UInt64(l), v, norm * Double(c))
                zc += e.0; zv += e.1
                if v == values[list.itemField] { crosses[l] = c }
            }
            if let c = crosses[l] {
                let e = effects(400 + UInt64(l), 0, Self.crossScale * log(1 + Double(c)) / log(1 + Double(Self.maxCount)))
                zc += abs(e.0); zv += e.1
            }
        }
        let personal = noise.interaction(user: user.id, item: item, rho: rho)
        return (zc + personal.click, zv + personal.conversion, crosses)
    }

    private mutating func calibrate() {
        var rng = RandomSource(seed: config.seed, stream: 998)
        let n = 20_000
        var zcs = [Double](), zvs = [Double]()
        for _ in 0..<n {
            let u = user(SeededNoise.sample(userCDF, rng.uniform()), request: rng.next() | 1 << 63)
            let i = SeededNoise.sample(itemCDF, rng.uniform())
            let d = logits(user: u, item: i, values: itemValues(i, context: rng.below(3)))
            zcs.append(d.zc); zvs.append(d.zv)
        }
        (ctrBias, cvrBias) = SeededNoise.biases(clickLogits: zcs, conversionLogits: zvs, ctr: config.ctr, cvr: config.cvr)
    }

    // MARK: - Writing

    public struct Summary: Codable, Sendable {
        public var trainRows: Int
        public var testRows: Int
        public var commonRecords: Int
        public var clicks: Int
        public var conversions: Int
        public var bytes: Int
        public var files: [String]
    }

    /// Global feature ids: each field's values live in their own range (Ali-CCP's ids are unique
    /// across fields).
    private var fieldBase: [String: Int] {
        var base: [String: Int] = [:], next = 1
        for f in profile { base[f.name] = next; next += f.vocabulary }
        for f in itemFields { base[f.name] = next; next += f.vocabulary }
        for l in lists { base[l.name] = next; next += l.vocabulary; base[l.cross] = next; next += l.vocabulary }
        return base
    }

    /// Writes `sample_skeleton_{train,test}.csv`, `common_features_{train,test}.csv`,
    /// `sample_skeleton_{train,test}_truth.csv` and `{train,test}_last_value.csv` into `dir`,
    /// streaming (names that do not collide with `FunnelSimulator`'s, which may share the directory).
    public func write(to dir: String, force: Bool = false) throws -> Summary {
        try config.validate()
        guard config.days == 1 else { throw FunnelError("the raw Ali-CCP layout has no days; simulate one period") }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let testRows = max(1, Int((Double(config.rows) * config.testFraction).rounded()))
        var rng = RandomSource(seed: config.seed, stream: 2)
        let bases = FieldBases(self)
        let (itemBase, crossBase) = (bases.item, bases.cross)
        var summary = Summary(trainRows: config.rows - testRows, testRows: testRows, commonRecords: 0, clicks: 0, conversions: 0, bytes: 0, files: [])
        let lastHeader = (["click", "purchase"] + profile.map(\.name) + lists.map(\.name) + itemFields.map(\.name) + lists.map(\.cross))
            .joined(separator: ",") + "\n"
        for (part, count) in [("train", summary.trainRows), ("test", testRows)] {
            let names = ["sample_skeleton_\(part).csv", "common_features_\(part).csv", "sample_skeleton_\(part)_truth.csv", "\(part)_last_value.csv"]
            let files = try names.map { try AtomicFile.Stream(dir + "/" + $0, force: force) }
            var buffers = [CSVWriter](repeating: CSVWriter(), count: files.count)
            func flush(_ k: Int, always: Bool = false) throws {
                guard always || buffers[k].bytes.count >= 1 << 22 else { return }
                try buffers[k].bytes.withUnsafeBytes { try files[k].write($0) }
                buffers[k] = CSVWriter()
            }
            buffers[2].append("p_ctr,p_cvr,conversion_if_clicked\n")
            buffers[3].append(lastHeader)
            var left = 0, request = 0
            var current = user(0, request: 0), md5 = ""
            for row in 0..<count {
                if left == 0 {
                    // A new request: its user and its common-features line.
                    request += 1
                    current = user(SeededNoise.sample(userCDF, rng.uniform()), request: UInt64(request) | (part == "train" ? 0 : 1 << 40))
                    left = 1 + Int(-log(max(rng.uniform(), 1e-12)) * Double(impressionsPerRecord - 1))
                    let line: String
                    (md5, line) = commonLine(current, request: request, part: part, bases: bases)
                    buffers[1].append(line)
                    try flush(1)
                    summary.commonRecords += 1
                }
                left -= 1
                let item = SeededNoise.sample(itemCDF, rng.uniform())
                let values = itemValues(item, context: rng.below(3))
                let d = logits(user: current, item: item, values: values)
                let pCTR = Sigmoid.value(ctrBias + d.zc), pCVR = Sigmoid.value(cvrBias + d.zv)
                let click = rng.uniform() < pCTR ? 1 : 0, converts = rng.uniform() < pCVR ? 1 : 0
                summary.clicks += click
                summary.conversions += click * converts
                var features: [String] = values.enumerated().map { f, v in "\(itemFields[f].name)\u{02}\(itemBase[f] + v)\u{03}1.0" }
                for (l, c) in d.crosses.enumerated() {
                    if let c { features.append("\(lists[l].cross)\u{02}\(crossBase[l] + values[lists[l].itemField])\u{03}\(c).0") }
                }
                buffers[0].append("\(row + 1),\(click),\(click * converts),\(md5),\(features.count),\(features.joined(separator: "\u{01}"))\n")
                Self.appendTruth(&buffers[2], pCTR: pCTR, pCVR: pCVR, converts: converts)
                let last = [click, click * converts] + lastValues(current, values: values, crosses: d.crosses, bases: bases)
                for (k, v) in last.enumerated() { if k > 0 { buffers[3].comma() }; buffers[3].appendInt(v) }
                buffers[3].newline()
                for k in [0, 2, 3] { try flush(k) }
            }
            for k in files.indices { try flush(k, always: true); try files[k].finish(); summary.bytes += files[k].written }
            summary.files += names.map { dir + "/" + $0 }
        }
        return summary
    }

    /// Where each field's global ids start (`fieldBase`), as arrays by field position.
    private struct FieldBases {
        let profile: [Int], item: [Int], list: [Int], cross: [Int]
        init(_ sim: AliCCPRawSimulator) {
            let base = sim.fieldBase
            profile = sim.profile.map { base[$0.name]! }
            item = sim.itemFields.map { base[$0.name]! }
            list = sim.lists.map { base[$0.name]! }
            cross = sim.lists.map { base[$0.cross]! }
        }
    }

    /// A request's common-features line (the user's profile fields and behaviour lists, each
    /// list value weighted by its count) and its md5.
    private func commonLine(_ current: User, request: Int, part: String, bases: FieldBases) -> (md5: String, line: String) {
        let md5 = String(format: "%016llx%016llx", noise.hash(UInt64(request), 77, part == "train" ? 1 : 2),
                         noise.hash(UInt64(current.id), UInt64(request), 78))
        var features: [String] = []
        for (f, v) in current.profile.enumerated() { features.append("\(profile[f].name)\u{02}\(bases.profile[f] + v)\u{03}1.0") }
        for (l, list) in current.lists.enumerated() {
            for (v, c) in list { features.append("\(lists[l].name)\u{02}\(bases.list[l] + v)\u{03}\(c).0") }
        }
        return (md5, "\(md5),\(features.count),\(features.joined(separator: "\u{01}"))\n")
    }

    /// One value per field after the labels: a list's last value (0 when empty), as processed
    /// copies of Ali-CCP keep it; a cross's item value when the list has it, else 0.
    private func lastValues(_ current: User, values: [Int], crosses: [Int?], bases: FieldBases) -> [Int] {
        var last = current.profile.enumerated().map { bases.profile[$0] + $1 }
        last += current.lists.enumerated().map { l, list in list.last.map { bases.list[l] + $0.value } ?? 0 }
        last += values.enumerated().map { bases.item[$0] + $1 }
        last += crosses.enumerated().map { l, c in c == nil ? 0 : bases.cross[l] + values[lists[l].itemField] }
        return last
    }

    /// A truth row: the impression's true pCTR and post-click pCVR, and its counterfactual conversion.
    private static func appendTruth(_ out: inout CSVWriter, pCTR: Double, pCVR: Double, converts: Int) {
        out.appendFixed(pCTR, decimals: 7); out.comma()
        out.appendFixed(pCVR, decimals: 7); out.comma()
        out.appendInt(converts); out.newline()
    }
}
