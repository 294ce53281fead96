#include "profile/pprof.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "profile.pb-c.h"
#include "util/array.h"
#include "util/hashmap.h"

typedef Perftools__Profiles__Profile pb_profile;
typedef Perftools__Profiles__ValueType pb_value_type;
typedef Perftools__Profiles__Sample pb_sample;
typedef Perftools__Profiles__Label pb_label;
typedef Perftools__Profiles__Mapping pb_mapping;
typedef Perftools__Profiles__Location pb_location;
typedef Perftools__Profiles__Line pb_line;
typedef Perftools__Profiles__Function pb_function;

/*
 * Mappings, functions and locations live in arrays indexed by id - 1. Their
 * dedup maps use the id as key; id 0 names the "probe" entry being looked up,
 * so a lookup needs no allocation and the eq callbacks compare by content.
 */
struct pprof {
	char **strs;
	size_t nstrs, strs_cap;
	struct hmap str_index;		/* key: char * in strs, value: index */

	pb_value_type *types;
	size_t ntypes, types_cap;
	pb_mapping *maps;
	size_t nmaps, maps_cap;
	struct hmap map_ids;
	pb_function *funcs;
	size_t nfuncs, funcs_cap;
	struct hmap func_ids;
	pb_location *locs;
	size_t nlocs, locs_cap;
	struct hmap loc_ids;
	pb_sample *samples;
	size_t nsamples, samples_cap;
	int64_t *comments;
	size_t ncomments, comments_cap;

	pb_mapping map_probe;
	pb_function func_probe;
	pb_location loc_probe;

	pb_value_type period_type;
	bool has_period_type;
	int64_t period, time_nanos, duration_nanos;
	int64_t drop_frames, keep_frames, default_sample_type;
	int err;			/* sticky -ENOMEM from the void setters */
};

/* ---- dedup keys ---- */

static const pb_mapping *mapping_by_id(const struct pprof *p, uint64_t id)
{
	return id ? &p->maps[id - 1] : &p->map_probe;
}

static const pb_function *function_by_id(const struct pprof *p, uint64_t id)
{
	return id ? &p->funcs[id - 1] : &p->func_probe;
}

static const pb_location *location_by_id(const struct pprof *p, uint64_t id)
{
	return id ? &p->locs[id - 1] : &p->loc_probe;
}

#define MAPPING_KEY(m) { (m)->memory_start, (m)->memory_limit, (m)->file_offset, \
			 (uint64_t)(m)->filename, (uint64_t)(m)->build_id }
#define FUNCTION_KEY(f) { (uint64_t)(f)->name, (uint64_t)(f)->system_name, \
			  (uint64_t)(f)->filename, (uint64_t)(f)->start_line }
#define LOCATION_KEY(l) { (l)->mapping_id, (l)->address }

static bool mapping_eq(uint64_t a, uint64_t b, void *ctx)
{
	const uint64_t ka[] = MAPPING_KEY(mapping_by_id(ctx, a));
	const uint64_t kb[] = MAPPING_KEY(mapping_by_id(ctx, b));
	return !memcmp(ka, kb, sizeof(ka));
}

static bool function_eq(uint64_t a, uint64_t b, void *ctx)
{
	const uint64_t ka[] = FUNCTION_KEY(function_by_id(ctx, a));
	const uint64_t kb[] = FUNCTION_KEY(function_by_id(ctx, b));
	return !memcmp(ka, kb, sizeof(ka));
}

static bool location_eq(uint64_t a, uint64_t b, void *ctx)
{
	const uint64_t ka[] = LOCATION_KEY(location_by_id(ctx, a));
	const uint64_t kb[] = LOCATION_KEY(location_by_id(ctx, b));
	return !memcmp(ka, kb, sizeof(ka));
}

static bool string_eq(uint64_t a, uint64_t b, void *ctx)
{
	return !strcmp((const char *)(uintptr_t)a, (const char *)(uintptr_t)b);
}

#define HASH_KEY(key) hash_bytes(key, sizeof(key), 0x70726f66696c65ull)

