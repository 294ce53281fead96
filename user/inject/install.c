#include "inject/install.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent/agent_syms.h"
#include "inject/tracee.h"

#define PRELUDE_MAX 32
#define TRAMP_MAX 64
#define BLOCK_BYTES (PRELUDE_MAX + TRAMP_MAX + D_SIZE)

static uint64_t stub_for(const struct hook_site *s)
{
	if (s->flags & MWA_F_WRAP)
		return SYM_mwa_stub_slow;
	switch (s->layout) {
	case MW_LAYOUT_SIZE0:
		return SYM_mwa_stub_size0;
	case MW_LAYOUT_SIZE1:
		return SYM_mwa_stub_size1;
	case MW_LAYOUT_MEMALIGN_OUT:
		return SYM_mwa_stub_size2;
	case MW_LAYOUT_CALLOC:
		return SYM_mwa_stub_calloc;
	case MW_LAYOUT_REALLOC:
		return SYM_mwa_stub_realloc;
	case MW_LAYOUT_FREE:
		return SYM_mwa_stub_free;
	default:
		return SYM_mwa_stub_slow;
	}
}

/* The block of site s placed at address at: prelude, original, descriptor. */
static int build_block(const struct instance *in, const struct hook_plan *plan, struct hook_site *s, uint64_t at,
		       uint8_t out[BLOCK_BYTES])
{
	uint64_t tramp = at + PRELUDE_MAX, desc_at = tramp + TRAMP_MAX;
	struct mwa_desc desc = {
		.tramp = tramp,
		.slots = instance_slots(in),
		.live = instance_live(in),
		.live_mask = (in->live_buckets - 1) << 6,
		.state = instance_state(in),
		.control = in->control,
		.entry = s->entry,
		.fn = s->fn,
		.layout = s->layout,
		.flags = s->flags,
		.twin_arg = s->twin_arg,
	};
	ssize_t n;

	memset(out, 0xcc, BLOCK_BYTES);
	n = detour_prelude(&s->d, at, desc_at, instance_sym(in, stub_for(s)), out, PRELUDE_MAX);
	if (n < 0)
		return (int)n;
	n = detour_original(&s->d, s->entry, tramp, out + PRELUDE_MAX, TRAMP_MAX);
	if (n < 0)
		return (int)n;
	if (s->flags & MWA_F_THROWS)
		desc.twin = plan->sites[s->twin].tramp;
	memcpy(out + PRELUDE_MAX + TRAMP_MAX, &desc, sizeof(desc));
	s->code = at;
	s->code_len = BLOCK_BYTES;
	s->tramp = tramp;
	s->desc = desc_at;
	return detour_patch(&s->d, s->entry, at, s->patch);
}

/* A block this entry had in an earlier run, with exactly these bytes. */
static bool reuse_block(pid_t pid, const struct instance *in, const struct hook_plan *plan, struct hook_site *s)
{
	const struct mwa_header *h = &in->hdr;
	uint8_t want[BLOCK_BYTES], have[BLOCK_BYTES];

	for (uint32_t i = 0; i < h->ncodes && i < MWA_MAX_CODES; i++) {
		uint64_t at = in->base + h->codes[i].off;
		if (h->codes[i].entry != s->entry || h->codes[i].len != BLOCK_BYTES)
			continue;
		if (build_block(in, plan, s, at, want) || proc_mem_read(pid, at, have, sizeof(have)))
			continue;
		if (!memcmp(want, have, sizeof(want)))
			return true;
	}
	return false;
}

static int place_block(pid_t pid, struct instance *in, const struct hook_plan *plan, struct hook_site *s, char *why,
		       size_t why_len)
{
	struct mwa_header *h = &in->hdr;
	uint8_t block[BLOCK_BYTES];
	int err;

	if (reuse_block(pid, in, plan, s))
		return 0;
	if (h->patch_used + BLOCK_BYTES > MWA_PATCH_BYTES || h->ncodes == MWA_MAX_CODES) {
		snprintf(why, why_len, "the agent's patch area is full (%u bytes used by earlier runs)", h->patch_used);
		return -ENOSPC;
	}
	err = build_block(in, plan, s, instance_patch_area(in) + h->patch_used, block);
	if (err) {
		snprintf(why, why_len, "%s: the agent at 0x%llx is out of reach (%s)", s->name,
			 (unsigned long long)in->base, strerror(-err));
		return err;
	}
	err = proc_mem_write(pid, s->code, block, sizeof(block));
	if (err) {
		snprintf(why, why_len, "cannot write the agent's code: %s", strerror(-err));
		return err;
	}
	h->codes[h->ncodes++] = (struct mwa_code){ s->entry, (uint32_t)(s->code - in->base), BLOCK_BYTES };
	h->patch_used += BLOCK_BYTES;
	return 0;
}

