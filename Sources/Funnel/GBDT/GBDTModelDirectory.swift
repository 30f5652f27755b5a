import Foundation

/// A GBDT model directory: `model.json` (manifest), `features.json` (the fitted encoders) and
/// LightGBM's own model text files `like.txt`, `install_given_like.txt`, `install.txt`.
extension TwoStageGBDT {
    /// Writes the model files, the encoders and the manifest (which names their checksums) as one
    /// directory swapped in whole (`AtomicDirectory`): a reader never sees a manifest beside
    /// another model's files.
    public func save(to dir: String, force: Bool = false) throws {
        var files = GBDTModelRole.allCases.map { AtomicDirectory.File($0.file, Data(modelTexts[$0]!.utf8)) }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let features = try enc.encode(pipeline)
        var m = manifest
        m.featuresChecksum = Checksum.fnv64Hex(features)
        files.append(.init(m.featuresFile, features))
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        files.append(.init("model.json", try enc.encode(m)))
        try AtomicDirectory.write(files, to: dir, force: force)
    }

    public static func load(from dir: String) throws -> TwoStageGBDT {
        let path = dir + "/model.json"
        let directory = try DirectoryHandle(dir)
        guard try ModelDirectoryKind.detect(directory) == .gbdt else {
            throw FunnelError("\(path): a neural model, not a GBDT model (use funnel predict / eval)")
        }
        let data = try directory.contents("model.json", limit: InputFile.manifestLimit)
        if let probe = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let v = probe["format_version"] as? Int, v > GBDTManifest.currentVersion {
            throw FunnelError("\(path): format version \(v) is newer than this funnel reads (\(GBDTManifest.currentVersion)); upgrade funnel")
        }
        let manifest: GBDTManifest
        do { manifest = try JSONDecoder().decode(GBDTManifest.self, from: data) } catch {
            throw FunnelError("\(path): cannot read GBDT manifest: \(DecodingErrorText.describe(error))")
        }
        let featuresPath = dir + "/" + manifest.featuresFile
        let features = try directory.contents(manifest.featuresFile, limit: InputFile.manifestLimit)
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
            let bytes = try directory.contents(component.file, limit: InputFile.manifestLimit)
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
