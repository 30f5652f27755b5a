import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a simulation of `rows` impressions will write and hold, from bytes per row measured on
/// this simulator's own output (20,000-row runs, with a quarter of headroom), so `--rows
/// 4611686018427387904` is refused in words before the first row instead of filling memory or
/// the disk.
public struct SimulationSize {
    public enum Layout { case aliCCPCSV, aliCCPWithRaw, aliCCPRaw, recsys2023 }

    /// Written to disk per impression: train/test CSV + truth 99 B; with the raw layout beside
    /// 407 B; the raw layout alone 309 B; RecSys 2023's 80 columns 558 B.
    static func diskBytesPerRow(_ l: Layout) -> Double {
        switch l { case .aliCCPCSV: 99 * 1.25; case .aliCCPWithRaw: 407 * 1.25; case .aliCCPRaw: 309 * 1.25; case .recsys2023: 558 * 1.25 }
    }

    /// Held in memory per impression: one part's CSV and truth text (Ali-CCP CSVs), the raw
    /// layout streams its files (its lists are per request), RecSys keeps every column's values.
    static func memoryBytesPerRow(_ l: Layout) -> Double {
        switch l { case .aliCCPCSV, .aliCCPWithRaw: 200 * 1.25; case .aliCCPRaw: 64 * 1.25; case .recsys2023: 1_200 * 1.25 }
    }

    /// Refuses `rows` when the files would not fit on the file system holding `dir` or the text
    /// held while writing would exceed half of this machine's memory; says how many rows fit.
    public static func check(rows: Int, layout: Layout, dir: String) throws {
        let disk = Double(rows) * diskBytesPerRow(layout), memory = Double(rows) * memoryBytesPerRow(layout)
        let free = freeBytes(near: dir)
        let memoryBudget = Double(ProcessInfo.processInfo.physicalMemory) / 2
        let fit = Int(min(free / diskBytesPerRow(layout), memoryBudget / memoryBytesPerRow(layout)))
        func gb(_ b: Double) -> String { String(format: "%.1f GB", b / 1e9) }
        if disk > free {
            throw FunnelError("--rows \(rows) would write about \(gb(disk)); \(dir) has \(gb(free)) free: at most about \(fit) rows fit")
        }
        if memory > memoryBudget {
            throw FunnelError("--rows \(rows) would hold about \(gb(memory)) in memory while writing; the budget is half of this machine's "
                              + "\(gb(memoryBudget * 2)): at most about \(fit) rows fit")
        }
    }

    /// Free bytes on the file system of `dir` or its nearest existing ancestor.
    static func freeBytes(near dir: String) -> Double {
        var url = URL(fileURLWithPath: dir)
        while OutputPath.kind(url.path) == nil && url.path != "/" { url = url.deletingLastPathComponent() }
        var st = statvfs()
        guard statvfs(url.path, &st) == 0 else { return .infinity }
        return Double(st.f_bavail) * Double(st.f_frsize)
    }
}
