// weft/executor.hpp: the work-stealing executor, spawning, and yielding.
//
// ```cpp
// weft::task<int> child(int x) { co_await weft::yield_now(); co_return 2 * x; }
//
// weft::task<int> root() {
//     auto h = weft::spawn(child(21)); // runs on any worker
//     co_return co_await h;            // 42
// }
//
// int main() {
//     weft::executor<4, 256> ex;       // 4 workers, 256-slot local queues
//     return ex.block_on(root()) == 42 ? 0 : 1;
// }
// ```
#pragma once

#include <array>
#include <chrono>
#include <concepts>
#include <coroutine>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include <pthread.h>

#include "blocking.hpp"
#include "config.hpp"
#include "detail/blocking_pool.hpp"
#include "detail/frame_pool.hpp"
#include "detail/runtime.hpp"
#include "detail/scheduler.hpp"
#include "detail/thread.hpp"
#include "error.hpp"
#include "metrics.hpp"
#include "task.hpp"

namespace weft {

namespace detail {

/// The stored copy of a callable given to spawn, as the task calls it.
template <class F>
using stored_callable = std::decay_t<F>&;

/// What spawn accepts besides a task: something callable with no
/// arguments, returning a value, nothing, or a task.
template <class F>
concept spawnable_callable = std::invocable<stored_callable<F>> && !is_task<std::decay_t<F>>::value;

/// A spawn refused during a shutdown sweep, i.e. by a destructor that the
/// sweep runs: raising there would end the process, so the task is
/// destroyed unrun (its captures' destructors run now) and the handle
/// reports errc::task_aborted, as Tokio's does.
template <class T>
join_handle<T> spawn_aborted(task_cell<T>* cell) noexcept {
    transition_to_running(cell); // the queue's reference becomes the running one
    cancel_task(cell);           // destroys the frame, completes as cancelled
    transition_to_idle(cell);    // drops the running reference
    return join_handle<T>(cell);
}

/// Binds a task to `sched` and queues it; pinned to worker `home` unless
/// that is no_home. On failure the task keeps its coroutine (destroyed with
/// it) and the error is raised, except inside a shutdown sweep (see
/// spawn_aborted).
template <class T>
join_handle<T> spawn_on(scheduler& sched, task<T>&& work, std::uint32_t home = no_home) {
    sched.check_not_forked();
    if (home != no_home && home >= sched.pinnable_workers()) {
        raise(errc::invalid_argument, "spawn_pinned: there is no worker with that index (it must be below "
                                      "the executor's worker count)");
    }
    if (!work.valid()) {
        raise_empty_task(work.frame_allocation_failed(),
                         "spawn of an empty weft::task (moved from or already spawned)");
    }
    auto handle = work.release();
    task_cell<T>* cell = adopt_spawned(handle, sched);
    cell->home = home;
    if (!sched.bind(cell)) {
        if (t_context.shutting_down != nullptr) {
            return spawn_aborted(cell);
        }
        unadopt_spawned(handle, cell);
        work.reclaim(handle);
        raise(errc::executor_shut_down,
              "cannot spawn: the executor is shutting down or shut down, and will run no new task");
    }
    join_handle<T> joiner(cell); // the join reference is already counted
    sched.schedule_spawned(cell);
    return joiner;
}

/// Wraps a plain callable in a task whose frame holds the callable: still
/// one allocation.
template <class F>
auto callable_task(F fn) -> task<std::invoke_result_t<F&>> {
    co_return fn();
}

/// A callable returning a task: the callable must outlive the task it
/// starts (a lambda's captures live in the lambda), so it is kept in an
/// outer frame.
template <class F>
auto callable_coroutine(F fn) -> typename std::invoke_result_t<F&> {
    co_return co_await fn();
}

template <class F>
auto as_task(F&& fn) {
    using result = std::invoke_result_t<std::decay_t<F>&>;
    if constexpr (is_task<result>::value) {
        return callable_coroutine(std::decay_t<F>(std::forward<F>(fn)));
    } else {
        return callable_task(std::decay_t<F>(std::forward<F>(fn)));
    }
}

/// Whether a frame pool's classes are valid: sizes increasing multiples of
/// 16, each class with at least one block and at most 2^31 - 1, and the
/// whole region addressable (half the address space at most).
template <std::size_t N>
constexpr bool valid_frame_pool_classes(const std::array<frame_pool_class, N>& classes) noexcept {
    unsigned long long bytes = 0;
    for (std::size_t i = 0; i < N; ++i) {
        if (classes[i].block_size == 0 || classes[i].block_size % 16 != 0 || classes[i].blocks == 0 ||
            classes[i].blocks >= 0x8000'0000u ||
            (i > 0 && classes[i].block_size <= classes[i - 1].block_size) ||
            classes[i].block_size > std::numeric_limits<std::size_t>::max() / 2) {
            return false;
        }
        bytes += static_cast<unsigned long long>(classes[i].block_size) * classes[i].blocks;
        if (bytes > std::numeric_limits<std::size_t>::max() / 2) {
            return false;
        }
    }
    return N > 0;
}

inline scheduler& current_scheduler() {
    if (t_context.sched != nullptr) {
        return *t_context.sched;
    }
    if (t_blocking.spawn_target != nullptr) {
        return *t_blocking.spawn_target; // a blocking job: its executor
    }
    if (t_context.current != nullptr) {
        return *t_context.current->owner; // a destructor run by a shutdown sweep: its task's executor
    }
    raise(errc::no_current_executor,
          "weft::spawn was called outside any executor: call it from a task running on a weft executor, or "
          "use executor::spawn / executor::block_on from other threads");
}

/// The worker the calling code runs on, for spawn_local.
inline std::uint32_t current_worker_or_raise() {
    if (t_context.sched == nullptr) {
        raise(errc::no_current_executor,
              "weft::spawn_local was called outside a weft worker: call it from a task (a blocking job is "
              "not on a worker), or use weft::spawn_pinned / executor::spawn_pinned with a worker index");
    }
    return t_context.worker_index;
}

} // namespace detail

/// The index of the worker the calling code runs on (0 to Workers - 1), or
/// nothing outside every executor's workers (other threads, blocking jobs).
/// A task that is not pinned may run on another worker after each
/// suspension.
inline std::optional<std::uint32_t> current_worker() noexcept {
    if (detail::t_context.sched == nullptr) {
        return std::nullopt;
    }
    return detail::t_context.worker_index;
}

/// Spawns a task on the executor running the calling task. Works from any
/// code running on a weft worker or in a blocking job (see
/// spawn_blocking), without the executor's template arguments. From other
/// threads use executor::spawn.
template <class T>
join_handle<T> spawn(task<T>&& work) {
    return detail::spawn_on(detail::current_scheduler(), std::move(work));
}

/// Spawns a plain callable (or one returning a weft::task) as a task.
template <detail::spawnable_callable F>
auto spawn(F&& fn) {
    return detail::spawn_on(detail::current_scheduler(), detail::as_task(std::forward<F>(fn)));
}

/// Spawns a task pinned to worker `worker` of the executor running the
/// calling code: only that worker runs it, nobody steals it, and every task
/// it starts with spawn_local is pinned there too. The home for
/// thread-affine state (a handle that must stay on one thread, a
/// thread-local cache): Tokio's LocalSet. The price: a pinned task waits
/// while its worker is busy, even if others are idle. Raises
/// errc::invalid_argument if there is no such worker, and whatever spawn
/// raises.
///
/// ```cpp
/// auto h = weft::spawn_pinned(0, [] { return weft::current_worker(); }); // always 0
/// ```
template <class T>
join_handle<T> spawn_pinned(std::uint32_t worker, task<T>&& work) {
    return detail::spawn_on(detail::current_scheduler(), std::move(work), worker);
}

/// Spawns a plain callable (or one returning a weft::task) pinned to a worker.
template <detail::spawnable_callable F>
auto spawn_pinned(std::uint32_t worker, F&& fn) {
    return detail::spawn_on(detail::current_scheduler(), detail::as_task(std::forward<F>(fn)), worker);
}

/// Spawns a task pinned to the worker the caller runs on (see
/// spawn_pinned). From a pinned task, that is its own worker: the task and
/// everything it spawns this way share one thread, and so may share state
/// without locks. From a task that is not pinned it is whichever worker
/// runs the caller now. Raises errc::no_current_executor outside a worker
/// (another thread, a blocking job), and whatever spawn raises.
template <class T>
join_handle<T> spawn_local(task<T>&& work) {
    return detail::spawn_on(detail::current_scheduler(), std::move(work), detail::current_worker_or_raise());
}

/// Spawns a plain callable (or one returning a weft::task) on the caller's worker.
template <detail::spawnable_callable F>
auto spawn_local(F&& fn) {
    return detail::spawn_on(detail::current_scheduler(), detail::as_task(std::forward<F>(fn)),
                            detail::current_worker_or_raise());
}

/// Suspends the calling task and lets every other task runnable on its
/// worker run first: the worker defers it until its local queue, LIFO slot
/// and the global queue are empty and nothing could be stolen, or until its
/// next maintenance tick (every `Options::event_interval` ticks), as
/// Tokio's yield_now does.
///
/// ```cpp
/// weft::task<> spin() { for (;;) co_await weft::yield_now(); }
/// ```
[[nodiscard]] inline auto yield_now() noexcept {
    struct awaiter {
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> self) const {
            detail::task_header* task = detail::t_context.current;
            if (task == nullptr) {
                detail::raise(errc::no_current_executor,
                              "weft::yield_now() was awaited outside a task run by a weft executor");
            }
            detail::yield_task(task, self);
        }
        void await_resume() const noexcept {}
    };
    return awaiter{};
}

