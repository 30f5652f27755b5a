import Foundation

/// LightGBM parameters in the C API's `key=value key=value` form, kept in insertion order so the
/// same configuration always produces the same string (and the same model bytes).
public struct LightGBMParameters: Equatable, Sendable {
    public private(set) var entries: [(key: String, value: String)] = []

    public init(_ pairs: [(String, String)] = []) { for (k, v) in pairs { self[k] = v } }

    public subscript(key: String) -> String? {
        get { entries.first { $0.key == key }?.value }
        set {
            if let i = entries.firstIndex(where: { $0.key == key }) {
                if let newValue { entries[i].value = newValue } else { entries.remove(at: i) }
            } else if let newValue {
                entries.append((key, newValue))
            }
        }
    }

    public func merging(_ other: LightGBMParameters) -> LightGBMParameters {
        var out = self
        for (k, v) in other.entries { out[k] = v }
        return out
    }

    public var string: String { entries.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }

    /// Refuses values the `key=value` string cannot carry.
    public func validate() throws {
        for (k, v) in entries {
            guard !k.isEmpty, !k.contains(where: { $0 == " " || $0 == "=" }), !v.isEmpty, !v.contains(" ") else {
                throw FunnelError("LightGBM parameter '\(k)=\(v)': keys and values must be non-empty and contain no spaces")
            }
        }
    }

    public static func == (a: LightGBMParameters, b: LightGBMParameters) -> Bool { a.string == b.string }
}

/// A LightGBM `Dataset` (binned features plus labels), freed with the object.
public final class LightGBMDataset {
    let library: LightGBMLibrary
    let handle: LightGBMLibrary.Handle
    public let rows: Int

    /// Bins `matrix`; a validation set passes the training set as `reference` so it shares its bins.
    public init(_ matrix: FeatureMatrix, labels: [Float], parameters: LightGBMParameters,
                reference: LightGBMDataset? = nil) throws {
        precondition(labels.count == matrix.rows)
        guard matrix.rows > 0 else { throw FunnelError("LightGBM: cannot build a dataset with no rows") }
        guard matrix.rows <= Int(Int32.max) else { throw FunnelError("LightGBM: more than 2^31 rows in one dataset") }
        let lib = try LightGBMLibrary.shared()
        library = lib
        rows = matrix.rows
        var out: LightGBMLibrary.Handle?
        let code = matrix.values.withUnsafeBytes { raw in
            parameters.string.withCString { p in
                lib.datasetCreateFromMat(raw.baseAddress, LightGBMLibrary.dtypeFloat32, Int32(matrix.rows),
                                             Int32(matrix.columns), 1, p, reference?.handle, &out)
            }
        }
        try lib.check(code, "dataset construction")
        guard let out else { throw FunnelError("LightGBM dataset construction returned no handle") }
        handle = out
        try setLabelsAndNames(labels, matrix.names)
    }

    /// One rank's rows of a table split over ranks (`partition`: this rank's rows are positions
    /// `partition.positions` of one machine's table), binned exactly as one machine bins the whole
    /// table: the bin sample is LightGBM's own (`LGBM_SampleIndices` over one machine's row
    /// positions, the draw `LGBM_DatasetCreateFromMat` makes), its rows gathered from the ranks
    /// that hold them, then `LGBM_DatasetCreateFromSampledColumn` with one machine's row count
    /// and this rank's rows pushed. Built before LightGBM's network starts, so the bins are
    /// found locally from the same sample on every rank.
    public init(_ matrix: FeatureMatrix, labels: [Float], partition: RowPartition, parameters: LightGBMParameters,
                communicator comm: Communicator) throws {
        precondition(labels.count == matrix.rows && matrix.rows == partition.count)
        guard matrix.rows > 0 else { throw FunnelError("LightGBM: cannot build a dataset with no rows") }
        guard partition.total <= Int(Int32.max) else { throw FunnelError("LightGBM: more than 2^31 rows in one dataset") }
        let lib = try LightGBMLibrary.shared()
        library = lib
        rows = matrix.rows
        let d = matrix.columns
        let params = parameters.string
        let (sample, rowsOfSample) = try Self.binSample(matrix, partition: partition, params: params, library: lib, communicator: comm)
        let (values, indices) = Self.sampledColumns(rowsOfSample, rows: sample.count, columns: d)
        let valuePointers = values.map { col -> UnsafeMutablePointer<Double>? in
            let p = UnsafeMutablePointer<Double>.allocate(capacity: max(col.count, 1))
            p.initialize(from: col, count: col.count)
            return p
        }
        let indexPointers = indices.map { col -> UnsafeMutablePointer<Int32>? in
            let p = UnsafeMutablePointer<Int32>.allocate(capacity: max(col.count, 1))
            p.initialize(from: col, count: col.count)
            return p
        }
        defer { valuePointers.forEach { $0?.deallocate() }; indexPointers.forEach { $0?.deallocate() } }
        var vp = valuePointers, ip = indexPointers
        let perColumn = values.map { Int32($0.count) }
        var out: LightGBMLibrary.Handle?
        let code = params.withCString { p in
            lib.datasetCreateFromSampledColumn(&vp, &ip, Int32(d), perColumn, Int32(sample.count), Int32(matrix.rows),
                                               Int64(partition.total), p, &out)
        }
        try lib.check(code, "dataset construction from the bin sample")
        guard let out else { throw FunnelError("LightGBM dataset construction returned no handle") }
        handle = out
        let pushed = matrix.values.withUnsafeBytes {
            lib.datasetPushRows(out, $0.baseAddress, LightGBMLibrary.dtypeFloat32, Int32(matrix.rows), Int32(d), 0)
        }
        try lib.check(pushed, "pushing rows")
        try setLabelsAndNames(labels, matrix.names)
    }

