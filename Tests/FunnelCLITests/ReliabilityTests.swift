import Foundation
import XCTest
@testable import Funnel
#if canImport(Glibc)
import Glibc
#endif

/// What a command does when its environment fails under it: full or closed outputs, FIFOs as
/// inputs, inputs cut short while read, and runs killed while they replace a model directory.
final class ReliabilityTests: XCTestCase {
    static var dir = ""
    static var data: String { dir + "/data" }
    static var model: String { dir + "/esmm" }
    static let tiny = ["--embedding-dim", "4", "--hidden", "16,8", "--batch-size", "256", "--threads", "1"]

    override class func setUp() {
        dir = CLI.temporaryDirectory("reliability")
        for args in [["simulate", "--rows", "3000", "--seed", "4", "--vocab-scale", "0.02", "--out", data],
                     ["train", "--train", data + "/train.csv", "--model", "esmm", "--out", model] + tiny] {
            let r = try! CLI.run(args)
            precondition(r.status == 0, "setup failed: funnel \(args.joined(separator: " "))\n\(r.stderr)")
        }
    }

    override class func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// Runs `funnel ARGS` through the shell with `redirect` appended (`>/dev/full`, `>&-`, …),
    /// killed after `deadline` seconds (exit 124) so a command that blocks fails the test instead
    /// of hanging it.
    private func shell(_ args: [String], _ redirect: String, deadline: Int = 120) throws -> CLI.Result {
        let quoted = ([CLI.binary.path] + args).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        return try CLI.run(["-c", "exec timeout \(deadline) " + quoted.joined(separator: " ") + " " + redirect],
                           executable: URL(fileURLWithPath: "/bin/sh"))
    }

    func testAFullOrClosedStandardOutputIsAnErrorNotATrapNorASilentSuccess() throws {
        let d = Self.dir
        let commands: [[String]] = [
            ["predict", "--model", Self.model, "--data", Self.data + "/test.csv", "--out", "-"],
            ["eval", "--model", Self.model, "--data", Self.data + "/test.csv", "--json"],
            ["eval", "--model", Self.model, "--data", Self.data + "/test.csv"],
            ["simulate", "--rows", "200", "--out", d + "/sim-full", "--json"],
            ["train", "--train", Self.data + "/train.csv", "--model", "base", "--out", d + "/base-full", "--json"] + Self.tiny,
        ]
        for args in commands {
            let full = try shell(args, ">/dev/full")
            XCTAssertEqual(full.status, 1, "funnel \(args.joined(separator: " ")) >/dev/full: \(full.stderr)")
            XCTAssertTrue(full.stderr.contains("standard output: write failed: No space left on device"), full.stderr)
            let closed = try shell(args, ">&-")
            XCTAssertEqual(closed.status, 1, "funnel \(args.joined(separator: " ")) >&-: \(closed.stderr)")
            XCTAssertTrue(closed.stderr.contains("standard output is closed"), closed.stderr)
        }
    }

    func testAFullOrClosedStandardErrorEndsTheCommandWithAnErrorStatus() throws {
        // train writes notes to stderr (columns, rows read): they are lost, so the exit says so.
        let args = ["train", "--train", Self.data + "/train.csv", "--model", "base", "--out", Self.dir + "/base-err"] + Self.tiny
        for redirect in ["2>/dev/full", "2>&-"] {
            let r = try shell(args, redirect)
            XCTAssertEqual(r.status, 1, redirect)
            XCTAssertTrue(r.stdout.contains("trained base"), r.stdout)
        }
        // A command that has nothing to say on stderr is not affected.
        let quiet = try shell(["predict", "--model", Self.model, "--data", Self.data + "/test.csv", "--out", Self.dir + "/p.csv"], "2>/dev/full")
        XCTAssertEqual(quiet.status, 0)
    }

