import Foundation
#if canImport(Glibc)
import Glibc
#endif

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

    /// Most distinct days a replay splits into (each day is a file and a buffer).
    public static let maxDays = 1000

    /// One streaming pass over the data (and one over the truth): memory is a day per line and a
    /// bounded buffer per day, whatever the file's size.
    public static func split(_ path: String, truth: String?, dayColumn: String, into dir: String) throws -> DaySplit {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var header = "", column = -1, delimiter = UInt8(ascii: ","), lineDays: [Int32] = []
        var out = DayFiles(dir: dir, suffix: ".csv")
        try MappedLines.forEach(path, releasePages: true) { line, bytes, count in
            let text = UnsafeBufferPointer(start: bytes, count: count)
            if header.isEmpty {
                header = String(decoding: text, as: UTF8.self)
                delimiter = text.contains(9) ? 9 : UInt8(ascii: ",")
                let names = header.split(separator: Character(UnicodeScalar(delimiter)), omittingEmptySubsequences: false)
                guard let c = names.firstIndex(where: { $0 == dayColumn }) else {
                    throw DataError(file: path, column: dayColumn, "no such column (the day column of a replay)")
                }
                column = c
                return true
            }
            let day = try Self.day(in: text, column: column, delimiter: delimiter, file: path, line: line, name: dayColumn)
            lineDays.append(Int32(day))
            try out.append(text, day: day, header: header)
            return true
        }
        guard !header.isEmpty else { throw DataError(file: path, "is empty") }
        var truthHeader: String?
        if let truth {
            var truthOut = DayFiles(dir: dir, suffix: "_truth.csv"), k = -1
            try MappedLines.forEach(truth, releasePages: true) { _, bytes, count in
                let text = UnsafeBufferPointer(start: bytes, count: count)
                defer { k += 1 }
                if k < 0 { truthHeader = String(decoding: text, as: UTF8.self); return true }
                guard k < lineDays.count else { throw DataError(file: truth, "has more data lines than \(path) (\(lineDays.count))") }
                try truthOut.append(text, day: Int(lineDays[k]), header: truthHeader!)
                return true
            }
            guard k == lineDays.count else { throw DataError(file: truth, "has \(max(k, 0)) data lines; \(path) has \(lineDays.count)") }
            try truthOut.finish()
        }
        try out.finish()
        let days = Dictionary(uniqueKeysWithValues: out.days.map { d in (d, (out.path(d), truth == nil ? nil : dir + "/day-\(d)_truth.csv")) })
        return DaySplit(days: days, header: header, truthHeader: truthHeader)
    }

    /// The integer in cell `column` of a line.
    private static func day(in text: UnsafeBufferPointer<UInt8>, column: Int, delimiter: UInt8, file: String, line: Int, name: String) throws -> Int {
        var cell = 0, start = 0
        for i in 0...text.count where i == text.count || text[i] == delimiter {
            if cell == column {
                let s = String(decoding: UnsafeBufferPointer(rebasing: text[start..<i]), as: UTF8.self)
                guard let d = Int(s), abs(d) < Int(Int32.max) else { throw DataError(file: file, line: line, column: name, "'\(s)' is not an integer day") }
                return d
            }
            cell += 1
            start = i + 1
        }
        throw DataError(file: file, line: line, column: name, "the line has no cell for the day column")
    }

    /// Per-day output files written through bounded buffers, renamed into place when complete.
    private struct DayFiles {
        let dir: String, suffix: String
        private var buffers: [Int: Data] = [:]
        private(set) var days: [Int] = []

        init(dir: String, suffix: String) { (self.dir, self.suffix) = (dir, suffix) }

        func path(_ day: Int) -> String { dir + "/day-\(day)" + suffix }

        mutating func append(_ line: UnsafeBufferPointer<UInt8>, day: Int, header: String) throws {
            if buffers[day] == nil {
                guard buffers.count < DaySplit.maxDays else { throw FunnelError("more than \(DaySplit.maxDays) distinct days: replay splits at most that many") }
                buffers[day] = Data((header + "\n").utf8)
                days.append(day)
                try? FileManager.default.removeItem(atPath: path(day) + ".part")
            }
            buffers[day]!.append(line.baseAddress!, count: line.count)
            buffers[day]!.append(10)
            if buffers[day]!.count >= 256 << 10 { try flush(day) }
        }

        private mutating func flush(_ day: Int) throws {
            let file = path(day) + ".part"
            let fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw FunnelError("\(file): cannot write: \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            try buffers[day]!.withUnsafeBytes { try FileDescriptor.writeAll(fd, $0, path: file) }
            buffers[day] = Data()
        }

        mutating func finish() throws {
            for d in days {
                try flush(d)
                guard rename(path(d) + ".part", path(d)) == 0 else { throw FunnelError("\(path(d)): cannot move into place") }
            }
        }
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
}
