#ifndef STACKS_H
#define STACKS_H

#define STACK_ALLOCS 10
#define RECURSION_DEPTH 40

#ifdef __cplusplus
extern "C" {
#endif
void cxx_build_vector(void);
void lib_alloc_outer(void);
#ifdef __cplusplus
}
#endif

#endif
