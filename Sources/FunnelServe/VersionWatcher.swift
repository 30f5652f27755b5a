import Foundation
import Funnel

/// `funnel serve --watch ROOT`: serve the newest complete model version under ROOT, and move to
/// each newer one as it appears — by its delta when it carries one made from the model being
/// served (`ModelDelta`: only changed rows and dense weights are read), otherwise by loading it
/// whole. Versions are ROOT's subdirectories in name order (date them, or number them with
/// zero padding); hidden ones (a writer's temporaries) are never looked at. A version is
/// complete once its `model.json` (or `delta/delta.json`) exists — model directories are
/// swapped in whole (`AtomicDirectory`), so a version that exists is complete. A new version
/// replaces the served one in one swap (a request finishes on the model it started on); a bad,
/// partial or foreign one is refused, logged once, and the served one stays.
public final class VersionWatcher: @unchecked Sendable {
    public let root: String
    let server: FunnelServer
    private var timer: DispatchSourceTimer?
    /// Versions refused, with the modification time they had then (a rewrite is tried again).
    private var refused: [String: Date] = [:]

    public init(root: String, server: FunnelServer) {
        self.root = root
        self.server = server
    }

    /// The versions under `root` that look complete, oldest first.
    public static func versions(in root: String) -> [String] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        return names.map { root + "/" + $0 }.filter { dir in
            ["model.json", ModelDelta.directory + "/delta.json"].contains { FileManager.default.fileExists(atPath: dir + "/" + $0) }
        }
    }

    /// The newest version with a full model (where a server starts).
    public static func newestFull(in root: String) throws -> String {
        guard let dir = versions(in: root).last(where: { FileManager.default.fileExists(atPath: $0 + "/model.json") }) else {
            throw FunnelError("\(root): no model version (a subdirectory with model.json) to serve")
        }
        return dir
    }

    /// Polls every `interval` seconds.
    public func start(interval: Double) {
        let t = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "funnel.watch"))
        t.schedule(deadline: .now() + interval, repeating: interval)
        t.setEventHandler { [weak self] in self?.poll() }
        t.resume()
        timer = t
    }

    public func stop() { timer?.cancel() }

    /// Moves to the newest version if it is newer than the served one; true when it did.
    @discardableResult
    public func poll() -> Bool {
        let current = server.slot.current.path
        guard let newest = Self.versions(in: root).last, newest > current else { return false }
        let stamp = modified(newest)
        if let when = refused[newest], when == stamp { return false }
        switch server.adopt(version: newest) {
        case .success: return true
        case .failure: refused[newest] = stamp; return false
        }
    }

    private func modified(_ dir: String) -> Date {
        let paths = [dir, dir + "/" + ModelDelta.directory]
        return paths.compactMap { (try? FileManager.default.attributesOfItem(atPath: $0))?[.modificationDate] as? Date }.max() ?? .distantPast
    }
}

extension FunnelServer {
    /// Swaps in version `dir`: by its delta when made from the served model, else loaded whole.
    /// On failure the served model stays and the reason is logged and returned.
    func adopt(version dir: String) -> Result<ServedModel, Error> {
        let current = slot.current
        let delta = dir + "/" + ModelDelta.directory
        guard let base = current.trainedModel, FileManager.default.fileExists(atPath: delta + "/delta.json"),
              (try? ModelDelta.baseChecksum(delta)) == base.manifest.weightsChecksum else {
            guard FileManager.default.fileExists(atPath: dir + "/model.json") else {
                logger.error("version refused: a delta of another model, and no full model", metadata: ["path": .string(dir)])
                return .failure(FunnelError("\(dir): a delta of another model, and no full model"))
            }
            return reload(path: dir, checked: true)
        }
        return swapIn(path: dir, by: "delta") {
            let next = try ModelDelta.apply(delta, to: base, maxBatch: ServedModel.batch(forRows: self.configuration.maxRowsPerRequest),
                                            workers: max(1, self.configuration.workers))
            return try ServedModel(model: next, path: dir, workers: max(1, self.configuration.workers),
                                   rejectUnknownFields: self.configuration.rejectUnknownFields, gemm: self.configuration.gemm)
        }
    }
}
