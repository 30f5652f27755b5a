/// When a training run evaluates itself during its last stage (early stopping): after every
/// epoch, or every `everySteps` optimizer steps. `evaluate(epoch, step)` returns true to stop.
public struct CheckpointSchedule {
    public var everySteps: Int?
    public var evaluate: (_ epoch: Int, _ step: Int) -> Bool

    public init(everySteps: Int? = nil, evaluate: @escaping (_ epoch: Int, _ step: Int) -> Bool) {
        self.everySteps = everySteps
        self.evaluate = evaluate
    }
}