    /// LightGBM's own bin sample of one machine's `partition.total` rows (`LGBM_SampleIndices`),
    /// and the sampled rows' values gathered from the ranks that hold them, in sample order.
    private static func binSample(_ matrix: FeatureMatrix, partition: RowPartition, params: String, library lib: LightGBMLibrary,
                                  communicator comm: Communicator) throws -> (sample: [Int32], rows: [Float]) {
        let d = matrix.columns, total = Int32(partition.total)
        var sampleCount: Int32 = 0
        try lib.check(params.withCString { lib.getSampleCount(total, $0, &sampleCount) }, "sample count")
        var sample = [Int32](repeating: 0, count: Int(max(sampleCount, 1)))
        var sampled: Int32 = 0
        try lib.check(params.withCString { p in sample.withUnsafeMutableBytes { lib.sampleIndices(total, p, $0.baseAddress, &sampled) } },
                      "sample indices")
        sample = Array(sample.prefix(Int(sampled)))
        // This rank's sampled rows (sample ordinals ascend with position, ranks hold ascending runs).
        let mine = partition.positions
        var rowsOfSample: [Float] = []
        for position in sample where mine.contains(Int(position)) {
            let r = Int(position) - mine.lowerBound
            rowsOfSample += matrix.values[(r * d)..<((r + 1) * d)]
        }
        rowsOfSample = try comm.allgather(values: rowsOfSample).flatMap { $0 }
        precondition(rowsOfSample.count == sample.count * d, "bin sample rows missing")
        return (sample, rowsOfSample)
    }

    /// The sample as LightGBM's sampled columns: per column, the values it keeps (|v| > its
    /// kZeroThreshold 1e-35f, or NaN) and their sample ordinals.
    private static func sampledColumns(_ rowsOfSample: [Float], rows: Int, columns d: Int) -> (values: [[Double]], indices: [[Int32]]) {
        let zero = Double(Float(1e-35))
        var values = [[Double]](repeating: [], count: d), indices = [[Int32]](repeating: [], count: d)
        for i in 0..<rows {
            for k in 0..<d {
                let v = Double(rowsOfSample[i * d + k])
                if abs(v) > zero || v.isNaN { values[k].append(v); indices[k].append(Int32(i)) }
            }
        }
        return (values, indices)
    }

    private func setLabelsAndNames(_ labels: [Float], _ names: [String]) throws {
        let lib = library, h = handle
        let setLabel = labels.withUnsafeBytes {
            lib.datasetSetField(h, "label", $0.baseAddress, Int32(labels.count), LightGBMLibrary.dtypeFloat32)
        }
        try library.check(setLabel, "setting labels")
        let cNames = names.map { strdup($0) }
        defer { cNames.forEach { free($0) } }
        var constNames = cNames.map { UnsafePointer<CChar>($0) }
        let setNames = constNames.withUnsafeMutableBufferPointer {
            lib.datasetSetFeatureNames(h, $0.baseAddress, Int32(names.count))
        }
        try library.check(setNames, "setting feature names")
    }

    deinit { _ = library.datasetFree(handle) }
}

/// A LightGBM booster: trained here one iteration at a time, or loaded from LightGBM's model text.
public final class LightGBMBooster: @unchecked Sendable {
    let library: LightGBMLibrary
    let handle: LightGBMLibrary.Handle
    /// Datasets must outlive the booster that references them.
    private var datasets: [LightGBMDataset] = []

