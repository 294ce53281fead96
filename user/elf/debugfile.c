/* Separate debug files; see debugfile.h. */
#include "elf/debugfile.h"

#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "elf/rootpath.h"

#define DEBUG_ROOT "/usr/lib/debug"

/* ---- the target's root ---- */

int debug_root_init(struct debug_root *r, const char *root)
{
	struct stat ours, theirs;
	size_t len;

	*r = (struct debug_root){ .fd = -1, .host = true };
	while (root && root[0] == '/' && root[1] == '/')
		root++;
	if (!root || !strcmp(root, "/"))
		return (r->prefix = strdup("")) ? 0 : -ENOMEM;
	len = strlen(root);
	while (len > 1 && root[len - 1] == '/')
		len--;
	r->prefix = strndup(root, len);
	if (!r->prefix)
		return -ENOMEM;
	r->fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	/* A process in memwatch's own root: one tree to search. */
	r->host = r->fd >= 0 && !fstat(r->fd, &theirs) && !stat("/", &ours) && ours.st_dev == theirs.st_dev &&
		  ours.st_ino == theirs.st_ino;
	if (r->host) {
		close(r->fd);
		r->fd = -1;
		r->prefix[0] = '\0';
	}
	return 0;
}

void debug_root_close(struct debug_root *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

void debug_root_free(struct debug_root *r)
{
	debug_root_close(r);
	free(r->prefix);
	r->prefix = NULL;
}

/* ---- candidates ---- */

static bool join_path(char *buf, size_t size, const char *a, const char *b)
{
	int n = snprintf(buf, size, "%s%s", a, b);
	return n >= 0 && (size_t)n < size;
}

/* Opens path (absolute, in the target's tree or the host's) as a regular
 * file other than the one whose debug file is wanted. */
static int open_candidate(const struct debug_root *r, bool in_target, const char *path, const struct debug_want *want,
			  struct debug_file *c)
{
	const int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK;
	char ours[4096];
	struct stat st;
	int fd;

	in_target = in_target && !r->host;
	if (in_target) {
		if (r->fd < 0 || !join_path(ours, sizeof(ours), r->prefix, path))
			return -1;
		fd = rootpath_open(r->fd, path, flags);
	} else {
		if (!join_path(ours, sizeof(ours), "", path))
			return -1;
		fd = open(path, flags);
	}
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (st.st_dev == want->self_dev && st.st_ino == want->self_ino)) {
		close(fd);
		return -1;
	}
	if (r->opens)
		(*r->opens)++;
	*c = (struct debug_file){ .fd = fd, .in_target = in_target, .path = strdup(path), .our_path = strdup(ours) };
	if (!c->path || !c->our_path) {
		debug_file_release(c);
		return -1;
	}
	return 0;
}

void debug_file_release(struct debug_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	free(f->path);
	free(f->our_path);
	*f = (struct debug_file){ .fd = -1 };
}

char *debug_file_take_path(struct debug_file *f, int *fd)
{
	char *path = f->path;

	f->path = NULL;
	if (fd) {
		*fd = f->fd;
		f->fd = -1;
	}
	debug_file_release(f);
	return path;
}

static uint32_t crc32_of(int fd, bool *ok)
{
	enum { CHUNK = 64 * 1024 };
	unsigned char *buf = malloc(CHUNK);
	uLong crc = crc32(0, Z_NULL, 0);
	off_t off = 0;
	ssize_t n = -1;

	*ok = false;
	if (!buf)
		return 0;
	while ((n = pread(fd, buf, CHUNK, off)) > 0) {
		crc = crc32(crc, buf, (uInt)n);
		off += n;
	}
	free(buf);
	*ok = n == 0;
	return (uint32_t)crc;
}

/* A debug file matches when its build-id equals the wanted one; without a
 * wanted build-id, when its CRC equals the .gnu_debuglink CRC. */
static bool matches(int fd, const struct debug_want *want)
{
	Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	bool match, ok;

	if (!elf)
		return false;
	match = elf_kind(elf) == ELF_K_ELF;
	if (match && want->build_id) {
		const void *bits;
		ssize_t len = dwelf_elf_gnu_build_id(elf, &bits);
		match = len == (ssize_t)want->build_id_len && !memcmp(bits, want->build_id, want->build_id_len);
	}
	elf_end(elf);
	if (match && !want->build_id && want->check_crc)
		match = crc32_of(fd, &ok) == want->crc && ok;
	return match;
}

