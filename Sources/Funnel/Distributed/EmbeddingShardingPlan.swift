import Foundation

/// How a data-parallel job holds its embedding tables (`train --embedding-sharding`).
public enum EmbeddingShardingMode: String, Codable, CaseIterable, Sendable {
    /// Every rank a whole replica (and its Adam moments); touched rows' gradients all-gathered.
    case replicated
    /// Every table row-sharded over the ranks (`RowShardedTable`).
    case row
    /// Row-sharded when a table with its optimizer state exceeds the threshold, else replicated.
    case auto
}

/// How a model directory holds its weights (`train --weights-layout`).
public enum WeightsLayout: String, Codable, CaseIterable, Sendable {
    /// One `weights.safetensors` (row-sharded tables gathered on rank 0 to write it).
    case whole
    /// Row-sharded tables as shard files with an index (`ShardedWeightsIndex`).
    case sharded
    /// Whole when rank 0 can gather the tables within its budget, else sharded.
    case auto
}

/// The decision for one job, made before anything is allocated, from the tables' sizes alone:
/// whether the tables are row-sharded, and what each rank then holds. A Funnel table is one
/// trunk's table of every field's rows (field offsets added), so the tables of a network have
/// one size and one decision.
public struct EmbeddingShardingPlan: Sendable {
    public var mode: EmbeddingShardingMode
    public var sharded: Bool
    public var ranks: Int
    /// Rows and width of each table; how many tables (one per trunk).
    public var rows: Int
    public var dim: Int
    public var tables: Int
    /// Distinct rows one step of one rank can touch: a sharded layer's lookup table.
    public var lookupRows: Int
    /// Bytes per row held with its optimizer state: the value and Adam's two moments.
    static let floatsPerRow = 3

    /// Decides for `mode`: `row` shards (an error outside mpirun), `replicated` never does, `auto`
    /// shards when one table's rows × (dim + Adam's 2·dim) floats exceed `thresholdMiB` and the
    /// job has several ranks. `continuing`: a model given by `--init-from`, whose tables load
    /// whole (`auto` then keeps them replicated).
    public static func decide(_ mode: EmbeddingShardingMode, thresholdMiB: Double, rows: Int, dim: Int, tables: Int, ranks: Int,
                              lookupRows: Int, continuing: Bool = false) throws -> EmbeddingShardingPlan {
        guard thresholdMiB >= 0, thresholdMiB.isFinite else { throw FunnelError("--shard-threshold-mb must be a number of MiB, 0 or more") }
        var plan = EmbeddingShardingPlan(mode: mode, sharded: false, ranks: ranks, rows: rows, dim: dim, tables: tables,
                                         lookupRows: min(rows, lookupRows))
        switch mode {
        case .replicated: return plan
        case .row:
            guard ranks > 1 else {
                throw FunnelError("--embedding-sharding row shares tables between the ranks of a job started by mpirun "
                                  + "(mpirun -np 2 funnel train …); this process runs alone")
            }
            guard !continuing else {
                throw FunnelError("row-sharded tables cannot continue a saved model yet (--init-from loads whole tables); "
                                  + "use --embedding-sharding replicated")
            }
            plan.sharded = true
        case .auto:
            plan.sharded = ranks > 1 && !continuing && plan.tableBytes > thresholdMiB * 1_048_576
        }
        return plan
    }

    /// One whole table with its optimizer state.
    public var tableBytes: Double { Double(rows) * Double(dim) * 4 * Double(Self.floatsPerRow) }

    /// What rank `rank` holds of one table: its rows with their state (all rows when replicated),
    /// and when sharded the lookup table of a step's rows, its gradient and its row index.
    public func tableBytes(rank: Int) -> Double {
        guard sharded else { return tableBytes }
        let own = Double(RowOwnership(rows: rows, ranks: ranks).localRows(rank: rank))
        return own * Double(dim) * 4 * Double(Self.floatsPerRow) + own * 4 + Double(lookupRows) * (Double(dim) * 8 + 4)
    }

    /// Every table's bytes on each rank, rank after rank.
    public var embeddingBytesPerRank: [Double] { (0..<ranks).map { tableBytes(rank: $0) * Double(tables) } }

    /// Rank `rank`'s share of a table, for its `EmbeddingLayer` (nil when replicated).
    public func shard(rank: Int) -> TableShard? {
        sharded ? TableShard(ownership: RowOwnership(rows: rows, ranks: ranks), rank: rank, lookupRows: lookupRows) : nil
    }

    /// Rows a table counts for on rank `rank` in `NetworkSize` (value, moments, gradients).
    public func rowsHeld(rank: Int) -> Int {
        sharded ? RowOwnership(rows: rows, ranks: ranks).localRows(rank: rank) + lookupRows : rows
    }

