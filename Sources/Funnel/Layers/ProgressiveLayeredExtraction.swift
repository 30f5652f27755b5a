/// Progressive layered extraction (Tang et al., RecSys 2020): stacked customized-gate-control
/// levels. At every level each task stream has its own experts and the shared stream has shared
/// experts; task t's gate (a softmax computed from task t's input) mixes task t's and the shared
/// experts; below the top level a shared gate mixes every expert into the shared stream's next
/// input. The first level reads the same input on every stream; task t's top output feeds its
/// tower.
public final class ProgressiveLayeredExtraction: GatedTrunk {
    package struct Level {
        package let taskExperts: [[MLP]]   // [task][expert]
        package let sharedExperts: [MLP]
        package let taskGates: [DenseLayer]
        package let sharedGate: DenseLayer?
        package let inputWidth: Int
    }

    package let levels: [Level]
    public let tasks: Int
    public let inputWidth: Int
    public let outputWidth: Int

    // Per worker, per level: gate probabilities and stream outputs; input-gradient scratch.
    private let taskProbabilities: [[[FloatBuffer]]]   // [worker][level][task]
    private let sharedProbabilities: [[FloatBuffer]]   // [worker][level]
    private let taskOutputs: [[[FloatBuffer]]]         // [worker][level][task]
    private let sharedOutputs: [[FloatBuffer]]         // [worker][level]
    private let taskInputGradients: [[[FloatBuffer]]]  // [worker][level][task], levels ≥ 1
    private let sharedInputGradients: [[FloatBuffer]]  // [worker][level]
    private let expertGradients: [[FloatBuffer]]       // [worker][expert slot] B×H
    private let gateGradient: [FloatBuffer]

    public init(name: String, inputWidth: Int, tasks: Int, levels levelCount: Int, expertsPerTask: Int, sharedExperts: Int,
                expertHidden: [Int], maxBatch: Int, workers: Int, rng: inout RandomSource) {
        self.tasks = tasks
        self.inputWidth = inputWidth
        let h = expertHidden.last!
        outputWidth = h
        var built: [Level] = []
        for l in 0..<levelCount {
            let w = l == 0 ? inputWidth : h
            func expert(_ tag: String) -> MLP {
                MLP(name: "\(name).\(l).\(tag)", inputWidth: w, hidden: expertHidden, logitOutput: false, maxBatch: maxBatch,
                    workers: workers, rng: &rng)
            }
            let te = (0..<tasks).map { t in (0..<expertsPerTask).map { expert("task\(t).expert.\($0)") } }
            let se = (0..<sharedExperts).map { expert("shared.expert.\($0)") }
            let tg = (0..<tasks).map {
                DenseLayer(name: "\(name).\(l).task\($0).gate", inFeatures: w, outFeatures: expertsPerTask + sharedExperts,
                           workers: workers, rng: &rng)
            }
            let sg = l < levelCount - 1
                ? DenseLayer(name: "\(name).\(l).shared.gate", inFeatures: w, outFeatures: tasks * expertsPerTask + sharedExperts,
                             workers: workers, rng: &rng) : nil
            built.append(Level(taskExperts: te, sharedExperts: se, taskGates: tg, sharedGate: sg, inputWidth: w))
        }
        levels = built
        let kTask = expertsPerTask + sharedExperts, kAll = tasks * expertsPerTask + sharedExperts
        taskProbabilities = (0..<workers).map { _ in built.map { _ in (0..<tasks).map { _ in FloatBuffer(count: maxBatch * kTask) } } }
        sharedProbabilities = (0..<workers).map { _ in built.map { _ in FloatBuffer(count: maxBatch * kAll) } }
        taskOutputs = (0..<workers).map { _ in built.map { _ in (0..<tasks).map { _ in FloatBuffer(count: maxBatch * h) } } }
        sharedOutputs = (0..<workers).map { _ in built.map { _ in FloatBuffer(count: maxBatch * h) } }
        taskInputGradients = (0..<workers).map { _ in built.map { lv in (0..<tasks).map { _ in FloatBuffer(count: maxBatch * lv.inputWidth) } } }
        sharedInputGradients = (0..<workers).map { _ in built.map { lv in FloatBuffer(count: maxBatch * lv.inputWidth) } }
        expertGradients = (0..<workers).map { _ in (0..<kAll).map { _ in FloatBuffer(count: maxBatch * h) } }
        gateGradient = (0..<workers).map { _ in FloatBuffer(count: maxBatch * kAll) }
    }