/* The id of the entry equal to the probe (key 0), or 0. */
static uint64_t find_probe(const struct hmap *ids, uint64_t hash)
{
	void **slot = hmap_find(ids, hash, 0);
	return slot ? (uint64_t)(uintptr_t)*slot : 0;
}

/* Indexes the entry just stored at arr[*len] under id *len + 1. */
static uint64_t commit_id(struct hmap *ids, uint64_t hash, size_t *len)
{
	uint64_t id = *len + 1;
	if (hmap_put(ids, hash, id, (void *)(uintptr_t)id))
		return 0;
	*len = id;
	return id;
}

/* ---- builder ---- */

struct pprof *pprof_new(void)
{
	struct pprof *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	hmap_init(&p->str_index, string_eq, p);
	hmap_init(&p->map_ids, mapping_eq, p);
	hmap_init(&p->func_ids, function_eq, p);
	hmap_init(&p->loc_ids, location_eq, p);
	perftools__profiles__mapping__init(&p->map_probe);
	perftools__profiles__function__init(&p->func_probe);
	perftools__profiles__location__init(&p->loc_probe);
	perftools__profiles__value_type__init(&p->period_type);
	/* "" is index 0 and never enters str_index: pprof_string short-cuts it. */
	char *empty = strdup("");
	if (!empty || ARRAY_GROW(p->strs, p->nstrs, p->strs_cap)) {
		free(empty);
		pprof_free(p);
		return NULL;
	}
	p->strs[p->nstrs++] = empty;
	return p;
}

void pprof_free(struct pprof *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nstrs; i++)
		free(p->strs[i]);
	/* Lines and sample arrays are one block each, owned by its first pointer. */
	for (size_t i = 0; i < p->nlocs; i++)
		free(p->locs[i].line);
	for (size_t i = 0; i < p->nsamples; i++)
		free(p->samples[i].location_id);
	hmap_free(&p->str_index);
	hmap_free(&p->map_ids);
	hmap_free(&p->func_ids);
	hmap_free(&p->loc_ids);
	free(p->strs);
	free(p->types);
	free(p->maps);
	free(p->funcs);
	free(p->locs);
	free(p->samples);
	free(p->comments);
	free(p);
}

int64_t pprof_string(struct pprof *p, const char *s)
{
	if (!s || !*s)
		return 0;
	uint64_t hash = hash_str(s);
	void **slot = hmap_find(&p->str_index, hash, (uintptr_t)s);
	if (slot)
		return (int64_t)(uintptr_t)*slot;
	char *copy = strdup(s);
	if (!copy || ARRAY_GROW(p->strs, p->nstrs, p->strs_cap) ||
	    hmap_put(&p->str_index, hash, (uintptr_t)copy, (void *)(uintptr_t)p->nstrs)) {
		free(copy);
		return -ENOMEM;
	}
	p->strs[p->nstrs] = copy;
	return (int64_t)p->nstrs++;
}

/* pprof_string for the void setters: out of memory becomes sticky. */
static int64_t string_or_fail(struct pprof *p, const char *s)
{
	int64_t idx = pprof_string(p, s);
	if (idx >= 0)
		return idx;
	p->err = (int)idx;
	return 0;
}

int pprof_add_sample_type(struct pprof *p, const char *type, const char *unit)
{
	int64_t type_idx = pprof_string(p, type), unit_idx = pprof_string(p, unit);
	if (type_idx < 0 || unit_idx < 0 || ARRAY_GROW(p->types, p->ntypes, p->types_cap))
		return -ENOMEM;
	pb_value_type *vt = &p->types[p->ntypes++];
	perftools__profiles__value_type__init(vt);
	vt->type = type_idx;
	vt->unit = unit_idx;
	return 0;
}

void pprof_set_period(struct pprof *p, const char *type, const char *unit, int64_t period)
{
	p->period_type.type = string_or_fail(p, type);
	p->period_type.unit = string_or_fail(p, unit);
	p->has_period_type = true;
	p->period = period;
}

void pprof_set_default_sample_type(struct pprof *p, const char *type)
{
	p->default_sample_type = string_or_fail(p, type);
}

