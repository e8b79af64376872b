// Persistent kernel threads. A decode step makes ~60 kernel calls of tens of microseconds each;
// waking Dispatch's threads for every one of them cost ~15 % of the step. The pool's threads spin
// briefly on a job counter between calls (so back-to-back kernels start at once) and sleep on a
// condition variable when no job came for a while (so an idle process burns no CPU).
import Foundation
import Synchronization
#if canImport(Glibc)
    import Glibc
#endif

/// What a new worker thread needs (passed through pthread_create's argument).
private final class WorkerStart {
    unowned let pool: WorkerPool
    let index: Int
    let generation: Int  // the last job it must not run (the pool's generation when it started)
    init(pool: WorkerPool, index: Int, generation: Int) {
        self.pool = pool; self.index = index; self.generation = generation
    }
}

final class WorkerPool: @unchecked Sendable {
    /// The process's kernel threads, shared by every model and forecast: started on demand, as many
    /// as the largest thread count asked for so far (`prepare`), never stopped.
    static let shared = WorkerPool()

    /// Spin iterations before a worker sleeps (~50-100 µs).
    private static let spinLimit = 20_000

    /// Threads that started (pthread_create can fail under a process or memory limit: the pool then
    /// runs on those that did, never waiting for one that never ran). Changes only while `busy` is held.
    private let started = Atomic<Int>(0)
    var threadCount: Int { started.load(ordering: .acquiring) }
    private let generation = Atomic<Int>(0)  // bumped once per job
    private let pending = Atomic<Int>(0)  // workers still running the current job
    private let sleeping = Atomic<Int>(0)  // workers waiting on the condition
    private let busy = Atomic<Bool>(false)  // a caller owns the pool (a job, or the pool growing)
    private let growing = NSLock()  // one caller grows the pool at a time
    private let condition = NSCondition()
    // The current job: read by workers only between a generation bump and their pending decrement.
    private var job: ChunkBody?
    private var jobArguments: UnsafeRawPointer?
    private var jobWorkers = 0, jobCount = 0, jobPer = 0

    private init() {}

    /// Makes `threads` threads besides the caller's available (starting the missing ones) and returns
    /// how many there are: fewer than asked for when the system refused to create more.
    func prepare(threads: Int) -> Int {
        growing.lock(); defer { growing.unlock() }
        var have = threadCount
        guard have < threads else { return have }
        // No job runs while the pool grows: a new worker must not join a job already counted.
        while !busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged { sched_yield() }
        defer { busy.store(false, ordering: .releasing) }
        let current = generation.load(ordering: .acquiring)
        while have < threads {
            let start = Unmanaged.passRetained(WorkerStart(pool: self, index: have + 1, generation: current))
            var attributes = pthread_attr_t()
            pthread_attr_init(&attributes)
            pthread_attr_setstacksize(&attributes, 1 << 20)
            pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
            var thread = pthread_t()
            let rc = pthread_create(
                &thread, &attributes,
                { argument in
                    let start = Unmanaged<WorkerStart>.fromOpaque(argument!).takeRetainedValue()
                    start.pool.loop(index: start.index, seen: start.generation)
                    return nil
                }, start.toOpaque())
            pthread_attr_destroy(&attributes)
            if rc != 0 { start.release(); break }
            have += 1
        }
        started.store(have, ordering: .releasing)
        return have
    }

    /// Runs body(arguments, w, w·per ..< min(count, (w+1)·per)) for w in 0 ..< workers (empty ranges skipped):
    /// w = 0 on the calling thread, the others on the pool's threads; returns when all are done.
    /// False (nothing run) when the pool is in use by another caller or has too few threads.
    func run(workers: Int, count: Int, per: Int, arguments: UnsafeRawPointer, _ body: @escaping ChunkBody) -> Bool {
        guard workers - 1 <= threadCount,
            busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
        else { return false }
        job = body; jobArguments = arguments; jobWorkers = workers; jobCount = count; jobPer = per
        pending.store(started.load(ordering: .relaxed), ordering: .sequentiallyConsistent)
        generation.add(1, ordering: .sequentiallyConsistent)
        if sleeping.load(ordering: .sequentiallyConsistent) > 0 {
            condition.lock(); condition.broadcast(); condition.unlock()
        }
        runChunk(0)
        while pending.load(ordering: .acquiring) > 0 {}
        job = nil; jobArguments = nil
        busy.store(false, ordering: .releasing)
        return true
    }

    @inline(__always) private func runChunk(_ w: Int) {
        let lo = w * jobPer, hi = min(jobCount, lo + jobPer)
        if lo < hi, let job, let jobArguments { job(jobArguments, w, lo..<hi) }
    }

    fileprivate func loop(index: Int, seen start: Int) {
        var seen = start
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins < Self.spinLimit { continue }
                condition.lock()
                sleeping.add(1, ordering: .sequentiallyConsistent)
                while generation.load(ordering: .sequentiallyConsistent) == seen { condition.wait() }
                sleeping.subtract(1, ordering: .sequentiallyConsistent)
                condition.unlock()
            }
            seen = generation.load(ordering: .acquiring)
            if index < jobWorkers { runChunk(index) }
            pending.subtract(1, ordering: .releasing)
        }
    }
}
