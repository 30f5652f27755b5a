import Foundation

/// A day-stamped CSV/TSV (and the simulator's truth file aligned with it) cut into one file per
/// day, for the runs of `funnel replay`, which train and test day by day. Lines keep their
/// order; the header is repeated in every file; a line whose day cell is not an integer is an
/// error naming the line.
public struct DaySplit {
    /// Per day: its data file and its truth file.
    public let days: [Int: (data: String, truth: String?)]
    public let header: String
    public let truthHeader: String?

    public var dayRange: ClosedRange<Int>? { days.keys.min().map { $0...days.keys.max()! } }

    public static func split(_ path: String, truth: String?, dayColumn: String, into dir: String) throws -> DaySplit {
        let lines = try Self.lines(path)
        guard let header = lines.first, !header.isEmpty else { throw DataError(file: path, "is empty") }
        let delimiter: Character = header.contains("\t") ? "\t" : ","
        guard let column = header.split(separator: delimiter, omittingEmptySubsequences: false).firstIndex(where: { $0 == dayColumn }) else {
            throw DataError(file: path, column: dayColumn, "no such column (the day column of a replay)")
        }
        let truthLines = try truth.map(Self.lines)
        if let truthLines, truthLines.count != lines.count {
            throw DataError(file: truth!, "has \(truthLines.count - 1) data lines; \(path) has \(lines.count - 1)")
        }
        var text: [Int: [Substring]] = [:], truthText: [Int: [Substring]] = [:]
        for i in 1..<lines.count where !lines[i].isEmpty {
            let cells = lines[i].split(separator: delimiter, maxSplits: column + 1, omittingEmptySubsequences: false)
            guard cells.count > column, let day = Int(cells[column]) else {
                throw DataError(file: path, line: i + 1, column: dayColumn, "'\(cells.count > column ? String(cells[column]) : "")' is not an integer day")
            }
            text[day, default: []].append(lines[i])
            if let truthLines { truthText[day, default: []].append(truthLines[i]) }
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var days: [Int: (String, String?)] = [:]
        for (day, rows) in text {
            let file = dir + "/day-\(day).csv"
            try AtomicFile.write(Data(([header] + rows).joined(separator: "\n").utf8) + Data("\n".utf8), to: file)
            var truthFile: String?
            if let truthLines {
                truthFile = dir + "/day-\(day)_truth.csv"
                try AtomicFile.write(Data(([truthLines[0]] + truthText[day]!).joined(separator: "\n").utf8) + Data("\n".utf8), to: truthFile!)
            }
            days[day] = (file, truthFile)
        }
        return DaySplit(days: days, header: String(header), truthHeader: truthLines.map { String($0[0]) })
    }

    /// The rows of days `range` in one file (each day's lines in order, days ascending).
    public func concatenated(_ range: ClosedRange<Int>, to file: String) throws -> String {
        var out = Data((header + "\n").utf8)
        for d in range {
            guard let day = days[d] else { continue }
            out.append(try Data(contentsOf: URL(fileURLWithPath: day.data)).drop { $0 != UInt8(ascii: "\n") }.dropFirst())
        }
        try AtomicFile.write(out, to: file)
        return file
    }

    private static func lines(_ path: String) throws -> [Substring] {
        try InputFile.checkReadable(path)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasSuffix("\r") ? $0.dropLast() : $0 }
        if lines.last?.isEmpty == true { lines.removeLast() }
        return lines
    }
}
