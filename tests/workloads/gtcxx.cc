// C++ ground truth: each site is a noinline function cxx_* allocating with a
// form of operator new whose requested size is known (an array of a type
// with a destructor asks for a cookie: max(8, alignof(T)) bytes more), and
// freeing some with the matching delete (sized, unsized, aligned).
// --manifest F writes the per-site totals, as groundtruth does.
#include <new>

#include "common.h"

#define KEEPN 2048

struct Obj {
	char data[40];
};

struct D {
	char data[24];
	~D() { data[0] = 0; }
};

struct alignas(64) A {
	char data[64];
};

struct alignas(64) AD {
	char data[64];
	~AD() { data[0] = 0; }
};

template <typename T> static T *keep(T *p)
{
	KEEP(p);
	return p;
}

extern "C" NOINLINE void cxx_new_plain(int n, int nfree)
{
	static Obj *ps[KEEPN];
	for (int i = 0; i < n; i++) {
		ps[i] = keep(new Obj);
		note_alloc("cxx_new_plain", sizeof(Obj));
	}
	for (int i = 0; i < nfree; i++) {
		delete ps[i];	/* sized delete */
		note_free("cxx_new_plain", sizeof(Obj));
	}
}

extern "C" NOINLINE void cxx_new_array(int n, int nfree)
{
	static char *ps[KEEPN];
	for (int i = 0; i < n; i++) {
		ps[i] = keep(new char[300]);
		note_alloc("cxx_new_array", 300);
	}
	for (int i = 0; i < nfree; i++) {
		delete[] ps[i];	/* unsized delete[] */
		note_free("cxx_new_array", 300);
	}
}

extern "C" NOINLINE void cxx_new_array_dtor(int n, int nfree)
{
	static D *ps[KEEPN];
	const size_t size = 5 * sizeof(D) + sizeof(size_t);
	for (int i = 0; i < n; i++) {
		ps[i] = keep(new D[5]);
		note_alloc("cxx_new_array_dtor", size);
	}
	for (int i = 0; i < nfree; i++) {
		delete[] ps[i];	/* sized delete[] */
		note_free("cxx_new_array_dtor", size);
	}
}

extern "C" NOINLINE void cxx_new_aligned(int n, int nfree)
{
	static A *ps[KEEPN];
	for (int i = 0; i < n; i++) {
		ps[i] = keep(new A);
		note_alloc("cxx_new_aligned", sizeof(A));
	}
	for (int i = 0; i < nfree; i++) {
		delete ps[i];	/* sized aligned delete */
		note_free("cxx_new_aligned", sizeof(A));
	}
}

extern "C" NOINLINE void cxx_new_aligned_array(int n, int nfree)
{
	static AD *ps[KEEPN];
	const size_t size = 3 * sizeof(AD) + alignof(AD);
	for (int i = 0; i < n; i++) {
		ps[i] = keep(new AD[3]);
		note_alloc("cxx_new_aligned_array", size);
	}
	for (int i = 0; i < nfree; i++) {
		delete[] ps[i];
		note_free("cxx_new_aligned_array", size);
	}
}

extern "C" NOINLINE void cxx_new_nothrow(int n, int nfree)
{
	static Obj *ps[KEEPN];
	for (int i = 0; i < n; i++) {
		ps[i] = keep(new (std::nothrow) Obj);
		note_alloc("cxx_new_nothrow", sizeof(Obj));
	}
	for (int i = 0; i < nfree; i++) {
		delete ps[i];
		note_free("cxx_new_nothrow", sizeof(Obj));
	}
}

extern "C" NOINLINE void cxx_operator_new(int n)
{
	static void *ps[KEEPN];
	for (int i = 0; i < n; i++) {
		ps[i] = keep(::operator new(777));
		note_alloc("cxx_operator_new", 777);
	}
	for (int i = 0; i < n / 2; i++) {
		::operator delete(ps[i]);	/* unsized */
		note_free("cxx_operator_new", 777);
	}
	for (int i = n / 2; i < n * 3 / 4; i++) {
		::operator delete(ps[i], 777);	/* sized */
		note_free("cxx_operator_new", 777);
	}
}

int main(int argc, char **argv)
{
	const char *manifest = flag_value(argc, argv, "--manifest");

	if (has_flag(argc, argv, "--wait"))
		wait_for_go();
	cxx_new_plain(1000, 400);
	cxx_new_array(500, 100);
	cxx_new_array_dtor(300, 100);
	cxx_new_aligned(200, 50);
	cxx_new_aligned_array(100, 20);
	cxx_new_nothrow(100, 0);
	cxx_operator_new(100);
	if (manifest)
		write_manifest(manifest);
	printf("gtcxx: %d sites\n", nsite_totals);
	return 0;
}