    public var parameters: [Parameter] {
        var out: [Parameter] = []
        for lv in levels {
            for experts in lv.taskExperts { for e in experts { out += e.parameters } }
            for e in lv.sharedExperts { out += e.parameters }
            for g in lv.taskGates { out += g.parameters }
            if let g = lv.sharedGate { out += g.parameters }
        }
        return out
    }

    private func taskInput(_ l: Int, _ t: Int, _ x: UnsafePointer<Float>, worker: Int) -> UnsafePointer<Float> {
        l == 0 ? x : UnsafePointer(taskOutputs[worker][l - 1][t].base)
    }

    private func sharedInput(_ l: Int, _ x: UnsafePointer<Float>, worker: Int) -> UnsafePointer<Float> {
        l == 0 ? x : UnsafePointer(sharedOutputs[worker][l - 1].base)
    }

    public func forward(_ x: UnsafePointer<Float>, batch: Int, worker: Int = 0) {
        for (l, lv) in levels.enumerated() {
            let shared = lv.sharedExperts.map { UnsafePointer($0.forward(sharedInput(l, x, worker: worker), batch: batch, worker: worker)) }
            var all: [UnsafePointer<Float>] = []
            for t in 0..<tasks {
                let input = taskInput(l, t, x, worker: worker)
                let own = lv.taskExperts[t].map { UnsafePointer($0.forward(input, batch: batch, worker: worker)) }
                all += own
                let p = taskProbabilities[worker][l][t].base
                lv.taskGates[t].forward(input, batch: batch, into: p)
                GatedSum.forward(experts: own + shared, probabilities: p, batch: batch, width: outputWidth,
                                 into: taskOutputs[worker][l][t].base)
            }
            if let sg = lv.sharedGate {
                let p = sharedProbabilities[worker][l].base
                sg.forward(sharedInput(l, x, worker: worker), batch: batch, into: p)
                GatedSum.forward(experts: all + shared, probabilities: p, batch: batch, width: outputWidth,
                                 into: sharedOutputs[worker][l].base)
            }
        }
    }

    /// Task `t`'s output of the top level.
    public func output(gate t: Int, worker: Int = 0) -> UnsafePointer<Float> {
        UnsafePointer(taskOutputs[worker][levels.count - 1][t].base)
    }

    /// Top-level gate weights of task `t` (`[batch × (expertsPerTask + sharedExperts)]`: own experts first).
    public func gateWeights(gate t: Int, worker: Int = 0) -> UnsafePointer<Float> {
        UnsafePointer(taskProbabilities[worker][levels.count - 1][t].base)
    }

    public var gateLabels: [String] {
        let top = levels[levels.count - 1]
        return (0..<(top.taskExperts.first?.count ?? 0)).map { "task expert \($0)" } + (0..<top.sharedExperts.count).map { "shared expert \($0)" }
    }

    /// Back-propagates the used tasks' output gradients (nil: unused) into `dx` (written, or added).
    public func backward(_ x: UnsafePointer<Float>, dOutputs: [UnsafePointer<Float>?], batch: Int, dx: UnsafeMutablePointer<Float>,
                         accumulateInputGradient: Bool, worker: Int = 0) {
        var dTask: [UnsafePointer<Float>?] = dOutputs
        var dShared: UnsafePointer<Float>? = nil
        var dxStarted = accumulateInputGradient
        for l in stride(from: levels.count - 1, through: 0, by: -1) {
            let de = expertGradients[worker].map(\.base)
            for g in de { g.update(repeating: 0, count: batch * outputWidth) }
            var targets = InputGradientTargets(
                level: l, dx: dx, dxStarted: dxStarted,
                taskIn: (0..<tasks).map { l == 0 ? dx : taskInputGradients[worker][l][$0].base },
                sharedIn: l == 0 ? dx : sharedInputGradients[worker][l].base, tasks: tasks)
            backwardGates(l, x, dTask: dTask, dShared: dShared, expertGradients: de, targets: &targets, batch: batch, worker: worker)
            backwardExperts(l, x, expertGradients: de, targets: &targets, batch: batch, worker: worker)
            dxStarted = targets.dxStarted
            if l > 0 {
                dTask = (0..<tasks).map { targets.taskStarted[$0] ? UnsafePointer(targets.taskIn[$0]) : nil }
                dShared = targets.sharedStarted ? UnsafePointer(targets.sharedIn) : nil
            }
        }
    }

    /// Where a level's input gradients go — its tasks' and shared stream's inputs, or `dx` at
    /// level 0 — and whether each was written yet (the first write sets it, later ones add).
    private struct InputGradientTargets {
        let level: Int
        let dx: UnsafeMutablePointer<Float>
        var dxStarted: Bool
        let taskIn: [UnsafeMutablePointer<Float>]
        let sharedIn: UnsafeMutablePointer<Float>
        var taskStarted: [Bool]
        var sharedStarted = false

