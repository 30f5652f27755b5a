import Foundation

/// What training leaves in `model.json` besides the config and schema.
public struct TrainingSummary: Codable, Sendable {
    public var rows: Int
    public var clicks: Int
    public var conversions: Int
    public var epochs: Int
    public var threads: Int
    public var seconds: Double
    public var trainSamplesPerSecond: Double
    /// Mean training loss of the last epoch, per stage.
    public var finalLoss: [String: Double]
    public var readNotes: [String]
    /// With validation: the checkpoint whose weights were kept (the best on the monitored metric
    /// under early stopping), and whether training stopped before its last epoch.
    public var best: Checkpoint?
    public var stoppedEarly: Bool?

    public init(rows: Int, clicks: Int, conversions: Int, epochs: Int, threads: Int, seconds: Double,
                trainSamplesPerSecond: Double, finalLoss: [String: Double], readNotes: [String]) {
        self.rows = rows; self.clicks = clicks; self.conversions = conversions; self.epochs = epochs
        self.threads = threads; self.seconds = seconds; self.trainSamplesPerSecond = trainSamplesPerSecond
        self.finalLoss = finalLoss; self.readNotes = readNotes
    }

    enum CodingKeys: String, CodingKey {
        case rows, clicks, conversions, epochs, threads, seconds
        case trainSamplesPerSecond = "train_samples_per_second"
        case finalLoss = "final_loss"
        case readNotes = "read_notes"
        case best
        case stoppedEarly = "stopped_early"
    }
}

/// One evaluation of the validation rows during training.
public struct Checkpoint: Codable, Sendable {
    public var epoch: Int
    /// Optimizer steps of the last stage so far.
    public var step: Int
    public var monitor: MetricKey
    public var value: Double
    public var metrics: EvaluationReport
}

/// `model.json` as stored.
public struct ModelManifest: Codable, Sendable {
    public static let formatName = "funnel-model"
    public static let currentVersion = 1

    public var format = formatName
    public var formatVersion = currentVersion
    public var config: ModelConfig
    public var schema: FeatureSchema
    public var training: TrainingSummary?
    public var weightsFile = "weights.safetensors"
    /// FNV-1a 64 of the weights file, hex: catches a weights file from another model.
    public var weightsChecksum: String
    /// Adam's state (`OptimizerState`) when saved with `--save-optimizer-state`, and its FNV-1a 64.
    public var optimizerFile: String?
    public var optimizerChecksum: String?
    /// The vocabularies (`VocabularyFile`), when they are not listed in `model.json`, and their
    /// FNV-1a 64 over words.
    public var vocabularyFile: String?
    public var vocabularyChecksum: String?

    enum CodingKeys: String, CodingKey {
        case format, config, schema, training
        case formatVersion = "format_version"
        case weightsFile = "weights_file"
        case weightsChecksum = "weights_checksum"
        case optimizerFile = "optimizer_file"
        case optimizerChecksum = "optimizer_checksum"
        case vocabularyFile = "vocabulary_file"
        case vocabularyChecksum = "vocabulary_checksum"
    }
}

extension ModelManifest {
    /// The `model.json` of an opened directory, decoded (not validated; vocabularies not attached).
    static func read(from directory: DirectoryHandle) throws -> ModelManifest {
        let path = directory.path + "/model.json"
        guard directory.exists("model.json") else {
            throw FunnelError("\(path): not found (is \(directory.path) a Funnel model directory?)")
        }
        return try decode(try directory.contents("model.json", limit: InputFile.manifestLimit), path: path)
    }

    /// `read`, its vocabularies attached, its configuration and dense statistics validated (an
    /// error names `model.json`): what a model is built from.
    static func load(from directory: DirectoryHandle) throws -> ModelManifest {
        var m = try read(from: directory)
        try m.attachVocabularies(from: directory)
        do {
            try m.config.validate()
            try m.schema.validateDenseStatistics()
        } catch let e as FunnelError {
            throw FunnelError("\(directory.path)/model.json: \(e.message)")
        }
        return m
    }

