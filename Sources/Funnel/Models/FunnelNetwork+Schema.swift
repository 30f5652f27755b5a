/// The network for a feature schema: its table rows, fields, dense columns and bag fields come
/// from the schema, so every place that builds one (training, tuning, experiments, loading a
/// model directory) builds the same shape from the same facts.
extension FunnelNetwork {
    /// Throws when the configuration's attention plan does not fit the schema (`attentionFields`).
    public convenience init(config: ModelConfig, schema: FeatureSchema, maxBatch: Int? = nil, workers: Int = 1,
                            maxBagValues: Int = 0, shard: TableShard? = nil) throws {
        self.init(config: config, embeddingRows: schema.embeddingRows, fields: schema.fields.count, denseCount: schema.dense.count,
                  maxBatch: maxBatch, workers: workers, bagFields: schema.layout.bagFields, maxBagValues: maxBagValues,
                  attention: try Self.attentionFields(config, schema), shard: shard)
    }

    /// A one-process network training on `data` (a tuning trial, an experiment run): it shares
    /// `data`'s requests when `sharing` and the rows carry them (`shareRequests(as:)`), and its
    /// batches then hold whole requests, up to `RequestBatches.largestBatch` rows.
    public static func training(config: ModelConfig, schema: FeatureSchema, on data: EncodedDataset, sharing: Bool) throws -> FunnelNetwork {
        let shares = sharing && data.requests != nil
        let network = try FunnelNetwork(config: config, schema: schema,
                                        maxBatch: RequestBatches.batchRows(batchSize: config.batchSize, sharing: shares),
                                        maxBagValues: data.maxBagValues)
        if shares { network.shareRequests(as: data) }
        return network
    }

    /// `--pooling attention`: each multi-valued field's query field, as field indices, or an error
    /// that names the list or the query. Building a network checks it; tuning and experiments also
    /// check every model's plan up front, before the first trial or run.
    public static func attentionFields(_ config: ModelConfig, _ schema: FeatureSchema) throws -> [Int: Int] {
        let queries = config.attentionQueries ?? [:]
        guard config.pooling == .attention else {
            guard queries.isEmpty else { throw FunnelError("--attention-query needs --pooling attention") }
            return [:]
        }
        let names = schema.fields.map(\.name), bags = Set(schema.layout.bagFields)
        guard !bags.isEmpty else { throw FunnelError("--pooling attention needs a multi-valued field (--multi-valued); the data has none") }
        var plan: [Int: Int] = [:]
        for (list, query) in queries.sorted(by: { $0.key < $1.key }) {
            guard let l = names.firstIndex(of: list) else { throw FunnelError("attention list '\(list)' is not a categorical field of the data") }
            guard bags.contains(l) else {
                throw FunnelError("attention list '\(list)' has one value per row: attention pools a multi-valued field (--multi-valued)")
            }
            guard let q = names.firstIndex(of: query) else { throw FunnelError("attention query '\(query)' (for '\(list)') is not a categorical field of the data") }
            guard !bags.contains(q) else { throw FunnelError("attention query '\(query)' (for '\(list)') is multi-valued: a query is one candidate's value") }
            plan[l] = q
        }
        guard !plan.isEmpty else {
            throw FunnelError("--pooling attention needs --attention-query LIST=FIELD for at least one multi-valued field "
                              + "(\(bags.sorted().map { names[$0] }.joined(separator: ", ")))")
        }
        return plan  // lists without a query pool by weighted sum
    }
}
