import ArgumentParser
import Funnel

/// `--gemm` and `--precision`, shared by `train`, `predict` and `serve`: validated once here and
/// handed to the library as the network's `GEMMSettings` (never a process-wide setting).
struct GEMMOptions: ParsableArguments {
    @Option(help: "GEMM engine of every dense layer: openblas or onednn (default: FUNNEL_GEMM, else onednn).") var gemm: GEMMEngine?
    @Option(help: "GEMM input precision: fp32, or bf16 (bf16 inputs, FP32 accumulation, weights and optimizer; needs --gemm onednn).")
    var precision: GEMMPrecision = .fp32

    func validate() throws {
        if precision == .bf16 && (gemm ?? GEMMEngine.fromEnvironment) != .onednn {
            throw ValidationError("--precision bf16 runs on oneDNN's bf16 kernels: use --gemm onednn (the default)")
        }
    }

    /// The settings the command's network runs with.
    var settings: GEMMSettings { GEMMSettings(engine: gemm ?? .fromEnvironment, precision: precision) }
}
