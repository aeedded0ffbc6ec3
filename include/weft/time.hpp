// weft/time.hpp: sleeping, timeouts and intervals, on the steady clock.
//
// ```cpp
// weft::task<> blink(led& l) {
//     weft::interval every(std::chrono::milliseconds(500));
//     for (;;) {
//         co_await every.tick();
//         l.toggle();
//     }
// }
//
// weft::task<> read_with_deadline(weft::tcp_stream& s, std::span<std::byte> buf) {
//     auto n = co_await weft::timeout(std::chrono::seconds(2), s.read(buf));
//     if (!n && n.error() == weft::errc::timed_out) { /* the peer is silent */ }
// }
// ```
//
// Timers live in the executor's fixed timer wheel (Options::max_timers
// entries, Options::timer_resolution_ns per step). Nothing fires early; a
// timer usually fires at its deadline plus the wake-up latency, at worst one
// step later (see the knob). Each sleep returns weft::result<void>: the only
// error is errc::capacity_exhausted (every timer is in use), and then the
// sleep returns at once. A deadline in the past (or a negative duration)
// completes at once. Aborting a task removes its timers at once.
#pragma once

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "detail/attributes.hpp"
#include "detail/driver.hpp"
#include "detail/scheduler.hpp"
#include "error.hpp"
#include "result.hpp"
#include "task.hpp"

namespace weft {

/// The clock of every weft deadline.
using clock = std::chrono::steady_clock;

namespace detail {

inline driver& current_driver(const char* what) {
    if (t_context.drv == nullptr || t_context.current == nullptr) {
        raise(errc::no_current_executor, what);
    }
    return *t_context.drv;
}

/// Awaits a deadline. Holds a timer of the wheel while suspended; its
/// destructor gives it back (the task was aborted or timed out).
class sleep_awaiter {
public:
    explicit sleep_awaiter(clock::time_point deadline) noexcept : m_deadline(deadline) {}
    /// Movable until awaited (so it can be handed to weft::timeout).
    sleep_awaiter(sleep_awaiter&& other) noexcept
        : m_deadline(other.m_deadline), m_driver(other.m_driver),
          m_id(std::exchange(other.m_id, timer_wheel::npos)), m_error(other.m_error) {}
    sleep_awaiter& operator=(const sleep_awaiter&) = delete;
    ~sleep_awaiter() { release(); }

    bool await_ready() const noexcept { return m_deadline <= clock::now() && consume_budget(); }

    bool await_suspend(std::coroutine_handle<> awaiting) {
        driver& drv = current_driver("weft::sleep_for / sleep_until was awaited outside a task run by a weft "
                                     "executor; use std::this_thread::sleep_for on other threads");
        task_header* self = t_context.current;
        if (m_deadline <= clock::now()) {
            forced_yield(self, awaiting); // due, but await_ready found the budget spent
            return true;
        }
        m_driver = &drv;
        ref_inc(self); // the timer's reference
        switch (drv.arm_timer(m_deadline, self, m_id)) {
        case arm_result::armed: suspend_until(self, awaiting, drv.timer_word(m_id), 1); return true;
        case arm_result::full: m_error = make_error_code(errc::capacity_exhausted); break;
        case arm_result::due: break;
        }
        ref_dec(self);
        return false;
    }

    result<void> await_resume() noexcept {
        release();
        return m_error;
    }

private:
    void release() noexcept {
        if (m_id != timer_wheel::npos) {
            if (task_header* task = m_driver->release_timer(std::exchange(m_id, timer_wheel::npos))) {
                ref_dec(task); // it never fired: its reference is ours
            }
        }
    }

    clock::time_point m_deadline;
    driver* m_driver = nullptr;
    std::uint32_t m_id = timer_wheel::npos;
    std::error_code m_error;
};

/// The deadline `d` from now, saturating instead of overflowing.
template <class Rep, class Period>
clock::time_point deadline_after(std::chrono::duration<Rep, Period> d) noexcept {
    const clock::time_point now = clock::now();
    if (d <= d.zero()) {
        return now;
    }
    if (d >= std::chrono::duration_cast<std::chrono::duration<Rep, Period>>(clock::time_point::max() - now)) {
        return clock::time_point::max();
    }
    return now + std::chrono::ceil<clock::duration>(d);
}

template <class A>
using await_result_t = decltype(std::declval<A>().await_resume());

template <class A>
auto awaiter_of(A&& awaitable) {
    if constexpr (requires { std::forward<A>(awaitable).operator co_await(); }) {
        return std::forward<A>(awaitable).operator co_await();
    } else {
        return std::forward<A>(awaitable);
    }
}

template <class A>
using co_await_result_t = await_result_t<decltype(awaiter_of(std::declval<A>()))>;

/// Runs any awaitable as an inline child task, so a timeout can destroy it.
template <class A>
WEFT_NO_SANITIZE_FUNCTION task<co_await_result_t<A>> as_child_task(A awaitable) {
    co_return co_await std::move(awaitable);
}

/// Awaits a child task with a deadline: if the deadline passes while the
/// child is suspended, the child's coroutines are destroyed (their
/// awaiters give back timers, I/O waits and join waits) and the result is
/// errc::timed_out. If the child finishes first, its result (or exception)
/// is the result.
template <class T>
class timeout_awaiter {
public:
    using child_handle = std::coroutine_handle<promise<T>>;