/// A work-stealing executor with `Workers` worker threads, each with a local
/// queue of `QueueSize` slots (a power of two). Everything on the
/// scheduling path is a fixed-size array sized here, at compile time.
/// The destructor shuts the executor down (see shutdown()).
template <std::uint32_t Workers, std::uint32_t QueueSize = 256, class Options = default_options>
class executor {
    static_assert(Workers >= 1, "an executor needs at least one worker thread (Workers >= 1)");
    static_assert(Workers <= 4096, "Workers must be at most 4096");
    static_assert(QueueSize >= 2, "the local queue size must be at least 2");
    static_assert((QueueSize & (QueueSize - 1)) == 0,
                  "the local queue size must be a power of two (2, 4, ..., 256)");
    static_assert(QueueSize <= (1u << 16), "the local queue size must be at most 65536");
    static_assert(Options::queue_order != local_queue_order::lifo || QueueSize <= (1u << 14),
                  "with Options::queue_order = lifo the local queue size must be at most 16384");
    static_assert(Options::global_queue_interval >= 1, "Options::global_queue_interval must be at least 1");
    static_assert(Options::event_interval >= 1, "Options::event_interval must be at least 1");
    static_assert(Options::budget >= 1, "Options::budget must be at least 1");
    static_assert(Options::max_lifo_polls >= 1, "Options::max_lifo_polls must be at least 1");
    static_assert(Options::max_global_batch >= 1, "Options::max_global_batch must be at least 1");
    static_assert(Options::live_task_shards >= 1 &&
                      (Options::live_task_shards & (Options::live_task_shards - 1)) == 0,
                  "Options::live_task_shards must be a power of two");
    static_assert(Options::max_blocking_threads >= 1,
                  "Options::max_blocking_threads must be at least 1 (spawn_blocking needs a thread)");
    static_assert(Options::max_blocking_threads <= 4096,
                  "Options::max_blocking_threads must be at most 4096");
    static_assert(std::is_same_v<std::remove_cv_t<decltype(Options::use_frame_pool)>, bool>,
                  "Options::use_frame_pool must be a bool");
    static_assert(std::is_same_v<std::remove_cv_t<decltype(Options::frame_cache_bytes)>, std::size_t>,
                  "Options::frame_cache_bytes must be a std::size_t (bytes per worker; 0: no cache)");
    static_assert(
        detail::valid_frame_pool_classes(Options::frame_pool_classes),
        "Options::frame_pool_classes must list at least one class, by strictly increasing block_size, "
        "each block_size a non-zero multiple of 16 and each class with 1 to 2^31 - 1 blocks, and the "
        "whole region must fit in half the address space");
    static_assert(Options::frame_pool_classes.size() <= 32,
                  "Options::frame_pool_classes: at most 32 classes");
    static_assert(Options::on_frame_pool_exhausted == pool_exhaustion::use_heap ||
                      Options::on_frame_pool_exhausted == pool_exhaustion::fail,
                  "Options::on_frame_pool_exhausted must be weft::pool_exhaustion::use_heap or ::fail");

public:
    /// The number of worker threads (the `Workers` argument).
    static constexpr std::uint32_t worker_count = Workers;
    /// The slots of each worker's local queue (the `QueueSize` argument).
    static constexpr std::uint32_t queue_size = QueueSize;

