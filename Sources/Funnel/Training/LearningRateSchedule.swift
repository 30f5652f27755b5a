import Foundation

/// How the learning rate moves over a stage's optimizer steps. `constant` (the default) leaves
/// Adam's rate untouched, so results stay byte-identical to runs before schedules existed.
public enum LRSchedule: String, Codable, CaseIterable, Sendable {
    case constant
    /// Half a cosine from the base rate to 0 over the stage's steps (after warm-up).
    case cosine
    /// The base rate times `gamma` every `stepSize` steps.
    case step
}

/// The rate at each step of one stage: linear warm-up over `warmupSteps` (from base/warmup to
/// base), then the schedule over the remaining steps.
public struct LearningRatePlan: Sendable {
    public var schedule: LRSchedule
    public var base: Double
    public var warmupSteps: Int
    /// `step`: multiply by `gamma` every `stepSize` steps.
    public var gamma: Double
    public var stepSize: Int
    /// Steps the stage will take (for the cosine's length).
    public var totalSteps: Int

    /// Whether any step's rate differs from the base (otherwise the optimizer is never touched).
    public var isActive: Bool { schedule != .constant || warmupSteps > 0 }

    /// The rate of step `t` (0-based).
    public func rate(at t: Int) -> Double {
        if t < warmupSteps { return base * Double(t + 1) / Double(warmupSteps) }
        let u = t - warmupSteps
        switch schedule {
        case .constant: return base
        case .cosine:
            let span = max(1, totalSteps - warmupSteps)
            return base * 0.5 * (1 + cos(Double.pi * min(Double(u), Double(span)) / Double(span)))
        case .step: return base * pow(gamma, Double(u / max(1, stepSize)))
        }
    }
}
