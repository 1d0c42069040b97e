/* zipindex: an archive's members as one sorted tree, shared by every archive format: a zip's
 * central directory loaded through Range reads (zipindex_load), or the entries another reader
 * listed (zipindex_from_members, nested archives), under the same naming rules; and symbolic
 * links resolved over that tree (zipindex_resolve_link, in zipindex_link.c). A zip member's
 * bytes are read by zipread.h's reader. Our own index because libarchive reads archives front to
 * back, and reading one member over Range requests needs the central directory as an index,
 * which it does not expose.
 *
 * The archive is never held whole: every byte comes through a zip_read_fn, which the caller backs
 * with the block cache and Range requests. Loading reads only the end (EOCD, zip64 locator and
 * record, central directory), so listing a job costs the tail of its archive. Zip64 is supported.
 *
 * Names are sanitised at load: a member whose name is absolute, contains a ".." or "." component,
 * an empty component (a//b), a NUL or a backslash-separated escape is left out, with a LOG_WARNING
 * naming it. Folders missing from the archive (a/b/c.txt without a/ and a/b/) are made up. Among
 * duplicate names the first in the central directory wins (as GitLab's raw endpoint does).
 * A loaded index is immutable and may be shared by threads without locking. */
#ifndef ARTIFACTFS_ZIPINDEX_H
#define ARTIFACTFS_ZIPINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Reads exactly len bytes at off into buf. Returns len, or -errno (never short). */
typedef ssize_t (*zip_read_fn)(void *ctx, void *buf, size_t len, uint64_t off);

enum zip_type {
	ZIP_FILE,
	ZIP_DIR,
	ZIP_SYMLINK
};

struct zip_member {
	const char *name; /* full path inside the archive, no trailing '/' ("" for the root) */
	const char *base; /* last component, points into name */
	enum zip_type type;
	uint32_t mode; /* permission bits (07777) from unix external attributes, or 0 when
	                          the archive stores none (callers then use 0444 / 0555) */
	int64_t mtime; /* seconds since the epoch (UTC), from the extended timestamp or
	                          unix extra field if present, else the DOS date and time (as UTC) */
	uint64_t size; /* uncompressed size; for folders 0; for symlinks the target's length */
	uint64_t comp_size;
	uint64_t local_offset; /* offset of the local file header */
	uint32_t crc32;
	uint16_t method;       /* 0 stored, 8 deflated; others fail to read with -ENOTSUP */
	bool encrypted;        /* reading fails with -ENOTSUP */
	bool synthetic;        /* a folder made up from its children's names */
	uint32_t parent;       /* index of the parent folder in zipindex_member(); root is 0 */
	uint32_t first_child;  /* folders: index of the first child, UINT32_MAX if none */
	uint32_t next_sibling; /* UINT32_MAX at the end; children are sorted by name (strcmp) */
};

struct zipindex;

/* Loads the index of an archive of archive_size bytes. Returns 0 or -errno: -EIO (not a zip,
 * truncated, central directory inconsistent with the size, more than 10,000,000 entries),
 * -ENOMEM, or what rd returned. Free with zipindex_free(). */
int zipindex_load(uint64_t archive_size, zip_read_fn rd, void *ctx, struct zipindex **out);
void zipindex_free(struct zipindex *zi); /* NULL is a no-op */

/* Same as zipindex_load, from bytes in memory (the whole archive or, for the fuzzer, anything). */
int zipindex_load_buffer(const void *buf, size_t len, struct zipindex **out);

/* Builds an index from entries another reader listed (nested archives, see unpack.h), so that
 * both kinds of archive obey the same rules: unsafe names are left out with a LOG_WARNING,
 * missing folders are made up. Of duplicate names and file/folder clashes, without last_wins,
 * the first entry stays, as in zipindex_load (for zips: the central directory is the index,
 * and its first entry of a name is what GitLab's raw endpoint serves); with last_wins (tar, cpio: formats unpacked front to
 * back, each entry replacing what its name held, so "tar -rf" supersedes), the last of a name
 * stays, a later file or link takes everything earlier under its name along, and a later entry
 * under a file's name makes it a folder. in[] is in archive order; of each entry only name, base
 * (name + the name's length, without a trailing '/': the name need not be NUL-terminated), type,
 * mode, mtime, size and local_offset (the caller's own meaning) are used. Names are copied: in[]
 * and its names may go once it returns. Returns 0, -EFBIG (10,000,000 entries or more),
 * -ENOMEM. */
