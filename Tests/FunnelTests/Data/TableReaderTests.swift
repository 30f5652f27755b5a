import XCTest
@testable import Funnel

final class TableReaderTests: XCTestCase {
    private var dir = ""
    override func setUp() { dir = makeTempDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private func load(_ path: String, _ options: ReadOptions = ReadOptions(), minCount: Int = 1) throws
        -> (schema: FeatureSchema, data: EncodedDataset, report: ReadReport)
    {
        try DatasetLoader.loadForTraining(path, options: options, minCount: minCount)
    }

    private func assertError(_ path: String, _ expected: String, _ options: ReadOptions = ReadOptions(),
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try load(path, options), file: file, line: line) { error in
            XCTAssertEqual("\(error)", expected, file: file, line: line)
        }
    }

    /// A table's rows are sized from its header and a sample of its lines before it is read:
    /// a small file's estimate is its exact row count, and a table larger than the budget is
    /// refused in words with the rows that would fit.
    func testTableMemoryIsKnownBeforeReading() throws {
        let path = dir + "/small.csv"
        try "click,purchase,a,b\n1,0,x,1.5\n0,0,y,2\n\n1,1,z,3\n".write(toFile: path, atomically: true, encoding: .utf8)
        let csv = try CSVFile(path: path)
        XCTAssertEqual(csv.estimatedDataRows(), 4, "the sample covers the file: lines after the header, a blank one included")
        let layout = try TableReader.inferLayout(csv, options: ReadOptions(), sampleRows: nil)
        XCTAssertNoThrow(try TableMemory.check(rows: 1000, layout: layout, file: path, streamedHint: ""))
        XCTAssertThrowsError(try TableMemory.check(rows: 1 << 40, layout: layout, file: path, streamedHint: "Prepare a cache.")) {
            XCTAssertTrue("\($0)".contains("small.csv: about 1099511627776 rows × 2 columns need about"), "\($0)")
            XCTAssertTrue("\($0)".contains("rows fit. Prepare a cache."), "\($0)")
        }
        // A longer file: estimated from its first 1,000 lines, within a few percent.
        let long = dir + "/long.csv"
        try ("click,purchase,a\n" + (0..<5000).map { "0,0,\($0 % 97)" }.joined(separator: "\n") + "\n").write(toFile: long, atomically: true, encoding: .utf8)
        XCTAssertEqual(Double(try CSVFile(path: long).estimatedDataRows()), 5000, accuracy: 250)
    }

    func testReadsEveryAliCCPFixture() throws {
        for name in ["train", "val", "test"] {
            let (schema, data, report) = try load(Fixtures.path("ali-ccp-torchrechub/ali_ccp_\(name)_sample.csv"))
            XCTAssertEqual(schema.layout.clickColumn, "click")
            XCTAssertEqual(schema.layout.conversionColumn, "purchase")
            XCTAssertEqual(schema.fields.count, 23, name)
            XCTAssertEqual(schema.dense.map(\.name), ["D109_14", "D110_14", "D127_14", "D150_14", "D508", "D509", "D702", "D853"])
            XCTAssertEqual(data.rowCount, name == "train" ? 100 : 50)
            XCTAssertEqual(report.inconsistentDropped, 0)
        }
        let (_, train, _) = try load(Fixtures.path("ali-ccp-torchrechub/ali_ccp_train_sample.csv"))
        XCTAssertEqual(train.clickCount, 7)
        XCTAssertEqual(train.conversionCount, 1)
    }

    func testReadsEveryAliExpressFixture() throws {
        for path in ["aliexpress-fuxictr/train.csv", "aliexpress-fuxictr/test.csv",
                     "aliexpress-torchrechub/aliexpress_train_sample.csv", "aliexpress-torchrechub/aliexpress_test_sample.csv"] {
            let (schema, data, _) = try load(Fixtures.path(path))
            XCTAssertEqual(schema.layout.conversionColumn, "conversion", path)
            XCTAssertTrue(schema.layout.categorical.contains("categorical_1"), path)
            XCTAssertTrue(schema.layout.dense.contains("numerical_9"), path)
            XCTAssertEqual(schema.fields.count + schema.dense.count, 80, path)
            XCTAssertGreaterThan(data.rowCount, 0)
        }
        // The override turns every numerical column dense, even those whose sample values are all integers.
        var o = ReadOptions()
        o.dense = ["numerical_*"]
        o.ignore = ["search_id"]
        let (schema, _, _) = try load(Fixtures.path("aliexpress-fuxictr/train.csv"), o)
        XCTAssertEqual(schema.fields.count, 16)
        XCTAssertEqual(schema.dense.count, 63)
        XCTAssertEqual(schema.layout.ignored, ["search_id"])
    }

