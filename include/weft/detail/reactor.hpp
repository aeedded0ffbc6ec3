// weft/detail/reactor.hpp
//
// What it is for: telling tasks when their file descriptors are ready. One
// epoll instance per executor, edge-triggered, plus an eventfd that wakes
// the worker sleeping in epoll_wait. Registrations live in a fixed slab
// (no allocation per descriptor); each one holds
//   - a readiness word: readiness bits, the reactor tick of the event that
//     last set them, a shutdown bit, and the registration's generation;
//   - at most one waiting task per direction (read, write).
//
// Where it comes from: Tokio's I/O driver and ScheduledIo (readiness word
// with a driver tick; clear only if the tick still matches, so a stale
// "would block" never erases a newer event) and mio's epoll selector
// (EPOLLET | EPOLLIN | EPOLLOUT | EPOLLRDHUP, eventfd waker).
//
// Invariants:
//   - The epoll data of a registration is (slot | generation << 32). The
//     generation changes under the slot's lock when it is deregistered, so
//     an event still in flight for an old descriptor is dropped. The
//     readiness word carries the generation too, so a clear computed from
//     an old registration's word can never touch a new one's.
//   - Only the hang-up bits (read closed, write closed) are sticky. An
//     error or priority event is cleared like readiness by an operation
//     that then gets EAGAIN: a UDP socket's ICMP error is consumed by the
//     receive that reports it, and an urgent byte must not make every later
//     read spin.
//   - The reactor sets readiness, then takes the waiters under the slot's
//     lock; a task checks readiness and registers under the same lock. So a
//     task either sees the new readiness or is taken by the reactor.
//   - A waiter is taken, marked fired (with the readiness it was fired for)
//     and its task woken only by whoever removes it from the slot under the
//     lock: the reactor, deregistration, or (never fired) the waiter's own
//     destructor. After removal nobody touches the waiter's memory, so the
//     awaiting frame may be destroyed at any time.
//   - Only the thread polling (the driver's lock holder) touches the event
//     buffer and the tick.
#pragma once

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <span>

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "scheduler.hpp"
#include "spinlock.hpp"
#include "task_cell.hpp"

namespace weft::detail {

/// Bits of a registration's readiness word.
namespace io_ready {
inline constexpr std::uint32_t readable = 1u << 0;
inline constexpr std::uint32_t writable = 1u << 1;
inline constexpr std::uint32_t read_closed = 1u << 2;  // peer shut down its writing side (EOF)
inline constexpr std::uint32_t write_closed = 1u << 3; // hang-up: nothing more can be written
inline constexpr std::uint32_t error = 1u << 4;        // EPOLLERR: a pending socket error
inline constexpr std::uint32_t priority = 1u << 5;     // EPOLLPRI: out-of-band / exceptional
inline constexpr std::uint32_t all = 0xFF;
inline constexpr std::uint32_t tick_shift = 8;
inline constexpr std::uint64_t tick_mask = std::uint64_t{0xFFFF} << tick_shift; // 64 bits: see dispatch
inline constexpr std::uint32_t shutdown = 1u << 31; // deregistered: every wait fails
inline constexpr unsigned generation_shift = 32;    // the registration's generation, above
// What wakes a reader, and what wakes a writer.
inline constexpr std::uint32_t read_interest = readable | read_closed | error | priority;
inline constexpr std::uint32_t write_interest = writable | write_closed | error;
// What an operation that got EAGAIN forgets, per direction. The hang-up
// bits are sticky: nothing clears them.
inline constexpr std::uint32_t read_clear = readable | error | priority;
inline constexpr std::uint32_t write_clear = writable | error;
// The part of a word that says which event set it.
inline constexpr std::uint64_t event_identity = ~std::uint64_t{0xFFFFFFFFu} | tick_mask;
} // namespace io_ready

enum class io_direction : std::uint8_t { read = 0, write = 1 };

inline constexpr std::uint32_t interest_of(io_direction dir) noexcept {
    return dir == io_direction::read ? io_ready::read_interest : io_ready::write_interest;
}

inline constexpr std::uint32_t clear_of(io_direction dir) noexcept {
    return dir == io_direction::read ? io_ready::read_clear : io_ready::write_clear;
}

/// A task waiting for one direction of a registration; lives in the
/// awaiting coroutine's frame.
struct io_waiter {
    task_header* task = nullptr;
    std::atomic<std::uint32_t> fired{0}; // 0 waiting, fired_ready, fired_closed
    std::uint64_t observed = 0;          // the readiness word it was fired with
};
inline constexpr std::uint32_t fired_ready = 1;
inline constexpr std::uint32_t fired_closed = 2;

/// One slot of the registration slab (a cache line each: the reactor and
/// the tasks of different descriptors do not false-share).
struct alignas(64) io_registration {
    std::atomic<std::uint64_t> readiness{0};
    spinlock lock;
    std::uint32_t generation = 0;        // under lock
    int fd = -1;                         // under lock
    std::array<io_waiter*, 2> waiters{}; // by io_direction; under lock
    std::uint32_t next_free = 0;         // under the slab lock
};

/// Where a registration lives: its slot and the generation it was given.
struct io_key {
    std::uint32_t slot = 0;
    std::uint32_t generation = 0;
};

class reactor {
public:
    static constexpr std::uint32_t no_slot = 0xFFFFFFFFu;