    public init(train: LightGBMDataset, parameters: LightGBMParameters) throws {
        let lib = train.library
        library = lib
        var out: LightGBMLibrary.Handle?
        let code = parameters.string.withCString { lib.boosterCreate(train.handle, $0, &out) }
        try library.check(code, "booster creation")
        guard let out else { throw FunnelError("LightGBM booster creation returned no handle") }
        handle = out
        datasets = [train]
    }

    /// Loads LightGBM's own model text (what `modelText` returns and the model directory stores).
    public init(modelText: String, source: String) throws {
        let lib = try LightGBMLibrary.shared()
        library = lib
        var iterations: Int32 = 0
        var out: LightGBMLibrary.Handle?
        let code = modelText.withCString { lib.boosterLoadModelFromString($0, &iterations, &out) }
        do { try lib.check(code, "loading \(source)") } catch let e as FunnelError {
            throw FunnelError("\(source): not a LightGBM model (\(e.message))")
        }
        guard let out else { throw FunnelError("\(source): LightGBM returned no booster") }
        handle = out
    }

    deinit { _ = library.boosterFree(handle) }

    public func addValidation(_ data: LightGBMDataset) throws {
        try library.check(library.boosterAddValidData(handle, data.handle), "adding validation data")
        datasets.append(data)
    }

    /// One boosting iteration; true when no further split is possible (LightGBM's `is_finished`).
    public func updateOneIteration() throws -> Bool {
        var finished: Int32 = 0
        try library.check(library.boosterUpdateOneIter(handle, &finished), "boosting iteration")
        return finished != 0
    }

    /// The configured metrics on dataset `index` (0 = training, 1… = validation sets in order added).
    public func evaluate(dataset index: Int) throws -> [Double] {
        var count: Int32 = 0
        try library.check(library.boosterGetEvalCounts(handle, &count), "metric count")
        var out = [Double](repeating: .nan, count: Int(max(count, 1)))
        var len: Int32 = 0
        try library.check(library.boosterGetEval(handle, Int32(index), &len, &out), "evaluation")
        return Array(out.prefix(Int(len)))
    }

    public var currentIteration: Int {
        var it: Int32 = 0
        _ = library.boosterGetCurrentIteration(handle, &it)
        return Int(it)
    }

    public var featureCount: Int {
        var n: Int32 = 0
        _ = library.boosterGetNumFeature(handle, &n)
        return Int(n)
    }

    /// LightGBM's model text for the first `iterations` iterations (nil = all).
    public func modelText(iterations: Int? = nil) throws -> String {
        let n = Int32(iterations ?? -1)
        var needed: Int64 = 0
        var buffer = [CChar](repeating: 0, count: 1 << 20)
        try library.check(library.boosterSaveModelToString(handle, 0, n, 0, Int64(buffer.count), &needed, &buffer), "saving model")
        if needed > Int64(buffer.count) {
            buffer = [CChar](repeating: 0, count: Int(needed))
            try library.check(library.boosterSaveModelToString(handle, 0, n, 0, Int64(buffer.count), &needed, &buffer), "saving model")
        }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Split-gain importance per feature (LightGBM `importance_type=1`).
    public func gainImportance(iterations: Int? = nil) throws -> [Double] {
        var out = [Double](repeating: 0, count: featureCount)
        try library.check(library.boosterFeatureImportance(handle, Int32(iterations ?? -1), 1, &out), "feature importance")
        return out
    }

    /// Probabilities (binary objective) for every row of `matrix`.
    public func predict(_ matrix: FeatureMatrix, iterations: Int? = nil, threads: Int? = nil) throws -> [Double] {
        guard matrix.rows > 0 else { return [] }
        guard matrix.columns == featureCount else {
            throw FunnelError("LightGBM model expects \(featureCount) features, the data has \(matrix.columns)")
        }
        var out = [Double](repeating: .nan, count: matrix.rows)
        var len: Int64 = 0
        let parameter = threads.map { "num_threads=\($0)" } ?? ""
        let code = matrix.values.withUnsafeBytes { raw in
            parameter.withCString { p in
                library.boosterPredictForMat(handle, raw.baseAddress, LightGBMLibrary.dtypeFloat32, Int32(matrix.rows),
                                             Int32(matrix.columns), 1, LightGBMLibrary.predictNormal, 0,
                                             Int32(iterations ?? -1), p, &len, &out)
            }
        }
        try library.check(code, "prediction")
        guard len == Int64(matrix.rows) else { throw FunnelError("LightGBM returned \(len) predictions for \(matrix.rows) rows") }
        return out
    }
}