    /// Starts the worker threads (blocking threads start on demand). Raises
    /// errc::invalid_argument for a setting out of range or refused by the
    /// OS (a CPU that does not exist, a priority the policy does not take, a
    /// stack below the minimum), errc::not_permitted for a real-time policy
    /// the process may not use, errc::thread_start_failed if a thread cannot
    /// start for another reason. Every setting is checked before the first
    /// worker starts; when a worker fails to start, those already started
    /// are stopped (their on_thread_stop runs) and none is left running.
    explicit executor(settings config = {})
        : m_frames(make_frame_pool()), m_settings(std::move(config)),
          m_blocking(m_blocking_slots, blocking_config()) {
        if (const int err = m_runtime.io_driver().error(); err != 0) {
            // Without epoll a parked worker could not sleep in the driver,
            // and without its eventfd it could never be woken there.
            std::string message =
                "cannot create the executor's I/O driver (epoll_create1 or eventfd failed: ";
            message += std::strerror(err);
            message += "); the process may be out of file descriptors";
            detail::raise(errc::capacity_exhausted, message.c_str());
        }
        // Check every worker's settings before starting any, so that a bad
        // one raises with no thread to stop (the loop below builds them again).
        for (std::uint32_t i = 0; i < Workers; ++i) {
            (void)detail::worker_thread_spec(m_settings, i);
        }
        // Blocking threads start later, on demand, from whichever thread
        // spawns: ask the OS now whether it accepts what they ask for.
        const detail::thread_spec& blocking = m_blocking.thread_settings();
        if (m_settings.blocking_stack_size != 0 || !m_settings.blocking_cpu_set.empty() ||
            blocking.policy == SCHED_FIFO || blocking.policy == SCHED_RR) {
            if (const int rc = detail::probe_thread(blocking); rc != 0) {
                detail::raise_thread_start_error(rc, "a blocking thread (checked at construction)", -1,
                                                 blocking);
            }
        }
        for (std::uint32_t i = 0; i < Workers; ++i) {
            const detail::thread_spec spec = detail::worker_thread_spec(m_settings, i);
            m_starts[i] = {this, i};
            const int rc = detail::start_thread(m_threads[i], spec, &thread_main, &m_starts[i]);
            if (rc != 0) {
                stop_threads();
                m_runtime.finish_shutdown();
                detail::raise_thread_start_error(rc, "worker", i, spec);
            }
            ++m_started;
        }
    }

