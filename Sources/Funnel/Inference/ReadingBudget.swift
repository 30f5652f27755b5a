import Foundation

/// `predict` and `eval` under `--memory-budget`: what they will hold, known before a row is
/// read, and refused in words — with the budget that would fit — when it is more.
///
/// A prepared cache is read a row group at a time: the process as it stands (the model loaded,
/// its vocabularies mapped), the largest row group in flight — its stored bytes paged in, the
/// decoded table and its encoding (each about the stored width again; a raw Ali-CCP row also
/// carries its shared record's values), the predictions and their CSV text (64 bytes a row) —
/// and what the command keeps for every row (`eval`: predictions, labels and source line, and
/// the metrics' sorted copies — 68 bytes — plus the truth file, read whole). A text file is read
/// whole: about 3.3 times its size. Measured on a 3M-row cache (65,536-row groups) and its
/// 219 MiB CSV: `predict` planned 108 MiB, peaked at 88; `eval --truth` planned 366, peaked at
/// 246; reading the CSV planned 800, peaked at 745.
public enum ReadingBudget {
    /// Bytes one row group costs while it is decoded, encoded and predicted.
    static func inFlight(_ cache: ColumnarCache, group g: Int) -> Double {
        let rows = Double(cache.footer.groups[g].rows)
        var perRow = Double(cache.groupBytes(g)) / max(rows, 1) * 3 + 64
        if let s = cache.footer.shared, s.entries > 0 { perRow += Double(s.bytes) / Double(s.entries) * 2 }
        return rows * perRow
    }

    /// A budget to suggest for a plan of `need` MiB: 5% over it, as the process's own size varies
    /// from run to run.
    static func suggested(_ need: Double) -> Double { (need * 1.05).rounded(.up) }

    /// Refuses a streamed read of `cache` that would not fit `budgetMiB`.
    public static func check(_ budgetMiB: Double, cache: ColumnarCache, keptPerRow: Double, extraBytes: Double = 0, command: String) throws {
        let now = ResourceUsage.committedMegabytes
        let bytes = cache.footer.groups.indices.map { inFlight(cache, group: $0) }
        let largest = bytes.indices.max { bytes[$0] < bytes[$1] }
        let group = largest.map { bytes[$0] / 1_048_576 } ?? 0
        let kept = (keptPerRow * Double(cache.footer.rows) + extraBytes) / 1_048_576
        let need = now + group + kept + 16
        guard need > budgetMiB else { return }
        let rows = largest.map { cache.footer.groups[$0].rows } ?? 0
        throw FunnelError(String(format: "%@ needs about %.0f MiB (model and process %.0f, a row group of %d rows %.0f, %.0f kept for the rows); "
                                 + "the budget is %.0f MiB: give --memory-budget %.0f or more, or prepare the cache with fewer --group-rows",
                                 command, need, now, rows, group, kept, budgetMiB, suggested(need)))
    }

    /// Refuses reading a text file whole over `budgetMiB`, naming the way to stream it.
    public static func checkWhole(_ budgetMiB: Double, path: String, command: String) throws {
        let size = Double(InputFile.size(path))
        let need = ResourceUsage.committedMegabytes + 3.3 * size / 1_048_576 + 16
        guard need > budgetMiB else { return }
        throw FunnelError(String(format: "%@ reads %@ whole, about %.0f MiB; the budget is %.0f MiB: give --memory-budget %.0f or more, "
                                 + "or `funnel prepare --data %@ --out CACHE` and give CACHE, which is read a row group at a time",
                                 command, path, need, budgetMiB, suggested(need), path))
    }
}
