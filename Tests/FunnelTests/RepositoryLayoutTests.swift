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
}
