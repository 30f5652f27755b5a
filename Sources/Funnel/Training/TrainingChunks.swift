/// Where training rows come from, one chunk at a time: everything in memory (one chunk), or
/// shuffle buffers streamed from a cache (`StreamingCacheChunks`).
public protocol TrainingChunks {
    var fields: Int { get }
    var denseCount: Int { get }
    /// True when every epoch sees the same single chunk (its row order then carries over).
    var isSingleChunk: Bool { get }
    /// Rows a stage over `space` will see per epoch (for progress and ETA).
    func estimatedRows(of space: SampleSpace, config: ModelConfig) -> Int
    /// Calls `body` with each chunk of one epoch, in the order for that epoch.
    func forEachChunk(epoch: Int, stage: Int, seed: UInt64, _ body: (EncodedDataset) throws -> Void) throws
}

/// A data set held in memory: one chunk.
public struct InMemoryChunks: TrainingChunks {
    public let data: EncodedDataset
    public init(_ data: EncodedDataset) { self.data = data }

    // A sharded run's label view has no features; its batches hold the shard's.
    public var fields: Int { data.shard?.local.fields ?? data.fields }
    public var denseCount: Int { data.shard?.local.denseCount ?? data.denseCount }
    public var isSingleChunk: Bool { true }

    public func estimatedRows(of space: SampleSpace, config: ModelConfig) -> Int {
        Trainer.rows(of: space, in: data, config: config, stage: 0).count
    }

    public func forEachChunk(epoch: Int, stage: Int, seed: UInt64, _ body: (EncodedDataset) throws -> Void) throws {
        try body(data)
    }
}