    func testAFIFOIsRefusedAsAnInputByEveryCommandInsteadOfBlocking() throws {
        let fifo = Self.dir + "/fifo"
        unlink(fifo)
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        let d = Self.dir, test = Self.data + "/test.csv"
        let commands: [[String]] = [
            ["train", "--train", fifo, "--model", "esmm", "--out", d + "/m-fifo"],
            ["train", "--train", Self.data + "/train.csv", "--valid", fifo, "--model", "esmm", "--out", d + "/m-fifo"],
            ["predict", "--model", Self.model, "--data", fifo, "--out", d + "/p-fifo.csv"],
            ["eval", "--model", Self.model, "--data", fifo],
            ["eval", "--model", Self.model, "--data", test, "--truth", fifo],
            ["experiment", "--train", fifo, "--test", test, "--models", "esmm", "--runs", "1"],
            ["prepare", "--data", fifo, "--out", d + "/c.fcache"],
        ]
        for args in commands {
            let r = try shell(args, "", deadline: 20)  // a blocked open would end as 124
            XCTAssertEqual(r.status, 1, "funnel \(args.joined(separator: " ")): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("fifo: is not a regular file"), "funnel \(args.joined(separator: " ")): \(r.stderr)")
        }
    }

    func testAnInputCutShortWhileMappedIsALocatedErrorNotSIGBUS() throws {
        // A file far larger than the page cache's read-ahead, cut to 4 KiB at several moments of
        // the read: whichever moment, the command ends by exiting (never on a signal), and at
        // least one cut lands while the file is mapped and is named as such.
        var text = try String(contentsOfFile: Self.data + "/train.csv", encoding: .utf8)
        let body = text.split(separator: "\n", omittingEmptySubsequences: true).dropFirst().joined(separator: "\n") + "\n"
        for _ in 0..<60 { text += body }
        let copy = Self.dir + "/cut.csv"
        var sawLocatedError = false
        for delay in [0.05, 0.1, 0.2, 0.3, 0.5, 0.8] {
            try text.write(toFile: copy, atomically: false, encoding: .utf8)
            let p = Process()
            p.executableURL = CLI.binary
            p.arguments = ["predict", "--model", Self.model, "--data", copy, "--out", Self.dir + "/cut-pred.csv"]
            let err = Pipe()
            p.standardError = err
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            Thread.sleep(forTimeInterval: delay)
            XCTAssertEqual(truncate(copy, 4096), 0)
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationReason, .exit, "killed by signal \(p.terminationStatus): \(stderr)")
            if stderr.contains("cut.csv: the file changed (it was cut short) while being read") { sawLocatedError = true }
        }
        XCTAssertTrue(sawLocatedError, "no run was cut while its input was mapped")
    }

    /// Starts `funnel ARGS`, sends `signal` after `delay` seconds, waits for it.
    private func interrupt(_ args: [String], with signal: Int32, after delay: Double) throws -> Process {
        let p = Process()
        p.executableURL = CLI.binary
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        Thread.sleep(forTimeInterval: delay)
        kill(p.processIdentifier, signal)
        p.waitUntilExit()
        return p
    }