    executor(const executor&) = delete;
    executor& operator=(const executor&) = delete;

    ~executor() {
        if (detail::t_context.sched == &m_runtime) {
            detail::panic(static_cast<int>(errc::blocking_on_worker),
                          "an executor was destroyed by one of its own tasks: destroy it from outside");
        }
        if (detail::t_blocking.pool == &m_blocking) {
            detail::panic(static_cast<int>(errc::blocking_on_worker),
                          "an executor was destroyed by one of its own blocking jobs, and would wait for "
                          "itself: destroy it from outside");
        }
        if (m_runtime.forked()) {
            // A child process: no thread of ours exists here to stop or join,
            // and their tasks' frames may be half-run copies. The memory is the
            // child's own and goes when it exits.
            return;
        }
        shutdown_impl(false);
    }

    /// Spawns a task from any thread: from one of this executor's workers it
    /// goes to that worker's queue, from anywhere else to the global queue.
    template <class T>
    join_handle<T> spawn(task<T>&& work) {
        return detail::spawn_on(m_runtime, std::move(work));
    }

    /// Spawns a plain callable (or one returning a weft::task). Its frame
    /// comes from this executor's frame pool, if it has one, whatever the
    /// calling thread.
    template <detail::spawnable_callable F>
    auto spawn(F&& fn) {
        return detail::spawn_on(m_runtime, make_frame([&] { return detail::as_task(std::forward<F>(fn)); }));
    }

