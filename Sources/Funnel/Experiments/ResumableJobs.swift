import Foundation

/// Independent jobs (tuning trials, experiment runs) run `concurrency` at a time, each output
/// saved atomically as JSON the moment it finishes, so a run that is killed resumes from what it
/// saved: the jobs whose output `saved` finds are not run again. One skeleton for `Tuner` and
/// `ExperimentRunner`.
struct ResumableJobs<Job, Output: Encodable> {
    let jobs: [Job]
    /// Per job, its output: loaded at the start, or computed by `run`.
    private(set) var outputs: [Output?]

    /// `saved(job)`: the output a previous run left for `job`, nil when there is none (it may
    /// throw when what it finds belongs to another configuration).
    init(_ jobs: [Job], saved: (Job) throws -> Output?) rethrows {
        self.jobs = jobs
        outputs = try jobs.map(saved)
    }

    /// The jobs still to run.
    var todo: [Job] { jobs.indices.filter { outputs[$0] == nil }.map { jobs[$0] } }
    var doneCount: Int { outputs.count - todoIndices.count }
    private var todoIndices: [Int] { jobs.indices.filter { outputs[$0] == nil } }

    /// The line a resumed run prints ("resuming: 3 trial(s) already done, 5 to go"); nil when nothing was saved.
    func resumeLine(_ noun: String) -> String? {
        doneCount == 0 ? nil : "resuming: \(doneCount) \(noun)(s) already done, \(todoIndices.count) to go"
    }

    /// Runs every job still to run: `work` on a worker thread, its output written to
    /// `savePath(job)` (when non-nil), then `finished(job, output)` under the pool's lock, whose
    /// returned line goes to `progress` outside it. The first error stops handing out jobs (the
    /// ones running finish) and is rethrown. Returns every job's output, in job order.
    mutating func run(concurrency: Int, savePath: (Job) -> String?, progress: @Sendable (String) -> Void,
                      work: (Job) throws -> Output, finished: (Job, Output) -> String?) throws -> [Output] {
        let todo = todoIndices
        let lock = NSLock()
        var next = 0, failure: Error?
        var outputs = self.outputs
        Parallel.forEach(max(1, min(concurrency, todo.count))) { _ in
            while true {
                lock.lock()
                guard failure == nil, next < todo.count else { lock.unlock(); return }
                let k = todo[next]
                next += 1
                lock.unlock()
                do {
                    let output = try work(jobs[k])
                    if let p = savePath(jobs[k]) { try Self.save(output, to: p) }
                    lock.lock()
                    outputs[k] = output
                    let line = finished(jobs[k], output)
                    lock.unlock()
                    if let line { progress(line) }
                } catch {
                    lock.lock(); failure = failure ?? error; lock.unlock()
                }
            }
        }
        self.outputs = outputs
        if let failure { throw failure }
        return outputs.map { $0! }
    }

    private static func save(_ output: Output, to path: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        try AtomicFile.write(try enc.encode(output), to: path)
    }
}
