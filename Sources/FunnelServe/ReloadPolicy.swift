import Foundation
import Funnel

/// Who may swap the served model over HTTP, and for what. `POST /v1/reload` is off unless
/// enabled; it loads only directories under `modelRoot` (resolved: no escape through `..` or
/// symbolic links), of the serving model's kind and input columns unless schema changes are
/// allowed, and with a bearer token when one is set. SIGHUP (the operator's) reloads the
/// current directory and is not subject to this policy.
public struct ReloadPolicy: Sendable {
    public var allowHTTP = false
    /// Directories reloads may load from; nil: only the current model directory.
    public var modelRoot: String?
    public var allowSchemaChange = false
    /// Required as `Authorization: Bearer TOKEN` when set.
    public var adminToken: String?

    public init() {}

    public enum Refusal: Error, CustomStringConvertible {
        case disabled, unauthorized, outsideRoot(String), schemaChange(String)
        public var status: Int {
            switch self {
            case .disabled: return 403
            case .unauthorized: return 401
            case .outsideRoot, .schemaChange: return 403
            }
        }
        public var description: String {
            switch self {
            case .disabled: return "reload over HTTP is disabled (start the server with --allow-reload)"
            case .unauthorized: return "reload needs the admin token (Authorization: Bearer …)"
            case .outsideRoot(let p): return "\(p) is not under the model root; reloads load only directories under --model-root"
            case .schemaChange(let what): return "the new model \(what) (allowed only with --allow-schema-change)"
            }
        }
    }

    /// Checks the caller's token (constant time in the token's length).
    public func authorize(_ authorization: String?) throws {
        guard allowHTTP else { throw Refusal.disabled }
        guard let token = adminToken else { return }
        let given = Array((authorization ?? "").utf8), expected = Array("Bearer \(token)".utf8)
        var diff = given.count == expected.count ? 0 : 1
        for k in 0..<expected.count { diff |= Int(expected[k] ^ (k < given.count ? given[k] : 0)) }
        guard diff == 0 else { throw Refusal.unauthorized }
    }

    /// The directory a reload may load: the current one, or one resolving under `modelRoot`.
    public func resolve(_ requested: String?, current: String) throws -> String {
        guard let requested, requested != current else { return current }
        guard let root = modelRoot else { throw Refusal.outsideRoot(requested) }
        let resolvedRoot = URL(fileURLWithPath: root).resolvingSymlinksInPath().standardizedFileURL.path
        let target = URL(fileURLWithPath: requested, relativeTo: URL(fileURLWithPath: resolvedRoot, isDirectory: true))
            .resolvingSymlinksInPath().standardizedFileURL.path
        guard target.hasPrefix(resolvedRoot.hasSuffix("/") ? resolvedRoot : resolvedRoot + "/") else {
            throw Refusal.outsideRoot(requested)
        }
        return target
    }

    /// Whether `host` is reachable only from this machine (a loopback address or name).
    public static func isLoopback(_ host: String) -> Bool {
        let h = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()
        return h == "localhost" || h == "::1" || h.hasPrefix("127.")
    }

    /// Reloads over HTTP from other machines need a token: refused at start otherwise.
    public func checkExposure(host: String) throws {
        guard allowHTTP, adminToken == nil, !Self.isLoopback(host) else { return }
        throw FunnelError("--allow-reload on \(host) lets any machine that reaches the port swap the model: "
                          + "give --admin-token or --admin-token-file, or serve on a loopback address")
    }

    /// Refuses a model of another kind (esmm vs mmoe, neural vs GBDT) or other input columns
    /// than `current`, unless allowed.
    public func check(_ new: ServedModel, against current: ServedModel) throws {
        guard !allowSchemaChange else { return }
        guard new.kindName == current.kindName else {
            throw Refusal.schemaChange("is a \(new.kindName) model, the serving one a \(current.kindName) model")
        }
        guard new.inputColumns == current.inputColumns else { throw Refusal.schemaChange("reads other input columns") }
    }
}
