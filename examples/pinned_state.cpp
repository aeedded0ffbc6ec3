// Pinned tasks: thread-affine state without locks. A "bus" handle that must
// only be used from the thread that opened it (as many C drivers and GUI or
// scripting handles demand) lives in a task pinned to worker 0 with
// weft::spawn_pinned. Helpers it starts with weft::spawn_local share the
// handle without a mutex, because they run on that worker too; tasks on any
// worker send it requests over a channel and get replies on a oneshot.
//
//   usage: pinned_state
#include <weft/weft.hpp>

#include <cstdio>
#include <thread>
#include <vector>

// Stands in for a driver handle that checks which thread uses it.
class bus {
public:
    int transfer(int value) {
        if (std::this_thread::get_id() != m_owner) {
            ++m_wrong_thread; // a real driver would corrupt state here
        }
        ++m_transfers;
        return value * 2;
    }
    int transfers() const { return m_transfers; }
    int wrong_thread() const { return m_wrong_thread; }

private:
    std::thread::id m_owner = std::this_thread::get_id();
    int m_transfers = 0;
    int m_wrong_thread = 0;
};

struct request {
    int value = 0;
    weft::oneshot_sender<int> reply;
};

weft::task<void> poll_sensor(bus* b, int sensor) {
    for (int i = 0; i < 5; ++i) {
        b->transfer(sensor); // no lock: every task touching `b` runs on this worker
        co_await weft::yield_now();
    }
}

// Owns the bus; serves requests until the channel closes.
weft::task<int> bus_service(weft::channel<request, 16>* requests) {
    bus b;
    std::printf("bus opened on worker %u\n", *weft::current_worker());
    std::vector<weft::join_handle<void>> pollers;
    for (int sensor = 0; sensor < 3; ++sensor) {
        pollers.push_back(weft::spawn_local(poll_sensor(&b, sensor))); // same worker, same thread
    }
    while (auto req = co_await requests->recv()) {
        req->reply.send(b.transfer(req->value));
    }
    for (auto& p : pollers) {
        co_await p;
    }
    std::printf("bus closed on worker %u after %d transfers, %d from a wrong thread\n",
                *weft::current_worker(), b.transfers(), b.wrong_thread());
    co_return b.wrong_thread();
}

// Any task, on any worker, asks the bus for a transfer.
weft::task<int> client(weft::channel<request, 16>* requests, int value) {
    auto [tx, rx] = weft::make_oneshot<int>();
    request req{value, std::move(tx)};
    (void)co_await requests->send(std::move(req));
    auto answer = co_await rx;
    co_return answer ? *answer : -1;
}

weft::task<int> run() {
    weft::channel<request, 16> requests;
    auto service = weft::spawn_pinned(0, bus_service(&requests));
    std::vector<weft::join_handle<int>> clients;
    for (int i = 1; i <= 20; ++i) {
        clients.push_back(weft::spawn(client(&requests, i)));
    }
    int sum = 0;
    for (auto& c : clients) {
        sum += co_await c;
    }
    requests.close();
    const int wrong = co_await service;
    std::printf("20 clients on any worker got replies summing to %d\n", sum);
    co_return wrong;
}

int main() {
    weft::executor<2, 64> ex;
    return ex.block_on(run()) == 0 ? 0 : 1;
}