    func testInconsistentRowsPolicies() throws {
        let path = Fixtures.path("ali-ccp-aitm/train.csv")
        let (_, dropped, report) = try load(path)
        XCTAssertEqual(report.inconsistentDropped, 2, "2 of its 48 rows have purchase=1, click=0")
        XCTAssertEqual(dropped.rowCount, report.dataLines - 2)
        XCTAssertTrue(report.notes.joined().contains("dropped 2 row(s)"))
        var keep = ReadOptions()
        keep.inconsistent = .keep
        let (_, kept, keptReport) = try load(path, keep)
        XCTAssertEqual(kept.rowCount, keptReport.dataLines)
        var fail = ReadOptions()
        fail.inconsistent = .error
        XCTAssertThrowsError(try load(path, fail)) { e in
            XCTAssertTrue("\(e)".hasPrefix(path + ":"), "\(e)")
            XCTAssertTrue("\(e)".contains("column 'purchase': conversion=1 with click=0"), "\(e)")
        }
    }

    func testMalformedInputErrorsNameFileLineAndColumn() {
        let header = "click,purchase,user,price\n"
        var p = writeFile(dir, "cols.csv", header + "0,0,1,0.5\n1,0,2\n")
        assertError(p, "\(p):3: expected 4 columns, found 3")
        p = writeFile(dir, "num.csv", header + "0,0,1,0.5\n1,0,2,abc\n")
        var o = ReadOptions(); o.dense = ["price"]
        assertError(p, "\(p):3: column 'price': expected a number, got 'abc'", o)
        p = writeFile(dir, "label.csv", header + "0,0,1,0.5\n2,0,2,0.1\n")
        assertError(p, "\(p):3: column 'click': label must be 0 or 1, got '2'")
        p = writeFile(dir, "emptylabel.csv", header + "0,,1,0.5\n")
        assertError(p, "\(p):2: column 'purchase': label must be 0 or 1, got ''")
        p = writeFile(dir, "nan.csv", header + "0,0,1,0.5\n0,0,1,nan\n")
        assertError(p, "\(p):3: column 'price': value is not a finite number ('nan')")
        p = writeFile(dir, "inf.csv", header + "0,0,1,0.5\n0,0,1,1e400\n")
        assertError(p, "\(p):3: column 'price': value is not a finite number ('1e400')")
        p = writeFile(dir, "empty.csv", "")
        assertError(p, "\(p):1: file is empty")
        p = writeFile(dir, "headeronly.csv", header)
        assertError(p, "\(p): no data rows after the header")
        p = writeFile(dir, "nolabel.csv", "click,user\n1,2\n")
        XCTAssertThrowsError(try load(p)) { XCTAssertTrue("\($0)".contains("no conversion label column"), "\($0)") }
        p = writeFile(dir, "noclick.csv", "clicked,purchase,user\n1,0,2\n")
        assertError(p, "\(p):1: column 'click': click label column is missing")
        assertError(dir + "/missing.csv", "\(dir)/missing.csv: no such file")
        p = writeFile(dir, "dup.csv", "click,purchase,a,a\n0,0,1,1\n")
        assertError(p, "\(p):1: column 'a': duplicate column name")
    }

    func testSkipBadRowsCountsEachKind() throws {
        let p = writeFile(dir, "bad.csv", """
            click,purchase,user,price
            0,0,1,0.5
            1,0,2
            1,1,3,x
            7,0,4,0.1
            0,0,5,inf
            1,0,6,0.25

            """)
        var o = ReadOptions()
        o.skipBadRows = true
        o.dense = ["price"]
        let (_, data, report) = try load(p, o)
        XCTAssertEqual(data.rowCount, 2)
        XCTAssertEqual(report.skipped, ["wrong column count": 1, "non-numeric value": 1, "label not 0/1": 1, "non-finite value": 1])
        XCTAssertEqual(report.firstSkipped["label not 0/1"], "\(p):5: column 'click': label must be 0 or 1, got '7'")
        XCTAssertEqual(report.notes.count, 4)
    }

