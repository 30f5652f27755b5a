/// A row group's shared records joined to its rows. Each record is decoded once per group (a
/// request's impressions point at one record) and then applied to every row pointing at it: its
/// single-valued fields set the rows' columns, its values follow each row's own in the bags,
/// cut to the wanted `maxValues`. With `requestLevel`, the request's own bags (columns only the
/// records give) are kept once per record instead (`PerRequestBags`), their rows' bags empty.
extension ColumnarCache {
    /// One shared record's values, by wanted column.
    private struct DecodedRecord {
        var singles: [(column: Int, key: Int64)] = []
        var keys: [[Int64]]
        var weights: [[Float]]
    }

    /// Joins the records into `table`; returns the request-level bags when `requestLevel` kept any.
    func joinBags(into table: inout RawTable, stored: [RawBag?], sharedIndex: [Int32], requestLevel: Bool) throws -> PerRequestBags? {
        let wanted = table.layout
        if sharedIndex.isEmpty && wanted.maxValues == nil {
            table.bags = stored.map { $0! }
            return nil
        }
        let onlyShared = Set(requestFields)
        let perRequest = wanted.multiValued.map { requestLevel && !sharedIndex.isEmpty && onlyShared.contains($0) }
        let (records, rowRecord) = try decodeRecords(sharedIndex, rows: table.rowCount, layout: wanted)
        var bagKeys = [[Int64]](repeating: [], count: wanted.multiValued.count)
        var bagWeights = [[Float]](repeating: [], count: wanted.multiValued.count)
        for r in 0..<table.rowCount {
            let record = rowRecord[r] >= 0 ? records[Int(rowRecord[r])] : nil
            for (k, key) in record?.singles ?? [] { table.keys[k][r] = key }
            for b in bagKeys.indices {
                bagKeys[b].removeAll(keepingCapacity: true); bagWeights[b].removeAll(keepingCapacity: true)
                if let bag = stored[b] {
                    let range = Int(bag.offsets[r])..<Int(bag.offsets[r + 1])
                    bagKeys[b].append(contentsOf: bag.keys[range]); bagWeights[b].append(contentsOf: bag.weights[range])
                }
                if let record, !perRequest[b] { bagKeys[b].append(contentsOf: record.keys[b]); bagWeights[b].append(contentsOf: record.weights[b]) }
                CellDecoding.keepHighest(wanted.maxValues, keys: &bagKeys[b], weights: &bagWeights[b])
                table.appendBag(b, keys: bagKeys[b], weights: bagWeights[b])
            }
        }
        guard perRequest.contains(true) else { return nil }
        return requestBags(records, rowRecord: rowRecord, perRequest: perRequest, layout: wanted)
    }

    /// Each distinct record of the group decoded once, and each row's record (−1: none).
    private func decodeRecords(_ sharedIndex: [Int32], rows: Int, layout wanted: TableLayout) throws -> ([DecodedRecord], [Int32]) {
        let sharedFields = footer.shared?.fields ?? []
        let wantedSingle = sharedFields.map { name in wanted.multiValued.contains(name) ? nil : wanted.categorical.firstIndex(of: name) }
        let wantedBag = sharedFields.map { wanted.multiValued.firstIndex(of: $0) }
        var records: [DecodedRecord] = [], recordOf: [Int32: Int32] = [:]
        var rowRecord = [Int32](repeating: -1, count: rows)
        for r in 0..<rows where !sharedIndex.isEmpty && sharedIndex[r] >= 0 {
            let entry = sharedIndex[r]
            if let d = recordOf[entry] { rowRecord[r] = d; continue }
            var record = DecodedRecord(keys: Array(repeating: [], count: wanted.multiValued.count),
                                       weights: Array(repeating: [], count: wanted.multiValued.count))
            try forEachSharedValue(Int(entry)) { field, key, weight in
                if let k = wantedSingle[field] { record.singles.append((k, key)) }
                else if let b = wantedBag[field] { record.keys[b].append(key); record.weights[b].append(weight) }
            }
            recordOf[entry] = Int32(records.count)
            rowRecord[r] = Int32(records.count)
            records.append(record)
        }
        return (records, rowRecord)
    }

    /// The request-level columns' values once per record, plus an empty last row for the rows
    /// without a record.
    private func requestBags(_ records: [DecodedRecord], rowRecord: [Int32], perRequest: [Bool], layout wanted: TableLayout) -> PerRequestBags {
        let columns = wanted.multiValued.indices.filter { perRequest[$0] }
        var bags = columns.map { _ in RawBag() }
        for record in records {
            for (c, b) in columns.enumerated() {
                var keys = record.keys[b], weights = record.weights[b]
                CellDecoding.keepHighest(wanted.maxValues, keys: &keys, weights: &weights)
                bags[c].keys += keys; bags[c].weights += weights; bags[c].offsets.append(Int32(bags[c].keys.count))
            }
        }
        for c in bags.indices { bags[c].offsets.append(Int32(bags[c].keys.count)) }
        let empty = Int32(records.count)
        return PerRequestBags(rowRequest: rowRecord.map { $0 >= 0 ? $0 : empty }, fields: columns.map { wanted.multiValued[$0] }, bags: bags)
    }
}
