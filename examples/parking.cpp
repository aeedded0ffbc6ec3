// Parking on a semaphore: 5 tasks share 2 permits (say, two radio slots)
// and each holds one for 1 s. A task that finds no permit is parked: it is
// suspended in the semaphore's FIFO, holding no thread, until a release
// hands it the permit. Prints who waits, acquires and releases, in
// milliseconds since the start, and the most holders seen at once (2).
// With nothing to run, the workers themselves sleep in the kernel.
//
//   ./parking
#include <weft/weft.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <vector>

using namespace std::chrono_literals;

namespace {

constexpr int tasks = 5;
constexpr std::size_t permits = 2;

const weft::clock::time_point start = weft::clock::now();
std::atomic<int> holders{0};
std::atomic<int> max_holders{0};

long long ms_since_start() {
    return static_cast<long long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(weft::clock::now() - start).count());
}

// Counts a new holder and remembers the most seen at once.
int add_holder() {
    const int now = holders.fetch_add(1) + 1;
    int seen = max_holders.load();
    while (now > seen && !max_holders.compare_exchange_weak(seen, now)) {
    }
    return now;
}

weft::task<> use_slot(weft::semaphore& slots, int id) {
    weft::semaphore::permit permit = slots.try_acquire();
    if (!permit) {
        std::printf("+%5lld ms  task %d waits for a permit\n", ms_since_start(), id);
        permit = co_await slots.acquire(); // parked here (FIFO) until a holder releases
    }

    const int now = add_holder();
    std::printf("+%5lld ms  task %d acquired a permit (%d holding)\n", ms_since_start(), id, now);

    co_await weft::sleep_for(1s); // the work, holding the permit

    holders.fetch_sub(1); // leaving: counted out before the permit goes
    std::printf("+%5lld ms  task %d releases its permit\n", ms_since_start(), id);
    permit.release(); // hands it to the oldest waiter (the destructor would, too)
}

weft::task<> run() {
    weft::semaphore slots(permits);
    std::vector<weft::join_handle<void>> handles;
    for (int id = 0; id < tasks; ++id) {
        handles.push_back(weft::spawn(use_slot(slots, id)));
    }
    for (auto& handle : handles) {
        co_await handle; // the semaphore outlives every task using it
    }
}

} // namespace

int main() {
    weft::executor<2> ex;
    ex.block_on(run());
    const auto m = ex.metrics();
    std::printf("at most %d tasks held a permit at once (%zu permits)\n", max_holders.load(), permits);
    std::printf("the workers parked %llu times while the tasks waited and slept\n",
                static_cast<unsigned long long>(m.total(&weft::worker_metrics::parks)));
    return max_holders.load() == static_cast<int>(permits) ? 0 : 1;
}
