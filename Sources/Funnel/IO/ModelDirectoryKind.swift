import Foundation

/// What kind of model a directory holds, from its `model.json`'s `format`.
public enum ModelDirectoryKind: Sendable {
    case neural, gbdt

    public static func detect(_ dir: String) throws -> ModelDirectoryKind {
        let path = dir + "/model.json"
        guard FileManager.default.fileExists(atPath: path) else {
            throw FunnelError("\(path): not found (is \(dir) a Funnel model directory?)")
        }
        let data = try InputFile.contents(path, limit: InputFile.manifestLimit)
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw FunnelError("\(path): not a JSON object")
        }
        switch object["format"] as? String {
        case ModelManifest.formatName: return .neural
        case GBDTManifest.formatName: return .gbdt
        case let other: throw FunnelError("\(path): not a Funnel model (format is \(other ?? "missing"))")
        }
    }
}
