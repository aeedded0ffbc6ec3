// weft/metrics.hpp: a snapshot of what an executor's workers have done.
//
// Counters are cumulative since the executor started and read without
// stopping anyone, so a snapshot taken while tasks run is approximate (each
// counter is exact at some instant during the call).
//
// ```cpp
// auto m = ex.metrics();
// for (std::size_t i = 0; i < m.workers.size(); ++i)
//     std::printf("worker %zu ran %llu tasks\n", i, (unsigned long long)m.workers[i].polls);
// ```
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace weft {

/// What a worker thread is doing now, as its parker sees it.
enum class worker_state : std::uint8_t {
    running,          ///< running tasks, looking for some, or on its way to sleep
    parked,           ///< asleep on its futex
    parked_in_driver, ///< asleep in epoll_wait, watching I/O and timers for everyone
    notified,         ///< a wake-up is pending: woken and not back in its loop yet, or, if it is
                      ///< running, its next attempt to sleep will return at once
};

/// One worker's counters and state. `ticks`, `polls` and `state` together
/// tell a stalled worker from a busy or idle one (a watchdog's dump):
///   - ticks move, polls do not: it searches for work and finds none;
///   - neither moves, state running: one task (or a driver poll) holds it;
///   - neither moves, state notified: it was woken and has not had a CPU
///     since (or a task holds it and a wake-up waits for it);
///   - neither moves, state parked or parked_in_driver: it is asleep.
struct worker_metrics {
    std::uint64_t polls = 0;                ///< tasks run (resumed or cancelled)
    std::uint64_t steals = 0;               ///< tasks this worker stole from others
    std::uint64_t steal_operations = 0;     ///< successful steal attempts (each takes half a queue)
    std::uint64_t overflows = 0;            ///< times its local queue overflowed to the global queue
    std::uint64_t parks = 0;                ///< times it went to sleep
    std::uint64_t unparks = 0;              ///< times it was woken to search for work
    std::uint64_t lifo_hits = 0;            ///< tasks run from its LIFO slot
    std::uint64_t budget_forced_yields = 0; ///< tasks it made yield because their budget ran out
    std::uint64_t deferred_yields = 0;      ///< yields (yield_now or budget) it deferred until idle
    std::uint64_t local_schedules = 0;      ///< tasks spawned or woken onto it by its own tasks
    std::uint32_t local_queue_depth = 0;    ///< tasks in its local queue now
    std::size_t pinned_queue_depth = 0;     ///< tasks pinned to it (spawn_pinned) waiting now
    std::uint64_t ticks = 0;                ///< turns of its loop, each looking for one task to run
    worker_state state{};                   ///< what it is doing now (running when zeroed)
};

/// A snapshot of an executor's counters, from executor::metrics().
template <std::uint32_t Workers>
struct executor_metrics {
    std::array<worker_metrics, Workers> workers{}; ///< one entry per worker, by index
    std::size_t global_queue_depth = 0;            ///< tasks in the global queue now
    std::size_t live_tasks = 0;                    ///< spawned tasks not yet finished
    std::size_t cached_frame_bytes = 0;            ///< freed frames the workers keep for reuse (bytes)
    std::uint64_t spawned_tasks = 0;               ///< tasks spawned since start
    std::uint64_t remote_schedules = 0;            ///< spawns and wakes from outside the workers
    std::uint32_t parked_workers = 0;              ///< workers asleep now
    std::uint32_t searching_workers = 0;           ///< workers looking for work to steal now
    std::uint32_t armed_timers = 0;                ///< sleeps, timeouts and interval ticks waiting now
    std::uint32_t io_sources = 0;                  ///< descriptors registered with the reactor now
    std::uint64_t driver_polls = 0;                ///< reactor polls so far (blocking and not)
    std::uint32_t blocking_threads = 0;            ///< spawn_blocking threads alive now (busy or idle)
    std::uint32_t idle_blocking_threads = 0;       ///< of those, idle ones no job has claimed yet
    std::size_t blocking_queue_depth = 0;          ///< spawn_blocking jobs waiting for a thread now
    std::uint64_t free_frame_blocks = 0; ///< free blocks of the frame pool now, all classes (0: no pool)

    /// Sum of one counter over all workers, e.g. total(&worker_metrics::steals).
    std::uint64_t total(std::uint64_t worker_metrics::*counter) const noexcept {
        std::uint64_t sum = 0;
        for (const worker_metrics& w : workers) {
            sum += w.*counter;
        }
        return sum;
    }
};

} // namespace weft