    /// Creates the epoll instance and the waker eventfd. On failure
    /// ok() is false and error() says why.
    explicit reactor(std::span<io_registration> slots, std::span<epoll_event> events) noexcept
        : m_slots(slots), m_events(events) {
        for (std::uint32_t i = 0; i < m_slots.size(); ++i) {
            m_slots[i].next_free = i + 1 < m_slots.size() ? i + 1 : no_slot;
        }
        m_free = m_slots.empty() ? no_slot : 0;
        m_epoll = ::epoll_create1(EPOLL_CLOEXEC);
        if (m_epoll < 0) {
            m_error = errno;
            return;
        }
        m_waker = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (m_waker < 0) {
            m_error = errno;
            return;
        }
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLET;
        ev.data.u64 = waker_token;
        if (::epoll_ctl(m_epoll, EPOLL_CTL_ADD, m_waker, &ev) != 0) {
            m_error = errno;
        }
    }

    reactor(const reactor&) = delete;
    reactor& operator=(const reactor&) = delete;

    ~reactor() {
        if (m_waker >= 0) {
            ::close(m_waker);
        }
        if (m_epoll >= 0) {
            ::close(m_epoll);
        }
    }

    bool ok() const noexcept { return m_error == 0; }
    int error() const noexcept { return m_error; }

    /// Registrations in use (a metric, and has_interest's hint; relaxed
    /// like armed_timers, for the same reason).
    std::uint32_t registered() const noexcept { return m_registered.load(std::memory_order_relaxed); }

    // ---- registrations (any thread) --------------------------------------------------

    /// register_fd's result when every slot of the slab is in use.
    static constexpr int slab_full = -1;

    /// Registers `fd` (made non-blocking) for edge-triggered read and write
    /// readiness. Returns 0, slab_full, or an errno: EBADF (not an open
    /// descriptor), EPERM (a regular file or directory: always ready, epoll
    /// refuses it), EEXIST (already registered here).
    int register_fd(int fd, io_key& key) noexcept {
        const int flags = ::fcntl(fd, F_GETFL);
        if (flags < 0 || ((flags & O_NONBLOCK) == 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)) {
            return errno;
        }
        const std::uint32_t slot = allocate();
        if (slot == no_slot) {
            return slab_full;
        }
        io_registration& reg = m_slots[slot];
        {
            lock_hold<spinlock> hold(reg.lock);
            reg.fd = fd;
            // Under the lock; relaxed: the epoll_ctl below publishes nothing
            // the reactor reads before taking this lock itself.
            reg.readiness.store(std::uint64_t{reg.generation} << io_ready::generation_shift,
                                std::memory_order_relaxed);
            key = {slot, reg.generation};
        }
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;
        ev.data.u64 = token_of(key);
        if (::epoll_ctl(m_epoll, EPOLL_CTL_ADD, fd, &ev) != 0) {
            const int err = errno;
            retire(key);
            return err;
        }
        m_registered.fetch_add(1, std::memory_order_relaxed); // a count: orders nothing
        return 0;
    }

    /// Removes a registration: epoll forgets the descriptor, every waiting
    /// task wakes with fired_closed, and the slot is free again. The caller
    /// still owns (and closes) the descriptor.
    void deregister(io_key key) noexcept {
        io_registration& reg = m_slots[key.slot];
        int fd = -1;
        {
            lock_hold<spinlock> hold(reg.lock);
            if (reg.generation != key.generation) {
                return;
            }
            fd = reg.fd;
        }
        epoll_event ev{}; // non-null for kernels before 2.6.9
        ::epoll_ctl(m_epoll, EPOLL_CTL_DEL, fd, &ev);
        m_registered.fetch_sub(1, std::memory_order_relaxed); // a count: orders nothing
        retire(key);
    }

    /// The readiness word of a registration (acquire: pairs with the
    /// reactor's release when it set the bits); just `shutdown` once the
    /// key's generation is gone, so a word of the slot's next registration
    /// is never taken for this one (nor cleared through it).
    std::uint64_t readiness(io_key key) const noexcept {
        const std::uint64_t word = m_slots[key.slot].readiness.load(std::memory_order_acquire);
        if ((word >> io_ready::generation_shift) != key.generation) {
            return io_ready::shutdown;
        }
        return word;
    }