        init(level: Int, dx: UnsafeMutablePointer<Float>, dxStarted: Bool, taskIn: [UnsafeMutablePointer<Float>],
             sharedIn: UnsafeMutablePointer<Float>, tasks: Int) {
            self.level = level; self.dx = dx; self.dxStarted = dxStarted; self.taskIn = taskIn; self.sharedIn = sharedIn
            taskStarted = [Bool](repeating: false, count: tasks)
        }

        /// Task `t`'s input gradient (nil: the shared stream's), and whether to add to it.
        mutating func next(_ t: Int?) -> (UnsafeMutablePointer<Float>, Bool) {
            if level == 0 { let s = dxStarted; dxStarted = true; return (dx, s) }
            if let t { let s = taskStarted[t]; taskStarted[t] = true; return (taskIn[t], s) }
            let s = sharedStarted; sharedStarted = true; return (sharedIn, s)
        }
    }

    /// Level `l`'s gates: each used task's gated sum back into its experts' slots and its gate,
    /// then the shared gate's (unused gates get zero gradients). Expert slots: task t's experts
    /// at t·m…, the shared experts after all task experts.
    private func backwardGates(_ l: Int, _ x: UnsafePointer<Float>, dTask: [UnsafePointer<Float>?], dShared: UnsafePointer<Float>?,
                               expertGradients de: [UnsafeMutablePointer<Float>], targets: inout InputGradientTargets,
                               batch: Int, worker: Int) {
        let lv = levels[l], h = outputWidth
        let m = lv.taskExperts.first?.count ?? 0
        let sharedSlots = (0..<lv.sharedExperts.count).map { de[tasks * m + $0] }
        let sharedE = lv.sharedExperts.map { UnsafePointer($0.forwardOutput(worker: worker)) }
        let dz = gateGradient[worker].base
        for t in 0..<tasks {
            let own = lv.taskExperts[t].map { UnsafePointer($0.forwardOutput(worker: worker)) }
            guard let dy = dTask[t] else { lv.taskGates[t].zeroGradients(worker: worker); continue }
            GatedSum.backward(experts: own + sharedE, probabilities: taskProbabilities[worker][l][t].base, dy: dy, batch: batch,
                              width: h, expertGradients: (0..<m).map { de[t * m + $0] } + sharedSlots, dLogits: dz)
            let (dst, acc) = targets.next(t)
            lv.taskGates[t].backward(taskInput(l, t, x, worker: worker), dy: dz, batch: batch, dx: dst,
                                     accumulateInputGradient: acc, worker: worker)
        }
        guard let sg = lv.sharedGate else { return }
        guard let dy = dShared else { sg.zeroGradients(worker: worker); return }
        var allE: [UnsafePointer<Float>] = []
        for t in 0..<tasks { allE += lv.taskExperts[t].map { UnsafePointer($0.forwardOutput(worker: worker)) } }
        GatedSum.backward(experts: allE + sharedE, probabilities: sharedProbabilities[worker][l].base, dy: dy, batch: batch,
                          width: h, expertGradients: Array(de[0..<(tasks * m)]) + sharedSlots, dLogits: dz)
        let (dst, acc) = targets.next(nil)
        sg.backward(sharedInput(l, x, worker: worker), dy: dz, batch: batch, dx: dst, accumulateInputGradient: acc, worker: worker)
    }

    /// Level `l`'s experts, from their slots back into their stream's input gradient.
    private func backwardExperts(_ l: Int, _ x: UnsafePointer<Float>, expertGradients de: [UnsafeMutablePointer<Float>],
                                 targets: inout InputGradientTargets, batch: Int, worker: Int) {
        let lv = levels[l]
        let m = lv.taskExperts.first?.count ?? 0
        for t in 0..<tasks {
            for (i, e) in lv.taskExperts[t].enumerated() {
                let (dst, acc) = targets.next(t)
                e.backward(taskInput(l, t, x, worker: worker), dLogits: de[t * m + i], batch: batch, dx: dst,
                           accumulateInputGradient: acc, worker: worker)
            }
        }
        for (j, e) in lv.sharedExperts.enumerated() {
            let (dst, acc) = targets.next(nil)
            e.backward(sharedInput(l, x, worker: worker), dLogits: de[tasks * m + j], batch: batch, dx: dst,
                       accumulateInputGradient: acc, worker: worker)
        }
    }
}
