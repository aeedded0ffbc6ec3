// weft/detail/driver.hpp
//
// What it is for: the one thing per executor that a parked worker sleeps in.
// It joins the reactor (epoll) and the timers (a hierarchical wheel) behind
// a try-lock: whoever holds the lock may poll. A worker about to park takes
// it and sleeps in epoll_wait until the next timer deadline (the other
// parked workers sleep on their futex); a busy worker takes it now and then
// for a non-blocking poll; whoever fails the try-lock goes on without it.
//
// Where it comes from: Tokio's driver stack (time driver around the I/O
// driver, one TryLock<Driver> shared by the workers) and its time driver
// (ticks since start, deadlines rounded up, wakes in batches of 32 with the
// wheel lock dropped in between).
//
// Time: `ticks` of `resolution` since the driver started, on the steady
// clock. The wheel files a deadline under the first tick at or after it
// (rounded up) and fires it once that tick has been reached (now rounded
// down), so no timer ever fires early. Each timer also keeps its exact
// deadline: the sleeper wakes at the earliest exact deadline of the next
// tick's slot, and a poll fires, from that slot, the timers whose exact
// deadline has passed (timer_wheel::take_from_next). So a timer fires about
// one wake-up latency late, not up to a resolution step late; only past the
// first `exact_scan` timers of one slot does it fall back to the tick.
//
// Invariants:
//   - The wheel and the timer slots are guarded by m_timer_lock. A slot's
//     task reference belongs to the wheel while the slot is armed; whoever
//     disarms it (the firing poll, or the awaiter's cancel) owns it.
//   - m_sleeper_wake_ns (under m_timer_lock) is when the epoll sleeper will
//     wake, or 0 when nobody sleeps or a wake is already on its way:
//     arming an earlier timer wakes it (once: it then re-reads the wheel).
//   - A poll fires at most as many timers as its caller's run queue has room
//     for (at least one); the rest stay due in the wheel and fire at
//     the next poll, ahead of whatever waits in the global queue.
//   - m_sleeping is true only while the lock holder blocks in epoll_wait; a
//     parker that fails the try-lock while it is false retries, because the
//     holder is only polling and will release the lock in microseconds.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <span>

#include <linux/time_types.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "reactor.hpp"
#include "scheduler.hpp"
#include "spinlock.hpp"
#include "task_cell.hpp"
#include "timer_wheel.hpp"

namespace weft::detail {

/// The waiting side of one timer: the task to wake and the word its
/// awaiter waits on (parallel to the wheel's node of the same id).
struct timer_slot {
    std::atomic<std::uint32_t> fired{0};
    task_header* task = nullptr;
    std::uint64_t deadline_ns = 0; // exact, since the driver started
};

enum class arm_result : std::uint8_t { armed, due, full };

class driver {
public:
    using clock = std::chrono::steady_clock;
    static constexpr std::uint64_t no_deadline = ~std::uint64_t{0};
    static constexpr std::size_t wake_batch = 32;
    static constexpr std::size_t exact_scan = 64; // timers of one slot looked at for exact deadlines

    /// `park_fire_limit`: the most timers one park() fires (see poll_now).
    driver(std::span<wheel_node> nodes, std::span<timer_slot> timers, std::span<io_registration> sources,
           std::span<epoll_event> events, std::chrono::nanoseconds resolution,
           std::size_t park_fire_limit = SIZE_MAX) noexcept
        : m_reactor(sources, events), m_wheel(nodes), m_timers(timers),
          m_resolution(static_cast<std::uint64_t>(resolution.count())), m_start(clock::now()),
          m_park_fire_limit(std::max<std::size_t>(park_fire_limit, 1)) {}

    driver(const driver&) = delete;
    driver& operator=(const driver&) = delete;

    bool ok() const noexcept { return m_reactor.ok(); }
    int error() const noexcept { return m_reactor.error(); }
    class reactor& io() noexcept {
        return m_reactor;
    }

    // ---- time ------------------------------------------------------------------------

    /// Nanoseconds from the driver's start to `at` (0 before it).
    std::uint64_t since_start(clock::time_point at) const noexcept {
        if (at <= m_start) {
            return 0;
        }
        return static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(at - m_start).count());
    }

    // ---- timers (any thread) -------------------------------------------------------------

