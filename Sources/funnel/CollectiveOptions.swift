import ArgumentParser
import Funnel
import FunnelDistributed

/// `--collective-timeout` of the data-parallel commands (train, gbdt train).
struct CollectiveOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Under mpirun: seconds a rank waits for the others in one exchange before the job is ended with 'rank R of N: no answer in T s' (a stopped or hung rank).")
    var collectiveTimeout = 600.0

    func validate() throws {
        guard collectiveTimeout > 0, collectiveTimeout.isFinite else { throw ValidationError("--collective-timeout must be a positive number of seconds") }
    }

    func apply() { MPITransport.collectiveTimeout = collectiveTimeout }
}
