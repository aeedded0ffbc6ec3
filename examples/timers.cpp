// Timers: sleep, a periodic interval with a missed-tick policy, and a
// timeout around an operation that is too slow. Prints what happened and how
// late each timer fired: never early, usually by the wake-up latency (tens of
// microseconds), at worst by one resolution step (1 ms by default) more.
//
//   ./timers
#include <weft/weft.hpp>

#include <chrono>
#include <cstdio>

using namespace std::chrono_literals;

namespace {

long long micros(weft::clock::duration d) {
    return static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

// Something slow, say a sensor that answers after 200 ms.
weft::task<int> slow_sensor() {
    co_await weft::sleep_for(200ms);
    co_return 17;
}

weft::task<int> run() {
    // 1. A plain sleep.
    const auto start = weft::clock::now();
    if (auto slept = co_await weft::sleep_for(20ms); !slept) {
        std::printf("sleep failed: %s\n", slept.error().message().c_str());
        co_return 1;
    }
    std::printf("slept 20 ms: late by %lld us\n", micros(weft::clock::now() - start - 20ms));

    // 2. An interval: five ticks 10 ms apart; the third tick's work overruns,
    //    and missed_tick::skip drops the ticks it missed instead of bursting.
    weft::interval every(10ms, weft::missed_tick::skip);
    for (int i = 0; i < 5; ++i) {
        auto at = co_await every.tick();
        if (!at) {
            co_return 1;
        }
        std::printf("tick %d at +%lld ms (late by %lld us)\n", i, micros(*at - start) / 1000,
                    micros(weft::clock::now() - *at));
        if (i == 2) {
            co_await weft::sleep_for(25ms); // overrun: two ticks missed
        }
    }

    // 3. A timeout: the sensor takes 200 ms, we wait 50 ms at most. The
    //    sensor's coroutine is cancelled (destroyed) when the time runs out.
    auto reading = co_await weft::timeout(50ms, slow_sensor());
    if (!reading && reading.error() == weft::errc::timed_out) {
        std::printf("sensor: timed out after 50 ms, as expected\n");
    } else {
        std::printf("sensor: unexpected result\n");
        co_return 1;
    }

    // 4. With enough time it answers.
    reading = co_await weft::timeout(1s, slow_sensor());
    std::printf("sensor: %d\n", reading ? *reading : -1);
    co_return reading&&* reading == 17 ? 0 : 1;
}

} // namespace

int main() {
    weft::executor<2> ex;
    const int status = ex.block_on(run());
    std::printf("timers armed at the end: %u\n", ex.metrics().armed_timers);
    return status;
}