    /// Arms a timer that wakes `task` (giving it the caller's reference)
    /// at `deadline`. armed: `id` names it and the task must suspend on
    /// timer_word(id). due: the deadline has passed. full: no free timer.
    /// Neither keeps the reference.
    arm_result arm_timer(clock::time_point deadline, task_header* task, std::uint32_t& id) noexcept {
        const std::uint64_t deadline_ns = since_start(deadline);
        if (deadline_ns <= since_start(clock::now())) {
            return arm_result::due;
        }
        // The first tick at or after the deadline.
        const std::uint64_t when = deadline_ns / m_resolution + (deadline_ns % m_resolution != 0 ? 1 : 0);
        bool wake_sleeper = false;
        {
            lock_hold<spinlock> hold(m_timer_lock);
            id = m_wheel.allocate();
            if (id == timer_wheel::npos) {
                return arm_result::full;
            }
            timer_slot& slot = m_timers[id];
            slot.fired.store(0, std::memory_order_relaxed); // under the lock; the task reads it after
            slot.task = task;
            slot.deadline_ns = deadline_ns;
            if (!m_wheel.arm(id, when)) {
                slot.task = nullptr;
                m_wheel.release(id);
                id = timer_wheel::npos;
                return arm_result::due;
            }
            wake_sleeper = m_sleeper_wake_ns != 0 && deadline_ns < m_sleeper_wake_ns;
            if (wake_sleeper) {
                // One write per sleep: the sleeper re-reads the wheel before
                // it sleeps again, so later arms need not wake it too (a
                // burst of arms after an idle spell wrote once per arm).
                m_sleeper_wake_ns = 0;
            }
            m_armed.store(m_wheel.armed_count(), std::memory_order_relaxed);
        }
        if (wake_sleeper) {
            m_reactor.wake(); // it sleeps past the new deadline: let it sleep again, shorter
        }
        return arm_result::armed;
    }

    /// The word a task waits on for timer `id`: nonzero once it fired.
    const std::atomic<std::uint32_t>* timer_word(std::uint32_t id) const noexcept {
        return &m_timers[id].fired;
    }

    /// Frees timer `id`. If it had not fired, returns the task whose
    /// reference it held (the caller drops it); else null.
    task_header* release_timer(std::uint32_t id) noexcept {
        lock_hold<spinlock> hold(m_timer_lock);
        timer_slot& slot = m_timers[id];
        task_header* task = m_wheel.disarm(id) ? std::exchange(slot.task, nullptr) : nullptr;
        m_wheel.release(id);
        m_armed.store(m_wheel.armed_count(), std::memory_order_relaxed);
        return task;
    }

    /// Timers armed now: a metric, and has_interest's hint. Relaxed: it
    /// orders nothing; a timer armed while a busy worker reads a stale 0 is
    /// found by the next poll, or by the sleeper arm_timer wakes under
    /// m_timer_lock.
    std::uint32_t armed_timers() const noexcept { return m_armed.load(std::memory_order_relaxed); }
    /// Descriptors registered now (a metric).
    std::uint32_t registered_sources() const noexcept { return m_reactor.registered(); }

    /// Is there anything a poll could deliver? (Lets busy workers skip the
    /// non-blocking poll when nobody uses timers or I/O.)
    bool has_interest() const noexcept { return armed_timers() != 0 || m_reactor.registered() != 0; }

    // ---- polling (the lock holder only) ------------------------------------------------

    // Acquire / release: the next holder sees what the last one left in the
    // reactor's polling state (event buffer, tick).
    bool try_lock() noexcept {
        return !m_locked.load(std::memory_order_relaxed) &&
               !m_locked.exchange(true, std::memory_order_acquire);
    }
    void unlock() noexcept { m_locked.store(false, std::memory_order_release); }

    /// True while the lock holder blocks in epoll_wait (see the header).
    bool has_sleeper() const noexcept { return m_sleeping.load(std::memory_order_seq_cst); }

    /// Blocks in epoll_wait until an event, a wake() or the next timer
    /// deadline, then delivers what is ready: tasks waiting for I/O and
    /// expired timers are woken (on this thread, so into this worker's queue).
    void park() noexcept {
        std::uint64_t wake_ns = no_deadline;
        {
            lock_hold<spinlock> hold(m_timer_lock);
            const std::uint64_t tick = m_wheel.next_deadline();
            if (tick != no_deadline) {
                wake_ns = tick <= no_deadline / m_resolution ? tick * m_resolution : no_deadline - 1;
                // The earliest exact deadline of that tick, if it holds timers.
                m_wheel.take_from_next(exact_scan, [&](std::uint32_t id) noexcept {
                    wake_ns = std::min(wake_ns, m_timers[id].deadline_ns);
                    return false;
                });
            }
            m_sleeper_wake_ns = wake_ns;
        }
        m_sleeping.store(true, std::memory_order_seq_cst);
        const std::int64_t timeout = wake_ns == no_deadline ? -1 : nanoseconds_until(wake_ns);
        m_reactor.poll([timeout](int epfd, epoll_event* events, int max) noexcept {
            return wait_for_events(epfd, events, max, timeout);
        });
        m_sleeping.store(false, std::memory_order_seq_cst);
        {
            lock_hold<spinlock> hold(m_timer_lock);
            m_sleeper_wake_ns = 0;
        }
        fire_timers(m_park_fire_limit);
        m_polls.fetch_add(1, std::memory_order_relaxed); // a statistic
    }

    /// Delivers what is ready without blocking: every I/O event, and at
    /// most `timer_limit` expired timers (at least one). The caller
    /// passes the room left in its run queue: timers past it stay in the
    /// wheel, due, for the next poll (the next maintenance tick, or a
    /// parking worker, whose sleep then ends at once), rather than being
    /// woken into a full queue, which would push them to the back of the
    /// global queue, behind every task waiting there.
    void poll_now(std::size_t timer_limit = SIZE_MAX) noexcept {
        m_reactor.poll([](int epfd, epoll_event* events, int max) noexcept {
            return wait_for_events(epfd, events, max, 0);
        });
        fire_timers(std::max<std::size_t>(timer_limit, 1));
        m_polls.fetch_add(1, std::memory_order_relaxed); // a statistic
    }

