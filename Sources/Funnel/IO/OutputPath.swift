import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where a command may write. Outputs replace only regular files (or create new ones): an
/// existing device node, FIFO, socket, directory or symbolic link at the target is refused
/// unless the caller forces it, so `--out /dev/null` never replaces the system's /dev/null and
/// a symlink is never followed or clobbered by accident. Commands check their outputs *before*
/// the work starts, so an unwritable location fails in a second, not after training.
public enum OutputPath {
    /// What is at `path` without following a final symbolic link; nil when nothing is.
    static func kind(_ path: String) -> mode_t? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return st.st_mode & S_IFMT
    }

    static func describe(_ mode: mode_t) -> String {
        switch mode {
        case S_IFDIR: return "a directory"
        case S_IFLNK: return "a symbolic link"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        case S_IFREG: return "a regular file"
        default: return "not a regular file"
        }
    }

    /// A file output: absent or a regular file, in an existing writable directory.
    public static func checkFile(_ path: String, force: Bool = false) throws {
        guard !path.isEmpty else { throw FunnelError("the output path is empty") }
        if let mode = kind(path), mode != S_IFREG {
            guard force, mode != S_IFDIR else {
                throw FunnelError("\(path): is \(describe(mode)); outputs replace only regular files"
                                  + (mode == S_IFDIR ? "" : " (use --force to replace it)"))
            }
        }
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try checkWritableDirectory(dir, for: path)
    }

    /// A directory output (model directory, experiment or simulator output): absent (its
    /// nearest existing ancestor writable) or a real, writable directory.
    public static func checkDirectory(_ path: String, force: Bool = false) throws {
        guard !path.isEmpty else { throw FunnelError("the output directory path is empty") }
        if let mode = kind(path) {
            if mode == S_IFLNK && force {
                var st = stat()
                guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
                    throw FunnelError("\(path): a symbolic link that does not lead to a directory")
                }
            } else if mode != S_IFDIR {
                throw FunnelError("\(path): is \(describe(mode)), not a directory" + (mode == S_IFLNK ? " (use --force to write through it)" : ""))
            }
            guard access(path, W_OK) == 0 else { throw FunnelError("\(path): directory is not writable") }
            return
        }
        var ancestor = URL(fileURLWithPath: path).deletingLastPathComponent()
        while kind(ancestor.path) == nil && ancestor.path != "/" { ancestor = ancestor.deletingLastPathComponent() }
        try checkWritableDirectory(ancestor.path, for: path)
    }

    private static func checkWritableDirectory(_ dir: String, for path: String) throws {
        var st = stat()
        guard stat(dir, &st) == 0 else { throw FunnelError("\(path): the directory \(dir) does not exist") }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw FunnelError("\(path): \(dir) is not a directory") }
        guard access(dir, W_OK) == 0 else { throw FunnelError("\(path): the directory \(dir) is not writable") }
    }
}
