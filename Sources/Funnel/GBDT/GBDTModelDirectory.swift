import Foundation

/// A GBDT model directory: `model.json` (manifest), `features.json` (the fitted encoders) and
/// LightGBM's own model text files `like.txt`, `install_given_like.txt`, `install.txt`.
extension TwoStageGBDT {
    /// Writes the model files and encoders first, the manifest (which names their checksums) last,
    /// each atomically: a reader never sees a manifest pointing at missing or stale files.
    public func save(to dir: String, force: Bool = false) throws {
        try OutputPath.checkDirectory(dir, force: force)
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw FunnelError("\(dir): cannot create model directory: \(error.localizedDescription)")
        }
        for role in GBDTModelRole.allCases {
            try AtomicFile.write(Data(modelTexts[role]!.utf8), to: dir + "/" + role.file, force: force)
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let features = try enc.encode(pipeline)
        var m = manifest
        m.featuresChecksum = Checksum.fnv64Hex(features)
        try AtomicFile.write(features, to: dir + "/" + m.featuresFile, force: force)
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try enc.encode(m), to: dir + "/model.json", force: force)
    }

    public static func load(from dir: String) throws -> TwoStageGBDT {
        let path = dir + "/model.json"
        guard try ModelDirectoryKind.detect(dir) == .gbdt else {
            throw FunnelError("\(path): a neural model, not a GBDT model (use funnel predict / eval)")
        }
        let data = try InputFile.contents(path, limit: InputFile.manifestLimit)
        if let probe = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let v = probe["format_version"] as? Int, v > GBDTManifest.currentVersion {
            throw FunnelError("\(path): format version \(v) is newer than this funnel reads (\(GBDTManifest.currentVersion)); upgrade funnel")
        }
        let manifest: GBDTManifest
        do { manifest = try JSONDecoder().decode(GBDTManifest.self, from: data) } catch {
            throw FunnelError("\(path): cannot read GBDT manifest: \(DecodingErrorText.describe(error))")
        }
        let featuresPath = dir + "/" + manifest.featuresFile
        let features = try InputFile.contents(featuresPath, limit: InputFile.manifestLimit)
        guard Checksum.fnv64Hex(features) == manifest.featuresChecksum else {
            throw FunnelError("\(featuresPath): checksum does not match model.json; the file is damaged or belongs to another model")
        }
        let pipeline: TabularFeaturePipeline
        do { pipeline = try JSONDecoder().decode(TabularFeaturePipeline.self, from: features) } catch {
            throw FunnelError("\(featuresPath): cannot read the fitted features: \(DecodingErrorText.describe(error))")
        }
        var boosters: [GBDTModelRole: LightGBMBooster] = [:]
        var texts: [GBDTModelRole: String] = [:]
        for role in GBDTModelRole.allCases {
            guard let component = manifest.components.first(where: { $0.role == role }) else {
                throw FunnelError("\(path): no '\(role.rawValue)' model listed")
            }
            let file = dir + "/" + component.file
            let bytes = try InputFile.contents(file, limit: InputFile.manifestLimit)
            guard Checksum.fnv64Hex(bytes) == component.checksum else {
                throw FunnelError("\(file): checksum does not match model.json; the file is damaged or belongs to another model")
            }
            let text = String(decoding: bytes, as: UTF8.self)
            let booster = try LightGBMBooster(modelText: text, source: file)
            guard booster.featureCount == pipeline.featureNames.count else {
                throw FunnelError("\(file): has \(booster.featureCount) features, features.json produces \(pipeline.featureNames.count)")
            }
            boosters[role] = booster
            texts[role] = text
        }
        return TwoStageGBDT(manifest: manifest, pipeline: pipeline, boosters: boosters, modelTexts: texts)
    }
}
