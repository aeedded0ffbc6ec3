// weft/blocking.hpp: running blocking calls without blocking a worker.
//
// A worker that blocks (a driver's ioctl, a file read, a library with no
// async API) stalls every task queued on it. spawn_blocking runs such a call
// on a separate pool of threads instead and returns a join_handle, which a
// task awaits without blocking its worker:
//
// ```cpp
// weft::task<std::string> read_config() {
//     std::string text = co_await weft::spawn_blocking([] { return slurp("/etc/board.conf"); });
//     co_return text;
// }
// ```
//
// The pool (see detail/blocking_pool.hpp) has at most
// `Options::max_blocking_threads` threads, started on demand and retired
// after `settings::blocking_keep_alive` without work; when all are busy,
// jobs wait in a FIFO of `Options::blocking_queue_capacity` entries, and
// past that spawn_blocking raises errc::capacity_exhausted.
//
// Inside a job, the thread is not a worker: join_handle::get() and
// executor::block_on may be used there; weft::spawn sends a task to the
// job's executor, and weft::spawn_blocking another job to its pool.
#pragma once

#include <concepts>
#include <type_traits>
#include <utility>

#include "config.hpp"
#include "detail/attributes.hpp"
#include "detail/blocking_pool.hpp"
#include "detail/task_cell.hpp"
#include "error.hpp"
#include "task.hpp"

namespace weft {

namespace detail {

template <class T>
struct is_task : std::false_type {};
template <class T>
struct is_task<task<T>> : std::true_type {};

/// What spawn_blocking accepts: something callable with no arguments that
/// returns a value or nothing (not a task: a blocking job cannot await).
template <class F>
concept blocking_callable = std::invocable < std::decay_t<F>
& > &&!is_task<std::decay_t<F>>::value &&
    !is_task<std::remove_cvref_t<std::invoke_result_t<std::decay_t<F>&>>>::value &&
    !std::is_reference_v<std::invoke_result_t<std::decay_t<F>&>>;

/// The job: a task whose frame holds the callable (one allocation) and
/// which never suspends, so one poll runs it to the end.
template <class F>
WEFT_NO_SANITIZE_FUNCTION auto blocking_job(F fn) -> task<std::invoke_result_t<F&>> {
    co_return fn();
}

/// Offers a new job to `pool`. On refusal the job (and the callable in it)
/// is destroyed before the error is raised: nothing leaks.
template <blocking_callable F>
auto spawn_blocking_on(blocking_pool& pool, F&& fn) -> join_handle<std::invoke_result_t<std::decay_t<F>&>> {
    using result = std::invoke_result_t<std::decay_t<F>&>;
    pool.check_not_forked();
    task<result> job = blocking_job(std::decay_t<F>(std::forward<F>(fn)));
    if (!job.valid()) {
        raise_empty_task(job.frame_allocation_failed(), "spawn_blocking lost its job");
    }
    auto handle = job.release();
    task_cell<result>* cell = adopt_spawned(handle, pool);
    int error = 0;
    const blocking_submit outcome = pool.submit(cell, error);
    if (outcome == blocking_submit::accepted) {
        return join_handle<result>(cell); // the join reference is already counted
    }
    unadopt_spawned(handle, cell);
    job.reclaim(handle); // destroyed with `job` as the error leaves
    switch (outcome) {
    case blocking_submit::shut_down:
        raise(errc::executor_shut_down, "cannot spawn_blocking: the executor is shutting down or shut down, "
                                        "and runs no new blocking job");
    case blocking_submit::full:
        raise(errc::capacity_exhausted,
              "cannot spawn_blocking: every blocking thread is busy and the blocking queue is full "
              "(Options::max_blocking_threads, Options::blocking_queue_capacity); raise those knobs, or "
              "limit how many blocking jobs run at once (a weft::semaphore)");
    case blocking_submit::thread_start_failed:
    case blocking_submit::accepted: break;
    }
    raise_thread_start_error(error, "a blocking thread for spawn_blocking", -1, pool.thread_settings());
}

} // namespace detail

/// Runs `fn()` on one of the current executor's blocking threads and
/// returns a join handle for its result: `co_await` it from a task (the
/// worker runs other tasks meanwhile), or `get()` it from a thread outside
/// the workers. An exception thrown by `fn` reaches the joiner.
///
/// Call it from a task (or a blocking job) of a weft executor; elsewhere it
/// raises errc::no_current_executor (use executor::spawn_blocking). Raises
/// errc::capacity_exhausted when every blocking thread is busy and
/// `Options::blocking_queue_capacity` jobs already wait, and
/// errc::executor_shut_down once the executor is shutting down; `fn` is
/// destroyed without running then.
///
/// `abort()` on the handle cancels a job that has not started (it is
/// dropped, destructors run, when it reaches the front of the queue, and
/// joining it raises errc::task_aborted); a job that is already running
/// cannot be interrupted and runs to completion (its result is kept).
///
/// ```cpp
/// weft::task<int> checksum(const char* path) {
///     int sum = co_await weft::spawn_blocking([path] { return crc_of_file(path); });
///     co_return sum;
/// }
/// ```
template <detail::blocking_callable F>
auto spawn_blocking(F&& fn) {
    detail::blocking_pool* pool = detail::t_blocking.pool;
    if (pool == nullptr) {
        detail::raise(errc::no_current_executor,
                      "weft::spawn_blocking was called outside any executor: call it from a task (or a "
                      "blocking job) of a weft executor, or use executor::spawn_blocking from other threads");
    }
    return detail::spawn_blocking_on(*pool, std::forward<F>(fn));
}

} // namespace weft
