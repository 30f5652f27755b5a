#if canImport(Glibc)
import Glibc
#endif
import Foundation

public enum ResourceUsage {
    /// Peak resident set size of this process so far, in MiB.
    public static var peakRSSMegabytes: Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024  // Linux reports KiB
    }

    /// Resident set size now, in MiB (from /proc/self/statm; the peak where that is unavailable).
    /// The resident set plus the pages of mapped zero buffers not written yet
    /// (`MappedBuffers`): what the process holds once its buffers are in use — what a memory
    /// plan made before the first step must start from.
    public static var committedMegabytes: Double {
        currentRSSMegabytes + Double(MappedBuffers.shared.untouchedBytes) / 1_048_576
    }

    public static var currentRSSMegabytes: Double {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return peakRSSMegabytes }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Double(fields[1]) else { return peakRSSMegabytes }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
    }
}
