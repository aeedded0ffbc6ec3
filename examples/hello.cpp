// The smallest weft program: spawn a task, await it, print the answer.
// Builds with and without exceptions (CI builds it with -fno-exceptions).
#include <weft/weft.hpp>

#include <cstdio>

weft::task<int> child(int x) {
    co_await weft::yield_now(); // let other tasks run
    co_return 2 * x;
}

weft::task<int> root() {
    auto handle = weft::spawn(child(21)); // runs on any worker
    co_return co_await handle;            // 42
}

int main() {
    weft::executor<2, 256> ex; // 2 workers, 256-slot local queues
    const int answer = ex.block_on(root());
    std::printf("the answer is %d\n", answer);
    return answer == 42 ? 0 : 1;
}