    /// Maps `vocabularies.bin` (checksum checked) into the schema's fields that `model.json`
    /// declares by count; a model.json listing its values needs no file.
    mutating func attachVocabularies(from directory: DirectoryHandle) throws {
        let awaiting = schema.fields.indices.filter { schema.fields[$0].awaitsValues }
        guard let file = vocabularyFile else {
            if let k = awaiting.first {
                throw FunnelError("\(directory.path)/model.json: field '\(schema.fields[k].name)' lists no values and no vocabulary_file is named")
            }
            return
        }
        let path = directory.path + "/" + file
        if file == ShardedVocabularyIndex.fileName { return try attachVocabularyShards(awaiting, from: directory) }
        guard file == VocabularyFile.fileName, let expected = vocabularyChecksum else {
            throw FunnelError("\(directory.path)/model.json: vocabulary_file must be \(VocabularyFile.fileName) with a vocabulary_checksum")
        }
        let (region, checksum) = try directory.mapped(file)
        let sum = String(format: "%016llx", checksum)
        guard sum == expected else {
            throw FunnelError("\(path): checksum \(sum) does not match model.json (\(expected)); the vocabularies are damaged or belong to another model")
        }
        let mapped = try VocabularyFile.open(region, path: path)
        for k in awaiting {
            guard let v = mapped[schema.fields[k].name] else { throw DataError(file: path, "field '\(schema.fields[k].name)' is missing") }
            try schema.fields[k].attach(v, path: path)
        }
    }

    /// The shard files of a sharded model's vocabularies (`ShardedVocabularyIndex`), the index's
    /// checksum checked against `model.json`.
    private mutating func attachVocabularyShards(_ awaiting: [Int], from directory: DirectoryHandle) throws {
        let path = directory.path + "/" + ShardedVocabularyIndex.fileName
        let data = try directory.contents(ShardedVocabularyIndex.fileName, limit: InputFile.manifestLimit)
        let sum = Checksum.fnv64Hex(words: data)
        guard sum == vocabularyChecksum else {
            throw FunnelError("\(path): checksum \(sum) does not match model.json (\(vocabularyChecksum ?? "none")); "
                              + "the vocabularies are damaged or belong to another model")
        }
        let counts = Dictionary(awaiting.map { (schema.fields[$0].name, schema.fields[$0].count) }, uniquingKeysWith: { a, _ in a })
        let mapped = try ShardedVocabularyIndex.open(data, in: directory, path: path, counts: counts)
        for k in awaiting { schema.fields[k].attach(mapped[schema.fields[k].name]!) }
    }

    /// Decodes `model.json`, naming a foreign format or a newer version before any field error.
    static func decode(_ data: Data, path: String) throws -> ModelManifest {
        do {
            if let probe = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
                guard probe["format"] as? String == ModelManifest.formatName else {
                    throw FunnelError("\(path): not a Funnel model (format is \(probe["format"].map { "\($0)" } ?? "missing"))")
                }
                if let v = probe["format_version"] as? Int, v > ModelManifest.currentVersion {
                    throw FunnelError("\(path): format version \(v) is newer than this funnel reads (\(ModelManifest.currentVersion)); upgrade funnel")
                }
            }
            return try JSONDecoder().decode(ModelManifest.self, from: data)
        } catch let e as FunnelError {
            throw e
        } catch {
            throw FunnelError("\(path): cannot read model manifest: \(DecodingErrorText.describe(error))")
        }
    }
}

/// A trained model: manifest plus network, saved as a directory with `model.json` and
/// `weights.safetensors`.
public struct TrainedModel {
    /// Rows a worker runs through the network at once when predicting a file (`predict`, `eval`).
    /// 1,024 keeps a block's activations in the core's caches between layers (1,024 × 274 inputs
    /// and 1,024 × 200 hidden floats): 12–16% more rows/s than 4,096 on the bench's ESMM, and
    /// PyTorch's fastest batch there too (its rate at 1,024 / 4,096: 654k / 602k rows/s). Rows
    /// never depend on it.
    public static let predictionBatch = 1024

    public var manifest: ModelManifest
    public let network: FunnelNetwork

    public var schema: FeatureSchema { manifest.schema }
    public var config: ModelConfig { manifest.config }

    public init(config: ModelConfig, schema: FeatureSchema, network: FunnelNetwork, training: TrainingSummary?) {
        manifest = ModelManifest(config: config, schema: schema, training: training, weightsChecksum: "")
        self.network = network
    }

    public func weightTensors() -> [SafeTensors.Tensor] {
        network.parameters.map { SafeTensors.Tensor(name: $0.name, shape: $0.shape, values: $0.value.array) }
    }

    /// `weights.safetensors` as saved (its FNV-1a 64 is `weights_checksum`).
    func encodedWeights() -> Data {
        SafeTensors.encode(weightTensors(), metadata: ["format": "pt", "producer": "funnel"])
    }

    /// `encodedWeights()`' bytes in pieces — the header, then each parameter's values where they
    /// lie — so a save streams them to disk without copying the weights twice (a 3.9M-row
    /// table is 280 MB: the copies were the peak of a streamed training run).
    func forEachWeightsPiece(_ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        let header = SafeTensors.header(network.parameters.map { ($0.name, $0.shape) }, metadata: ["format": "pt", "producer": "funnel"])
        try header.withUnsafeBytes(body)
        // Funnel only runs on little-endian hosts (x86-64, arm64): the raw bytes are the file's.
        for p in network.parameters { try body(UnsafeRawBufferPointer(start: p.value.base, count: p.count * 4)) }
    }