void pprof_set_drop_frames(struct pprof *p, const char *regex)
{
	p->drop_frames = string_or_fail(p, regex);
}

void pprof_set_keep_frames(struct pprof *p, const char *regex)
{
	p->keep_frames = string_or_fail(p, regex);
}

void pprof_add_comment(struct pprof *p, const char *text)
{
	int64_t idx = string_or_fail(p, text);
	if (ARRAY_GROW(p->comments, p->ncomments, p->comments_cap)) {
		p->err = -ENOMEM;
		return;
	}
	p->comments[p->ncomments++] = idx;
}

void pprof_set_time(struct pprof *p, int64_t time_nanos, int64_t duration_nanos)
{
	p->time_nanos = time_nanos;
	p->duration_nanos = duration_nanos;
}

uint64_t pprof_mapping(struct pprof *p, const struct pprof_mapping *m)
{
	int64_t filename = pprof_string(p, m->filename);
	int64_t build_id = pprof_string(p, m->build_id);
	if (filename < 0 || build_id < 0)
		return 0;
	pb_mapping *probe = &p->map_probe;
	probe->memory_start = m->start;
	probe->memory_limit = m->limit;
	probe->file_offset = m->offset;
	probe->filename = filename;
	probe->build_id = build_id;
	const uint64_t key[] = MAPPING_KEY(probe);
	uint64_t hash = HASH_KEY(key);
	uint64_t id = find_probe(&p->map_ids, hash);
	if (id || ARRAY_GROW(p->maps, p->nmaps, p->maps_cap))
		return id;
	pb_mapping *dst = &p->maps[p->nmaps];
	*dst = *probe;
	dst->id = p->nmaps + 1;
	dst->has_functions = !!m->has_functions;
	dst->has_filenames = !!m->has_filenames;
	dst->has_line_numbers = !!m->has_line_numbers;
	dst->has_inline_frames = !!m->has_inline_frames;
	return commit_id(&p->map_ids, hash, &p->nmaps);
}

uint64_t pprof_function(struct pprof *p, const char *name, const char *system_name,
			const char *filename, int64_t start_line)
{
	pb_function *probe = &p->func_probe;
	probe->name = pprof_string(p, name);
	probe->system_name = pprof_string(p, system_name);
	probe->filename = pprof_string(p, filename);
	probe->start_line = start_line;
	if (probe->name < 0 || probe->system_name < 0 || probe->filename < 0)
		return 0;
	const uint64_t key[] = FUNCTION_KEY(probe);
	uint64_t hash = HASH_KEY(key);
	uint64_t id = find_probe(&p->func_ids, hash);
	if (id || ARRAY_GROW(p->funcs, p->nfuncs, p->funcs_cap))
		return id;
	pb_function *dst = &p->funcs[p->nfuncs];
	*dst = *probe;
	dst->id = p->nfuncs + 1;
	return commit_id(&p->func_ids, hash, &p->nfuncs);
}

/* The lines as one block: the pointer array, then the messages it points to. */
static pb_line **new_lines(const struct pprof_line *lines, size_t nlines)
{
	if (!nlines)
		return NULL;
	pb_line **ptrs = malloc(nlines * (sizeof(*ptrs) + sizeof(pb_line)));
	if (!ptrs)
		return NULL;
	pb_line *msgs = (pb_line *)(ptrs + nlines);
	for (size_t i = 0; i < nlines; i++) {
		perftools__profiles__line__init(&msgs[i]);
		msgs[i].function_id = lines[i].function_id;
		msgs[i].line = lines[i].line;
		ptrs[i] = &msgs[i];
	}
	return ptrs;
}

static bool lines_valid(const struct pprof *p, const struct pprof_line *lines, size_t nlines)
{
	if (nlines && !lines)
		return false;
	for (size_t i = 0; i < nlines; i++)
		if (!lines[i].function_id || lines[i].function_id > p->nfuncs)
			return false;
	return true;
}

