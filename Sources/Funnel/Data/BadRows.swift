/// A row a reader cannot take as it stands: what is wrong with it (`kind`, the key a skip is
/// counted under) and where (`error`: file, line, field). Every table format throws these for
/// its bad rows and hands them to `BadRowPolicy`, so `--skip-bad-rows` means the same thing
/// whatever the format (docs/data-formats.md, "Bad rows").
struct RowProblem: Error {
    let kind: Kind
    let error: DataError

    /// The kinds, shared by every format (a skip report groups rows by them).
    enum Kind: String {
        case labelNotBinary = "label not 0/1"
        /// The raw Ali-CCP reader's name for the same problem: its skip counts (cache footers,
        /// `prepare --json`) have used it since it landed, and a report key is not renamed.
        case rawLabelNotBinary = "bad label"
        case badValue = "non-numeric value"
        case nonFinite = "non-finite value"
        case badWeight = "bad value weight"
        case unknownField = "unknown field"
        case repeatedField = "repeated field"
        case wrongColumnCount = "wrong column count"
        case unterminatedQuote = "unterminated quote"
        case malformedLine = "malformed line"
        case malformedFeature = "malformed feature"
        case featureCountDisagrees = "feature_num disagrees"
        case repeatedRecord = "repeated md5"
        case missingRecord = "md5 not in the common features"
        case fieldInBothFiles = "field in both files"
    }

    init(_ kind: Kind, _ error: DataError) {
        self.kind = kind
        self.error = error
    }
}

/// The one bad-row policy: without `--skip-bad-rows` the first bad row ends the read with its
/// located error; with it, the row is left out and counted by kind in the read report (the
/// first example of each kind kept), which every command prints as a note.
enum BadRowPolicy {
    static func handle(_ problem: RowProblem, options: ReadOptions, report: inout ReadReport) throws {
        guard options.skipBadRows else { throw problem.error }
        report.countSkipped(problem.kind.rawValue, problem.error.description)
    }

    /// A label cell: 0 or 1, written as an integer or as a decimal equal to it (`1.0`, `0.00`,
    /// what pandas writes for a float column); anything else (2, 0.5, empty, text) is nil.
    @inline(__always)
    static func label(_ p: UnsafePointer<UInt8>, _ n: Int) -> Float? {
        if n == 1 {
            if p[0] == 48 { return 0 }
            if p[0] == 49 { return 1 }
        }
        guard let v = NumberParsing.parseDouble(p, n), v == 0 || v == 1 else { return nil }
        return Float(v)
    }
}
