// expect: the local queue size must be a power of two
#include <weft/weft.hpp>

int main() { weft::executor<2, 100> ex; }
