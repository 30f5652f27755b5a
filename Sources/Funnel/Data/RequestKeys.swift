/// Which rows of a table came from one *request* (one user's page view in the ESMM paper's
/// layout: a common-feature record shared by all its impressions) and which categorical
/// columns hold that request's values — the same on every row of the request.
///
/// Raw Ali-CCP caches carry it without a flag (the md5 shared record is the request; its
/// fields are the request's); other tables get it from `--request-column` and
/// `--request-fields`. A network then computes the request part of a batch once per request
/// (`RequestSharing`).
public struct RequestKeys: Sendable, Equatable {
    /// One key per row: rows with equal keys belong to one request.
    public var keys: [Int64]
    /// The categorical columns (by name) constant within a request.
    public var fields: [String]

    public init(keys: [Int64], fields: [String]) {
        self.keys = keys
        self.fields = fields
    }

    /// The rows at `idx`, in that order.
    func rows(_ idx: [Int]) -> RequestKeys { RequestKeys(keys: idx.map { keys[$0] }, fields: fields) }

    /// Mean rows per request, counted over distinct keys.
    public var meanRowsPerRequest: Double {
        let distinct = Set(keys).count
        return distinct > 0 ? Double(keys.count) / Double(distinct) : 0
    }
}

/// `RequestKeys` once encoded: the request fields as schema field indices.
public struct EncodedRequests: Sendable, Equatable {
    public var keys: [Int64]
    /// The schema's categorical fields constant within a request, ascending.
    public var fields: [Int]

    public init(keys: [Int64], fields: [Int]) {
        self.keys = keys
        self.fields = fields.sorted()
    }

    func subset(_ rows: [Int32]) -> EncodedRequests { EncodedRequests(keys: rows.map { keys[Int($0)] }, fields: fields) }

    static func concatenated(_ parts: [EncodedRequests?]) -> EncodedRequests? {
        guard let first = parts.first ?? nil, parts.allSatisfy({ $0?.fields == first.fields }) else { return nil }
        var keys: [Int64] = []
        keys.reserveCapacity(parts.reduce(0) { $0 + ($1?.keys.count ?? 0) })
        for p in parts { keys.append(contentsOf: p!.keys) }
        return EncodedRequests(keys: keys, fields: first.fields)
    }
}
