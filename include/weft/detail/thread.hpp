// weft/detail/thread.hpp
//
// What it is for: starting an executor's threads with the settings a board
// needs, which std::thread cannot express: stack size, CPU affinity, and a
// name the OS shows (top -H, /proc/<pid>/task/<tid>/comm, gdb).
//
// Everything here reports failure as an errno value; the public executor
// turns it into a weft::error with a sentence.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstring>

#include <pthread.h>
#include <sched.h>

namespace weft::detail {

struct thread_spec {
    char name[16] = {};         // what the OS shows; at most 15 characters
    std::size_t stack_size = 0; // bytes; 0 keeps the platform default
    int cpu = -1;               // pin to this CPU; -1 leaves it free
};

/// Starts `body(arg)` on a new thread. Returns 0 or an errno value
/// (EINVAL for a stack below PTHREAD_STACK_MIN or a CPU that does not exist).
inline int start_thread(pthread_t& thread, const thread_spec& spec, void* (*body)(void*),
                        void* arg) noexcept {
    pthread_attr_t attr;
    int rc = ::pthread_attr_init(&attr);
    if (rc != 0) {
        return rc;
    }
    if (rc == 0 && spec.stack_size != 0) {
        rc = ::pthread_attr_setstacksize(&attr, spec.stack_size);
    }
    if (rc == 0 && spec.cpu >= 0) {
        if (spec.cpu >= CPU_SETSIZE) {
            rc = EINVAL;
        } else {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(static_cast<std::size_t>(spec.cpu), &set);
            rc = ::pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
        }
    }
    if (rc == 0) {
        rc = ::pthread_create(&thread, &attr, body, arg);
    }
    ::pthread_attr_destroy(&attr);
    if (rc == 0 && spec.name[0] != '\0') {
        ::pthread_setname_np(thread, spec.name); // cosmetic: failure is not an error
    }
    return rc;
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

} // namespace weft::detail
