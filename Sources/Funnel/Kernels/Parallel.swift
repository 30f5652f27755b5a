import Dispatch

/// Runs `count` independent pieces of work on separate threads and waits for all of them.
/// Funnel's own threads do the parallel work; OpenBLAS is kept at one thread per caller when
/// more than one worker runs, so the two never oversubscribe the cores.
public enum Parallel {
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        if count <= 1 { body(0); return }
        DispatchQueue.concurrentPerform(iterations: count, execute: body)
    }
}