    private func leftovers(beside path: String) -> [String] {
        let url = URL(fileURLWithPath: path)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.deletingLastPathComponent().path)) ?? []
        return names.filter { $0.hasPrefix("." + url.lastPathComponent + ".") }
    }

    func testSIGKILLAtAnyPointOfFiftyRetrainsLeavesALoadableModel() throws {
        let out = Self.dir + "/retrained"
        func train(_ seed: Int) -> [String] {
            ["train", "--train", Self.data + "/train.csv", "--model", "esmm", "--out", out, "--seed", "\(seed)"] + Self.tiny
        }
        let start = Date()
        try CLI.ok(train(0))
        let duration = Date().timeIntervalSince(start)
        var sums = Set([try TrainedModel.load(from: out).manifest.weightsChecksum])
        for k in 0..<50 {
            // Kill points spread evenly over twice one run's length: the first half lands inside
            // a run (its save included), the second mostly after it (so some retrains finish even
            // on a loaded machine, where a run takes longer than the one measured).
            let p = try interrupt(train(k + 1), with: SIGKILL, after: duration * (Double(k) + 0.5) / 50 * 2)
            XCTAssertTrue(p.terminationReason == .uncaughtSignal || p.terminationStatus == 0)
            let loaded = try TrainedModel.load(from: out)  // the old model or the new: never a mix, never missing
            sums.insert(loaded.manifest.weightsChecksum)
        }
        XCTAssertGreaterThan(sums.count, 1, "no retrain ever finished: the kill points missed the save")
        try CLI.ok(train(99))
        XCTAssertEqual(leftovers(beside: out), [], "a finished run sweeps what killed runs left")
    }

    func testSIGTERMRemovesACommandsOwnTemporaries() throws {
        var text = try String(contentsOfFile: Self.data + "/train.csv", encoding: .utf8)
        let body = text.split(separator: "\n", omittingEmptySubsequences: true).dropFirst().joined(separator: "\n") + "\n"
        for _ in 0..<40 { text += body }
        let csv = Self.dir + "/prep.csv", cache = Self.dir + "/prep.fcache"
        try text.write(toFile: csv, atomically: false, encoding: .utf8)
        for delay in [0.2, 0.4, 0.6] {
            let p = try interrupt(["prepare", "--data", csv, "--out", cache], with: SIGTERM, after: delay)
            if p.terminationReason == .uncaughtSignal { XCTAssertEqual(p.terminationStatus, SIGTERM) }
            XCTAssertEqual(leftovers(beside: cache), [], "after SIGTERM at \(delay) s")
        }
        let out = Self.dir + "/term-model"
        let p = try interrupt(["train", "--train", csv, "--model", "esmm", "--out", out] + Self.tiny, with: SIGTERM, after: 1.0)
        if p.terminationReason == .uncaughtSignal { XCTAssertEqual(p.terminationStatus, SIGTERM) }
        XCTAssertEqual(leftovers(beside: out), [])
    }

    func testADenseValueThatSaturatesTheNetworkIsAnErrorOrACountedSkip() throws {
        let lines = try String(contentsOfFile: Self.data + "/test.csv", encoding: .utf8).split(separator: "\n").map(String.init)
        let header = lines[0].split(separator: ",").map(String.init)
        let column = try XCTUnwrap(header.firstIndex(of: "D109_14"))
        var third = lines[3].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        third[column] = "1e38"
        let bad = Self.dir + "/saturating.csv"
        try ([lines[0], lines[1], lines[2], third.joined(separator: ",")] + lines[4...]).joined(separator: "\n")
            .appending("\n").write(toFile: bad, atomically: true, encoding: .utf8)
        try CLI.fails(["predict", "--model", Self.model, "--data", bad, "--out", Self.dir + "/sat.csv"],
                      saying: "saturating.csv: column 'D109_14': data row 3: dense value 1e+38 lies")
        let o = CLI.json(try CLI.ok(["predict", "--model", Self.model, "--data", bad, "--out", Self.dir + "/sat.csv",
                                     "--skip-bad-rows", "--json"]))
        XCTAssertEqual(o["skipped_rows"] as? Int, 1)
        XCTAssertEqual(o["rows"] as? Int, lines.count - 2)
    }

    func testAnExistingFileAsAModelOutputIsNamedAsSuch() throws {
        let file = Self.dir + "/a-file"
        try "x".write(toFile: file, atomically: true, encoding: .utf8)
        try CLI.fails(["train", "--train", Self.data + "/train.csv", "--model", "esmm", "--out", file] + Self.tiny,
                      saying: "a-file: is a regular file, not a directory")
    }

    func testSimulateRefusesRowsThatCannotFit() throws {
        try CLI.fails(["simulate", "--rows", "4611686018427387904", "--out", Self.dir + "/huge"], saying: "rows fit")
        try CLI.fails(["simulate", "--rows", "40000000000", "--layout", "recsys2023", "--out", Self.dir + "/huge"], saying: "would write about")
        XCTAssertFalse(FileManager.default.fileExists(atPath: Self.dir + "/huge"))
    }

    /// Output paths never trap: no `try!` and no Foundation `FileHandle` writes in the sources
    /// (they raise on a full disk or a closed descriptor), no bare `print` in the commands (its
    /// errors are lost). The generated protobuf code aside.
    func testNoTrappingOrSilentWritesInTheSources() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let sources = root.appendingPathComponent("Sources").path
        var offenders: [String] = []
        for case let file as String in FileManager.default.enumerator(atPath: sources)! where file.hasSuffix(".swift") && !file.hasSuffix(".pb.swift") {
            let text = try String(contentsOfFile: sources + "/" + file, encoding: .utf8)
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let code = line.split(separator: "//", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                if code.contains("try!") || code.contains("FileHandle.standardOutput.write") || code.contains("FileHandle.standardError.write")
                    || (file.hasPrefix("funnel/") && code.range(of: #"(^|[^\w.])print\("#, options: .regularExpression) != nil) {
                    offenders.append("\(file):\(n + 1): \(line.trimmingCharacters(in: .whitespaces))")
                }
            }
        }
        XCTAssertEqual(offenders, [])
    }

    /// A server at its connection cap, connections waiting in its backlog, stops cleanly on
    /// SIGTERM (exit 0, no trap), and accepts nothing more while it stops.
    func testServeStopsCleanlyOnSIGTERMWithConnectionsQueuedAtTheCap() throws {
        let p = Process()
        p.executableURL = CLI.binary
        p.arguments = ["serve", "--model", Self.model, "--port", "0", "--threads", "1", "--max-connections", "4"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let text = CLI.read(err, until: { $0.contains("serving") && $0.hasSuffix("\n") }, within: 30)
        let port = try XCTUnwrap(text.split(separator: ":").last.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }, text)
        var sockets: [Int32] = []
        for _ in 0..<8 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            sockets.append(fd)
        }
        Thread.sleep(forTimeInterval: 0.3)
        sockets.prefix(3).forEach { close($0) }
        Thread.sleep(forTimeInterval: 0.2)
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        sockets.dropFirst(3).forEach { close($0) }
        XCTAssertEqual(p.terminationReason, .exit, "ended by signal \(p.terminationStatus)")
        XCTAssertEqual(p.terminationStatus, 0)
    }
}
