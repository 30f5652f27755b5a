/// The network for a feature schema: its table rows, fields, dense columns and bag fields come
/// from the schema, so every place that builds one (training, tuning, experiments, loading a
/// model directory) builds the same shape from the same facts.
extension FunnelNetwork {
    public convenience init(config: ModelConfig, schema: FeatureSchema, maxBatch: Int? = nil, workers: Int = 1, maxBagValues: Int = 0) {
        self.init(config: config, embeddingRows: schema.embeddingRows, fields: schema.fields.count, denseCount: schema.dense.count,
                  maxBatch: maxBatch, workers: workers, bagFields: schema.layout.bagFields, maxBagValues: maxBagValues)
    }
}