    /// Spawns a task pinned to worker `worker`, from any thread; see
    /// weft::spawn_pinned.
    template <class T>
    join_handle<T> spawn_pinned(std::uint32_t worker, task<T>&& work) {
        return detail::spawn_on(m_runtime, std::move(work), worker);
    }

    /// Spawns a plain callable (or one returning a weft::task) pinned to a
    /// worker; its frame comes from the frame pool as with spawn.
    template <detail::spawnable_callable F>
    auto spawn_pinned(std::uint32_t worker, F&& fn) {
        return detail::spawn_on(m_runtime, make_frame([&] { return detail::as_task(std::forward<F>(fn)); }),
                                worker);
    }

    /// Runs `fn()` on one of this executor's blocking threads, from any
    /// thread; see weft::spawn_blocking (the same, for code running on the
    /// executor) for what it raises and how abort() behaves.
    ///
    /// ```cpp
    /// weft::executor<2> ex;
    /// auto h = ex.spawn_blocking([] { return std::ifstream("/proc/uptime").good(); });
    /// bool ok = h.get();
    /// ```
    template <detail::blocking_callable F>
    auto spawn_blocking(F&& fn) {
        const detail::frame_pool_scope frames(m_frames.get());
        return detail::spawn_blocking_on(m_blocking, std::forward<F>(fn));
    }

    /// Runs `work` on the executor and blocks the calling thread until it
    /// finishes; returns its value or rethrows its exception. Call it from a
    /// thread outside every weft executor's workers (a blocking job may call
    /// it): on a worker it raises errc::nested_runtime (there, co_await the
    /// task or spawn it).
    template <class T>
    T block_on(task<T>&& work) {
        if (detail::on_worker_thread()) {
            detail::raise(
                errc::nested_runtime,
                "cannot start a runtime from within a runtime: this thread is already driving weft "
                "tasks, and block_on would block it; co_await the task, or weft::spawn it, instead");
        }
        return spawn(std::move(work)).get();
    }

    /// Stops the executor, in two steps.
    ///
    /// 1. Blocking jobs: no new one is accepted (spawn_blocking raises
    ///    errc::executor_shut_down), the queued ones are destroyed without
    ///    running (their destructors run; joining one raises
    ///    errc::task_aborted), and the running ones are waited for. The
    ///    workers still run meanwhile, so what a blocking job spawns, wakes
    ///    or block_on's still happens, and tasks awaiting a job get its
    ///    result. With settings::blocking_shutdown_timeout > 0, if jobs
    ///    still run when it passes, shutdown() raises errc::timed_out and
    ///    stops there: the executor keeps running its tasks, accepts no
    ///    blocking job, and a later shutdown() (or the destructor) waits again.
    /// 2. Tasks: no new task is accepted (spawn raises
    ///    errc::executor_shut_down), the workers finish the task each is
    ///    running and exit, and every task that has not finished is destroyed
    ///    without being resumed (its destructors run; joining it raises
    ///    errc::task_aborted).
    ///
    /// Joins every thread. Idempotent; the destructor calls it (and waits
    /// for blocking jobs however long they run, printing a warning to stderr
    /// once blocking_shutdown_timeout has passed). Raises
    /// errc::blocking_on_worker from one of this executor's own workers or
    /// blocking jobs.
    ///
    /// ```cpp
    /// weft::settings s;
    /// s.blocking_shutdown_timeout = std::chrono::seconds(2);
    /// weft::executor<2> ex(s);
    /// try { ex.shutdown(); } catch (const weft::error& e) { /* a blocking job is stuck */ }
    /// ```
    void shutdown() {
        m_runtime.check_not_forked();
        if (detail::t_context.shutting_down == &m_runtime) {
            return; // a destructor run by this very shutdown asked again
        }
        if (detail::t_context.sched == &m_runtime) {
            detail::raise(
                errc::blocking_on_worker,
                "executor::shutdown() was called by one of the executor's own tasks, and would wait for "
                "itself: call it from outside the executor");
        }
        if (detail::t_blocking.pool == &m_blocking) {
            detail::raise(errc::blocking_on_worker,
                          "executor::shutdown() was called by one of the executor's own blocking jobs, and "
                          "would wait for itself: call it from outside the executor");
        }
        if (!shutdown_impl(true)) {
            detail::raise(errc::timed_out,
                          "executor::shutdown(): blocking jobs were still running when "
                          "settings::blocking_shutdown_timeout passed; the executor still runs its tasks and "
                          "accepts no blocking job; call shutdown() again to keep waiting");
        }
    }

