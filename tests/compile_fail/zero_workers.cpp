// expect: an executor needs at least one worker thread
#include <weft/weft.hpp>

int main() { weft::executor<0> ex; }
