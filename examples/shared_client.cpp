// A client that needs async set-up (a database connection, an MQTT
// session...), shared by many tasks. Three ways to set it up:
//   1. before the work starts: main() connects with block_on, then the
//      tasks borrow the client, which outlives them;
//   2. lazily, by whichever task needs it first: weft::once_cell runs the
//      connect exactly once, however many tasks ask at the same time;
//   3. owned by one service task that the others send requests to over a
//      weft::channel, each request carrying a weft::oneshot for its reply.
// And what not to do: block_on inside a task raises a weft::error saying
// what to do instead (this example needs exceptions to show it).
//
//   ./shared_client
#include <weft/weft.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <vector>

using namespace std::chrono_literals;

namespace {

using executor = weft::executor<2>;

std::atomic<int> connects{0}; // how many times a client was set up

// A fake client: connecting takes 20 ms, a query answers twice its input.
class client {
public:
    static weft::task<client> connect(const char* name) {
        co_await weft::sleep_for(20ms); // the handshake
        connects.fetch_add(1);
        std::printf("  (client '%s' connected)\n", name);
        co_return client(name);
    }

    weft::task<int> query(int x) const {
        co_await weft::yield_now(); // a round trip
        co_return 2 * x;
    }

    const char* name() const noexcept { return m_name; }

private:
    explicit client(const char* name) : m_name(name) {}
    const char* m_name;
};

// Runs `query(i)` for i < n as n concurrent tasks; returns the sum of the answers.
template <class Query>
weft::task<int> query_all(int n, Query query) {
    std::vector<weft::join_handle<int>> handles;
    for (int i = 0; i < n; ++i) {
        handles.push_back(weft::spawn(query(i)));
    }
    int sum = 0;
    for (auto& handle : handles) {
        sum += co_await handle;
    }
    co_return sum;
}

// 1. Set up first, with block_on; the tasks borrow the client.
void set_up_first(executor& ex) {
    const client c = ex.block_on(client::connect("set up first"));
    const int sum = ex.block_on(query_all(20, [&c](int i) { return c.query(i); }));
    std::printf("1. block_on first: 20 queries to '%s', sum %d\n", c.name(), sum);
}

// 2. Lazily: the first task to ask connects, the others wait for it.
weft::once_cell<client> lazy_client;

weft::task<int> lazy_query(int i) {
    client& c = co_await lazy_client.get_or_init([] { return client::connect("lazy"); });
    co_return co_await c.query(i);
}

void set_up_lazily(executor& ex) {
    const int before = connects.load();
    const int sum = ex.block_on(query_all(20, lazy_query));
    std::printf("2. once_cell: 20 concurrent queries, sum %d, client initialised %d time(s)\n", sum,
                connects.load() - before);
}

// 3. A service task owns the client; requests come over a channel.
struct request {
    int x;
    weft::oneshot_sender<int> reply;
};
using request_channel = weft::channel<request, 8>;

weft::task<> client_service(request_channel& requests) {
    const client c = co_await client::connect("service"); // requests queue up meanwhile
    while (auto r = co_await requests.recv()) {           // until closed and drained
        (void)r->reply.send(co_await c.query(r->x));      // the asker may have given up
    }
}

weft::task<int> ask(request_channel& requests, int x) {
    auto [reply, answer] = weft::make_oneshot<int>();
    // Named, not a braced temporary inside the co_await: g++ 12 destroys
    // such an aggregate's members twice there (clang is fine).
    request r{x, std::move(reply)};
    if (!co_await requests.send(std::move(r))) {
        co_return 0; // the service has stopped
    }
    co_return (co_await answer).value_or(0);
}

weft::task<int> use_service() {
    request_channel requests;
    auto service = weft::spawn(client_service(requests));
    const int sum = co_await query_all(20, [&requests](int i) { return ask(requests, i); });
    requests.close(); // the service drains what is left and returns
    co_await service;
    co_return sum;
}

// Not this way: block_on would block the worker that runs this task.
weft::task<int> block_on_inside_a_task(executor& ex) {
    try {
        (void)ex.block_on(client::connect("nested"));
    } catch (const weft::error& e) {
        std::printf("block_on inside a task: weft::error, %s\n  what(): %s\n",
                    e.code() == weft::errc::nested_runtime ? "errc::nested_runtime" : "unexpected code",
                    e.what());
    }
    const client c = co_await client::connect("awaited"); // instead: co_await the task
    co_return co_await c.query(21);
}

} // namespace

int main() {
    executor ex;
    set_up_first(ex);
    set_up_lazily(ex);
    std::printf("3. service task: 20 requests over a channel, sum %d\n", ex.block_on(use_service()));
    std::printf("co_await instead of block_on: query(21) = %d\n", ex.block_on(block_on_inside_a_task(ex)));
    return 0;
}
