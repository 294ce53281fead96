/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Latency histogram buckets (user/hist.c reads them back). */
#ifndef MW_BPF_HIST_H
#define MW_BPF_HIST_H

/* 4 buckets per power of two (see MW_HIST_BUCKETS). */
static __always_inline __u32 bucket_of(__u64 ns)
{
	__u64 v = ns;
	__u32 log = 0;

	if (v < 4)
		return v;
	if (v >> 32) { log += 32; v >>= 32; }
	if (v >> 16) { log += 16; v >>= 16; }
	if (v >> 8) { log += 8; v >>= 8; }
	if (v >> 4) { log += 4; v >>= 4; }
	if (v >> 2) { log += 2; v >>= 2; }
	if (v >> 1) { log += 1; }
	__u32 b = log * 4 + ((ns >> (log - 2)) & 3);
	return b < MW_HIST_BUCKETS ? b : MW_HIST_BUCKETS - 1;
}

#endif /* MW_BPF_HIST_H */