    /// `weights_checksum`: FNV-1a 64 of `encodedWeights()`, computed piece by piece.
    func weightsChecksum() -> String {
        var sum = Checksum.ByteStream()
        forEachWeightsPiece { sum.update($0) }
        return sum.hex
    }

    /// Writes `model.json` and the weights (and Adam's state, when given) as one directory,
    /// swapped in whole (`AtomicDirectory`): a reader sees the previous model or this one, never
    /// one's manifest beside the other's weights.
    ///
    /// With `sharded` (a row-sharded network's writer, on rank 0 of its job), the weights are
    /// shard files and their index (`ShardedWeightsIndex`), streamed as the other ranks send
    /// their rows; `model.json` names the index and records its checksum.
    /// With `vocabularies` too (a job whose vocabularies stayed split over its ranks), they are
    /// shard files and their index (`ShardedVocabularyIndex`); `model.json` names the index.
    public func save(to dir: String, force: Bool = false, optimizer: OptimizerState? = nil, deltaFrom base: TrainedModel? = nil,
                     sharded: ShardedWeightsWriter? = nil, vocabularies: ShardedVocabularyWriter? = nil) throws {
        var m = manifest
        var files: [AtomicDirectory.File]
        if let sharded {
            guard optimizer == nil, base == nil else { throw FunnelError("sharded weights are saved without Adam's state or a delta") }
            m.weightsFile = ShardedWeightsIndex.fileName
            files = sharded.files()
        } else {
            m.weightsChecksum = weightsChecksum()
            files = [.init(m.weightsFile, streaming: { write in try self.forEachWeightsPiece(write) })]
        }
        if let optimizer {
            let state = optimizer.encode()
            m.optimizerFile = OptimizerState.fileName
            m.optimizerChecksum = Checksum.fnv64Hex(state)
            files.append(.init(OptimizerState.fileName, state))
        } else {
            m.optimizerFile = nil
            m.optimizerChecksum = nil
        }
        // The vocabularies go to their own binary file, model.json keeps their counts.
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        if let vocabularies {
            guard sharded != nil else { throw FunnelError("sharded vocabularies are saved with sharded weights") }
            m.vocabularyFile = ShardedVocabularyIndex.fileName
            files += vocabularies.files()
            enc.userInfo[FieldVocabulary.valuesElsewhere] = true
        } else if m.schema.fields.contains(where: { $0.hashBuckets == nil }) {
            let vocabularies = try VocabularyFile.encode(m.schema.fields)
            m.vocabularyFile = VocabularyFile.fileName
            m.vocabularyChecksum = Checksum.fnv64Hex(words: vocabularies)
            files.append(.init(VocabularyFile.fileName, vocabularies))
            enc.userInfo[FieldVocabulary.valuesElsewhere] = true
        } else {
            (m.vocabularyFile, m.vocabularyChecksum) = (nil, nil)
        }
        if let sharded {
            // The index's checksum is known once the shards before it have streamed.
            files.append(.init("model.json") { write in
                m.weightsChecksum = sharded.indexChecksum
                if let vocabularies { m.vocabularyChecksum = vocabularies.indexChecksum }
                try enc.encode(m).withUnsafeBytes { try write($0) }
            })
        } else {
            files.append(.init("model.json", try enc.encode(m)))
        }
        if let base {
            var saved = self
            saved.manifest = m
            files += try ModelDelta.files(from: base, to: saved, nextFiles: files)
        }
        try AtomicDirectory.write(files, to: dir, force: force)
    }

    /// A model directory's `model.json` alone (what `train --init-from` continues), unvalidated.
    public static func manifest(in dir: String) throws -> ModelManifest {
        try ModelManifest.read(from: DirectoryHandle(dir))
    }

    /// The saved optimizer state, its checksum checked; nil when the model was saved without it.
    public func optimizerState(in dir: String) throws -> OptimizerState? {
        guard let file = manifest.optimizerFile else { return nil }
        let path = dir + "/" + file
        guard file == OptimizerState.fileName, let expected = manifest.optimizerChecksum else {
            throw FunnelError("\(dir)/model.json: optimizer_file must be \(OptimizerState.fileName) with an optimizer_checksum")
        }
        // Two moments per weight at most (plus headers): a larger file is refused unread.
        let limit = network.parameters.reduce(0) { $0 + $1.count } * 8 + (16 << 20)
        let data = try DirectoryHandle(dir).contents(file, limit: limit)
        let sum = Checksum.fnv64Hex(data)
        guard sum == expected else {
            throw FunnelError("\(path): checksum \(sum) does not match model.json (\(expected)); the optimizer state is damaged or belongs to another model")
        }
        return try OptimizerState.decode(data, path: path)
    }

