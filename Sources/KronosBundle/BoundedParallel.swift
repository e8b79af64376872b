// A parallel loop that never waits for a thread that could not start. Dispatch's concurrentPerform
// retries thread creation forever when the system refuses it (a memory or process limit: it sleeps
// in `_dispatch_temporary_resource_shortage`); here the threads that start pull indices from a
// shared counter beside the calling thread, and when none starts the caller does all the work.
import Synchronization
#if canImport(Glibc)
    import Glibc
#endif

public enum BoundedParallel {
    private final class Job: @unchecked Sendable {
        let next = Atomic<Int>(0)
        let count: Int
        let body: (Int) -> Void
        init(count: Int, body: @escaping (Int) -> Void) { self.count = count; self.body = body }
        func work() {
            while true {
                let i = next.add(1, ordering: .relaxed).oldValue
                if i >= count { return }
                body(i)
            }
        }
    }

    /// Runs body(i) for i in 0 ..< count on up to `threads` threads (the caller's included); returns
    /// when all are done. body must be safe to run concurrently for different i.
    public static func forEach(_ count: Int, threads: Int, _ body: @escaping (Int) -> Void) {
        guard count > 0 else { return }
        let job = Job(count: count, body: body)
        var started = [pthread_t]()
        for _ in 0..<max(0, min(threads, count) - 1) {
            var t = pthread_t()
            let arg = Unmanaged.passRetained(job).toOpaque()
            let rc = pthread_create(
                &t, nil,
                { p in
                    let j = Unmanaged<Job>.fromOpaque(p!).takeRetainedValue()
                    j.work()
                    return nil
                }, arg)
            if rc != 0 { Unmanaged<Job>.fromOpaque(arg).release(); break }
            started.append(t)
        }
        job.work()
        for t in started { pthread_join(t, nil) }
    }
}