    /// Wakes the worker blocked in park().
    void wake() noexcept { m_reactor.wake(); }

    /// Polls so far (park or poll_now), a metric.
    std::uint64_t polls() const noexcept { return m_polls.load(std::memory_order_relaxed); }

private:
    std::int64_t nanoseconds_until(std::uint64_t at_ns) const noexcept {
        const std::uint64_t now_ns = since_start(clock::now());
        return at_ns <= now_ns
                   ? 0
                   : static_cast<std::int64_t>(std::min<std::uint64_t>(at_ns - now_ns, INT64_MAX));
    }

    // epoll_pwait2 takes a nanosecond timeout (Linux 5.11); older kernels
    // (and qemu-user) answer ENOSYS, and epoll_wait's milliseconds, rounded
    // up so that no timer fires early, do instead.
    static int wait_for_events(int epfd, epoll_event* events, int max, std::int64_t timeout_ns) noexcept {
#if defined(SYS_epoll_pwait2)
        static std::atomic<bool> no_pwait2{false};
        if (!no_pwait2.load(std::memory_order_relaxed)) { // a cache of the kernel's answer
            __kernel_timespec ts{};
            ts.tv_sec = timeout_ns / 1'000'000'000;
            ts.tv_nsec = timeout_ns % 1'000'000'000;
            const long n =
                ::syscall(SYS_epoll_pwait2, epfd, events, max, timeout_ns < 0 ? nullptr : &ts, nullptr, 0);
            if (n >= 0) {
                return static_cast<int>(n);
            }
            if (errno != ENOSYS) {
                return 0; // EINTR: the caller loops
            }
            no_pwait2.store(true, std::memory_order_relaxed);
        }
#endif
        int ms = -1;
        if (timeout_ns >= 0) {
            ms = static_cast<int>(std::min<std::int64_t>((timeout_ns + 999'999) / 1'000'000, INT_MAX));
        }
        const int n = ::epoll_wait(epfd, events, max, ms);
        return n < 0 ? 0 : n;
    }

    // Fires every timer due by now: those of the ticks that have passed,
    // then those of the next tick whose exact deadline has passed. Wakes
    // their tasks in batches, with the wheel lock dropped in between.
    // Fires up to `limit` due timers, `wake_batch` at a time with the lock
    // dropped in between.
    void fire_timers(std::size_t limit) noexcept {
        if (armed_timers() == 0) {
            return;
        }
        const std::uint64_t now_ns = since_start(clock::now());
        const std::uint64_t now_tick = now_ns / m_resolution;
        for (bool ticks_done = false, exact_done = false; !exact_done && limit != 0;) {
            std::array<task_header*, wake_batch> batch{};
            const std::size_t room = std::min(limit, wake_batch);
            std::size_t count = 0;
            const auto fire = [&](std::uint32_t id) noexcept {
                timer_slot& slot = m_timers[id];
                batch[count++] = std::exchange(slot.task, nullptr);
                // Release: pairs with resume_target's acquire.
                slot.fired.store(1, std::memory_order_release);
            };
            {
                lock_hold<spinlock> hold(m_timer_lock);
                if (!ticks_done) {
                    ticks_done = m_wheel.poll(now_tick, room, fire);
                }
                if (ticks_done && count < room) {
                    // Done once a pass leaves room in the batch: nothing more is due.
                    exact_done = m_wheel.take_from_next(exact_scan, [&](std::uint32_t id) noexcept {
                        if (count == room || m_timers[id].deadline_ns > now_ns) {
                            return false;
                        }
                        fire(id);
                        return true;
                    }) == 0 || count < room;
                }
                m_armed.store(m_wheel.armed_count(), std::memory_order_relaxed);
            }
            limit -= count;
            for (std::size_t i = 0; i < count; ++i) {
                detail::wake(batch[i]);
            }
        }
    }

    class reactor m_reactor;
    spinlock m_timer_lock;
    timer_wheel m_wheel;                 // under m_timer_lock
    std::span<timer_slot> m_timers;      // under m_timer_lock (fired: atomic)
    std::uint64_t m_sleeper_wake_ns = 0; // under m_timer_lock
    std::atomic<std::uint32_t> m_armed{0};
    const std::uint64_t m_resolution;
    const clock::time_point m_start;
    const std::size_t m_park_fire_limit;
    std::atomic<bool> m_locked{false};
    std::atomic<bool> m_sleeping{false};
    std::atomic<std::uint64_t> m_polls{0};
};

/// Storage for a driver sized at compile time.
template <std::uint32_t Timers, std::uint32_t Sources, std::uint32_t Events>
struct driver_storage {
    std::array<wheel_node, Timers> nodes{};
    std::array<timer_slot, Timers> timers{};
    std::array<io_registration, Sources> sources{};
    std::array<epoll_event, Events> events{};
};

} // namespace weft::detail
