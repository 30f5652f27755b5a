import ArgumentParser
import Foundation
import Funnel
import FunnelDistributed

@main
struct FunnelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "funnel",
        abstract: "Learn the impression → click → conversion funnel; predict pCTR, pCVR and pCTCVR.",
        version: FunnelVersion.string,
        subcommands: [Simulate.self, Prepare.self, Train.self, Eval.self, Predict.self, Experiment.self, Tune.self, Serve.self, Inspect.self, GBDT.self, Export.self, Replay.self])
}

/// Runs a command body and turns Funnel's errors into one clean line and exit code 1. A write
/// to standard error that failed (full, or closed) also ends in exit code 1: the run's notes or
/// warnings were lost.
func guarded(_ body: () throws -> Void) throws {
    StandardStreams.prepare()
    do {
        try body()
    } catch let e as DataError {
        Terminal.error(e.description)
        throw ExitCode(1)
    } catch let e as FunnelError {
        Terminal.error(e.description)
        throw ExitCode(1)
    }
    if StandardStreams.errorFailed { throw ExitCode(1) }
}

/// `guarded` for a command that may run as one rank of an MPI job: a rank that fails prints its
/// rank and the cause, then ends the whole job (MPI_Abort), so no other rank waits forever in
/// a collective; mpirun exits non-zero.
func guarded(on comm: Communicator, _ body: () throws -> Void) throws {
    guard comm.isDistributed else { return try guarded(body) }
    do {
        try body()
    } catch {
        Terminal.error("rank \(comm.rank) of \(comm.size): \(error)")
        comm.abort(code: 1)
    }
    if StandardStreams.errorFailed { comm.abort(code: 1) }
}

/// A data-parallel command's frame: MPI is started when launched under mpirun (or `explicit`,
/// `--distributed`), `body` runs with the communicator (`.single` for a lone process) and whether this
/// rank stays quiet (every rank but 0), a failing rank ends the job (`guarded(on:)`), MPI is
/// finalized after.
func runRanks(explicit: Bool, _ body: (_ comm: Communicator, _ quiet: Bool) throws -> Void) throws {
    var comm = Communicator.single
    try guarded { comm = try MPITransport.start(explicit: explicit) }
    try guarded(on: comm) { try body(comm, !comm.isRoot) }
    comm.finalize()
}

/// Commands other than `train`, `gbdt train`, `predict` and `eval` are not data-parallel: N copies under mpirun
/// would each do the whole job and write the same outputs. Checked in `validate()` from the
/// launcher's environment (MPI itself is never started for them).
func refuseManyRanks(_ command: String) throws {
    if let n = Communicator.launchedSize, n > 1 {
        // One copy explains (the others' identical lines would interleave on the shared stderr);
        // every copy exits with the usage status.
        if let rank = Communicator.launchedRank, rank != 0 { exit(64) }
        throw ValidationError("funnel \(command) does not run data-parallel (mpirun started \(n) copies); only train, gbdt train, predict and eval do")
    }
}

/// `--threads`, defaulting to every core (checked in `validate()` by `validateThreads`).
func resolveThreads(_ requested: Int?) throws -> Int {
    let n = requested ?? ProcessInfo.processInfo.activeProcessorCount
    guard n >= 1, n <= 1024 else { throw FunnelError("--threads must be between 1 and 1024") }
    return n
}

/// The `validate()` check of a `--threads` flag.
func validateThreads(_ requested: Int?) throws {
    if let n = requested, !(1...1024).contains(n) { throw ValidationError("--threads must be between 1 and 1024") }
}


/// A seed flag's value: any integer in 0…2⁶⁴−1 (a negative one is named, not "missing").
func seedValue(_ text: String, flag: String) throws -> UInt64 {
    guard let v = UInt64(text) else {
        throw ValidationError(Int64(text) != nil ? "\(flag) must be ≥ 0, got \(text)" : "\(flag) must be an integer ≥ 0, got '\(text)'")
    }
    return v
}