    func testDelimiterDetectionQuotesCRLFAndBlankLines() throws {
        let tsv = writeFile(dir, "t.tsv", "click\tpurchase\tuser\tprice\r\n1\t1\t5\t0.5\r\n\r\n0\t0\t6\t1.5\r\n")
        let (schema, data, _) = try load(tsv)
        XCTAssertEqual(data.rowCount, 2)
        XCTAssertEqual(schema.layout.categorical, ["user"])
        XCTAssertEqual(schema.layout.dense, ["price"])
        let quoted = writeFile(dir, "q.csv", "click,purchase,city,price\n1,0,\"New York, NY\",0.5\n0,0,Paris,1.5\n")
        let (qs, qd, _) = try load(quoted)
        XCTAssertEqual(qd.rowCount, 2)
        XCTAssertEqual(qs.fields[0].values.sorted(), ["New York, NY", "Paris"])
        var o = ReadOptions()
        o.delimiter = 59  // ';' forced although the header has commas inside one column name
        let semi = writeFile(dir, "s.csv", "click;purchase;a,b\n1;0;3\n")
        let (ss, _, _) = try load(semi, o)
        XCTAssertEqual(ss.layout.categorical, ["a,b"])
    }

    func testVocabularyMinCountUnseenAndDenseNormalisation() throws {
        let train = writeFile(dir, "train.csv", """
            click,purchase,item,price
            1,1,10,1.0
            0,0,10,3.0
            0,0,20,
            1,0,30,2.0

            """)
        let (schema, data, _) = try load(train, minCount: 2)
        XCTAssertEqual(schema.fields[0].values, ["10"], "20 and 30 are rare at min-count 2")
        XCTAssertEqual(Array(data.ids), [1, 1, 0, 0])
        XCTAssertEqual(schema.dense[0].mean, 2.0, accuracy: 1e-12)
        XCTAssertEqual(schema.dense[0].std, (2.0 / 3).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(data.dense[2], 0, "an empty dense cell is the training mean, 0 after standardising")
        XCTAssertEqual(Double(data.dense[0]), -1 / (2.0 / 3).squareRoot(), accuracy: 1e-6)
        // Unseen categories at prediction time map to the out-of-vocabulary id; labels may be absent.
        let predict = writeFile(dir, "p.csv", "item,price,extra\n10,2.0,x\n99,4.0,y\nabc,,z\n")
        let (pd, _) = try DatasetLoader.load(predict, schema: schema, options: ReadOptions(), requireLabels: false)
        XCTAssertFalse(pd.hasLabels)
        XCTAssertEqual(Array(pd.ids), [1, 0, 0])
        // A file missing a trained column names it.
        let missing = writeFile(dir, "m.csv", "click,purchase,item\n1,0,10\n")
        XCTAssertThrowsError(try DatasetLoader.load(missing, schema: schema, options: ReadOptions(), requireLabels: true)) {
            XCTAssertEqual("\($0)", "\(missing):1: column 'price': column is missing (the model was trained with it)")
        }
    }

    func testNumberParsing() {
        func parse(_ s: String) -> Double? {
            var s = s
            return s.withUTF8 { NumberParsing.parseDouble($0.baseAddress!, $0.count) }
        }
        XCTAssertEqual(parse("0.4734"), 0.4734)
        XCTAssertEqual(parse("-1.5e-3"), -0.0015)
        XCTAssertEqual(parse("0.11914000000000001"), 0.11914000000000001)
        XCTAssertEqual(parse("12345678901234567890123"), 12345678901234567890123.0)
        XCTAssertEqual(parse(".5"), 0.5)
        XCTAssertNil(parse("1.2.3"))
        XCTAssertNil(parse("abc"))
        XCTAssertNil(parse("1e"))
        XCTAssertTrue(parse("NaN")!.isNaN)
        XCTAssertEqual(CategoryKey.of("123"), 123)
        XCTAssertLessThan(CategoryKey.of("abc"), 0, "text keys live apart from integer ids")
        XCTAssertTrue(ReadOptions.glob("numerical_*", "numerical_12"))
        XCTAssertFalse(ReadOptions.glob("numerical_*", "categorical_1"))
        XCTAssertTrue(ReadOptions.glob("*_14", "109_14"))
    }
}
