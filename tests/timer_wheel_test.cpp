// tests/timer_wheel_test.cpp
//
// The timer wheel's contract: nodes are handed out once and come back; an
// armed entry fires exactly once, at its deadline and not a tick before or
// after, in (deadline, arm order) order, also when poll stops at its limit
// and is called again; next_deadline() never overshoots. Deadlines sit at
// every level, at max_distance and past it, across the top level's lap and up
// to UINT64_MAX. The randomized test runs the wheel against a plain ordered
// set with fixed seeds and checks every poll's output exactly.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <optional>
#include <random>
#include <set>
#include <tuple>
#include <vector>

#include <weft/detail/timer_wheel.hpp>

#include "support/catch.hpp"
#include "support/util.hpp"

namespace {

using weft::detail::timer_wheel;
using weft::detail::wheel_node;

constexpr std::uint64_t end_of_time = std::numeric_limits<std::uint64_t>::max();
constexpr std::size_t no_limit = std::numeric_limits<std::size_t>::max();
constexpr std::uint64_t far_away = timer_wheel::max_distance;

std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) {
    return b > end_of_time - a ? end_of_time : a + b;
}

// One poll call; returns what it fired.
std::vector<std::uint32_t> poll_once(timer_wheel& wheel, std::uint64_t now, std::size_t limit, bool& done) {
    std::vector<std::uint32_t> fired;
    done = wheel.poll(now, limit, [&](std::uint32_t id) { fired.push_back(id); });
    return fired;
}

// Polls to `now` without a limit; REQUIREs that it finished.
std::vector<std::uint32_t> poll_to(timer_wheel& wheel, std::uint64_t now) {
    bool done = false;
    std::vector<std::uint32_t> fired = poll_once(wheel, now, no_limit, done);
    REQUIRE(done);
    REQUIRE(wheel.elapsed() >= now);
    return fired;
}

// Allocates `n` nodes; REQUIREs they are distinct and in range.
std::vector<std::uint32_t> allocate_n(timer_wheel& wheel, std::size_t n) {
    std::vector<std::uint32_t> ids;
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint32_t id = wheel.allocate();
        REQUIRE(id < wheel.capacity());
        ids.push_back(id);
    }
    std::vector<std::uint32_t> sorted = ids;
    std::sort(sorted.begin(), sorted.end());
    REQUIRE(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
    return ids;
}

} // namespace

TEST_CASE("allocate hands out every node once, then npos; release makes room", "[timer_wheel]") {
    std::vector<wheel_node> nodes(4);
    timer_wheel wheel(nodes);
    REQUIRE(wheel.capacity() == 4);
    REQUIRE(wheel.armed_count() == 0);
    REQUIRE(wheel.elapsed() == 0);

    const std::vector<std::uint32_t> ids = allocate_n(wheel, 4);
    REQUIRE(wheel.allocate() == timer_wheel::npos);

    wheel.release(ids[2]);
    REQUIRE(wheel.allocate() == ids[2]);
    REQUIRE(wheel.allocate() == timer_wheel::npos);

    for (const std::uint32_t id : ids) {
        wheel.release(id);
    }
    REQUIRE(allocate_n(wheel, 4).size() == 4);
    REQUIRE(wheel.allocate() == timer_wheel::npos);
}

