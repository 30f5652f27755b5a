import CProcess
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The hidden temporaries Funnel writes beside an output (`.NAME.tmp-PID`, and a model
/// directory's `.NAME.old-PID` while it is being swapped): registered so SIGINT and SIGTERM
/// remove them (`CProcess`), and swept by the next run when a killed one (SIGKILL, power loss)
/// left them behind. A temporary is never read as an output: only the renamed result is.
public enum Temporaries {
    /// One registered temporary; `forget()` once it was renamed into place or removed.
    public struct Registration {
        let slot: Int32
        public func forget() { funnel_temporary_forget(slot) }
    }

    public static func register(_ path: String, directory: Bool = false) -> Registration {
        Registration(slot: funnel_temporary_register(path, directory ? 1 : 0))
    }

    /// The temporary name of `target` for this process: `.NAME.KIND-PID` beside it.
    static func path(for target: String, kind: String = "tmp") -> String {
        let url = URL(fileURLWithPath: target)
        return url.deletingLastPathComponent().path + "/.\(url.lastPathComponent).\(kind)-\(getpid())"
    }

    /// Removes what killed runs left beside `target`: `.NAME.tmp-PID` and `.NAME.old-PID` whose
    /// process is gone (a live one is another run writing the same output right now) or whose
    /// id is this process's own (an earlier, killed run that had the same id). Returns
    /// the `.old` directories found, newest first, for a caller that must recover one.
    @discardableResult
    static func sweep(beside target: String, keepOld: Bool = false) -> [String] {
        let url = URL(fileURLWithPath: target)
        let dir = url.deletingLastPathComponent().path
        let prefix = ".\(url.lastPathComponent)."
        var olds: [(String, Date)] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name.hasPrefix(prefix) {
            let rest = name.dropFirst(prefix.count)
            guard let dash = rest.lastIndex(of: "-"), let pid = Int32(rest[rest.index(after: dash)...]) else { continue }
            let kind = rest[..<dash]
            guard kind == "tmp" || kind == "old", !isAlive(pid) else { continue }
            let path = dir + "/" + name
            if kind == "old" && keepOld {
                let modified = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? .distantPast
                olds.append((path, modified))
            } else {
                removeTree(path)
            }
        }
        return olds.sorted { $0.1 > $1.1 }.map(\.0)
    }

    static func isAlive(_ pid: Int32) -> Bool {
        pid == getpid() ? false : (kill(pid, 0) == 0 || errno == EPERM)
    }

    /// Removes a file, or a directory and what it holds, without following symbolic links (at
    /// most 32 levels deep: Funnel's temporaries are one level; deeper trees are left as they are).
    static func removeTree(_ path: String, depth: Int = 0) {
        var st = stat()
        guard depth < 32, lstat(path, &st) == 0 else { return }
        if st.st_mode & S_IFMT == S_IFDIR {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] { removeTree(path + "/" + name, depth: depth + 1) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}
