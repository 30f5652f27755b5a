/// A counting semaphore for async code: at most `limit` holders at once, the rest wait in order.
actor RequestGate {
    private let limit: Int
    private var active = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { self.limit = limit }

    func enter() async {
        if active < limit { active += 1; return }
        await withCheckedContinuation { waiting.append($0) }
    }

    func leave() {
        if waiting.isEmpty { active -= 1 } else { waiting.removeFirst().resume() }
    }
}
