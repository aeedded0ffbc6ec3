// weft/detail/fork.hpp
//
// What it is for: noticing that an executor is used in a child process.
// fork() copies the calling thread only: the child has the executor's memory
// but none of its workers or blocking threads, so a task spawned there would
// never run, and a join or a shutdown would wait forever for threads that
// do not exist. Each executor (through its schedulers) remembers the fork
// generation it was created in; a pthread_atfork child handler advances the
// generation, and the entry points compare (one relaxed load).
#pragma once

#include <atomic>
#include <cstdint>
#include <new>

#include <pthread.h>

#include "../error.hpp"

namespace weft::detail {

/// How many fork()s this process descends through since weft first looked:
/// advanced in each child, never in the parent.
inline std::atomic<std::uint32_t> g_fork_generation{0};

inline void on_fork_child() noexcept {
    // Relaxed: the child has a single thread when the handler runs.
    g_fork_generation.fetch_add(1, std::memory_order_relaxed);
}

class fork_guard {
public:
    fork_guard() noexcept {
        static const int registered = ::pthread_atfork(nullptr, nullptr, &on_fork_child);
        (void)registered; // it fails only without memory; then forks go unnoticed
        m_generation = g_fork_generation.load(std::memory_order_relaxed);
    }

    /// True in a child process forked after this object was created.
    bool forked() const noexcept { return g_fork_generation.load(std::memory_order_relaxed) != m_generation; }

    /// Raises errc::used_after_fork if forked().
    void check() const {
        if (forked()) {
            raise(errc::used_after_fork,
                  "this weft executor was created before fork() and this is the child process, where its "
                  "threads do not exist: nothing would run. Create a new executor in the child (after "
                  "fork), and leave this one alone; its destructor does nothing in the child");
        }
    }

private:
    std::uint32_t m_generation = 0;
};

/// A T whose destructor can be skipped, for the condition variables that
/// threads wait on: in a forked child those threads do not exist, and
/// glibc's pthread_cond_destroy waits for its waiters to leave.
template <class T>
class abandonable {
public:
    abandonable() { ::new (static_cast<void*>(m_storage)) T(); }
    abandonable(const abandonable&) = delete;
    abandonable& operator=(const abandonable&) = delete;
    ~abandonable() {
        if (!m_abandoned) {
            get().~T();
        }
    }

    T& get() noexcept { return *std::launder(reinterpret_cast<T*>(m_storage)); }
    T* operator->() noexcept { return &get(); }

    /// The destructor will not destroy the T (its memory is simply dropped).
    void abandon() noexcept { m_abandoned = true; }

private:
    alignas(T) unsigned char m_storage[sizeof(T)];
    bool m_abandoned = false;
};

} // namespace weft::detail