    /// A snapshot of the executor's counters (see weft/metrics.hpp).
    executor_metrics<Workers> metrics() const noexcept {
        executor_metrics<Workers> out;
        for (std::uint32_t i = 0; i < Workers; ++i) {
            const detail::worker_counters& c = m_runtime.counters(i);
            worker_metrics& w = out.workers[i];
            w.polls = c.polls.get();
            w.steals = c.steals.get();
            w.steal_operations = c.steal_operations.get();
            w.overflows = c.overflows.get();
            w.parks = c.parks.get();
            w.unparks = c.unparks.get();
            w.lifo_hits = c.lifo_hits.get();
            w.budget_forced_yields = c.budget_forced_yields.get();
            w.deferred_yields = c.deferred.get();
            w.local_schedules = c.local_schedules.get();
            w.local_queue_depth = m_runtime.local_queue_depth(i);
            w.pinned_queue_depth = m_runtime.pinned_queue_depth(i);
            w.ticks = c.ticks.get();
            w.state = state_of(m_runtime.park_state(i));
        }
        out.global_queue_depth = m_runtime.global_queue_depth();
        out.live_tasks = m_runtime.live_tasks();
        out.cached_frame_bytes = m_runtime.cached_frame_bytes();
        out.spawned_tasks = m_runtime.spawned_tasks();
        out.remote_schedules = m_runtime.remote_schedules();
        out.parked_workers = m_runtime.parked_workers();
        out.searching_workers = m_runtime.searching_workers();
        const detail::driver& drv = m_runtime.io_driver();
        out.armed_timers = drv.armed_timers();
        out.io_sources = drv.registered_sources();
        out.driver_polls = drv.polls();
        out.blocking_threads = m_blocking.threads();
        out.idle_blocking_threads = m_blocking.idle_threads();
        out.blocking_queue_depth = m_blocking.queue_depth();
        out.free_frame_blocks = m_frames.get() != nullptr ? m_frames.get()->free_blocks() : 0;
        return out;
    }

    /// The settings the executor was started with.
    const weft::settings& config() const noexcept { return m_settings; }

    /// The OS thread of worker `index` (to read its name, affinity, ...).
    pthread_t native_handle(std::uint32_t index) const noexcept { return m_threads[index]; }

private:
    struct start_args {
        executor* self = nullptr;
        std::uint32_t index = 0;
    };

    static worker_state state_of(detail::parker::observed observed) noexcept {
        switch (observed) {
        case detail::parker::observed::parked: return worker_state::parked;
        case detail::parker::observed::parked_in_driver: return worker_state::parked_in_driver;
        case detail::parker::observed::notified: return worker_state::notified;
        case detail::parker::observed::awake: break;
        }
        return worker_state::running;
    }

    static void* thread_main(void* arg) {
        const auto* start = static_cast<const start_args*>(arg);
        executor& self = *start->self;
        const thread_info info{thread_kind::worker, start->index};
        char name[16];
        detail::format_thread_name(name, self.m_settings.thread_name_prefix.c_str(), info.index);
        detail::name_this_thread(name);
        detail::t_frame_pool = self.m_frames.get(); // where its tasks' frames come from
        detail::call_thread_hook(self.m_settings.on_thread_start, info, "on_thread_start");
        detail::t_blocking.pool = &self.m_blocking; // where weft::spawn_blocking goes
        self.m_runtime.run_worker(info.index);
        detail::t_frame_pool = nullptr;
        detail::t_blocking = {};
        detail::call_thread_hook(self.m_settings.on_thread_stop, info, "on_thread_stop");
        return nullptr;
    }

