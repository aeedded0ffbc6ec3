// benches/support/countdown.hpp: "the one that reaches zero signals
// completion", for weft tasks: a counter and a weft::notify that the
// waiting task awaits.
#pragma once

#include <weft/weft.hpp>

#include <atomic>
#include <cstddef>

namespace bench {

/// Counts down from `left`; the task that reaches zero wakes the task
/// awaiting `done.notified()`. Keep it alive across repetitions: the last
/// notifier may still be returning from notify_one() when the waiter
/// resumes.
struct countdown {
    std::atomic<std::size_t> left{0};
    weft::notify done;

    void hit() {
        // acq_rel: the waiter sees every decrementer's effects.
        if (left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            done.notify_one();
        }
    }
};

} // namespace bench