    timeout_awaiter(clock::time_point deadline, task<T>&& child) noexcept
        : m_deadline(deadline), m_child_allocation_failed(child.frame_allocation_failed()),
          m_child(child.release()) {}
    timeout_awaiter(const timeout_awaiter&) = delete;
    timeout_awaiter& operator=(const timeout_awaiter&) = delete;
    ~timeout_awaiter() { finish(); }

    bool await_ready() const noexcept { return false; }

    std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) {
        driver& drv = current_driver("weft::timeout was awaited outside a task run by a weft executor");
        if (!m_child) {
            raise_empty_task(m_child_allocation_failed,
                             "weft::timeout was given an empty weft::task (moved from or spawned)");
        }
        m_self = t_context.current;
        m_driver = &drv;
        ref_inc(m_self); // the timer's reference
        switch (drv.arm_timer(m_deadline, m_self, m_id)) {
        case arm_result::armed: break;
        case arm_result::due:
            ref_dec(m_self);
            m_error = make_error_code(errc::timed_out); // expired before it started
            return continue_or_yield(m_self, awaiting); // completes without running the child
        case arm_result::full:
            ref_dec(m_self);
            m_error = make_error_code(errc::capacity_exhausted);
            return continue_or_yield(m_self, awaiting); // completes without running the child
        }
        m_scope.fired = drv.timer_word(m_id);
        m_scope.handler = awaiting;
        m_scope.outer = m_self->scopes;
        m_self->scopes = &m_scope;
        m_child.promise().set_continuation(awaiting);
        return transfer_to(m_child);
    }

    result<T> await_resume() {
        if (m_error) {
            finish();
            return m_error;
        }
        if (!m_child.done()) {
            finish(); // expired while the child was suspended: destroy it
            return make_error_code(errc::timed_out);
        }
        child_handle child = m_child;
        m_child = nullptr;
        finish();
        struct destroy_child {
            child_handle handle;
            ~destroy_child() { handle.destroy(); }
        } guard{child};
        if constexpr (std::is_void_v<T>) {
            child.promise().take_result();
            return {};
        } else {
            return child.promise().take_result();
        }
    }

private:
    // Destroys the child (if any) first, so the scopes and timers inside it
    // go before this one; then leaves the scope and gives the timer back.
    void finish() noexcept {
        if (m_child) {
            std::exchange(m_child, nullptr).destroy();
        }
        if (m_self != nullptr && m_scope.fired != nullptr) {
            for (cancel_scope** link = &m_self->scopes; *link != nullptr; link = &(*link)->outer) {
                if (*link == &m_scope) {
                    *link = m_scope.outer;
                    break;
                }
            }
            m_scope.fired = nullptr;
        }
        if (m_id != timer_wheel::npos) {
            if (task_header* task = m_driver->release_timer(std::exchange(m_id, timer_wheel::npos))) {
                ref_dec(task); // it never fired: its reference is ours
            }
        }
    }

    clock::time_point m_deadline;
    bool m_child_allocation_failed;
    child_handle m_child;
    task_header* m_self = nullptr;
    driver* m_driver = nullptr;
    std::uint32_t m_id = timer_wheel::npos;
    cancel_scope m_scope;
    std::error_code m_error;
};

template <class T>
struct is_task_type : std::false_type {};
template <class T>
struct is_task_type<task<T>> : std::true_type {};

} // namespace detail

/// Suspends the calling task until `deadline` (steady clock). A deadline
/// already past completes at once (still spending one unit of budget).
///
/// ```cpp
/// co_await weft::sleep_until(weft::clock::now() + std::chrono::milliseconds(10));
/// ```
[[nodiscard]] inline detail::sleep_awaiter sleep_until(clock::time_point deadline) noexcept {
    return detail::sleep_awaiter(deadline);
}

/// Suspends the calling task for at least `duration`; zero or negative
/// completes at once. Very long durations saturate (they still never fire
/// early).
///
/// ```cpp
/// co_await weft::sleep_for(std::chrono::milliseconds(10));
/// ```
template <class Rep, class Period>
[[nodiscard]] detail::sleep_awaiter sleep_for(std::chrono::duration<Rep, Period> duration) noexcept {
    return detail::sleep_awaiter(detail::deadline_after(duration));
}