    public static func load(from dir: String, maxBatch: Int? = nil, workers: Int = 1) throws -> TrainedModel {
        let directory = try DirectoryHandle(dir)
        return try load(directory, manifest: try ModelManifest.load(from: directory), maxBatch: maxBatch, workers: workers)
    }

    /// The model of `directory` whose `model.json` is already loaded (`ModelManifest.load`). With
    /// `shard`, the network holds only its rank's rows of each table (`mpirun … predict`): read
    /// from the rank's shard file when the model has one per rank, else picked from the rest.
    static func load(_ directory: DirectoryHandle, manifest m: ModelManifest, maxBatch: Int? = nil, workers: Int = 1,
                     shard: TableShard? = nil) throws -> TrainedModel {
        let dir = directory.path
        let manifestPath = dir + "/model.json"
        let batch = maxBatch ?? (m.config.batchSize + max(1, workers) - 1) / max(1, workers)
        do {
            let held = shard.map { $0.ownership.localRows(rank: $0.rank) + $0.lookupRows }
            try NetworkSize.check(config: m.config, embeddingRows: held ?? m.schema.embeddingRows, fields: m.schema.fields.count,
                                  denseCount: m.schema.dense.count, maxBatch: batch, workers: max(1, workers))
        } catch let e as FunnelError {
            throw FunnelError("\(manifestPath): \(e.message)")
        }
        // The weights file holds exactly the network's parameters (plus a header): a larger one is refused unread.
        let weightsPath = dir + "/" + m.weightsFile
        guard !m.weightsFile.contains("/"), !m.weightsFile.hasPrefix(".") else {
            throw FunnelError("\(manifestPath): weights_file must name a file inside the model directory")
        }
        let expected = NetworkSize(config: m.config, embeddingRows: m.schema.embeddingRows, fields: m.schema.fields.count,
                                   denseCount: m.schema.dense.count, maxBatch: 1, workers: 1).parameters * 4
        let sharded = m.weightsFile == ShardedWeightsIndex.fileName
        let wdata = try directory.contents(m.weightsFile, limit: sharded ? 16 << 20 : Int(expected * 1.01) + (16 << 20))
        let sum = Checksum.fnv64Hex(wdata)
        guard sum == m.weightsChecksum else {
            throw FunnelError("\(weightsPath): checksum \(sum) does not match model.json (\(m.weightsChecksum)); the weights file is damaged or belongs to another model")
        }
        let net = try FunnelNetwork(config: m.config, schema: m.schema, maxBatch: maxBatch, workers: workers, shard: shard)
        if sharded {
            try ShardedWeightsReader.load(into: net, from: directory, index: wdata, path: weightsPath)
        } else {
            try copy(try SafeTensors.decode(wdata, path: weightsPath).tensors, into: net, path: weightsPath)
        }
        var model = TrainedModel(config: m.config, schema: m.schema, network: net, training: m.training)
        model.manifest = m
        return model
    }

    /// Copies named tensors into a network, checking that every parameter (of those `included`)
    /// is present with its shape and finite values.
    public static func copy(_ tensors: [String: SafeTensors.Tensor], into net: FunnelNetwork, path: String,
                            included: (Parameter) -> Bool = { _ in true }) throws {
        for p in net.parameters where included(p) {
            guard let t = tensors[p.name] else { throw FunnelError("\(path): tensor '\(p.name)' is missing") }
            // A row-sharded network (mpirun predict) keeps its rows of a whole table.
            if let layer = net.embeddings.first(where: { $0.table === p }), let holding = layer.shard {
                guard t.shape == [layer.rows, layer.dim], t.values.allSatisfy(\.isFinite) else {
                    throw FunnelError("\(path): tensor '\(p.name)' has shape \(t.shape) or a non-finite value; the model needs [\(layer.rows), \(layer.dim)]")
                }
                t.values.withUnsafeBufferPointer { src in
                    ShardedWeightsReader.placeRows(src.baseAddress!, rows: layer.rows, dim: layer.dim, into: p, holding: holding) { $0 }
                }
                continue
            }
            guard t.shape == p.shape else {
                throw FunnelError("\(path): tensor '\(p.name)' has shape \(t.shape), the model needs \(p.shape)")
            }
            if let bad = t.values.firstIndex(where: { !$0.isFinite }) {
                throw FunnelError("\(path): tensor '\(p.name)' holds a non-finite value (\(t.values[bad]) at index \(bad))")
            }
            t.values.withUnsafeBufferPointer { p.value.base.update(from: $0.baseAddress!, count: t.values.count) }
        }
    }
}