uint64_t pprof_location(struct pprof *p, uint64_t mapping_id, uint64_t address,
			const struct pprof_line *lines, size_t nlines)
{
	if (mapping_id > p->nmaps || !lines_valid(p, lines, nlines))
		return 0;
	pb_location *probe = &p->loc_probe;
	probe->mapping_id = mapping_id;
	probe->address = address;
	const uint64_t key[] = LOCATION_KEY(probe);
	uint64_t hash = HASH_KEY(key);
	uint64_t id = address ? find_probe(&p->loc_ids, hash) : 0;
	if (id || ARRAY_GROW(p->locs, p->nlocs, p->locs_cap))
		return id;
	pb_line **line_ptrs = new_lines(lines, nlines);
	if (nlines && !line_ptrs)
		return 0;
	pb_location *dst = &p->locs[p->nlocs];
	*dst = *probe;
	dst->id = p->nlocs + 1;
	dst->n_line = nlines;
	dst->line = line_ptrs;
	if (!address)
		return ++p->nlocs;
	id = commit_id(&p->loc_ids, hash, &p->nlocs);
	if (!id)
		free(line_ptrs);
	return id;
}

static int fill_labels(struct pprof *p, pb_label **ptrs, pb_label *msgs,
		       const struct pprof_label *labels, size_t nlabels)
{
	for (size_t i = 0; i < nlabels; i++) {
		const struct pprof_label *in = &labels[i];
		pb_label *out = &msgs[i];
		perftools__profiles__label__init(out);
		out->key = pprof_string(p, in->key);
		if (in->str)
			out->str = pprof_string(p, in->str);
		else {
			out->num = in->num;
			out->num_unit = pprof_string(p, in->num_unit);
		}
		if (out->key < 0 || out->str < 0 || out->num_unit < 0)
			return -ENOMEM;
		ptrs[i] = out;
	}
	return 0;
}

static int check_sample(const struct pprof *p, const uint64_t *location_ids, size_t nlocs,
			size_t nvalues, const struct pprof_label *labels, size_t nlabels)
{
	if (nvalues != p->ntypes)
		return -EINVAL;
	for (size_t i = 0; i < nlocs; i++)
		if (!location_ids[i] || location_ids[i] > p->nlocs)
			return -EINVAL;
	for (size_t i = 0; i < nlabels; i++)
		if (!labels[i].key || !*labels[i].key)
			return -EINVAL;
	return 0;
}

int pprof_add_sample(struct pprof *p, const uint64_t *location_ids, size_t nlocs,
		     const int64_t *values, size_t nvalues,
		     const struct pprof_label *labels, size_t nlabels)
{
	int err = check_sample(p, location_ids, nlocs, nvalues, labels, nlabels);
	if (err)
		return err;
	if (ARRAY_GROW(p->samples, p->nsamples, p->samples_cap))
		return -ENOMEM;
	/* One block: location ids, values, label pointers, labels (all 8-aligned);
	 * never empty, so pprof_free can free it through location_id. */
	size_t size = (nlocs + nvalues) * 8 + nlabels * (sizeof(pb_label *) + sizeof(pb_label));
	uint64_t *block = malloc(size ? size : 1);
	if (!block)
		return -ENOMEM;
	pb_sample *s = &p->samples[p->nsamples];
	perftools__profiles__sample__init(s);
	s->n_location_id = nlocs;
	s->location_id = block;
	s->n_value = nvalues;
	s->value = (int64_t *)(block + nlocs);
	s->n_label = nlabels;
	s->label = (pb_label **)(s->value + nvalues);
	memcpy(s->location_id, location_ids, nlocs * sizeof(*location_ids));
	memcpy(s->value, values, nvalues * sizeof(*values));
	if (fill_labels(p, s->label, (pb_label *)(s->label + nlabels), labels, nlabels)) {
		free(block);
		return -ENOMEM;
	}
	p->nsamples++;
	return 0;
}

size_t pprof_sample_count(const struct pprof *p)
{
	return p->nsamples;
}

/* ---- serialization ---- */