int zipindex_from_members(const struct zip_member *in, size_t n, bool last_wins,
			  struct zipindex **out);

/* A zip_read_fn over bytes in memory; ctx is a struct zip_buffer. -EIO past its end. */
struct zip_buffer {
	const void *p;
	size_t len;
};
ssize_t zip_buffer_read(void *ctx, void *buf, size_t len, uint64_t off);

/* Number of members including the root folder (index 0) and synthetic folders. */
size_t zipindex_count(const struct zipindex *zi);
const struct zip_member *zipindex_member(const struct zipindex *zi, uint32_t idx);
/* Member by path inside the archive ("" or "/" is the root; no leading '/' needed, a trailing
 * '/' is ignored). NULL when absent or left out. Borrowed: lives as long as zi. O(log n). */
const struct zip_member *zipindex_find(const struct zipindex *zi, const char *path);
/* Number of archive entries left out as hostile or broken at load (for tests and stats). */
size_t zipindex_rejected(const struct zipindex *zi);
/* Offset one past the last byte that any member's local header and data can use, computed from
 * the central directory; the offset where the central directory starts. */
uint64_t zipindex_cd_offset(const struct zipindex *zi);
/* Bytes of memory the loaded index holds (members, names, itself), for stats and tests. */
size_t zipindex_memory_bytes(const struct zipindex *zi);

/* Symbolic links, resolved through the archive's own tree. The kernel follows a link in a mount
 * itself, component by component, asking the daemon only for each link's text: a link whose text
 * stays inside can still lead out through another link ("esc -> a/up/../../etc/passwd" with
 * "a/up -> .."), so a link is judged by where its whole resolution goes. This lives here, not in
 * tree (the mount's path grammar), because it is a walk over this index's members; it reads
 * nothing itself: link texts come through target, so it stays pure and testable.
 *
 * The walk is the kernel's (physical "..": the parent of where a link led; links met on the way,
 * last component too, are followed), except that a ".." at the root is refused where
 * openat2(RESOLVE_IN_ROOT) would stay there. Once a component is missing, or a file is used as a
 * folder ("f/x", "f/..", "f/"), the kernel stops there with ENOENT or ENOTDIR whatever follows,
 * and so does the walk: the link dangles, its text ending at that component ("sub/../f" with sub
 * a file gives "sub/.", never f's bytes). At most ZIP_LINKS_MAX links (Linux's MAXSYMLINKS)
 * are followed in one resolution, the link asked about included.
 *
 * Judging each link against the tree is enough while the tree stays put; but a ref's job folder
 * can turn into another job's between two readlinks of one walk, and "b/../../x" checked with
 * b -> c/d would climb out if b then became b -> ".". So the text handed to the kernel is the
 * canonical one: "../" only in front, at most as many as the link is deep, then names of real
 * folders. Whatever the tree then is, the kernel's ".." steps stay within the depth of the link's
 * own folder, and every link it meets among the names is judged again on its own. */
#define ZIP_LINKS_MAX 40

/* Gives link's target text: a malloc'ed buffer of *len bytes (+1, NUL-terminated) in *out,
 * which the caller frees. Returns 0 or -errno. */
typedef int (*zip_target_fn)(void *ctx, const struct zip_member *link, char **out, size_t *len);

/* Resolves the symlink member link as the kernel would from the folder holding it. Returns 0
 * with *out the file or folder it leads to, or NULL when it dangles (a missing member, or a
 * file used as a folder), and, when text is not NULL, the canonical text from link's folder to
 * there (malloc'ed, the caller frees; "." for the folder itself). -EXDEV when the resolution, or
 * a link met on the way, leaves the archive's root (also an absolute or empty target, or one
 * holding a NUL); -ELOOP past ZIP_LINKS_MAX links; -EINVAL when link is no symlink; -ENOMEM; or
 * target's error. Borrowed *out lives as long as zi. Thread-safe as zi is; target is called
 * from this thread only. */
int zipindex_resolve_link(const struct zipindex *zi, const struct zip_member *link,
			  zip_target_fn target, void *ctx, const struct zip_member **out,
			  char **text);

#endif