    /// Forgets what `dir` saw in `observed` (an operation failed with
    /// EAGAIN), unless a newer event has set bits since (the tick differs)
    /// or the registration is gone (shut down, or a new generation).
    void clear_readiness(io_key key, std::uint64_t observed, io_direction dir) noexcept {
        std::atomic<std::uint64_t>& word = m_slots[key.slot].readiness;
        const std::uint64_t clear = clear_of(dir);
        std::uint64_t cur = word.load(std::memory_order_relaxed);
        while ((cur & io_ready::event_identity) == (observed & io_ready::event_identity) &&
               (cur & io_ready::shutdown) == 0 &&
               // Relaxed: the word carries no data; the reactor's later set
               // is ordered by its own RMW on the same word.
               !word.compare_exchange_weak(cur, cur & ~clear, std::memory_order_relaxed)) {
        }
    }

    enum class wait_status : std::uint8_t { registered, ready, busy };

    /// Registers `waiter` for `dir` unless waiting is unnecessary: ready
    /// (the readiness word, in `word`, satisfies `dir` or says shut down) or
    /// busy (another task waits for `dir` already).
    wait_status wait(io_key key, io_direction dir, io_waiter& waiter, std::uint64_t& word) noexcept {
        io_registration& reg = m_slots[key.slot];
        lock_hold<spinlock> hold(reg.lock);
        word = reg.readiness.load(std::memory_order_acquire);
        if (reg.generation != key.generation) {
            word = io_ready::shutdown;
            return wait_status::ready;
        }
        if ((word & (interest_of(dir) | io_ready::shutdown)) != 0) {
            return wait_status::ready;
        }
        io_waiter*& slot = reg.waiters[static_cast<unsigned>(dir)];
        if (slot != nullptr) {
            return wait_status::busy;
        }
        slot = &waiter;
        return wait_status::registered;
    }

    /// Takes back a waiter that was never fired (its task was cancelled or
    /// timed out). True if it was still registered: then the caller owns the
    /// task reference the waiter held.
    bool cancel_wait(io_key key, io_direction dir, io_waiter& waiter) noexcept {
        io_registration& reg = m_slots[key.slot];
        lock_hold<spinlock> hold(reg.lock);
        io_waiter*& slot = reg.waiters[static_cast<unsigned>(dir)];
        if (slot != &waiter) {
            return false; // fired: its firer wakes the task
        }
        slot = nullptr;
        return true;
    }

    // ---- polling (the driver's lock holder only) ----------------------------------------

    /// Waits for events (timeout in nanoseconds; negative: indefinitely)
    /// and dispatches them. Returns the number of descriptor events.
    template <class Wait>
    std::size_t poll(Wait&& wait_fn) noexcept {
        const int n = wait_fn(m_epoll, m_events.data(), static_cast<int>(m_events.size()));
        if (n <= 0) {
            return 0;
        }
        m_tick = static_cast<std::uint16_t>(m_tick + 1);
        std::size_t dispatched = 0;
        for (int i = 0; i < n; ++i) {
            const epoll_event& ev = m_events[static_cast<std::size_t>(i)];
            if (ev.data.u64 == waker_token) {
                // Not read: each write is a new edge (as mio does). Reading
                // here could swallow a write made between the clear and the
                // read, and with it every later wake (they are deduplicated).
                m_wake_pending.store(false, std::memory_order_seq_cst);
                continue;
            }
            dispatch(key_of(ev.data.u64), ready_bits(ev.events));
            ++dispatched;
        }
        return dispatched;
    }

    /// Wakes the thread blocked in poll (or makes its next poll return at
    /// once). Writes to the eventfd only once per wake-up.
    void wake() noexcept {
        if (!m_wake_pending.exchange(true, std::memory_order_seq_cst)) {
            const std::uint64_t one = 1;
            if (::write(m_waker, &one, sizeof one) < 0 && errno == EAGAIN) {
                // The counter is full (after 2^64 - 2 wakes): empty it and write again.
                std::uint64_t count = 0;
                [[maybe_unused]] const ssize_t r = ::read(m_waker, &count, sizeof count);
                [[maybe_unused]] const ssize_t w = ::write(m_waker, &one, sizeof one);
            }
        }
    }

private:
    static constexpr std::uint64_t waker_token = ~std::uint64_t{0};

    static std::uint64_t token_of(io_key key) noexcept {
        return key.slot | (std::uint64_t{key.generation} << 32);
    }
    static io_key key_of(std::uint64_t token) noexcept {
        return {static_cast<std::uint32_t>(token), static_cast<std::uint32_t>(token >> 32)};
    }

