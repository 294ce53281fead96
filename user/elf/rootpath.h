/* Files of another process, by the paths it uses: resolved inside its root
 * directory (/proc/PID/root), so that absolute symlinks and ".." in its
 * tree stay in its tree. Never as a path joined to the root, which would
 * follow an absolute symlink into memwatch's own tree. */
#ifndef MW_ROOTPATH_H
#define MW_ROOTPATH_H

/* Opens path (absolute, as the process names it) inside the directory
 * root_fd as if it were "/": openat2's RESOLVE_IN_ROOT, or the same walk
 * done by hand where the kernel lacks openat2 (before 5.6) or a seccomp
 * filter forbids it. flags: open(2)'s (O_CLOEXEC is added). An fd, or -1
 * with errno set. */
int rootpath_open(int root_fd, const char *path, int flags);

#endif
