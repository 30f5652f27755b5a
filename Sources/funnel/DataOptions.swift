import Foundation
import ArgumentParser
import Funnel

/// Options shared by every command that reads a table.
struct DataOptions: ParsableArguments {
    @Option(help: "Field delimiter (default: detected from the header among , tab ; |). Use 'tab' for a tab.")
    var delimiter: String?

    @Option(help: "Click label column (default: click).")
    var clickColumn: String?

    @Option(help: "Conversion label column (default: first of purchase, conversion, buy, is_installed).")
    var conversionColumn: String?

    @Option(help: "Comma-separated columns (or * patterns) to treat as categorical.")
    var categorical: String?

    @Option(help: "Comma-separated columns (or * patterns) to treat as dense.")
    var dense: String?

    @Option(help: "Comma-separated columns (or * patterns) to ignore.")
    var ignore: String?

    @Option(help: "Rows with conversion=1 and click=0: drop, keep or error.")
    var inconsistent: InconsistentPolicy = .drop

    @Flag(help: "Skip malformed rows (counted and reported per kind) instead of stopping at the first.")
    var skipBadRows = false

    @Option(help: "Comma-separated columns (or * patterns) whose cells hold several values, each id or id:weight, e.g. 'hist_*' (pooled with --pooling).")
    var multiValued: String?

    @Option(help: "The separator of values in a multi-valued cell (default '|').") var valueSeparator: String?

    @Option(parsing: .unconditional, help: "Keep each row's N highest-weight values of a multi-valued field (ties: the earlier values).")
    var maxValues: Int?

    @Option(help: "Map categorical ids by a stable hash into N buckets instead of a vocabulary: N for every field, FIELD=N per field, comma-separated (e.g. 1000000 or 101=1000000,205=500000). Collisions are reported.")
    var hashBuckets: String?

    @Option(help: "Fields that share one vocabulary and one block of embedding rows, comma-separated (e.g. a behaviour list and its candidate field: 109_14,206); repeatable.")
    var shareEmbedding: [String] = []

    @Option(help: "A column naming each row's request (a page view: one user, several candidate items); not a feature. With --request-fields, a request's fields are computed once per request.")
    var requestColumn: String?

    @Option(help: "With --request-column: the comma-separated categorical columns constant within a request (the user side); a row that disagrees with its request's first row is an error naming both lines (a counted skip with --skip-bad-rows).")
    var requestFields: String?

    @Flag(help: "Compute every row on its own even where rows share a request (raw Ali-CCP's common features): the path without request sharing, kept for comparison. By default (train, predict, eval, experiment, tune) a request's fields are computed once per request, training batches hold whole requests.")
    var noRequestSharing = false

    func validate() throws {
        do { _ = try SharedVocabularies.parse(shareEmbedding) } catch let e as FunnelError { throw ValidationError(e.message) }
        if let s = valueSeparator, s.utf8.count != 1 || s == "," || s == ":" {
            throw ValidationError("--value-separator must be one character other than ',' and ':', got '\(s)'")
        }
        if let m = maxValues, m < 1 { throw ValidationError("--max-values must be ≥ 1") }
        if (valueSeparator != nil || maxValues != nil) && multiValued == nil {
            throw ValidationError("--value-separator and --max-values need --multi-valued")
        }
        if (requestColumn == nil) != (requestFields == nil) {
            throw ValidationError("--request-column and --request-fields go together: the column naming each row's request and the fields constant within it")
        }
        if let f = requestFields, f.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) || f.isEmpty {
            throw ValidationError("--request-fields must be column names separated by commas, got '\(f)'")
        }
        if let h = hashBuckets {
            do { _ = try HashBuckets.parse(h) } catch let e as FunnelError { throw ValidationError("--hash-buckets: \(e.message)") }
        }
        if let d = delimiter, !["tab", "\\t", "\t"].contains(d), d.utf8.count != 1 {
            throw ValidationError("--delimiter must be one character or 'tab', got '\(d)'")
        }
        for (flag, value) in [("--categorical", categorical), ("--dense", dense), ("--ignore", ignore), ("--multi-valued", multiValued)] {
            guard let value else { continue }
            let parts = value.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard !parts.contains(where: \.isEmpty) else {
                throw ValidationError("\(flag) must be column names or * patterns separated by commas, got '\(value)'")
            }
        }
    }

    func readOptions() throws -> ReadOptions {
        var o = ReadOptions()
        if let d = delimiter {
            switch d {
            case "tab", "\\t", "\t": o.delimiter = 9
            default:
                guard d.utf8.count == 1 else { throw FunnelError("--delimiter must be one character or 'tab', got '\(d)'") }
                o.delimiter = d.utf8.first
            }
        }
        o.clickColumn = clickColumn
        o.conversionColumn = conversionColumn
        func list(_ s: String?) -> [String] {
            (s ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        o.categorical = list(categorical)
        o.dense = list(dense)
        o.ignore = list(ignore)
        o.inconsistent = inconsistent
        o.skipBadRows = skipBadRows
        if (requestColumn == nil) != (requestFields == nil) {
            throw ValidationError("--request-column and --request-fields go together: the column naming each row's request and the fields constant within it")
        }
        if let f = requestFields, f.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) || f.isEmpty {
            throw ValidationError("--request-fields must be column names separated by commas, got '\(f)'")
        }
        if let h = hashBuckets { o.hashBuckets = try HashBuckets.parse(h) }
        o.sharedVocabularies = try SharedVocabularies.parse(shareEmbedding)
        o.multiValued = list(multiValued)
        if let s = valueSeparator { o.valueSeparator = s.utf8.first! }
        o.maxValues = maxValues
        o.requestColumn = requestColumn
        o.requestFields = list(requestFields)
        return o
    }
}

extension InconsistentPolicy: ExpressibleByArgument {
    public init?(argument: String) {
        guard let p = InconsistentPolicy(rawValue: argument), InconsistentPolicy.userChoices.contains(p) else { return nil }
        self = p
    }
    public static var allValueStrings: [String] { userChoices.map(\.rawValue) }
}
extension ModelKind: ExpressibleByArgument {}
extension GEMMEngine: ExpressibleByArgument {}
extension EmbeddingShardingMode: ExpressibleByArgument {}
extension WeightsLayout: ExpressibleByArgument {}
extension GEMMPrecision: ExpressibleByArgument {}
