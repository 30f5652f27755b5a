/// Watches the validation metric at each checkpoint, keeps a copy of the best weights, and says
/// when `patience` checkpoints in a row brought no improvement. With no patience it only records
/// (plain `--valid`), and the last weights are kept.
public final class EarlyStopping {
    public let monitor: MetricKey
    /// Checkpoints without improvement before stopping; nil: never stop, keep the last weights.
    public let patience: Int?
    public private(set) var best: Checkpoint?
    public private(set) var history: [Checkpoint] = []
    private var sinceBest = 0
    private var snapshot: [[Float]] = []

    public init(monitor: MetricKey, patience: Int?) {
        self.monitor = monitor
        self.patience = patience
    }

    /// Records one evaluation; returns true when training should stop.
    public func observe(_ report: EvaluationReport, epoch: Int, step: Int, network: FunnelNetwork) throws -> Bool {
        guard let value = report[monitor] else {
            throw FunnelError("the monitored metric \(monitor.rawValue) is undefined on the validation rows "
                              + "(the model does not predict it, or its space has one class)")
        }
        let checkpoint = Checkpoint(epoch: epoch, step: step, monitor: monitor, value: value, metrics: report)
        history.append(checkpoint)
        if best == nil || monitor.score(value) > monitor.score(best!.value) {
            best = checkpoint
            sinceBest = 0
            if patience != nil { snapshot = network.parameters.map(\.value.array) }
        } else {
            sinceBest += 1
        }
        guard let patience else { return false }
        return sinceBest >= patience
    }

    /// Under early stopping, puts the best checkpoint's weights back (the model then scores
    /// exactly the best value on the validation rows). Returns the checkpoint the weights are at.
    @discardableResult
    public func restoreBest(into network: FunnelNetwork) -> Checkpoint? {
        guard patience != nil, let best else { return history.last }
        if sinceBest > 0 {
            for (p, saved) in zip(network.parameters, snapshot) {
                saved.withUnsafeBufferPointer { p.value.base.update(from: $0.baseAddress!, count: saved.count) }
            }
        }
        return best
    }
}