static int try_candidate(const struct debug_root *r, bool in_target, const char *path, const struct debug_want *want,
			 struct debug_file *c)
{
	if (open_candidate(r, in_target, path, want, c))
		return -1;
	if (matches(c->fd, want))
		return 0;
	debug_file_release(c);
	return -1;
}

/* ---- searches ---- */

static int find_by_build_id(const struct debug_root *r, const struct debug_want *want, struct debug_file *c)
{
	const unsigned char *id = want->build_id;
	char path[sizeof(DEBUG_ROOT "/.build-id/") + 2 * 64 + 16];
	int len;

	if (!id || want->build_id_len < 2 || want->build_id_len > 64)
		return -1;
	len = snprintf(path, sizeof(path), DEBUG_ROOT "/.build-id/%02x/", id[0]);
	for (size_t i = 1; i < want->build_id_len; i++)
		len += snprintf(path + len, sizeof(path) - len, "%02x", id[i]);
	snprintf(path + len, sizeof(path) - len, ".debug");
	if (!try_candidate(r, true, path, want, c))
		return 0;
	return r->host ? -1 : try_candidate(r, false, path, want, c);
}

/* The directory part of an absolute path, without the trailing slash
 * ("" for files in "/"); NULL if path is not absolute. */
static char *dir_of(const char *path)
{
	if (!path || path[0] != '/')
		return NULL;
	return strndup(path, strrchr(path, '/') - path);
}

static int find_by_debuglink(const struct debug_root *r, const char *dir, const char *link,
			     const struct debug_want *want, struct debug_file *c)
{
	static const char *const formats[] = { "%s/%s", "%s/.debug/%s", DEBUG_ROOT "%s/%s" };

	if (!dir || !link)
		return -1;
	if (link[0] == '/')
		return try_candidate(r, true, link, want, c);
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		char path[4096];
		int n = snprintf(path, sizeof(path), formats[i], dir, link);
		if (n > 0 && (size_t)n < sizeof(path) && !try_candidate(r, true, path, want, c))
			return 0;
	}
	return -1;
}

int debug_find_main(const struct debug_root *r, const struct debug_want *want, const char *target_path,
		    const char *debuglink, struct debug_file *out)
{
	if (!find_by_build_id(r, want, out))
		return 0;
	char *dir = dir_of(target_path);
	int ret = find_by_debuglink(r, dir, debuglink, want, out);
	free(dir);
	return ret;
}

int debug_find_alt(const struct debug_root *r, Dwarf *dw, const char *dwarf_path, bool dwarf_in_target,
		   struct debug_file *out)
{
	const char *altname;
	const void *alt_id;
	ssize_t len = dw ? dwelf_dwarf_gnu_debugaltlink(dw, &altname, &alt_id) : -1;

	if (len <= 0)
		return -1;
	struct debug_want want = { .build_id = alt_id, .build_id_len = len, .self_dev = (dev_t)-1, .self_ino = (ino_t)-1 };
	if (!find_by_build_id(r, &want, out))
		return 0;
	if (altname[0] == '/')
		return try_candidate(r, true, altname, &want, out);
	/* Relative names are relative to the file holding the DWARF. */
	char *dir = dir_of(dwarf_path);
	char path[4096];
	int ret = -1;
	int n = dir ? snprintf(path, sizeof(path), "%s/%s", dir, altname) : -1;
	if (n > 0 && (size_t)n < sizeof(path))
		ret = try_candidate(r, dwarf_in_target, path, &want, out);
	free(dir);
	return ret;
}

/* ---- libdwfl ---- */

int debugfile_no_find_elf(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
			  char **file_name, Elf **elfp)
{
	return -1;
}

Dwfl_Module *debugfile_report(Dwfl *dwfl, const char *name, int fd, Dwarf_Addr bias, void *userdata)
{
	int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	Dwfl_Module *mod;
	void **slot;

	if (dupfd < 0)
		return NULL;
	mod = dwfl_report_elf(dwfl, name, name, dupfd, bias, true);
	if (!mod) {
		close(dupfd);	/* libdwfl keeps the fd only on success */
		return NULL;
	}
	dwfl_module_info(mod, &slot, NULL, NULL, NULL, NULL, NULL, NULL);
	*slot = userdata;
	return mod;
}
