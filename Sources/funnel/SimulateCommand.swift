import ArgumentParser
import Foundation
import Funnel

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a synthetic funnel (train/test CSV in the Ali-CCP layout plus ground-truth files).")

    @Option(parsing: .unconditional, help: "Total impressions (train + test).") var rows = 500_000
    @Option(parsing: .unconditional, help: "Random seed (default: 1).", transform: { try seedValue($0, flag: "--seed") }) var seed: UInt64 = 1
    @Option(parsing: .unconditional, help: "Target click-through rate.") var ctr = 0.04
    @Option(parsing: .unconditional, help: "Target post-click conversion rate.") var cvr = 0.05
    @Option(parsing: .unconditional, help: "0 = click and conversion share drivers, 0.5 = independent, 1 = opposed.") var selectionBias = 0.5
    @Option(parsing: .unconditional, help: "Multiply the id vocabularies (50 ≈ Ali-CCP's millions of ids).") var vocabScale = 1.0
    @Option(parsing: .unconditional, help: "Share of rows written to test.csv.") var testFraction = 0.2
    @Option(parsing: .unconditional, help: "Days of traffic; above 1, one data.csv with a day column and drifting effects.") var days = 1
    @Option(parsing: .unconditional, help: "Drift per day (radians an effect turns towards an independent one).") var drift = 0.05
    @Option(parsing: .unconditional, help: "With --days: share of users and items replaced per day (new ids arrive most popular and fade; default 0).") var churn = 0.0
    @Option(parsing: .unconditional, help: "The raw layout: mean impressions per request (per common-feature line; Ali-CCP has ≈ 58; default 50).")
    var impressionsPerRequest = 50
    @Option(help: "ali-ccp (train/test CSV + truth; named explicitly, also the raw layout the ESMM paper released: sample skeletons + common features + truth, with behaviour lists), ali-ccp-raw (the raw layout only) or recsys2023 (train.tsv days 45–66, test.tsv day 67). Default: ali-ccp's CSVs only (also when --days is above 1).")
    var layout: SimulatedLayout?
    @Option(help: "Output directory.") var out: String
    @Flag(help: "Print one JSON object instead of text.") var json = false
    @Flag(help: "Replace an output that is not a regular file (a device, FIFO or symbolic link).") var force = false

    enum SimulatedLayout: String, ExpressibleByArgument {
        case aliCCP = "ali-ccp", aliCCPRaw = "ali-ccp-raw", recsys2023
    }

    private var sizeLayout: SimulationSize.Layout {
        switch layout {
        case nil: return .aliCCPCSV
        case .aliCCP: return days > 1 ? .aliCCPCSV : .aliCCPWithRaw
        case .aliCCPRaw: return .aliCCPRaw
        case .recsys2023: return .recsys2023
        }
    }

    func validate() throws {
        try refuseManyRanks("simulate")
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw ValidationError(message) } }
        try check(rows >= (layout == .recsys2023 ? 100 : 10), "--rows must be ≥ \(layout == .recsys2023 ? 100 : 10)")
        try check(ctr > 0 && ctr < 1, "--ctr must be in (0, 1)")
        try check(cvr > 0 && cvr < 1, "--cvr must be in (0, 1)")
        try check((0...1).contains(selectionBias), "--selection-bias must be in [0, 1]")
        try check(vocabScale > 0 && vocabScale <= 1000, "--vocab-scale must be in (0, 1000]")
        try check(testFraction > 0 && testFraction < 1, "--test-fraction must be in (0, 1)")
        try check((1...10_000).contains(days), "--days must be between 1 and 10000")
        try check(drift >= 0 && drift.isFinite, "--drift must be ≥ 0")
        try check(churn >= 0 && churn <= 1, "--churn must be between 0 and 1")
        try check((1...100_000).contains(impressionsPerRequest), "--impressions-per-request must be between 1 and 100000")
        try check(layout != .aliCCPRaw || days == 1, "--days applies to --layout ali-ccp only (the raw layout has no day column)")
    }

    func run() throws {
        try guarded {
            try OutputPath.checkDirectory(out, force: force)
            try SimulationSize.check(rows: rows, layout: sizeLayout, dir: out)
            if layout == .recsys2023 { return try runRecSys() }
            var c = SimulatorConfig()
            c.rows = rows; c.seed = seed; c.ctr = ctr; c.cvr = cvr
            c.selectionBias = selectionBias; c.vocabScale = vocabScale; c.testFraction = testFraction
            c.days = days; c.drift = drift; c.churn = churn
            try c.validate()
            let start = Date()
            // The raw layout: alone (ali-ccp-raw), or beside the processed CSVs when ali-ccp is named
            // (one period only: the raw layout has no day column).
            var raw: AliCCPRawSimulator.Summary?
            if layout == .aliCCPRaw || (layout == .aliCCP && days == 1) { 
                var simulator = AliCCPRawSimulator(config: c)
                simulator.impressionsPerRecord = impressionsPerRequest
                raw = try simulator.write(to: out, force: force)
            }
            let rawLine = raw.map { r in
                "wrote \(r.trainRows) train + \(r.testRows) test impressions in the raw Ali-CCP layout to \(out) "
                    + "(\(r.commonRecords) common-feature lines, \(r.clicks) clicks, \(r.conversions) conversions, "
                    + String(format: "%.1f MB", Double(r.bytes) / 1e6) + ")"
            }
            if layout == .aliCCPRaw {
                if json { return try Terminal.printJSON(raw!) }
                return try Terminal.say(rawLine! + " in \(Terminal.duration(Date().timeIntervalSince(start)))")
            }
            var summary = try FunnelSimulator(config: c).write(to: out)
            summary.raw = raw
            if json {
                try Terminal.printJSON(summary)
            } else {
                if let rawLine { try Terminal.say(rawLine) }
                let what = days > 1 ? "\(summary.trainRows) rows over \(days) days" : "\(summary.trainRows) train + \(summary.testRows) test rows"
                try Terminal.say("wrote \(what) to \(out) "
                      + "(\(summary.clicks) clicks, \(summary.conversions) conversions, \(summary.idSpace) ids) "
                      + "in \(Terminal.duration(Date().timeIntervalSince(start)))")
            }
        }
    }

    /// The RecSys 2023 layout; `--rows`, `--seed` and `--ctr` apply (the Ali-CCP knobs do not).
    private func runRecSys() throws {
        var c = RecSysSimulatorConfig()
        c.rows = rows; c.seed = seed
        if ctr != 0.04 { c.clickRate = ctr }
        try c.validate()
        let start = Date()
        let summary = try RecSysSimulator(config: c).write(to: out)
        if json {
            try Terminal.printJSON(summary)
        } else {
            try Terminal.say("wrote \(summary.trainRows) rows (days \(c.firstDay)-\(c.lastDay - 1)) to \(out)/train.tsv and "
                  + "\(summary.testRows) rows (day \(c.lastDay)) to \(out)/test.tsv (\(summary.clicks) clicks, "
                  + "\(summary.installs) installs, \(summary.installsWithoutClick) without a click) "
                  + "in \(Terminal.duration(Date().timeIntervalSince(start)))")
        }
    }
}