TEST_CASE("arm, disarm and is_armed track an entry; a due deadline is refused", "[timer_wheel]") {
    std::vector<wheel_node> nodes(4);
    timer_wheel wheel(nodes);
    const std::uint32_t id = wheel.allocate();
    const std::uint32_t other = wheel.allocate();

    REQUIRE_FALSE(wheel.is_armed(id));
    REQUIRE(wheel.arm(id, 100));
    REQUIRE(wheel.is_armed(id));
    REQUIRE(wheel.deadline(id) == 100);
    REQUIRE(wheel.armed_count() == 1);
    REQUIRE(wheel.disarm(id));
    REQUIRE_FALSE(wheel.disarm(id));
    REQUIRE_FALSE(wheel.is_armed(id));
    REQUIRE(wheel.armed_count() == 0);

    SECTION("when <= elapsed() is refused and leaves the entry disarmed") {
        REQUIRE_FALSE(wheel.arm(id, 0));
        REQUIRE(poll_to(wheel, 50).empty());
        REQUIRE(wheel.elapsed() == 50);
        REQUIRE_FALSE(wheel.arm(id, 49));
        REQUIRE_FALSE(wheel.arm(id, 50));
        REQUIRE_FALSE(wheel.is_armed(id));
        REQUIRE(wheel.arm(id, 51));
        // Re-arming an armed entry with a due deadline disarms it.
        REQUIRE_FALSE(wheel.arm(id, 50));
        REQUIRE_FALSE(wheel.is_armed(id));
        REQUIRE(wheel.armed_count() == 0);
        REQUIRE(wheel.next_deadline() == end_of_time);
    }

    SECTION("re-arming an armed entry moves it") {
        REQUIRE(wheel.arm(id, 5000));
        REQUIRE(wheel.arm(other, 20));
        REQUIRE(wheel.arm(id, 10));
        REQUIRE(wheel.armed_count() == 2);
        REQUIRE(poll_to(wheel, 10) == std::vector<std::uint32_t>{id});
        REQUIRE(poll_to(wheel, 10'000) == std::vector<std::uint32_t>{other});
        REQUIRE(wheel.armed_count() == 0);
    }

    SECTION("releasing an armed entry disarms it") {
        REQUIRE(wheel.arm(id, 10));
        REQUIRE(wheel.arm(other, 10));
        wheel.release(id);
        REQUIRE(wheel.armed_count() == 1);
        REQUIRE(poll_to(wheel, 10) == std::vector<std::uint32_t>{other});
    }

    SECTION("a fired entry is disarmed, keeps its deadline, and can be armed again") {
        REQUIRE(wheel.arm(id, 70));
        REQUIRE(poll_to(wheel, 100) == std::vector<std::uint32_t>{id});
        REQUIRE_FALSE(wheel.is_armed(id));
        REQUIRE(wheel.deadline(id) == 70);
        REQUIRE(wheel.arm(id, 101));
        REQUIRE(poll_to(wheel, 101) == std::vector<std::uint32_t>{id});
    }
}

TEST_CASE("next_deadline is UINT64_MAX when nothing is armed and exact for a level-0 entry",
          "[timer_wheel]") {
    std::vector<wheel_node> nodes(4);
    timer_wheel wheel(nodes);
    REQUIRE(wheel.next_deadline() == end_of_time);
    const std::uint32_t a = wheel.allocate();
    const std::uint32_t b = wheel.allocate();

    REQUIRE(wheel.arm(a, 10));
    REQUIRE(wheel.next_deadline() == 10);
    REQUIRE(wheel.arm(b, 5));
    REQUIRE(wheel.next_deadline() == 5);
    REQUIRE(wheel.disarm(b));
    REQUIRE(wheel.next_deadline() == 10);
    REQUIRE(poll_to(wheel, 100) == std::vector<std::uint32_t>{a});
    REQUIRE(wheel.next_deadline() == end_of_time);

    // elapsed is 100 = 64 + 36: 120 is in the same 64-tick lap, level 0.
    REQUIRE(wheel.arm(a, 120));
    REQUIRE(wheel.next_deadline() == 120);
    // 130 is in the next lap, level 1: the wheel may wake early, never late.
    REQUIRE(wheel.arm(b, 130));
    REQUIRE(wheel.next_deadline() == 120);
    REQUIRE(wheel.disarm(a));
    REQUIRE(wheel.next_deadline() > 100);
    REQUIRE(wheel.next_deadline() <= 130);
}

TEST_CASE("an entry fires at its deadline, not a tick before, at every level and past max_distance",
          "[timer_wheel]") {
    // Where elapsed starts: 0, in the top level's last slot, a tick before its
    // lap ends, and 2^41 before UINT64_MAX, so the longest distances below
    // saturate to a deadline of UINT64_MAX. (Not further: a poll re-places a
    // far entry once every max_distance ticks it moves time, so crossing 2^64
    // ticks in one test would take 2^29 stops.)
    const std::uint64_t start =
        GENERATE(as<std::uint64_t>{}, 0, (std::uint64_t{1} << 36) - (std::uint64_t{1} << 30) + 5,
                 (std::uint64_t{1} << 36) - 1, end_of_time - (std::uint64_t{1} << 41));
    const std::uint64_t distance =
        GENERATE(as<std::uint64_t>{}, 1, 2, 63, 64, 65, 4095, 4096, 4097, 100'000,
                 (std::uint64_t{1} << 30) + 7, far_away - 1, far_away, far_away + 1, 2 * far_away,
                 (std::uint64_t{1} << 40) + 3, std::uint64_t{1} << 42);
    CAPTURE(start, distance);

    std::vector<wheel_node> nodes(2);
    timer_wheel wheel(nodes);
    REQUIRE(poll_to(wheel, start).empty());
    REQUIRE(wheel.elapsed() == start);
    const std::uint32_t id = wheel.allocate();
    const std::uint64_t when = saturating_add(start, distance);
    REQUIRE(wheel.arm(id, when));

    SECTION("polling a tick before fires nothing; polling at the deadline fires it") {
        REQUIRE(poll_to(wheel, when - 1).empty());
        REQUIRE(wheel.elapsed() == when - 1);
        REQUIRE(wheel.is_armed(id));
        REQUIRE(wheel.next_deadline() <= when);
        REQUIRE(poll_to(wheel, when) == std::vector<std::uint32_t>{id});
        REQUIRE(wheel.elapsed() == when);
    }

    SECTION("stepping from one next_deadline() to the next reaches it exactly") {
        int steps = 0;
        std::vector<std::uint32_t> fired;
        while (fired.empty()) {
            const std::uint64_t next = wheel.next_deadline();
            REQUIRE(next >= wheel.elapsed());
            REQUIRE(next <= when);
            fired = poll_to(wheel, next);
            REQUIRE((fired.empty() || next == when));
            REQUIRE(++steps < 2000);
        }
        REQUIRE(fired == std::vector<std::uint32_t>{id});
        REQUIRE(wheel.next_deadline() == end_of_time);
    }
}

TEST_CASE("poll stops at its limit and resumes without losing or reordering", "[timer_wheel]") {
    std::vector<wheel_node> nodes(16);
    timer_wheel wheel(nodes);
    const std::vector<std::uint32_t> ids = allocate_n(wheel, 10);
    // Deadlines at level 0 and level 1, four of them equal.
    const std::uint64_t deadlines[] = {71, 70, 5000, 70, 71, 5000, 70, 70, 71, 5000};
    for (std::size_t i = 0; i < ids.size(); ++i) {
        REQUIRE(wheel.arm(ids[i], deadlines[i]));
    }
    const std::vector<std::uint32_t> expected = {ids[1], ids[3], ids[6], ids[7], ids[0],
                                                 ids[4], ids[8], ids[2], ids[5], ids[9]};

    bool done = false;
    std::vector<std::uint32_t> fired = poll_once(wheel, 6000, 3, done);
    REQUIRE_FALSE(done);
    REQUIRE(fired.size() == 3);
    REQUIRE(wheel.elapsed() == 70);
    REQUIRE(wheel.armed_count() == 7);
    REQUIRE(wheel.next_deadline() == 70);

    REQUIRE(poll_once(wheel, 6000, 0, done).empty());
    REQUIRE_FALSE(done);
    // A poll short of the next deadline has nothing to do.
    REQUIRE(poll_once(wheel, 60, 5, done).empty());
    REQUIRE(done);

    // Armed while stopped: later than elapsed, so it takes its place in order.
    const std::uint32_t late = wheel.allocate();
    REQUIRE(wheel.arm(late, 71));

    done = false;
    while (!done) {
        const std::vector<std::uint32_t> more = poll_once(wheel, 6000, 2, done);
        REQUIRE(more.size() <= 2);
        fired.insert(fired.end(), more.begin(), more.end());
    }
    std::vector<std::uint32_t> with_late = expected;
    with_late.insert(with_late.begin() + 7, late);
    REQUIRE(fired == with_late);
    REQUIRE(wheel.elapsed() == 6000);
    REQUIRE(wheel.armed_count() == 0);
}

TEST_CASE("entries with equal deadlines fire in the order they were armed, near and far", "[timer_wheel]") {
    std::vector<wheel_node> nodes(16);
    timer_wheel wheel(nodes);
    std::vector<std::uint32_t> armed;
    auto arm_next = [&](std::uint64_t when) {
        const std::uint32_t id = wheel.allocate();
        REQUIRE(wheel.arm(id, when));
        armed.push_back(id);
        return id;
    };

    SECTION("near: armed from different levels as elapsed closes in") {
        const std::uint64_t when = 300'000;
        for (const std::uint64_t now : {0u, 1000u, 262'143u, 262'144u, 299'000u, 299'990u, 299'999u}) {
            REQUIRE(poll_to(wheel, now).empty());
            arm_next(when);
        }
        REQUIRE(poll_to(wheel, when) == armed);
    }

    SECTION("far: armed on the grid, at max_distance, while poll is stopped at a stop on the way") {
        // Grid points of `when`: 100, D + 100, 2D + 100, ...
        const std::uint64_t when = 5 * far_away + 100;
        std::vector<std::uint32_t> near;
        near.push_back(wheel.allocate());
        near.push_back(wheel.allocate());
        near.push_back(wheel.allocate());
        REQUIRE(wheel.arm(near[0], 100));
        REQUIRE(wheel.arm(near[1], 100));
        arm_next(when); // its first stop is tick 100, behind near[0] and near[1]
        REQUIRE(wheel.arm(near[2], 100));

        bool done = false;
        REQUIRE(poll_once(wheel, 100, 1, done) == std::vector<std::uint32_t>{near[0]});
        REQUIRE_FALSE(done);
        arm_next(when); // joins the first one's stop, which poll has not reached yet
        REQUIRE(poll_to(wheel, 100) == std::vector<std::uint32_t>{near[1], near[2]});

        REQUIRE(poll_to(wheel, far_away + 100).empty());
        arm_next(when); // exactly on a grid point
        REQUIRE(wheel.next_deadline() == wheel.elapsed());
        REQUIRE(poll_to(wheel, 3 * far_away).empty());
        arm_next(when); // between grid points
        REQUIRE(poll_to(wheel, when - far_away).empty());
        arm_next(when); // exactly max_distance ahead
        REQUIRE(poll_to(wheel, when - far_away + 1).empty());
        arm_next(when); // just inside max_distance: placed directly
        REQUIRE(poll_to(wheel, when - 1).empty());
        arm_next(when);
        REQUIRE(poll_to(wheel, when) == armed);
    }
}

TEST_CASE("a wheel of one node", "[timer_wheel]") {
    std::vector<wheel_node> nodes(1);
    timer_wheel wheel(nodes);
    REQUIRE(wheel.capacity() == 1);
    const std::uint32_t id = wheel.allocate();
    REQUIRE(id == 0);
    REQUIRE(wheel.allocate() == timer_wheel::npos);
    REQUIRE(wheel.arm(id, 5));
    REQUIRE(poll_to(wheel, 4).empty());
    REQUIRE(poll_to(wheel, 5) == std::vector<std::uint32_t>{0});
    REQUIRE(wheel.arm(id, 5 + far_away * 3));
    REQUIRE(poll_to(wheel, end_of_time) == std::vector<std::uint32_t>{0});
    wheel.release(id);
    REQUIRE(wheel.allocate() == 0);

    std::span<wheel_node> none;
    timer_wheel empty(none);
    REQUIRE(empty.capacity() == 0);
    REQUIRE(empty.allocate() == timer_wheel::npos);
    REQUIRE(empty.next_deadline() == end_of_time);
}

TEST_CASE("a wheel of 20,000 nodes fires every entry once, in deadline order", "[timer_wheel]") {
    constexpr std::size_t count = 20'000;
    std::vector<wheel_node> nodes(count);
    timer_wheel wheel(nodes);
    const std::vector<std::uint32_t> ids = allocate_n(wheel, count);
    REQUIRE(wheel.allocate() == timer_wheel::npos);

    std::mt19937_64 rng(20'000);
    std::vector<std::uint64_t> when_of(count);
    for (const std::uint32_t id : ids) {
        const bool far = rng() % 100 == 0;
        when_of[id] = 1 + (far ? rng() % (std::uint64_t{1} << 38) : rng() % 1'000'000);
        REQUIRE(wheel.arm(id, when_of[id]));
    }
    REQUIRE(wheel.armed_count() == count);

    std::vector<int> times_fired(count, 0);
    std::uint64_t last = 0;
    std::uint64_t now = 0;
    bool order_ok = true;
    while (wheel.armed_count() > 0) {
        now = saturating_add(now, rng() % 2 == 0 ? rng() % 5000 : rng() % (std::uint64_t{1} << 33));
        bool done = false;
        while (!done) {
            done = wheel.poll(now, 1000, [&](std::uint32_t id) {
                ++times_fired[id];
                order_ok = order_ok && when_of[id] >= last && when_of[id] <= now;
                last = when_of[id];
            });
        }
        REQUIRE(order_ok);
        REQUIRE(wheel.next_deadline() > now);
    }
    REQUIRE(std::all_of(times_fired.begin(), times_fired.end(), [](int n) { return n == 1; }));

    for (const std::uint32_t id : ids) {
        wheel.release(id);
    }
    REQUIRE(allocate_n(wheel, count).size() == count);
}

namespace {

// The reference: armed entries in firing order (deadline, then arm order).
struct reference_wheel {
    using entry = std::tuple<std::uint64_t, std::uint64_t, std::uint32_t>; // when, arm sequence, id

    std::set<entry> order;
    std::vector<std::optional<entry>> armed_entry; // by id
    std::vector<std::uint32_t> in_use;             // allocated ids
    std::uint64_t next_sequence = 0;

    explicit reference_wheel(std::size_t capacity) : armed_entry(capacity) {}

    void arm(std::uint32_t id, std::uint64_t when) {
        disarm(id);
        const entry e{when, next_sequence++, id};
        order.insert(e);
        armed_entry[id] = e;
    }
    bool disarm(std::uint32_t id) {
        if (!armed_entry[id]) {
            return false;
        }
        order.erase(*armed_entry[id]);
        armed_entry[id].reset();
        return true;
    }
    // What a poll to `now` stopping after `limit` calls should fire.
    std::vector<std::uint32_t> due(std::uint64_t now, std::size_t limit) const {
        std::vector<std::uint32_t> ids;
        for (auto it = order.begin(); it != order.end() && std::get<0>(*it) <= now && ids.size() < limit;
             ++it) {
            ids.push_back(std::get<2>(*it));
        }
        return ids;
    }
    std::uint64_t earliest() const { return order.empty() ? end_of_time : std::get<0>(*order.begin()); }
};

// A distance ahead of elapsed: mostly within a few million ticks, sometimes
// around max_distance, sometimes far past it (up to 2^44: see the start
// near UINT64_MAX below for deadlines that saturate).
std::uint64_t random_distance(std::mt19937_64& rng) {
    const auto kind = rng() % 100;
    if (kind < 10) {
        return rng() % 2; // 0 is refused
    }
    if (kind < 40) {
        return 1 + rng() % 64;
    }
    if (kind < 65) {
        return 1 + rng() % 5000;
    }
    if (kind < 90) {
        return 1 + rng() % 4'000'000;
    }
    if (kind < 94) {
        return far_away - 2 + rng() % 5;
    }
    return (std::uint64_t{1} << 36) + rng() % (std::uint64_t{1} << 43);
}

// How far a poll moves time: small steps, big jumps, and huge ones.
std::uint64_t random_jump(std::mt19937_64& rng) {
    const auto kind = rng() % 100;
    if (kind < 30) {
        return rng() % 4;
    }
    if (kind < 60) {
        return rng() % 100;
    }
    if (kind < 80) {
        return rng() % 100'000;
    }
    if (kind < 90) {
        return rng() % 10'000'000;
    }
    if (kind < 97) {
        return (std::uint64_t{1} << 30) + rng() % (std::uint64_t{1} << 38);
    }
    return (std::uint64_t{1} << 40) + rng() % (std::uint64_t{1} << 42);
}

} // namespace

TEST_CASE("the wheel fires exactly what a sorted reference says, in its order (randomized)",
          "[timer_wheel]") {
    const std::uint64_t seed = GENERATE(as<std::uint64_t>{}, 1, 2, 3);
    const std::uint64_t start =
        GENERATE(as<std::uint64_t>{}, 0, (std::uint64_t{1} << 36) - 3000, (std::uint64_t{1} << 62) + 12'345,
                 end_of_time - (std::uint64_t{1} << 49));
    CAPTURE(seed, start);
    constexpr std::size_t capacity = 96;
    std::vector<wheel_node> nodes(capacity);
    timer_wheel wheel(nodes);
    reference_wheel ref(capacity);
    std::mt19937_64 rng(seed);
    REQUIRE(poll_to(wheel, start).empty());

    auto random_in_use = [&]() { return ref.in_use[static_cast<std::size_t>(rng() % ref.in_use.size())]; };

    // One arm, disarm, allocate or release, checked against the reference.
    auto mutate = [&]() {
        const auto kind = rng() % 100;
        if (kind < 15 || ref.in_use.empty()) {
            const std::uint32_t id = wheel.allocate();
            if (ref.in_use.size() == capacity) {
                REQUIRE(id == timer_wheel::npos);
            } else {
                REQUIRE(id < capacity);
                REQUIRE(std::find(ref.in_use.begin(), ref.in_use.end(), id) == ref.in_use.end());
                REQUIRE_FALSE(wheel.is_armed(id));
                ref.in_use.push_back(id);
            }
        } else if (kind < 25) {
            const auto at = static_cast<std::size_t>(rng() % ref.in_use.size());
            const std::uint32_t id = ref.in_use[at];
            wheel.release(id);
            ref.disarm(id);
            ref.in_use.erase(ref.in_use.begin() + static_cast<std::ptrdiff_t>(at));
        } else if (kind < 85) {
            const std::uint32_t id = random_in_use();
            const std::uint64_t when = saturating_add(wheel.elapsed(), random_distance(rng));
            const bool armed = wheel.arm(id, when);
            REQUIRE(armed == (when > wheel.elapsed()));
            REQUIRE(wheel.deadline(id) == when);
            if (armed) {
                ref.arm(id, when);
            } else {
                ref.disarm(id);
            }
        } else {
            const std::uint32_t id = random_in_use();
            REQUIRE(wheel.disarm(id) == ref.disarm(id));
        }
    };

    auto check_state = [&]() {
        REQUIRE(wheel.armed_count() == ref.order.size());
        const std::uint64_t next = wheel.next_deadline();
        if (ref.order.empty()) {
            REQUIRE(next == end_of_time);
        } else {
            REQUIRE(next >= wheel.elapsed());
            REQUIRE(next <= ref.earliest());
        }
        if (!ref.in_use.empty()) {
            const std::uint32_t id = random_in_use();
            REQUIRE(wheel.is_armed(id) == ref.armed_entry[id].has_value());
        }
    };

    const std::uint64_t operations = weft_test::scaled(20'000);
    std::uint64_t fired_total = 0;
    for (std::uint64_t op = 0; op < operations; ++op) {
        if (rng() % 100 < 70) {
            mutate();
            check_state();
            continue;
        }
        // Poll to `now` in calls of at most `limit` fires (0 at times),
        // mutating between calls as a driver does with its lock dropped.
        const std::uint64_t before = wheel.elapsed();
        const std::uint64_t now = saturating_add(before, random_jump(rng));
        std::uint64_t last_fired = 0;
        for (int call = 0;; ++call) {
            REQUIRE(call < 10'000);
            const std::size_t limit = rng() % 5 == 0 ? no_limit : static_cast<std::size_t>(rng() % 6);
            const std::vector<std::uint32_t> expected = ref.due(now, limit);
            bool done = false;
            const std::vector<std::uint32_t> fired = poll_once(wheel, now, limit, done);
            REQUIRE(fired == expected); // never early, never late, in order
            for (const std::uint32_t id : fired) {
                REQUIRE(ref.armed_entry[id]);
                REQUIRE(std::get<0>(*ref.armed_entry[id]) >= last_fired);
                last_fired = std::get<0>(*ref.armed_entry[id]);
                REQUIRE_FALSE(wheel.is_armed(id));
                ref.disarm(id);
            }
            fired_total += fired.size();
            REQUIRE(done == ref.due(now, 1).empty());
            if (done) {
                REQUIRE(wheel.elapsed() == std::max(before, now));
                check_state();
                break;
            }
            // Stopped at the limit: elapsed sits at the next deadline to fire.
            REQUIRE(wheel.elapsed() == ref.earliest());
            check_state();
            if (rng() % 2 == 0) {
                mutate();
                check_state();
            }
        }
    }
    // Whatever is left fires by the end of time, in order.
    const std::vector<std::uint32_t> rest = ref.due(end_of_time, no_limit);
    REQUIRE(poll_to(wheel, end_of_time) == rest);
    REQUIRE(wheel.armed_count() == 0);
    REQUIRE(fired_total + rest.size() > operations / 10);
}

TEST_CASE("take_from_next offers the next level-0 slot's entries and disarms those taken", "[timer_wheel]") {
    std::vector<wheel_node> nodes(8);
    timer_wheel wheel(nodes);
    const std::uint32_t a = wheel.allocate();
    const std::uint32_t b = wheel.allocate();
    const std::uint32_t c = wheel.allocate();
    REQUIRE(wheel.arm(a, 5));
    REQUIRE(wheel.arm(b, 5));
    REQUIRE(wheel.arm(c, 7));
    std::vector<std::uint32_t> offered;
    const std::size_t taken = wheel.take_from_next(64, [&](std::uint32_t id) {
        offered.push_back(id);
        return id == b;
    });
    REQUIRE(taken == 1);
    REQUIRE(offered == std::vector<std::uint32_t>{a, b}); // tick 5 only, in arm order
    REQUIRE_FALSE(wheel.is_armed(b));
    REQUIRE(wheel.is_armed(a));
    REQUIRE(wheel.armed_count() == 2);
    // `scan` bounds how many are looked at.
    offered.clear();
    REQUIRE(wheel.take_from_next(0, [&](std::uint32_t id) {
        offered.push_back(id);
        return true;
    }) == 0);
    REQUIRE(offered.empty());
    // A poll still fires what is left, at its tick.
    std::vector<std::uint32_t> fired;
    REQUIRE(wheel.poll(7, 8, [&](std::uint32_t id) { fired.push_back(id); }));
    REQUIRE(fired == std::vector<std::uint32_t>{a, c});
    // The next slot on a higher level is a cascade point: nothing is offered.
    const std::uint32_t far = wheel.allocate();
    REQUIRE(wheel.arm(far, 1000));
    REQUIRE(wheel.take_from_next(64, [&](std::uint32_t) { return true; }) == 0);
    REQUIRE(wheel.is_armed(far));
}
