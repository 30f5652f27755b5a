import Foundation
import XCTest

/// The README is the front door: its layout names every folder of the sources (a folder added
/// without a line there fails here), it stays short, and every page it links exists.
final class RepositoryLayoutTests: XCTestCase {
    private let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    private var readme: String { (try? String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)) ?? "" }

    /// The fenced block under "## Layout".
    private var layoutBlock: String {
        guard let start = readme.range(of: "## Layout\n\n```\n")?.upperBound,
              let end = readme.range(of: "\n```", range: start..<readme.endIndex)?.lowerBound else { return "" }
        return String(readme[start..<end])
    }

    func testEveryFolderUnderSourcesIsInTheLayout() throws {
        let block = layoutBlock
        XCTAssertFalse(block.isEmpty, "README.md has a ## Layout block")
        let sources = root.appendingPathComponent("Sources").path
        var missing: [String] = []
        for case let path as String in FileManager.default.enumerator(atPath: sources)! {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: sources + "/" + path, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
            let parts = path.split(separator: "/")
            if parts.last == "include" { continue }  // a C target's public headers
            // A top-level target is named in full; a folder inside one by its own name and a slash.
            let named = parts.count == 1 ? block.contains("Sources/\(path)") : block.contains(" \(parts.last!)/")
            if !named { missing.append("Sources/" + path) }
        }
        XCTAssertEqual(missing, [], "folders missing from README.md's layout")
        for line in block.split(separator: "\n") where line.hasPrefix("Sources/") {
            let name = line.split(separator: " ")[0].trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            XCTAssertTrue(FileManager.default.fileExists(atPath: root.appendingPathComponent(name).path), "the layout names \(name), which is gone")
        }
    }

    func testTheReadmeIsShortAndItsLinksResolve() throws {
        XCTAssertLessThanOrEqual(readme.split(separator: "\n", omittingEmptySubsequences: false).count, 250)
        let links = try NSRegularExpression(pattern: #"\]\((docs/[^)#\s]+)"#)
        let text = readme
        let found = links.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap { Range($0.range(at: 1), in: text).map { String(text[$0]) } }
        XCTAssertGreaterThan(found.count, 5)
        for page in Set(found) { XCTAssertTrue(FileManager.default.fileExists(atPath: root.appendingPathComponent(page).path), page) }
    }

    /// Swift sources under `dir` (relative to the root), with their text.
    private func sources(_ dir: String) -> [(path: String, text: String)] {
        let base = root.appendingPathComponent(dir).path
        let files = FileManager.default.enumerator(atPath: base)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") } ?? []
        return files.sorted().compactMap { f in (try? String(contentsOfFile: base + "/" + f, encoding: .utf8)).map { (dir + "/" + f, $0) } }
    }

    /// Distribution lives behind the communicator: library and CLI code call collectives
    /// unconditionally (a lone process has the single-process communicator), so no branch on
    /// whether there is one outside `Distributed/`.
    func testNoCommunicatorBranchesOutsideDistributed() {
        let all = sources("Sources").filter { !$0.path.contains("/Distributed/") && !$0.path.hasPrefix("Sources/FunnelDistributed/") }
        XCTAssertGreaterThan(all.count, 100)
        for (path, text) in all {
            for pattern in ["if let comm", "guard let comm", "comm?.", "communicator?."] {
                XCTAssertFalse(text.contains(pattern), "\(path) has '\(pattern)'")
            }
        }
    }

    /// The engine does not pull the ONNX export's protobuf code or MPI: those are FunnelONNX and
    /// FunnelDistributed, which only the executable links with it.
    func testTheEngineImportsNeitherProtobufNorMPI() {
        let engine = sources("Sources/Funnel")
        XCTAssertGreaterThan(engine.count, 100)
        for (path, text) in engine {
            XCTAssertFalse(text.contains("import SwiftProtobuf"), path)
            XCTAssertFalse(text.contains("import CMPI"), path)
        }
        let manifest = (try? String(contentsOf: root.appendingPathComponent("Package.swift"), encoding: .utf8)) ?? ""
        let funnelTarget = manifest.components(separatedBy: ".target(").first { $0.contains("name: \"Funnel\",") }?
            .components(separatedBy: "swiftSettings").first ?? ""
        XCTAssertFalse(funnelTarget.isEmpty)
        XCTAssertFalse(funnelTarget.contains("SwiftProtobuf") || funnelTarget.contains("\"CMPI\""), funnelTarget)
    }

    /// No function over 60 lines in the sources (generated code aside), by the same scan the
    /// closing notes quote (`scripts/function-lengths.py`).
    func testNoFunctionIsLongerThanSixtyLines() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", root.appendingPathComponent("scripts/function-lengths.py").path] + ["Funnel", "FunnelServe", "funnel", "FunnelONNX",
                      "FunnelDistributed"].map { root.appendingPathComponent("Sources/" + $0).path }
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, text)
    }
}
