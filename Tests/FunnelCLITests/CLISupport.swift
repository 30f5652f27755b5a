import Foundation
import XCTest

/// Runs the built `funnel` executable, as swift-argument-parser's own example tests do.
enum CLI {
    /// The directory holding the test bundle and the built products.
    static var productsDirectory: URL {
        #if os(macOS)
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            return bundle.bundleURL.deletingLastPathComponent()
        }
        fatalError("couldn't find the products directory")
        #else
        return Bundle.main.bundleURL
        #endif
    }

    static var binary: URL { productsDirectory.appendingPathComponent("funnel") }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `funnel ARGS` to completion (stdin closed) and returns its exit status and output.
    @discardableResult
    static func run(_ args: [String], executable: URL? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> Result {
        let p = Process()
        p.executableURL = executable ?? binary
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["COLUMNS"] = "200"
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        // Read both pipes concurrently so neither fills up and blocks the child.
        final class Box: @unchecked Sendable { var data = Data() }
        let errBox = Box()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errBox.data = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        let errData = errBox.data
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Runs and asserts success, returning stdout.
    @discardableResult
    static func ok(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let r = try run(args)
        XCTAssertEqual(r.status, 0, "funnel \(args.joined(separator: " ")) failed:\n\(r.stderr)", file: file, line: line)
        return r.stdout
    }

    /// Runs and asserts a usage or input error: non-zero exit, nothing on stdout, `expected` in stderr.
    static func fails(_ args: [String], saying expected: String, status: Int32? = nil,
                      file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try run(args)
        XCTAssertNotEqual(r.status, 0, "funnel \(args.joined(separator: " ")) should fail", file: file, line: line)
        if let status { XCTAssertEqual(r.status, status, r.stderr, file: file, line: line) }
        XCTAssertTrue(r.stderr.contains(expected), "expected '\(expected)' in:\n\(r.stderr)", file: file, line: line)
        XCTAssertEqual(r.stdout, "", "errors go to stderr", file: file, line: line)
    }

    /// `mpirun` with the flags CI needs (root, more ranks than cores), running `ranks` copies
    /// of `funnel ARGS`; `extra` appends further MPMD programs (`: -np 1 PROGRAM …`).
    static func mpirun(ranks: Int, _ args: [String], extra: [String] = [], programGiven: Bool = false) throws -> Result {
        let launcher = try mpirunPath()
        var r = try run(["--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", "\(ranks)"] + (programGiven ? [] : [binary.path])
                        + args + extra, executable: URL(fileURLWithPath: launcher))
        r.stderr = withoutLauncherBanners(r.stderr)
        return r
    }

    /// `mpirun` on PATH (where `make deps` puts it); in CI (CI=true) its absence fails the test
    /// instead of skipping it, so the MPI tests cannot silently not run.
    static func mpirunPath() throws -> String {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":").map(String.init)
        if let found = (dirs + ["/usr/bin", "/usr/local/bin"]).map({ $0 + "/mpirun" }).first(where: FileManager.default.isExecutableFile) {
            return found
        }
        if ProcessInfo.processInfo.environment["CI"] == "true" { throw FunnelTestFailure("mpirun is not installed in CI (make deps installs openmpi-bin)") }
        throw XCTSkip("mpirun is not installed (make deps installs openmpi-bin)")
    }

    struct FunnelTestFailure: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    /// mpirun forwards the ranks' stderr in the chunks it happens to read, and may print its own
    /// dashed banners ("Primary job terminated normally, …") between two chunks of one message
    /// (seen once: "funnel si----…----mulate does not run data-parallel"). The banners removed,
    /// the ranks' messages read whole again.
    static func withoutLauncherBanners(_ text: String) -> String {
        text.replacingOccurrences(of: "-{20,}\n(?:.*\n)*?-{20,}\n?", with: "", options: .regularExpression)
    }

    /// What a child writes to `pipe`, read on another thread, until `done` holds for it or
    /// `seconds` pass: the test never blocks in a read that may not return.
    static func read(_ pipe: Pipe, until done: @escaping (String) -> Bool, within seconds: Double) -> String {
        final class Buffer: @unchecked Sendable {
            let lock = NSLock()
            var text = ""
            var ended = false
        }
        let buffer = Buffer()
        let handle = pipe.fileHandleForReading
        Thread.detachNewThread {
            while true {
                let chunk = handle.availableData
                buffer.lock.withLock { if chunk.isEmpty { buffer.ended = true } else { buffer.text += String(decoding: chunk, as: UTF8.self) } }
                if chunk.isEmpty { return }
            }
        }
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let (text, ended) = buffer.lock.withLock { (buffer.text, buffer.ended) }
            if done(text) || ended { return text }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return buffer.lock.withLock { buffer.text }
    }

    /// A JSON number at `key` (nil for a missing key, `null` or another type): presence checks
    /// that a `null` would pass use this instead of `XCTAssertNotNil(o[key])`.
    static func number(_ o: [String: Any]?, _ key: String) -> Double? {
        guard let v = o?[key], !(v is NSNull), let n = v as? NSNumber, String(cString: n.objCType) != "c" else { return nil }
        return n.doubleValue
    }

    /// An AUC: a number in [0, 1].
    static func auc(_ o: [String: Any]?, _ key: String, file: StaticString = #filePath, line: UInt = #line) -> Double? {
        let v = number(o, key)
        XCTAssertNotNil(v, "\(key) is a number in \(o ?? [:])", file: file, line: line)
        if let v { XCTAssertTrue((0...1).contains(v), "\(key) = \(v)", file: file, line: line) }
        return v
    }

    static func json(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    static func temporaryDirectory(_ name: String) -> String {
        let dir = NSTemporaryDirectory() + "funnel-cli-\(name)-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }
}

extension CLI {
    /// A model directory's weights by tensor name (`weights.safetensors`).
    static func weights(_ dir: String) throws -> [String: [Float]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/weights.safetensors"))
        let n = data.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as! [String: Any]
        var out: [String: [Float]] = [:]
        for (name, v) in header where name != "__metadata__" {
            let offsets = ((v as! [String: Any])["data_offsets"] as! [Int])
            let bytes = data.subdata(in: (8 + n + offsets[0])..<(8 + n + offsets[1]))
            out[name] = bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        return out
    }

    /// Largest absolute difference between two models' weights (same tensor names and shapes).
    static func maxWeightDifference(_ a: String, _ b: String) throws -> Float {
        let x = try weights(a), y = try weights(b)
        XCTAssertEqual(Set(x.keys), Set(y.keys))
        var most: Float = 0
        for (k, v) in x { for (p, q) in zip(v, y[k]!) { most = max(most, abs(p - q)) } }
        return most
    }
}
