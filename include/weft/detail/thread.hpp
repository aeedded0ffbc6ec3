// weft/detail/thread.hpp
//
// What it is for: starting an executor's threads with the settings a board
// needs, which std::thread cannot express: stack size, CPU affinity, a
// scheduling policy and priority, and a name the OS shows (top -H,
// /proc/<pid>/task/<tid>/comm, gdb).
//
// Every setting goes into the pthread attributes, so the thread runs with
// all of them from its first instruction, and pthread_create reports what
// the OS refuses: EINVAL for a stack below PTHREAD_STACK_MIN or CPUs none of
// which the thread may use, EPERM for a real-time policy the caller may not
// set (glibc applies an explicit policy from the *creating* thread, so the
// creator's capabilities and RLIMIT_RTPRIO decide). The scheduling setting is
// explicit (PTHREAD_EXPLICIT_SCHED) whenever a policy is given; otherwise the
// thread inherits its creator's, as std::thread does.
//
// Everything here reports failure as an errno value; the public headers turn
// it into a weft::error with a sentence (see blocking.hpp).
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <pthread.h>
#include <sched.h>

namespace weft::detail {

/// How to start one thread.
struct thread_spec {
    char name[16] = {};         // what the OS shows; at most 15 characters
    std::size_t stack_size = 0; // bytes; 0 keeps the platform default
    bool pinned = false;        // run only on `cpus`; false inherits the creator's CPUs
    cpu_set_t cpus{};
    int policy = -1; // SCHED_OTHER, SCHED_FIFO or SCHED_RR; -1 inherits the creator's
    int priority = 0;
};

/// Starts `body(arg)` on a new thread. Returns 0 or an errno value.
inline int start_thread(pthread_t& thread, const thread_spec& spec, void* (*body)(void*),
                        void* arg) noexcept {
    pthread_attr_t attr;
    int rc = ::pthread_attr_init(&attr);
    if (rc != 0) {
        return rc;
    }
    if (spec.stack_size != 0) {
        rc = ::pthread_attr_setstacksize(&attr, spec.stack_size);
    }
    if (rc == 0 && spec.pinned) {
        rc = ::pthread_attr_setaffinity_np(&attr, sizeof spec.cpus, &spec.cpus);
    }
    if (rc == 0 && spec.policy >= 0) {
        sched_param param{};
        param.sched_priority = spec.priority;
        rc = ::pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
        if (rc == 0) {
            rc = ::pthread_attr_setschedpolicy(&attr, spec.policy);
        }
        if (rc == 0) {
            rc = ::pthread_attr_setschedparam(&attr, &param);
        }
    }
    if (rc == 0) {
        rc = ::pthread_create(&thread, &attr, body, arg);
    }
    ::pthread_attr_destroy(&attr);
    if (rc == 0 && spec.name[0] != '\0') {
        // Here, so that the name is there when the creator returns; the
        // thread names itself too (name_this_thread), so that its start hook
        // sees it. Cosmetic: failure is not an error.
        ::pthread_setname_np(thread, spec.name);
    }
    return rc;
}

/// The first thing a thread started by start_thread does: its own name
/// (prctl, which works without /proc).
inline void name_this_thread(const char* name) noexcept {
    if (name[0] != '\0') {
        ::pthread_setname_np(::pthread_self(), name);
    }
}

/// Starts a thread with `spec` that returns at once, and joins it: finds out
/// at construction whether threads started later (on demand, from whatever
/// thread) would be refused. Returns 0 or an errno value.
inline int probe_thread(const thread_spec& spec) noexcept {
    pthread_t thread;
    const int rc = start_thread(
        thread, spec, [](void*) -> void* { return nullptr; }, nullptr);
    if (rc == 0) {
        ::pthread_join(thread, nullptr);
    }
    return rc;
}

/// The CPUs the calling thread may run on; false if the OS does not say.
inline bool current_cpus(cpu_set_t& out) noexcept {
    CPU_ZERO(&out);
    return ::pthread_getaffinity_np(::pthread_self(), sizeof out, &out) == 0;
}

/// The name sched(7) gives a policy, for messages.
inline const char* policy_name(int policy) noexcept {
    switch (policy) {
    case SCHED_OTHER: return "SCHED_OTHER";
    case SCHED_FIFO: return "SCHED_FIFO";
    case SCHED_RR: return "SCHED_RR";
    default: return "the inherited policy";
    }
}

/// Writes "<prefix>-<index>" into `out`, cutting the prefix so the whole
/// name fits the OS limit of 15 characters and the index is never lost.
inline void format_thread_name(char (&out)[16], const char* prefix, unsigned index) noexcept {
    char digits[12];
    int n = 0;
    do {
        digits[n++] = static_cast<char>('0' + index % 10);
        index /= 10;
    } while (index != 0 && n < 11);
    const std::size_t suffix = static_cast<std::size_t>(n) + 1; // "-" and digits
    std::size_t len = std::strlen(prefix);
    if (len + suffix > 15) {
        len = 15 - suffix;
    }
    std::memcpy(out, prefix, len);
    out[len] = '-';
    for (int i = 0; i < n; ++i) {
        out[len + 1 + static_cast<std::size_t>(i)] = digits[n - 1 - i];
    }
    out[len + suffix] = '\0';
}

/// What a thread calls when it starts and stops: the executor's
/// settings::on_thread_start / on_thread_stop behind a function pointer, so
/// that detail/ needs no public header. `call` is never null.
struct thread_hooks {
    void (*call)(const void* context, bool start,
                 std::uint32_t index) noexcept = [](const void*, bool, std::uint32_t) noexcept {};
    const void* context = nullptr;

    void start(std::uint32_t index) const noexcept { call(context, true, index); }
    void stop(std::uint32_t index) const noexcept { call(context, false, index); }
};

} // namespace weft::detail