/* A malloc'ed array of pointers to each element of arr[0..n). */
#define POINTERS_TO(arr, n) ({						\
	__typeof__(arr) *ptrs_ = malloc(((n) ? (n) : 1) * sizeof(*ptrs_)); \
	for (size_t i_ = 0; ptrs_ && i_ < (n); i_++)			\
		ptrs_[i_] = &(arr)[i_];					\
	ptrs_;								\
})

static void release_message(pb_profile *msg)
{
	free(msg->sample_type);
	free(msg->sample);
	free(msg->mapping);
	free(msg->location);
	free(msg->function);
}

/* A Profile message viewing the builder's data; release_message() after. */
static int build_message(struct pprof *p, pb_profile *msg)
{
	perftools__profiles__profile__init(msg);
	msg->n_sample_type = p->ntypes;
	msg->sample_type = POINTERS_TO(p->types, p->ntypes);
	msg->n_sample = p->nsamples;
	msg->sample = POINTERS_TO(p->samples, p->nsamples);
	msg->n_mapping = p->nmaps;
	msg->mapping = POINTERS_TO(p->maps, p->nmaps);
	msg->n_location = p->nlocs;
	msg->location = POINTERS_TO(p->locs, p->nlocs);
	msg->n_function = p->nfuncs;
	msg->function = POINTERS_TO(p->funcs, p->nfuncs);
	msg->n_string_table = p->nstrs;
	msg->string_table = p->strs;
	msg->drop_frames = p->drop_frames;
	msg->keep_frames = p->keep_frames;
	msg->time_nanos = p->time_nanos;
	msg->duration_nanos = p->duration_nanos;
	msg->period_type = p->has_period_type ? &p->period_type : NULL;
	msg->period = p->period;
	msg->n_comment = p->ncomments;
	msg->comment = p->comments;
	msg->default_sample_type = p->default_sample_type;
	if (!msg->sample_type || !msg->sample || !msg->mapping || !msg->location ||
	    !msg->function) {
		release_message(msg);
		return -ENOMEM;
	}
	return 0;
}

int pprof_encode(struct pprof *p, uint8_t **buf, size_t *len)
{
	pb_profile msg;
	if (p->err)
		return p->err;
	int err = build_message(p, &msg);
	if (err)
		return err;
	size_t size = perftools__profiles__profile__get_packed_size(&msg);
	uint8_t *out = malloc(size ? size : 1);
	if (out) {
		*len = perftools__profiles__profile__pack(&msg, out);
		*buf = out;
	}
	release_message(&msg);
	return out ? 0 : -ENOMEM;
}

/* Compresses in[0..len) into a malloc'ed gzip member. */
static int gzip_bytes(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
	z_stream zs = { 0 };
	/* 15 window bits + 16: a gzip header instead of zlib's. BestSpeed, like
	 * Go's runtime/pprof: profiles are written while the target runs. */
	if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	size_t bound = deflateBound(&zs, len);
	uint8_t *buf = malloc(bound);
	int rc = Z_MEM_ERROR;
	if (buf && len <= UINT32_MAX) {
		zs.next_in = (Bytef *)in;
		zs.avail_in = (uInt)len;
		zs.next_out = buf;
		zs.avail_out = (uInt)bound;
		rc = deflate(&zs, Z_FINISH);
	}
	deflateEnd(&zs);
	if (rc != Z_STREAM_END) {
		free(buf);
		return rc == Z_MEM_ERROR ? -ENOMEM : -EIO;
	}
	*out = buf;
	*out_len = zs.total_out;
	return 0;
}

int pprof_encode_gz(struct pprof *p, uint8_t **buf, size_t *len)
{
	uint8_t *raw;
	size_t raw_len;
	int err = pprof_encode(p, &raw, &raw_len);
	if (err)
		return err;
	err = gzip_bytes(raw, raw_len, buf, len);
	free(raw);
	return err;
}

static int write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int pprof_write_gz(struct pprof *p, int fd)
{
	uint8_t *gz;
	size_t gz_len;
	int err = pprof_encode_gz(p, &gz, &gz_len);
	if (err)
		return err;
	err = write_all(fd, gz, gz_len);
	free(gz);
	return err;
}