    static std::uint32_t ready_bits(std::uint32_t events) noexcept {
        std::uint32_t bits = 0;
        if ((events & EPOLLIN) != 0) {
            bits |= io_ready::readable;
        }
        if ((events & EPOLLOUT) != 0) {
            bits |= io_ready::writable;
        }
        if ((events & EPOLLRDHUP) != 0) {
            bits |= io_ready::readable | io_ready::read_closed;
        }
        if ((events & EPOLLHUP) != 0) {
            bits |= io_ready::readable | io_ready::read_closed | io_ready::writable | io_ready::write_closed;
        }
        if ((events & EPOLLERR) != 0) {
            bits |= io_ready::readable | io_ready::writable | io_ready::error;
        }
        if ((events & EPOLLPRI) != 0) {
            bits |= io_ready::priority;
        }
        return bits;
    }

    // Sets readiness with the current tick and fires the waiters it satisfies.
    void dispatch(io_key key, std::uint32_t bits) noexcept {
        if (key.slot >= m_slots.size()) {
            return;
        }
        io_registration& reg = m_slots[key.slot];
        std::array<task_header*, 2> woken{};
        {
            lock_hold<spinlock> hold(reg.lock);
            if (reg.generation != key.generation) {
                return; // the descriptor was deregistered after epoll reported it
            }
            const std::uint64_t tick = std::uint64_t{m_tick} << io_ready::tick_shift;
            std::uint64_t cur = reg.readiness.load(std::memory_order_relaxed);
            std::uint64_t next = 0;
            do {
                // tick_mask is 64 bits wide: a 32-bit ~mask would erase the generation.
                next = (cur & ~io_ready::tick_mask) | bits | tick;
                // Release: pairs with the acquire loads of readiness() and
                // wait(). A clear's CAS on the same word is ordered by the
                // word's own modification order, not by this.
            } while (!reg.readiness.compare_exchange_weak(cur, next, std::memory_order_release,
                                                          std::memory_order_relaxed));
            for (unsigned dir = 0; dir < 2; ++dir) {
                io_waiter* waiter = reg.waiters[dir];
                if (waiter != nullptr && (next & interest_of(static_cast<io_direction>(dir))) != 0) {
                    reg.waiters[dir] = nullptr;
                    woken[dir] = fire(*waiter, next, fired_ready);
                }
            }
        }
        for (task_header* task : woken) {
            if (task != nullptr) {
                detail::wake(task);
            }
        }
    }

    // Under the slot's lock: the waiter is gone from the slot; after this
    // nobody touches it. Returns the task to wake (with its reference).
    static task_header* fire(io_waiter& waiter, std::uint64_t word, std::uint32_t how) noexcept {
        task_header* task = waiter.task;
        waiter.observed = word;
        // Release: pairs with resume_target's acquire; `observed` travels with it.
        waiter.fired.store(how, std::memory_order_release);
        return task;
    }

    // Ends a generation: fails every waiter, frees the slot.
    void retire(io_key key) noexcept {
        io_registration& reg = m_slots[key.slot];
        std::array<task_header*, 2> woken{};
        {
            lock_hold<spinlock> hold(reg.lock);
            if (reg.generation != key.generation) {
                return;
            }
            ++reg.generation;
            reg.fd = -1;
            const std::uint64_t word =
                reg.readiness.fetch_or(io_ready::shutdown, std::memory_order_acq_rel) | io_ready::shutdown;
            for (unsigned dir = 0; dir < 2; ++dir) {
                if (io_waiter* waiter = std::exchange(reg.waiters[dir], nullptr)) {
                    woken[dir] = fire(*waiter, word, fired_closed);
                }
            }
        }
        release(key.slot);
        for (task_header* task : woken) {
            if (task != nullptr) {
                detail::wake(task);
            }
        }
    }

    std::uint32_t allocate() noexcept {
        lock_hold<spinlock> hold(m_slab_lock);
        const std::uint32_t slot = m_free;
        if (slot != no_slot) {
            m_free = m_slots[slot].next_free;
        }
        return slot;
    }

    void release(std::uint32_t slot) noexcept {
        lock_hold<spinlock> hold(m_slab_lock);
        m_slots[slot].next_free = m_free;
        m_free = slot;
    }

    std::span<io_registration> m_slots;
    std::span<epoll_event> m_events;
    spinlock m_slab_lock;
    std::uint32_t m_free = no_slot; // under m_slab_lock
    int m_epoll = -1;
    int m_waker = -1;
    int m_error = 0;
    std::uint16_t m_tick = 0; // polling thread only
    std::atomic<bool> m_wake_pending{false};
    std::atomic<std::uint32_t> m_registered{0};
};

} // namespace weft::detail
