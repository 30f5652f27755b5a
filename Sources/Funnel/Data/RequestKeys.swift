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
    /// The request's own multi-valued columns kept once per request (a request-level read,
    /// `ColumnarCache.group(requestLevel:)`); their per-row bags are then empty.
    public var perRequest: PerRequestBags?

    public init(keys: [Int64], fields: [String]) {
        self.keys = keys
        self.fields = fields
    }

    /// The rows at `idx`, in that order.
    func rows(_ idx: [Int]) -> RequestKeys {
        var out = RequestKeys(keys: idx.map { keys[$0] }, fields: fields)
        out.perRequest = perRequest.map { p in PerRequestBags(rowRequest: idx.map { p.rowRequest[$0] }, fields: p.fields, bags: p.bags) }
        return out
    }
}

/// A request-level read's request-only bags: one row per request, and each table row's request.
public struct PerRequestBags: Sendable, Equatable {
    public var rowRequest: [Int32]
    /// The columns (by name), one bag each.
    public var fields: [String]
    public var bags: [RawBag]

    /// Requests (rows of each bag).
    var count: Int { (bags.first?.offsets.count ?? 1) - 1 }

    /// Another group's requests after these (its rows' requests renumbered).
    mutating func append(_ other: PerRequestBags) {
        precondition(other.fields == fields, "request-level columns differ between row groups")
        let base = Int32(count)
        rowRequest += other.rowRequest.map { $0 + base }
        for b in bags.indices { bags[b].append(other.bags[b]) }
    }

    /// How many rows point at each request.
    var rowsPerRequest: [Int] {
        var n = [Int](repeating: 0, count: count)
        for q in rowRequest { n[Int(q)] += 1 }
        return n
    }
}

/// `RequestKeys` once encoded: the request fields as schema field indices.
public struct EncodedRequests: Sendable, Equatable {
    public var keys: [Int64]
    /// The schema's categorical fields constant within a request, ascending.
    public var fields: [Int]
    /// Request-only multi-valued fields stored once per request (their rows' bags are empty).
    public var perRequest: EncodedPerRequest?

    public init(keys: [Int64], fields: [Int], perRequest: EncodedPerRequest? = nil) {
        self.keys = keys
        self.fields = fields.sorted()
        self.perRequest = perRequest
    }

    /// Mean rows per request, counted over distinct keys.
    public var meanRowsPerRequest: Double {
        let distinct = Set(keys).count
        return distinct > 0 ? Double(keys.count) / Double(distinct) : 0
    }

    func subset(_ rows: [Int32]) -> EncodedRequests {
        EncodedRequests(keys: rows.map { keys[Int($0)] }, fields: fields,
                        perRequest: perRequest.map { p in EncodedPerRequest(rowRequest: rows.map { p.rowRequest[Int($0)] }, bags: p.bags) })
    }

    /// Several datasets' requests one after another (request-level bags joined, each part's rows
    /// pointing at its own requests).
    static func concatenated(_ parts: [EncodedRequests?]) -> EncodedRequests? {
        guard let first = parts.first ?? nil, parts.allSatisfy({ $0?.fields == first.fields }) else { return nil }
        precondition(parts.allSatisfy { ($0?.perRequest == nil) == (first.perRequest == nil) }, "request-level bags in some parts only")
        var keys: [Int64] = []
        keys.reserveCapacity(parts.reduce(0) { $0 + ($1?.keys.count ?? 0) })
        for p in parts { keys.append(contentsOf: p!.keys) }
        return EncodedRequests(keys: keys, fields: first.fields,
                               perRequest: first.perRequest.map { _ in EncodedPerRequest.concatenated(parts.map { $0!.perRequest! }) })
    }
}

/// Encoded `PerRequestBags`: each row's request and, per request-only multi-valued field, one
/// CSR row per request (`EncodedBag.field` names the field).
public struct EncodedPerRequest: Sendable, Equatable {
    public var rowRequest: [Int32]
    public var bags: [EncodedBag]

    /// The per-request bag of `field`, if it is request-level.
    func bag(of field: Int) -> EncodedBag? { bags.first { $0.field == field } }

    /// Requests (rows of each bag).
    var count: Int { (bags.first?.offsets.count ?? 1) - 1 }

    static func concatenated(_ parts: [EncodedPerRequest]) -> EncodedPerRequest {
        var rowRequest: [Int32] = [], base: Int32 = 0
        rowRequest.reserveCapacity(parts.reduce(0) { $0 + $1.rowRequest.count })
        for p in parts {
            rowRequest += p.rowRequest.map { $0 + base }
            base += Int32(p.count)
        }
        return EncodedPerRequest(rowRequest: rowRequest, bags: parts[0].bags.indices.map { b in EncodedBag.concatenated(parts.map { $0.bags[b] }) })
    }
}
