/// HTAKR (taml-www2023 §2.2): general experts shared by all, task experts per task, learner
/// experts per learner; each learner's gate mixes general ∪ its task's ∪ its own experts.
enum TAMLTrunk: TrunkBuilder {
    static let isGated = true

    static func validate(_ config: ModelConfig) throws { try ExpertChecks.validate(config) }

    static func build(_ shape: TrunkShape, config: ModelConfig, rng: () -> RandomSource) -> TrunkBody {
        let m = config.experts, learners = shape.learners, tasks = shape.gates / learners
        var names = (0..<m).map { "general.\($0)" }
        for t in 0..<tasks { names += (0..<m).map { "task\(t).\($0)" } }
        for t in 0..<tasks { for l in 0..<learners { names += (0..<m).map { "task\(t).learner\(l).\($0)" } } }
        var subsets: [[Int]] = []
        for t in 0..<tasks {
            for l in 0..<learners {
                let general = Array(0..<m), task = (0..<m).map { m + t * m + $0 }
                let own = (0..<m).map { m + tasks * m + (t * learners + l) * m + $0 }
                subsets.append(general + task + own)
            }
        }
        var r = rng()
        let labels = ["general", "task", "learner"].flatMap { group in (0..<m).map { "\(group) expert \($0)" } }
        return .gated(MixtureOfExperts(name: shape.name + "taml", inputWidth: shape.inputWidth, experts: names.count,
                                       expertHidden: config.expertHidden, gates: shape.gates, maxBatch: shape.maxBatch,
                                       workers: shape.workers, rng: &r, expertNames: names, gateExperts: subsets,
                                       gateLabels: labels))
    }
}
