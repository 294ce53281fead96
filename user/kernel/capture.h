/* User space's half of bpf/capture.h, which the heap and the page programs
 * share: the per-CPU sampling countdowns and the scratch slots events are
 * built in. */
#ifndef MW_CAPTURE_H
#define MW_CAPTURE_H

#include <stdint.h>

struct bpf_map;

/* Bytes of one scratch slot: its busy flag, the event, the stack. */
uint32_t capture_scratch_bytes(uint32_t stack_mode, uint32_t stack_bytes);
/* Sizes the scratch map before load: MW_SCRATCH_SLOTS slots per CPU. 0 or -errno. */
int capture_size_scratch(struct bpf_map *scratch, uint32_t stack_mode, uint32_t stack_bytes);
/* Every CPU starts with its own Exp(rate) countdown in the cpu_state map:
 * starting at 0 would sample the first event on each CPU. 0 or -errno. */
int capture_seed_countdowns(int cpu_state_fd, uint64_t rate);

#endif
