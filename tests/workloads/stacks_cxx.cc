// C++ allocations through libstdc++'s operator new: 1002 longs = 8016 bytes.
#include <vector>

#include "stacks.h"

static std::vector<std::vector<long> *> kept;

extern "C" __attribute__((noinline)) void cxx_build_vector(void)
{
	for (int i = 0; i < STACK_ALLOCS; i++) {
		auto *v = new std::vector<long>();
		v->reserve(1002);
		kept.push_back(v);
	}
}