/// As timeout(), with an absolute deadline.
template <class Awaitable>
[[nodiscard]] auto timeout_at(clock::time_point deadline, Awaitable&& awaitable) {
    using plain = std::remove_cvref_t<Awaitable>;
    if constexpr (detail::is_task_type<plain>::value) {
        return detail::timeout_awaiter<typename plain::value_type>(deadline, std::move(awaitable));
    } else {
        using value = detail::co_await_result_t<plain>;
        return detail::timeout_awaiter<value>(
            deadline, detail::as_child_task(plain(std::forward<Awaitable>(awaitable))));
    }
}

/// Awaits `awaitable` (a weft::task or anything co_await-able in a task)
/// for at most `duration`: result<T> holds its value, or
/// errc::timed_out if the time ran out first (the operation is then
/// cancelled: its coroutines are destroyed, releasing what they waited
/// on), or errc::capacity_exhausted if no timer was free. An exception of
/// the operation propagates. If the operation finishes in the same instant
/// the timer fires, the operation wins. A non-task awaitable is wrapped in
/// a child task (one allocation).
///
/// ```cpp
/// weft::result<std::size_t> n = co_await weft::timeout(std::chrono::seconds(1), stream.read(buf));
/// ```
template <class Rep, class Period, class Awaitable>
[[nodiscard]] auto timeout(std::chrono::duration<Rep, Period> duration, Awaitable&& awaitable) {
    return timeout_at(detail::deadline_after(duration), std::forward<Awaitable>(awaitable));
}

/// What an interval does when ticks were missed (the task came late).
enum class missed_tick {
    /// Fire the missed ticks back to back until caught up, then keep the
    /// original schedule (Tokio's default).
    burst,
    /// Restart the schedule from now: the next tick is one period after the
    /// late one.
    delay,
    /// Drop the missed ticks and fire on the next multiple of the period of
    /// the original schedule.
    skip,
};

/// Ticks at a fixed period. The first tick completes at once (or at the
/// given start); each `co_await tick()` waits for the next one and returns
/// the instant it was scheduled for.
///
/// ```cpp
/// weft::interval every(std::chrono::milliseconds(100), weft::missed_tick::skip);
/// for (;;) {
///     co_await every.tick();
///     sample();
/// }
/// ```
class interval {
public:
    /// Ticks every `period` (must be positive), starting now.
    template <class Rep, class Period>
    explicit interval(std::chrono::duration<Rep, Period> period, missed_tick policy = missed_tick::burst)
        : interval(clock::now(), period, policy) {}

    /// Ticks every `period`, the first at `start`.
    template <class Rep, class Period>
    interval(clock::time_point start, std::chrono::duration<Rep, Period> period,
             missed_tick policy = missed_tick::burst)
        : m_next(start), m_period(std::chrono::ceil<clock::duration>(period)), m_policy(policy) {
        if (m_period <= clock::duration::zero()) {
            detail::raise(errc::invalid_argument, "weft::interval needs a positive period");
        }
    }

    /// What tick() returns; `co_await` it for the instant the tick was scheduled for.
    class tick_awaiter {
    public:
        /// Made by tick().
        explicit tick_awaiter(interval& owner) noexcept : m_owner(owner), m_sleep(owner.m_next) {}
        bool await_ready() const noexcept { return m_sleep.await_ready(); }
        bool await_suspend(std::coroutine_handle<> awaiting) { return m_sleep.await_suspend(awaiting); }
        result<clock::time_point> await_resume() noexcept {
            result<void> slept = m_sleep.await_resume();
            if (!slept) {
                return slept.error();
            }
            return m_owner.advance();
        }

    private:
        interval& m_owner;
        detail::sleep_awaiter m_sleep;
    };

    /// Waits for the next tick; returns the instant it was scheduled for.
    [[nodiscard]] tick_awaiter tick() noexcept { return tick_awaiter(*this); }

    /// When the next tick is due.
    clock::time_point next() const noexcept { return m_next; }
    clock::duration period() const noexcept { return m_period; }

    /// Restarts the schedule: the next tick is one period from now.
    void reset() noexcept { m_next = clock::now() + m_period; }

private:
    // The tick scheduled for m_next fired: schedule the one after it.
    clock::time_point advance() noexcept {
        const clock::time_point fired = m_next;
        const clock::time_point now = clock::now();
        switch (m_policy) {
        case missed_tick::burst: m_next = fired + m_period; break;
        case missed_tick::delay:
            m_next = (now - fired >= m_period ? now : fired) + m_period;
            break; // late: restart
        case missed_tick::skip: {
            m_next = fired + m_period;
            if (m_next <= now) {
                m_next += ((now - m_next) / m_period + 1) * m_period;
            }
            break;
        }
        }
        return fired;
    }

    clock::time_point m_next;
    clock::duration m_period;
    missed_tick m_policy;
};

} // namespace weft
