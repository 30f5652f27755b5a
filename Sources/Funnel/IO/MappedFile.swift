import CProcess
import Foundation

/// A read-only memory mapping of an input file (CSV/TSV, a prepared cache), registered with
/// `CProcess` so that a file cut short while mapped — another process truncating or rewriting it
/// in place — ends the command with "FILE: the file changed (it was cut short) while being
/// read" and exit status 1, instead of the SIGBUS that would kill it. (A file *replaced* by a
/// rename is harmless: the mapping keeps the old inode.) Inputs are checked to be regular files
/// before they are mapped (`InputFile.checkReadable`), so a FIFO is never opened.
final class MappedFile {
    let data: Data
    private let slot: Int32

    init(_ path: String) throws {
        try InputFile.checkReadable(path)
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw DataError(file: path, "cannot read: \(error.localizedDescription)")
        }
        slot = data.withUnsafeBytes { funnel_mapping_register($0.baseAddress, $0.count, path) }
    }

    deinit { funnel_mapping_forget(slot) }
}