    /// Refuses, before anything is allocated, tables that do not fit one rank's `--memory-budget`
    /// (rank 0 holds the most rows), saying how many ranks would hold them.
    public func check(budgetMiB budget: Double) throws {
        let mine = tableBytes(rank: 0) * Double(tables)
        guard mine > budget * 1_048_576 else { return }
        var text = String(format: "the embedding tables need %.0f MiB per rank with Adam's state (%d × %d rows × %d dimensions%@) "
                          + "but --memory-budget is %.0f MiB", mine / 1_048_576, tables, rows, dim,
                          sharded ? ", row-sharded over \(ranks) ranks" : ", replicated", budget)
        if let n = ranksFitting(budget * 1_048_576) { text += "; row-sharded (--embedding-sharding row) they fit on \(n) ranks (mpirun -np \(n))" }
        throw FunnelError(text + " (or fewer rows: --hash-buckets, --min-count; or a smaller --embedding-dim)")
    }

    /// Bytes rank 0 holds to save the whole layout: the gathered tables (and their moments with
    /// `moments`), the copies encoding makes of them (a tensor copy and the file's bytes), and
    /// its own rows with their state.
    public func wholeSaveBytes(moments: Bool) -> Double {
        let values = Double(rows) * Double(dim) * 4 * Double(tables)
        return values * 3 + (moments ? values * 6 : 0) + tableBytes(rank: 0) * Double(tables)
    }

    /// The layout the model directory gets, decided before training: replicated tables are saved
    /// whole; row-sharded ones whole when rank 0 can gather them within `budgetMiB` (else a
    /// refusal for `whole`, shard files for `auto`). Shard files hold no Adam state.
    public func weightsLayout(_ asked: WeightsLayout, budgetMiB: Double, savingMoments: Bool) throws -> WeightsLayout {
        guard sharded else {
            guard asked != .sharded else {
                throw FunnelError("--weights-layout sharded writes the shards of row-sharded tables; this job's tables are replicated "
                                  + "(--embedding-sharding row shards them)")
            }
            return .whole
        }
        let need = wholeSaveBytes(moments: savingMoments) / 1_048_576
        if asked == .whole || (asked == .auto && need <= budgetMiB) {
            guard need <= budgetMiB else {
                throw FunnelError(String(format: "saving one weights file gathers the whole tables on rank 0: about %.0f MiB, over its %.0f MiB; "
                                         + "--weights-layout sharded writes each rank's rows to a shard file instead", need, budgetMiB))
            }
            return .whole
        }
        guard !savingMoments else {
            throw FunnelError(String(format: "the tables are saved as shard files (gathering them whole on rank 0 needs about %.0f MiB, over its %.0f MiB), "
                                     + "which hold no Adam state: drop --save-optimizer-state or raise --memory-budget", need, budgetMiB))
        }
        return .sharded
    }

    /// The fewest ranks over which one rank's tables fit `bytes` (nil: none up to 4,096).
    public func ranksFitting(_ bytes: Double) -> Int? {
        (1...4096).first { n in
            var p = self
            (p.ranks, p.sharded) = (n, n > 1)
            return p.tableBytes(rank: 0) * Double(tables) <= bytes
        }
    }
}

/// `train --json`'s `sharding` (rank 0): how the tables were held and what moved per step.
public struct ShardingReport: Codable, Sendable {
    public var mode: String
    public var tablesSharded: [String]
    public var embeddingBytesPerRank: [Int]
    public var embeddingBytesTotal: Int
    /// Embedding bytes this rank sent per optimizer step: the all-to-alls of rows and gradients
    /// when sharded, the all-gather of touched rows when replicated.
    public var alltoallBytesPerStep: Double
    /// How the model directory holds the weights: "whole" or "sharded".
    public var weightsLayout: String
    /// Each rank's peak resident memory, MiB, at the end of the run (the model saved).
    public var peakRSSMiBPerRank: [Double] = []
    /// How the ranks held the id → row vocabularies while training: "whole" (every rank all of
    /// them) or "split" (each rank its key range, `VocabularyShard`).
    public var vocabulary = "whole"
    /// Vocabulary values each rank held (split: its key range's; whole: every value).
    public var vocabularyValuesPerRank: [Int] = []

    enum CodingKeys: String, CodingKey {
        case mode, vocabulary
        case vocabularyValuesPerRank = "vocabulary_values_per_rank"
        case weightsLayout = "weights_layout"
        case peakRSSMiBPerRank = "peak_rss_mb_per_rank"
        case tablesSharded = "tables_sharded"
        case embeddingBytesPerRank = "embedding_bytes_per_rank"
        case embeddingBytesTotal = "embedding_bytes_total"
        case alltoallBytesPerStep = "alltoall_bytes_per_step"
    }

    public init(_ plan: EmbeddingShardingPlan, tables: [String], communication: CommunicationStats, weightsLayout: WeightsLayout) {
        mode = plan.mode.rawValue
        self.weightsLayout = weightsLayout.rawValue
        tablesSharded = plan.sharded ? tables : []
        embeddingBytesPerRank = plan.embeddingBytesPerRank.map { Int($0) }
        embeddingBytesTotal = embeddingBytesPerRank.reduce(0, +)
        alltoallBytesPerStep = communication.sparseBytesPerStep
    }
}
