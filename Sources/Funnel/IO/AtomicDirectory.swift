import CProcess
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes a directory of files (a model directory) so that readers see the old directory or the
/// new one, never a mix of the two, whatever stops the writer:
///
/// 1. every file is written into a hidden sibling `.NAME.tmp-PID` and fsynced, then the sibling;
/// 2. the sibling is exchanged with `NAME` in one `renameat2(RENAME_EXCHANGE)` (the old
///    directory is complete until that instant, the new one after it), then the old copy, now
///    at the sibling's name, is removed. Where the file system cannot exchange, the old
///    directory is renamed aside to `.NAME.old-PID` and the new one renamed in; a run killed
///    between those two renames leaves no `NAME`, and the next writer (or `recover`) renames the
///    `.old` one back.
///
/// Files of the old directory that the new one does not write (a user's notes beside a model)
/// are carried over as hard links, so replacing a model never deletes them. Temporaries are
/// registered for removal on SIGINT/SIGTERM and swept by the next run after SIGKILL.
public enum AtomicDirectory {
    public struct File {
        public var name: String
        public var data: Data
        /// Writes the file's bytes through the function it is given, in pieces, when its turn
        /// comes (files are written in order, so a later file may depend on what an earlier one
        /// streamed: a checksum, an index); nil: `data`.
        public var stream: ((_ write: (UnsafeRawBufferPointer) throws -> Void) throws -> Void)?
        public init(_ name: String, _ data: Data) { self.name = name; self.data = data }
        public init(_ name: String, streaming: @escaping (_ write: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) {
            self.name = name
            data = Data()
            stream = streaming
        }
    }

    public static func write(_ files: [File], to dir: String, force: Bool = false) throws {
        try OutputPath.checkDirectory(dir, force: force)
        let target = resolvedTarget(dir, force: force)
        try recover(target)
        let parent = URL(fileURLWithPath: target).deletingLastPathComponent().path
        do { try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true) } catch {
            throw FunnelError("\(dir): cannot create its parent directory: \(error.localizedDescription)")
        }
        let tmp = Temporaries.path(for: target)  // a leftover of this process id was swept by `recover`
        guard mkdir(tmp, 0o755) == 0 else { throw FunnelError("\(tmp): cannot create: \(errnoText())") }
        let registration = Temporaries.register(tmp, directory: true)
        defer { registration.forget() }
        do {
            try writeFiles(files, into: tmp)
            try carryOver(from: target, into: tmp, except: Set(files.map(\.name)))
            try swap(tmp, into: target, display: dir)
        } catch {
            Temporaries.removeTree(tmp)
            throw error
        }
        FileDescriptor.fsyncDirectory(parent)
    }

    /// Where a forced write through a symbolic link to a directory lands: the link's target
    /// (the link itself stays), as the file-by-file save did.
    static func resolvedTarget(_ dir: String, force: Bool) -> String {
        guard force, OutputPath.kind(dir) == S_IFLNK else { return dir }
        return URL(fileURLWithPath: dir).resolvingSymlinksInPath().path
    }

    /// A run killed between "old aside" and "new in" left no `dir` but a complete `.NAME.old-PID`:
    /// put it back. Leftover temporaries of dead runs are removed.
    public static func recover(_ dir: String) throws {
        let olds = Temporaries.sweep(beside: dir, keepOld: OutputPath.kind(dir) == nil)
        guard let newest = olds.first else { return }
        guard rename(newest, dir) == 0 else { throw FunnelError("\(dir): cannot restore the previous model from \(newest): \(errnoText())") }
        for other in olds.dropFirst() { Temporaries.removeTree(other) }
    }

    private static func writeFiles(_ files: [File], into tmp: String) throws {
        for f in files {
            // One level of subdirectory (a model's `delta/`), created on its first file.
            if let slash = f.name.firstIndex(of: "/") {
                let sub = tmp + "/" + f.name[..<slash]
                guard mkdir(sub, 0o755) == 0 || errno == EEXIST else { throw FunnelError("\(sub): cannot create: \(errnoText())") }
            }
            let path = tmp + "/" + f.name
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw FunnelError("\(path): cannot create: \(errnoText())") }
            defer { close(fd) }
            if let stream = f.stream {
                try stream { try FileDescriptor.writeAll(fd, $0, path: path) }
            } else {
                try f.data.withUnsafeBytes { try FileDescriptor.writeAll(fd, $0, path: path) }
            }
            guard fsync(fd) == 0 else { throw FunnelError("\(path): fsync failed: \(errnoText())") }
        }
        for sub in Set(files.compactMap { f in f.name.firstIndex(of: "/").map { String(f.name[..<$0]) } }) {
            FileDescriptor.fsyncDirectory(tmp + "/" + sub)
        }
        FileDescriptor.fsyncDirectory(tmp)
    }

    /// Hard-links the old directory's other regular files into the new one (same file system).
    private static func carryOver(from dir: String, into tmp: String, except written: Set<String>) throws {
        guard OutputPath.kind(dir) == S_IFDIR else { return }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where !written.contains(name) {
            guard OutputPath.kind(dir + "/" + name) == S_IFREG else { continue }
            guard link(dir + "/" + name, tmp + "/" + name) == 0 else {
                throw FunnelError("\(dir)/\(name): cannot keep it in the new model directory: \(errnoText())")
            }
        }
    }

    private static func swap(_ tmp: String, into dir: String, display: String) throws {
        guard OutputPath.kind(dir) != nil else {
            guard rename(tmp, dir) == 0 else { throw FunnelError("\(display): cannot move the new model into place: \(errnoText())") }
            return
        }
        if funnel_rename_exchange(tmp, dir) == 0 {
            Temporaries.removeTree(tmp)  // the old directory, now under the temporary name
            return
        }
        guard errno == EINVAL || errno == ENOSYS else { throw FunnelError("\(display): cannot swap in the new model: \(errnoText())") }
        let aside = Temporaries.path(for: dir, kind: "old")
        guard rename(dir, aside) == 0 else { throw FunnelError("\(display): cannot move the previous model aside: \(errnoText())") }
        guard rename(tmp, dir) == 0 else {
            let why = errnoText()
            _ = rename(aside, dir)
            throw FunnelError("\(display): cannot move the new model into place: \(why)")
        }
        Temporaries.removeTree(aside)
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}
