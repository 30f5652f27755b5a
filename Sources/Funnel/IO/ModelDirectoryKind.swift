import Foundation

/// What kind of model a directory holds, from its `model.json`'s `format`.
public enum ModelDirectoryKind: Sendable {
    case neural, gbdt

    public static func detect(_ dir: String) throws -> ModelDirectoryKind {
        try detect(DirectoryHandle(dir))
    }

    static func detect(_ directory: DirectoryHandle) throws -> ModelDirectoryKind {
        let path = directory.path + "/model.json"
        guard directory.exists("model.json") else {
            throw FunnelError("\(path): not found (is \(directory.path) a Funnel model directory?)")
        }
        let data = try directory.contents("model.json", limit: InputFile.manifestLimit)
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