int install_code(pid_t pid, struct instance *in, struct hook_plan *plan, char *why, size_t why_len)
{
	/* Twins (nothrow variants) first: a throwing new's descriptor holds
	 * its twin's original. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < plan->n; i++) {
			struct hook_site *s = &plan->sites[i];
			if (!!(s->flags & MWA_F_THROWS) != pass)
				continue;
			int err = place_block(pid, in, plan, s, why, why_len);
			if (err)
				return err;
		}
	}
	return instance_write_header(pid, in);
}

/* The entry's bytes are the file's; a uprobe's int3 on the first byte is
 * fine (the kernel runs the file's first instruction, then ours). */
static int check_bytes(struct tracee *t, const struct hook_site *s, char *why, size_t why_len)
{
	size_t len = s->d.len0 + s->d.wlen;
	uint8_t mem[DETOUR_MAX_BYTES];
	int err = tracee_read(t, s->entry, mem, len);

	if (err) {
		snprintf(why, why_len, "%s: cannot read its code: %s", s->name, strerror(-err));
		return err;
	}
	for (size_t i = 0; i < len; i++) {
		if (mem[i] == s->d.bytes[i] || (i == 0 && mem[i] == 0xcc))
			continue;
		snprintf(why, why_len, "%s: byte +%zu is 0x%02x in memory, 0x%02x in the file: another tool has "
			 "patched or probed it", s->name, i, mem[i], s->d.bytes[i]);
		return -EBUSY;
	}
	return 0;
}

static int record_patch(struct instance *in, const struct hook_site *s)
{
	struct mwa_header *h = &in->hdr;
	struct mwa_patch *r;

	if (h->npatches == MWA_MAX_PATCHES)
		return -ENOSPC;
	r = &h->patches[h->npatches++];
	memset(r, 0, sizeof(*r));
	r->at = s->entry + s->d.len0;
	r->entry = s->entry;
	r->code_off = (uint32_t)(s->code - in->base);
	r->code_len = s->code_len;
	r->len = s->d.wlen;
	memcpy(r->orig, s->d.bytes + s->d.len0, s->d.wlen);
	memcpy(r->now, s->patch, s->d.wlen);
	return 0;
}

int install_patch(struct tracee *t, struct instance *in, struct hook_plan *plan, char *why, size_t why_len)
{
	uint32_t before = in->hdr.npatches;
	int err = 0;

	for (size_t i = 0; i < plan->n && !err; i++)
		err = check_bytes(t, &plan->sites[i], why, why_len);
	for (size_t i = 0; i < plan->n && !err; i++) {
		const struct hook_site *s = &plan->sites[i];
		err = tracee_step_out(t, s->entry + s->d.len0, s->entry + s->d.len0 + s->d.wlen);
		if (err)
			snprintf(why, why_len, "%s: a thread would not leave its first bytes", s->name);
	}
	for (size_t i = 0; i < plan->n && !err; i++)
		err = record_patch(in, &plan->sites[i]);
	/* Recorded first: a run killed halfway leaves records a later run
	 * can restore, never a patch it does not know of. */
	if (!err)
		err = instance_write_header(t->pid, in);
	for (size_t i = 0; i < plan->n && !err; i++) {
		const struct hook_site *s = &plan->sites[i];
		err = tracee_write(t, s->entry + s->d.len0, s->patch, s->d.wlen);
		if (err)
			snprintf(why, why_len, "%s: cannot write the patch: %s", s->name, strerror(-err));
	}
	if (err && in->hdr.npatches > before) {
		install_restore(t, in);	/* everything this instance patched goes back */
		if (!why[0])
			snprintf(why, why_len, "too many patched entries");
	}
	return err;
}

int install_restore(struct tracee *t, struct instance *in)
{
	struct mwa_header *h = &in->hdr;
	int restored = 0;

	for (uint32_t i = 0; i < h->npatches && i < MWA_MAX_PATCHES; i++) {
		const struct mwa_patch *r = &h->patches[i];
		uint8_t mem[MWA_PATCH_MAX];
		if (r->len > MWA_PATCH_MAX || tracee_read(t, r->at, mem, r->len))
			continue;
		/* Only bytes still ours: whatever else is there now is not. */
		if (memcmp(mem, r->now, r->len) && memcmp(mem, r->orig, r->len))
			continue;
		if (!tracee_write(t, r->at, r->orig, r->len))
			restored++;
	}
	h->npatches = 0;
	instance_write_header(t->pid, in);
	return restored;
}