    // Called once, from the constructor's initializer list (m_settings and
    // m_runtime are constructed by then).
    detail::blocking_pool::config blocking_config() {
        detail::blocking_pool::config cfg;
        cfg.name_prefix = m_settings.thread_name_prefix.c_str();
        cfg.thread = detail::blocking_thread_spec(m_settings);
        cfg.hooks = detail::blocking_thread_hooks(m_settings);
        cfg.keep_alive = m_settings.blocking_keep_alive;
        cfg.queue_capacity = Options::blocking_queue_capacity;
        cfg.spawn_target = &m_runtime;
        cfg.frames = m_frames.get();
        return cfg;
    }

    // The pool, if Options asks for one (allocated once, here).
    static detail::frame_pool* make_frame_pool() {
        if constexpr (!Options::use_frame_pool) {
            return nullptr;
        } else {
            std::array<detail::frame_class_spec, Options::frame_pool_classes.size()> classes{};
            for (std::size_t i = 0; i < classes.size(); ++i) {
                classes[i] = {Options::frame_pool_classes[i].block_size,
                              Options::frame_pool_classes[i].blocks};
            }
            detail::frame_pool* pool = detail::frame_pool::create(classes, Options::on_frame_pool_exhausted ==
                                                                               pool_exhaustion::fail);
            if (pool == nullptr) {
                detail::raise(
                    errc::capacity_exhausted,
                    "cannot allocate the executor's frame pool (Options::frame_pool_classes): the heap "
                    "refused the block, or 64 executors with a frame pool exist already");
            }
            return pool;
        }
    }

    // Makes a task (calls `make`) with its frame from this executor's pool.
    template <class Make>
    auto make_frame(Make&& make) {
        const detail::frame_pool_scope frames(m_frames.get());
        return make();
    }

    void stop_threads() noexcept {
        m_runtime.begin_shutdown();
        for (std::uint32_t i = 0; i < m_started; ++i) {
            ::pthread_join(m_threads[i], nullptr);
        }
        m_started = 0;
    }

    // Blocking jobs first, while the workers still run: a job may spawn
    // tasks, wake the task awaiting it, or block_on the executor, and all of
    // that must still work until the last job returns. False if the
    // blocking timeout passed (`bounded`) with jobs still running.
    bool shutdown_impl(bool bounded) noexcept {
        if (detail::t_context.shutting_down == &m_runtime) {
            return true; // a destructor run by this very shutdown asked again
        }
        // A mutex, not a spinlock: a second caller may wait here for as long
        // as the blocking jobs run.
        std::lock_guard<std::mutex> hold(m_shutdown_lock);
        if (m_shut_down) {
            return true;
        }
        detail::t_context.shutting_down = &m_runtime;
        if (!m_blocking.shutdown(m_settings.blocking_shutdown_timeout, bounded ? nullptr : &warn_slow_jobs)) {
            detail::t_context.shutting_down = nullptr;
            return false;
        }
        stop_threads();
        m_runtime.finish_shutdown();
        detail::t_context.shutting_down = nullptr;
        m_shut_down = true;
        return true;
    }

    static void warn_slow_jobs(std::size_t running) noexcept {
        std::fprintf(stderr,
                     "weft: warning: the executor's destructor is still waiting for %zu blocking job(s) "
                     "after settings::blocking_shutdown_timeout; it cannot free the executor before they "
                     "return\n",
                     running);
        std::fflush(stderr);
    }

    // First: destroyed last, after every task of the executor is gone.
    detail::frame_pool_owner m_frames;
    detail::runtime<Workers, QueueSize, Options> m_runtime;
    weft::settings m_settings;
    std::array<pthread_t, Workers> m_threads{};
    std::array<start_args, Workers> m_starts{};
    std::uint32_t m_started = 0;
    std::array<detail::blocking_pool::slot, Options::max_blocking_threads> m_blocking_slots{};
    detail::blocking_pool m_blocking; // after m_settings and m_runtime, which it uses
    std::mutex m_shutdown_lock;
    bool m_shut_down = false;
};

} // namespace weft
