// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-mc-shim: performs VFIO type1 / iommufd uAPI calls on behalf of one named actor
 * and reports each result over a line protocol.
 *
 * One process is one actor. Each actor owns one command channel (a virtio-serial port
 * "vfio-mc.<N>" in the VM, or a unix socket <dir>/port<N>.sock on the host), so a call
 * that blocks in the kernel blocks only that actor.
 *
 * Request:  <seq> <op> [key=value ...]\n           (values percent-encoded: %20 %25 %3D %0A)
 * Reply:    <seq> ret=<n> errno=<NAME|0> [key=value ...]\n
 *           <seq> proto_error=<message>\n          (bad request: no syscall was made)
 * Hello:    0 hello pid=<pid> port=<N> fds=<a,b,..>  (sent when a channel is opened)
 *
 * Every op is a _do_<op>() that returns the syscall result (>= 0) or -errno, and fills
 * named outputs (ids, fds, iova). Struct layouts and ioctl numbers come from the kernel's
 * uapi headers (make headers_install of the target source) and from
 * drivers/iommu/iommufd/iommufd_test.h of the same tree; nothing here is hard-coded.
 *
 * After each reply the actor writes "vfio-mc-sync <port> <seq>" to /dev/kmsg: the printk
 * ring buffer is ordered, so once the host has seen that line on the console every kernel
 * message printed during the call has been seen too, and splats can be tied to the call.
 *
 * The shim opens no device path that was not named at start (--allow): exact paths, or
 * mdev:<uuid> which authorises that mdev's sysfs create/remove, its group node
 * /dev/vfio/<N> and its cdev /dev/vfio/devices/vfioX, or pci:<DDDD:BB:DD.F> which authorises
 * that PCI device's group node and GET_DEVICE_FD by its name (the shim never binds or unbinds
 * a PCI device: /init binds the named one to vfio-pci before the shim starts).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

#include "iommufd_test.h"

#define MAX_ARGS 24
#define LINE_MAX_LEN 4096
#define PROTO_ERR LONG_MIN

/* ------------------------------------------------------------------ errno names */

/* Generated at build time from the uapi asm-generic/errno{-base,}.h of the target tree. */
static const char *const errno_names[] = {
#define E(name, value) [value] = #name,
#include "errnames.h"
#undef E
};

static const char *errno_name(long e)
{
	static char buf[24];

	if (e > 0 && (size_t)e < sizeof(errno_names) / sizeof(errno_names[0]) && errno_names[e])
		return errno_names[e];
	snprintf(buf, sizeof(buf), "E%ld", e);
	return buf;
}

/* ------------------------------------------------------------------ global state */

static int g_chan = -1;            /* this actor's command channel */
static long g_port = -1;           /* its port number */
static const char *g_chan_dir;     /* host mode: directory of port<N>.sock sockets */
static char *g_allow;              /* comma-separated allow-list, as given */
static char g_proto_err[256];      /* set when a request is malformed */
static long g_fail_nth;            /* > 0: arm fail-nth just before the next syscall */
static int g_fail_injected = -1;   /* result of the last armed call, -1 when none */
static int g_forked_child;         /* set in a fork child: do not reply on the parent's seq */
/* This image's path: exec'ing it by name (not /proc/self/exe) keeps comm "vfio-mc-shim" in splats. */
static char g_self[PATH_MAX] = "/proc/self/exe";

/* ------------------------------------------------------------------ requests and outputs */

struct kv {
	char *k;
	char *v;
};

struct req {
	unsigned long long seq;
	char *op;
	struct kv a[MAX_ARGS];
	int n;
};

struct out {
	char buf[LINE_MAX_LEN];
	size_t len;
};

static void out_add(struct out *o, const char *k, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(o->buf + o->len, sizeof(o->buf) - o->len, " %s=", k);
	if (n > 0 && (size_t)n < sizeof(o->buf) - o->len)
		o->len += n;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, sizeof(o->buf) - o->len, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(o->buf) - o->len)
		o->len += n;
}

static long proto_err(const char *fmt, ...)
{
	va_list ap;

	char msg[160];
	size_t w = 0;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* percent-encode what the line protocol uses as separators */
	for (const char *p = msg; *p && w + 4 < sizeof(g_proto_err); p++) {
		if (*p == ' ' || *p == '%' || *p == '=' || *p == '\n')
			w += snprintf(g_proto_err + w, sizeof(g_proto_err) - w, "%%%02X", (unsigned char)*p);
		else
			g_proto_err[w++] = *p;
	}
	g_proto_err[w] = 0;
	return PROTO_ERR;
}

static void pct_decode(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (r[0] == '%' && isxdigit((unsigned char)r[1]) && isxdigit((unsigned char)r[2])) {
			char hex[3] = { r[1], r[2], 0 };

			*w++ = (char)strtol(hex, NULL, 16);
			r += 2;
		} else {
			*w++ = *r;
		}
	}
	*w = 0;
}

static int parse_req(char *line, struct req *r)
{
	char *save = NULL, *tok;

	memset(r, 0, sizeof(*r));
	tok = strtok_r(line, " ", &save);
	if (!tok)
		return -1;
	r->seq = strtoull(tok, NULL, 10);
	r->op = strtok_r(NULL, " ", &save);
	if (!r->op)
		return -1;
	while ((tok = strtok_r(NULL, " ", &save)) && r->n < MAX_ARGS) {
		char *eq = strchr(tok, '=');

		if (!eq)
			return -1;
		*eq = 0;
		pct_decode(eq + 1);
		r->a[r->n].k = tok;
		r->a[r->n].v = eq + 1;
		r->n++;
	}
	return 0;
}

static const char *arg_str(const struct req *r, const char *k)
{
	for (int i = 0; i < r->n; i++)
		if (!strcmp(r->a[i].k, k))
			return r->a[i].v;
	return NULL;
}

struct flagname {
	const char *name;
	unsigned long long value;
};

/*
 * A number (decimal, 0x hex, or negative) or, when a table is given, names from it joined
 * by '|'. Returns 0, or -1 after recording a protocol error.
 */
static int parse_value(const char *k, const char *v, const struct flagname *tab, unsigned long long *res)
{
	char buf[256], *save = NULL, *tok;
	unsigned long long acc = 0;

	if (!*v)
		return proto_err("empty value for %s", k), -1;
	if (isdigit((unsigned char)v[0]) || v[0] == '-') {
		char *end;

		errno = 0;
		acc = v[0] == '-' ? (unsigned long long)strtoll(v, &end, 0) : strtoull(v, &end, 0);
		if (errno || *end)
			return proto_err("bad number %s=%s", k, v), -1;
		*res = acc;
		return 0;
	}
	if (!tab)
		return proto_err("bad number %s=%s", k, v), -1;
	snprintf(buf, sizeof(buf), "%s", v);
	for (tok = strtok_r(buf, "|", &save); tok; tok = strtok_r(NULL, "|", &save)) {
		const struct flagname *f;

		for (f = tab; f->name; f++)
			if (!strcmp(f->name, tok))
				break;
		if (!f->name)
			return proto_err("unknown name %s in %s", tok, k), -1;
		acc |= f->value;
	}
	*res = acc;
	return 0;
}

static int arg_num(const struct req *r, const char *k, const struct flagname *tab, unsigned long long *v,
		   int required)
{
	const char *s = arg_str(r, k);

	if (!s) {
		if (required)
			return proto_err("missing argument %s", k), -1;
		return 0;
	}
	return parse_value(k, s, tab, v);
}

#define NEED(name, var, tab)                                         \
	unsigned long long var = 0;                                  \
	if (arg_num(r, name, tab, &var, 1))                          \
		return PROTO_ERR
#define OPT(name, var, dflt, tab)                                    \
	unsigned long long var = (dflt);                             \
	if (arg_num(r, name, tab, &var, 0))                          \
		return PROTO_ERR

/* ------------------------------------------------------------------ flag tables (from uapi headers) */

#define F(prefix, name) { #name, prefix##name }
static const struct flagname map_dma_flags[] = {
	F(VFIO_DMA_MAP_FLAG_, READ), F(VFIO_DMA_MAP_FLAG_, WRITE), F(VFIO_DMA_MAP_FLAG_, VADDR), { 0 }
};
static const struct flagname unmap_dma_flags[] = {
	F(VFIO_DMA_UNMAP_FLAG_, GET_DIRTY_BITMAP), F(VFIO_DMA_UNMAP_FLAG_, ALL), F(VFIO_DMA_UNMAP_FLAG_, VADDR),
	{ 0 }
};
static const struct flagname vfio_ext[] = {
	F(, VFIO_TYPE1_IOMMU), F(, VFIO_SPAPR_TCE_IOMMU), F(, VFIO_TYPE1v2_IOMMU), F(, VFIO_DMA_CC_IOMMU),
	F(, VFIO_EEH), F(, VFIO_SPAPR_TCE_v2_IOMMU), F(, VFIO_NOIOMMU_IOMMU), F(, VFIO_UNMAP_ALL),
	F(, VFIO_UPDATE_VADDR), { 0 }
};
static const struct flagname ioas_map_flags[] = {
	F(IOMMU_IOAS_MAP_, FIXED_IOVA), F(IOMMU_IOAS_MAP_, WRITEABLE), F(IOMMU_IOAS_MAP_, READABLE), { 0 }
};
static const struct flagname option_ids[] = {
	F(IOMMU_OPTION_, RLIMIT_MODE), F(IOMMU_OPTION_, HUGE_PAGES), { 0 }
};
static const struct flagname option_ops[] = { F(IOMMU_OPTION_OP_, SET), F(IOMMU_OPTION_OP_, GET), { 0 } };
static const struct flagname access_create_flags[] = { F(MOCK_FLAGS_ACCESS_CREATE_, NEEDS_PIN_PAGES), { 0 } };
static const struct flagname access_pages_flags[] = {
	F(MOCK_FLAGS_ACCESS_, WRITE), F(MOCK_FLAGS_ACCESS_, SYZ), { 0 }
};
static const struct flagname access_rw_flags[] = {
	F(MOCK_ACCESS_RW_, WRITE), F(MOCK_ACCESS_RW_, SLOW_PATH), { 0 }
};
static const struct flagname mmap_prot[] = { F(PROT_, NONE), F(PROT_, READ), F(PROT_, WRITE), { 0 } };
static const struct flagname mmap_flags[] = {
	F(MAP_, SHARED), F(MAP_, PRIVATE), F(MAP_, ANONYMOUS), F(MAP_, POPULATE), F(MAP_, HUGETLB),
	F(MAP_, LOCKED), F(MAP_, NORESERVE), { 0 }
};
static const struct flagname memfd_flags[] = { F(MFD_, CLOEXEC), F(MFD_, HUGETLB), { 0 } };
static const struct flagname rlimits[] = { F(RLIMIT_, MEMLOCK), F(RLIMIT_, NOFILE), F(RLIMIT_, AS), { 0 } };
static const struct flagname caps[] = {
	F(CAP_, IPC_LOCK), F(CAP_, SYS_RESOURCE), F(CAP_, SYS_RAWIO), F(CAP_, SYS_ADMIN), { 0 }
};
#undef F

/* ------------------------------------------------------------------ fail-nth and ioctl */

static int fail_nth_path(char *buf, size_t len)
{
	return snprintf(buf, len, "/proc/self/task/%ld/fail-nth", (long)syscall(SYS_gettid));
}

/*
 * Arm /proc/self/task/<tid>/fail-nth right before the syscall under test, so that the
 * shim's own allocations (reading the channel, writing replies) are never the ones that
 * fail (lib/fault-inject.c: fail_nth counts every should_fail() site in the task).
 */
static void fail_nth_arm(void)
{
	char path[64], val[32];
	int fd, n;

	if (g_fail_nth <= 0)
		return;
	fail_nth_path(path, sizeof(path));
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = snprintf(val, sizeof(val), "%ld", g_fail_nth);
	if (write(fd, val, n) != n)
		g_fail_nth = 0;
	close(fd);
}

/*
 * Reading fail-nth gives the remaining count: 0 means the fault fired. Writing 0 disarms.
 */
static void fail_nth_disarm(void)
{
	char path[64], val[32] = { 0 };
	int fd;

	if (g_fail_nth <= 0)
		return;
	g_fail_nth = 0;
	fail_nth_path(path, sizeof(path));
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	if (read(fd, val, sizeof(val) - 1) > 0)
		g_fail_injected = atol(val) == 0;
	if (pwrite(fd, "0", 1, 0) < 0)
		g_fail_injected = -1;
	close(fd);
}

/* Every uAPI call goes through here: returns the result or -errno. */
static long sys_ret(long rc)
{
	return rc < 0 ? -errno : rc;
}

static long xioctl(int fd, unsigned long cmd, void *arg)
{
	long rc;
	int e;

	fail_nth_arm();
	rc = ioctl(fd, cmd, arg);
	e = errno;
	fail_nth_disarm();
	errno = e;
	return sys_ret(rc);
}

static long xioctl_int(int fd, unsigned long cmd, unsigned long arg)
{
	long rc;
	int e;

	fail_nth_arm();
	rc = ioctl(fd, cmd, arg);
	e = errno;
	fail_nth_disarm();
	errno = e;
	return sys_ret(rc);
}

/* ------------------------------------------------------------------ allow-list */

static int allow_has(const char *entry)
{
	size_t len = strlen(entry);

	for (const char *p = g_allow; p && *p;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);

		if (n == len && !strncmp(p, entry, n))
			return 1;
		p = comma ? comma + 1 : NULL;
	}
	return 0;
}

static int uuid_ok(const char *u)
{
	if (strlen(u) != 36)
		return 0;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (u[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)u[i])) {
			return 0;
		}
	}
	return 1;
}

/* The group node of an mdev: /sys/bus/mdev/devices/<uuid>/iommu_group -> .../<N>. */
static int mdev_group_path(const char *uuid, char *buf, size_t len)
{
	char link[PATH_MAX], target[PATH_MAX];
	ssize_t n;
	char *base;

	snprintf(link, sizeof(link), "/sys/bus/mdev/devices/%s/iommu_group", uuid);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return -1;
	target[n] = 0;
	base = strrchr(target, '/');
	snprintf(buf, len, "/dev/vfio/%.64s", base ? base + 1 : target);
	return 0;
}

/* The cdev of an mdev: /sys/bus/mdev/devices/<uuid>/vfio-dev/vfioX (VFIO_DEVICE_CDEV). */
static int mdev_cdev_path(const char *uuid, char *buf, size_t len)
{
	char dir[PATH_MAX];
	struct dirent *d;
	DIR *dp;
	int rc = -1;

	snprintf(dir, sizeof(dir), "/sys/bus/mdev/devices/%s/vfio-dev", uuid);
	dp = opendir(dir);
	if (!dp)
		return -1;
	while ((d = readdir(dp))) {
		if (!strncmp(d->d_name, "vfio", 4)) {
			snprintf(buf, len, "/dev/vfio/devices/%s", d->d_name);
			rc = 0;
			break;
		}
	}
	closedir(dp);
	return rc;
}

/* Is path one of the nodes of an allowed mdev? */
static int allow_mdev_node(const char *path)
{
	for (const char *p = g_allow; p && *p;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char uuid[64], node[PATH_MAX];

		if (n > 5 && n < 5 + sizeof(uuid) && !strncmp(p, "mdev:", 5)) {
			snprintf(uuid, sizeof(uuid), "%.*s", (int)(n - 5), p + 5);
			if (!mdev_group_path(uuid, node, sizeof(node)) && !strcmp(node, path))
				return 1;
			if (!mdev_cdev_path(uuid, node, sizeof(node)) && !strcmp(node, path))
				return 1;
		}
		p = comma ? comma + 1 : NULL;
	}
	return 0;
}

static int bdf_ok(const char *b)
{
	/* DDDD:BB:DD.F, lower-case hex as sysfs names it */
	static const char form[] = "xxxx:xx:xx.x";

	if (strlen(b) != sizeof(form) - 1)
		return 0;
	for (size_t i = 0; i < sizeof(form) - 1; i++) {
		if (form[i] == 'x' ? !(isdigit((unsigned char)b[i]) || (b[i] >= 'a' && b[i] <= 'f')) : b[i] != form[i])
			return 0;
	}
	return 1;
}

/* The group node of a PCI device: /sys/bus/pci/devices/<bdf>/iommu_group -> .../<N>. */
static int pci_group_path(const char *bdf, char *buf, size_t len)
{
	char link[PATH_MAX], target[PATH_MAX];
	ssize_t n;
	char *base;

	if (!bdf_ok(bdf))
		return -1;
	snprintf(link, sizeof(link), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return -1;
	target[n] = 0;
	base = strrchr(target, '/');
	snprintf(buf, len, "/dev/vfio/%.64s", base ? base + 1 : target);
	return 0;
}

/* Is path the group node of an allowed PCI device? */
static int allow_pci_node(const char *path)
{
	for (const char *p = g_allow; p && *p;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char bdf[32], node[PATH_MAX];

		if (n > 4 && n < 4 + sizeof(bdf) && !strncmp(p, "pci:", 4)) {
			snprintf(bdf, sizeof(bdf), "%.*s", (int)(n - 4), p + 4);
			if (!pci_group_path(bdf, node, sizeof(node)) && !strcmp(node, path))
				return 1;
		}
		p = comma ? comma + 1 : NULL;
	}
	return 0;
}

static int path_allowed(const char *path)
{
	char real[PATH_MAX];

	/* Compare the resolved path, so a symlink cannot smuggle in another node. */
	if (!realpath(path, real))
		snprintf(real, sizeof(real), "%s", path);
	if (strcmp(real, path))
		return 0;
	return allow_has(path) || allow_mdev_node(path) || allow_pci_node(path);
}

/* ------------------------------------------------------------------ small helpers */

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;
	int e;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	e = errno;
	close(fd);
	return n < 0 ? -e : 0;
}

static long fd_arg(const struct req *r, const char *k, int *fd)
{
	unsigned long long v;

	if (arg_num(r, k, NULL, &v, 1))
		return PROTO_ERR;
	*fd = (int)v;
	return 0;
}

#define NEED_FD(name, var)                   \
	int var;                             \
	if (fd_arg(r, name, &var))           \
		return PROTO_ERR

/* ------------------------------------------------------------------ file ops */

static long _do_open(const struct req *r, struct out *o)
{
	const char *path = arg_str(r, "path");
	long fd;

	if (!path)
		return proto_err("missing argument path");
	if (!path_allowed(path))
		return proto_err("path %s is not in the allow-list", path);
	fail_nth_arm();
	fd = sys_ret(open(path, O_RDWR));
	fail_nth_disarm();
	if (fd >= 0)
		out_add(o, "fd", "%ld", fd);
	return fd;
}

static long _do_close(const struct req *r, struct out *o)
{
	NEED_FD("fd", fd);
	(void)o;
	if (fd == g_chan)
		return proto_err("fd %d is the command channel", fd);
	return sys_ret(close(fd));
}

/* ------------------------------------------------------------------ VFIO type1 container */

static long _do_vfio_get_api_version(const struct req *r, struct out *o)
{
	NEED_FD("fd", fd);
	(void)o;
	return xioctl_int(fd, VFIO_GET_API_VERSION, 0);
}

static long _do_vfio_check_extension(const struct req *r, struct out *o)
{
	NEED_FD("fd", fd);
	NEED("ext", ext, vfio_ext);
	(void)o;
	return xioctl_int(fd, VFIO_CHECK_EXTENSION, ext);
}

static long _do_vfio_set_iommu(const struct req *r, struct out *o)
{
	NEED_FD("fd", fd);
	NEED("type", type, vfio_ext);
	(void)o;
	return xioctl_int(fd, VFIO_SET_IOMMU, type);
}

static long _do_vfio_group_get_status(const struct req *r, struct out *o)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };
	long rc;

	NEED_FD("fd", fd);
	rc = xioctl(fd, VFIO_GROUP_GET_STATUS, &st);
	if (rc >= 0) {
		out_add(o, "viable", "%d", !!(st.flags & VFIO_GROUP_FLAGS_VIABLE));
		out_add(o, "container_set", "%d", !!(st.flags & VFIO_GROUP_FLAGS_CONTAINER_SET));
	}
	return rc;
}

static long _do_vfio_group_set_container(const struct req *r, struct out *o)
{
	NEED_FD("fd", fd);
	NEED_FD("container", container);
	(void)o;
	return xioctl(fd, VFIO_GROUP_SET_CONTAINER, &container);
}

static long _do_vfio_group_unset_container(const struct req *r, struct out *o)
{
	NEED_FD("fd", fd);
	(void)o;
	return xioctl_int(fd, VFIO_GROUP_UNSET_CONTAINER, 0);
}

static long _do_vfio_group_get_device_fd(const struct req *r, struct out *o)
{
	const char *name = arg_str(r, "name");
	char entry[128];
	long rc;

	NEED_FD("fd", fd);
	if (!name)
		return proto_err("missing argument name");
	snprintf(entry, sizeof(entry), "mdev:%.100s", name);
	if (!allow_has(entry)) {
		snprintf(entry, sizeof(entry), "pci:%.100s", name);
		if (!allow_has(entry))
			return proto_err("device %s is not in the allow-list", name);
	}
	rc = xioctl(fd, VFIO_GROUP_GET_DEVICE_FD, (void *)name);
	if (rc >= 0)
		out_add(o, "device_fd", "%ld", rc);
	return rc;
}

static long _do_vfio_map_dma(const struct req *r, struct out *o)
{
	struct vfio_iommu_type1_dma_map map = { .argsz = sizeof(map) };

	NEED_FD("fd", fd);
	NEED("vaddr", vaddr, NULL);
	NEED("iova", iova, NULL);
	NEED("size", size, NULL);
	OPT("flags", flags, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE, map_dma_flags);
	(void)o;
	map.vaddr = vaddr;
	map.iova = iova;
	map.size = size;
	map.flags = flags;
	return xioctl(fd, VFIO_IOMMU_MAP_DMA, &map);
}

static long _do_vfio_unmap_dma(const struct req *r, struct out *o)
{
	struct vfio_iommu_type1_dma_unmap unmap = { .argsz = sizeof(unmap) };
	long rc;

	NEED_FD("fd", fd);
	OPT("iova", iova, 0, NULL);
	OPT("size", size, 0, NULL);
	OPT("flags", flags, 0, unmap_dma_flags);
	unmap.iova = iova;
	unmap.size = size;
	unmap.flags = flags;
	rc = xioctl(fd, VFIO_IOMMU_UNMAP_DMA, &unmap);
	/* vfio_dma_do_unmap copies size back only on success */
	if (rc >= 0)
		out_add(o, "size", "%llu", (unsigned long long)unmap.size);
	return rc;
}

/* ------------------------------------------------------------------ VFIO cdev + iommufd */

static long _do_vfio_device_bind_iommufd(const struct req *r, struct out *o)
{
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	long rc;

	NEED_FD("fd", fd);
	NEED_FD("iommufd", iommufd);
	bind.iommufd = iommufd;
	rc = xioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, &bind);
	if (rc >= 0)
		out_add(o, "devid", "%u", bind.out_devid);
	return rc;
}

static long _do_vfio_device_attach_iommufd_pt(const struct req *r, struct out *o)
{
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };
	long rc;

	NEED_FD("fd", fd);
	NEED("pt_id", pt_id, NULL);
	attach.pt_id = pt_id;
	rc = xioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach);
	if (rc >= 0)
		out_add(o, "pt_id", "%u", attach.pt_id);
	return rc;
}

/* ------------------------------------------------------------------ mtty (samples/vfio-mdev/mtty.c) */

static long _do_mtty_create(const struct req *r, struct out *o)
{
	const char *uuid = arg_str(r, "uuid");
	const char *type = arg_str(r, "type");
	char path[PATH_MAX], node[PATH_MAX], entry[64];
	long rc;

	if (!uuid || !uuid_ok(uuid))
		return proto_err("missing or malformed uuid");
	if (!type)
		type = "mtty-2";
	if (strchr(type, '/') || strncmp(type, "mtty-", 5))
		return proto_err("bad mtty type %s", type);
	snprintf(entry, sizeof(entry), "mdev:%s", uuid);
	if (!allow_has(entry))
		return proto_err("mdev %s is not in the allow-list", uuid);
	/* mdev_sysfs.c:mdev_type_add names types "<driver>-<name>": mtty-1, mtty-2 */
	snprintf(path, sizeof(path), "/sys/devices/virtual/mtty/mtty/mdev_supported_types/%s/create", type);
	fail_nth_arm();
	rc = write_file(path, uuid);
	fail_nth_disarm();
	if (rc < 0)
		return rc;
	if (!mdev_group_path(uuid, node, sizeof(node))) {
		out_add(o, "group_path", "%s", node);
		out_add(o, "group", "%s", strrchr(node, '/') + 1);
	}
	if (!mdev_cdev_path(uuid, node, sizeof(node)))
		out_add(o, "cdev_path", "%s", node);
	return 0;
}

static long _do_mtty_remove(const struct req *r, struct out *o)
{
	const char *uuid = arg_str(r, "uuid");
	char path[PATH_MAX], entry[64];
	long rc;

	(void)o;
	if (!uuid || !uuid_ok(uuid))
		return proto_err("missing or malformed uuid");
	snprintf(entry, sizeof(entry), "mdev:%s", uuid);
	if (!allow_has(entry))
		return proto_err("mdev %s is not in the allow-list", uuid);
	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/remove", uuid);
	fail_nth_arm();
	rc = write_file(path, "1");
	fail_nth_disarm();
	return rc;
}

/*
 * Where an allowed PCI device is: its group node and the driver bound to it (read from sysfs;
 * nothing is written).
 */
static long _do_pci_group(const struct req *r, struct out *o)
{
	const char *bdf = arg_str(r, "bdf");
	char entry[64], node[PATH_MAX], link[PATH_MAX], target[PATH_MAX];
	ssize_t n;

	if (!bdf || !bdf_ok(bdf))
		return proto_err("missing or malformed bdf (want DDDD:BB:DD.F)");
	snprintf(entry, sizeof(entry), "pci:%s", bdf);
	if (!allow_has(entry))
		return proto_err("pci device %s is not in the allow-list", bdf);
	if (pci_group_path(bdf, node, sizeof(node)))
		return -errno;
	out_add(o, "group_path", "%s", node);
	out_add(o, "group", "%s", strrchr(node, '/') + 1);
	snprintf(link, sizeof(link), "/sys/bus/pci/devices/%s/driver", bdf);
	n = readlink(link, target, sizeof(target) - 1);
	if (n >= 0) {
		target[n] = 0;
		out_add(o, "driver", "%s", strrchr(target, '/') ? strrchr(target, '/') + 1 : target);
	}
	return 0;
}

/* ------------------------------------------------------------------ iommufd (include/uapi/linux/iommufd.h) */

static long _do_ioas_alloc(const struct req *r, struct out *o)
{
	struct iommu_ioas_alloc cmd = { .size = sizeof(cmd) };
	long rc;

	NEED_FD("fd", fd);
	rc = xioctl(fd, IOMMU_IOAS_ALLOC, &cmd);
	if (rc >= 0)
		out_add(o, "ioas_id", "%u", cmd.out_ioas_id);
	return rc;
}

static long _do_ioas_map(const struct req *r, struct out *o)
{
	struct iommu_ioas_map cmd = { .size = sizeof(cmd) };
	long rc;

	NEED_FD("fd", fd);
	NEED("ioas", ioas, NULL);
	NEED("vaddr", vaddr, NULL);
	NEED("length", length, NULL);
	OPT("iova", iova, 0, NULL);
	OPT("flags", flags, IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE, ioas_map_flags);
	cmd.ioas_id = ioas;
	cmd.user_va = vaddr;
	cmd.length = length;
	cmd.iova = iova;
	cmd.flags = flags;
	rc = xioctl(fd, IOMMU_IOAS_MAP, &cmd);
	if (rc >= 0)
		out_add(o, "iova", "0x%llx", (unsigned long long)cmd.iova);
	return rc;
}

static long _do_ioas_map_file(const struct req *r, struct out *o)
{
	struct iommu_ioas_map_file cmd = { .size = sizeof(cmd) };
	long rc;

	NEED_FD("fd", fd);
	NEED("ioas", ioas, NULL);
	NEED_FD("mfd", mfd);
	NEED("length", length, NULL);
	OPT("start", start, 0, NULL);
	OPT("iova", iova, 0, NULL);
	OPT("flags", flags, IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE, ioas_map_flags);
	cmd.ioas_id = ioas;
	cmd.fd = mfd;
	cmd.start = start;
	cmd.length = length;
	cmd.iova = iova;
	cmd.flags = flags;
	rc = xioctl(fd, IOMMU_IOAS_MAP_FILE, &cmd);
	if (rc >= 0)
		out_add(o, "iova", "0x%llx", (unsigned long long)cmd.iova);
	return rc;
}

static long _do_ioas_unmap(const struct req *r, struct out *o)
{
	struct iommu_ioas_unmap cmd = { .size = sizeof(cmd) };
	long rc;

	NEED_FD("fd", fd);
	NEED("ioas", ioas, NULL);
	NEED("iova", iova, NULL);
	NEED("length", length, NULL);
	cmd.ioas_id = ioas;
	cmd.iova = iova;
	cmd.length = length;
	rc = xioctl(fd, IOMMU_IOAS_UNMAP, &cmd);
	if (rc >= 0)
		out_add(o, "length", "0x%llx", (unsigned long long)cmd.length);
	return rc;
}

static long _do_ioas_copy(const struct req *r, struct out *o)
{
	struct iommu_ioas_copy cmd = { .size = sizeof(cmd) };
	long rc;

	NEED_FD("fd", fd);
	NEED("dst_ioas", dst_ioas, NULL);
	NEED("src_ioas", src_ioas, NULL);
	NEED("src_iova", src_iova, NULL);
	NEED("length", length, NULL);
	OPT("dst_iova", dst_iova, 0, NULL);
	OPT("flags", flags, IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE, ioas_map_flags);
	cmd.dst_ioas_id = dst_ioas;
	cmd.src_ioas_id = src_ioas;
	cmd.src_iova = src_iova;
	cmd.dst_iova = dst_iova;
	cmd.length = length;
	cmd.flags = flags;
	rc = xioctl(fd, IOMMU_IOAS_COPY, &cmd);
	if (rc >= 0)
		out_add(o, "dst_iova", "0x%llx", (unsigned long long)cmd.dst_iova);
	return rc;
}

static long _do_ioas_change_process(const struct req *r, struct out *o)
{
	struct iommu_ioas_change_process cmd = { .size = sizeof(cmd) };

	NEED_FD("fd", fd);
	(void)o;
	return xioctl(fd, IOMMU_IOAS_CHANGE_PROCESS, &cmd);
}

static long _do_option(const struct req *r, struct out *o)
{
	struct iommu_option cmd = { .size = sizeof(cmd) };
	long rc;

	NEED_FD("fd", fd);
	NEED("option_id", option_id, option_ids);
	NEED("op", op, option_ops);
	OPT("object_id", object_id, 0, NULL);
	OPT("val64", val64, 0, NULL);
	cmd.option_id = option_id;
	cmd.op = op;
	cmd.object_id = object_id;
	cmd.val64 = val64;
	rc = xioctl(fd, IOMMU_OPTION, &cmd);
	if (rc >= 0)
		out_add(o, "val64", "%llu", (unsigned long long)cmd.val64);
	return rc;
}

static long _do_destroy(const struct req *r, struct out *o)
{
	struct iommu_destroy cmd = { .size = sizeof(cmd) };

	NEED_FD("fd", fd);
	NEED("id", id, NULL);
	(void)o;
	cmd.id = id;
	return xioctl(fd, IOMMU_DESTROY, &cmd);
}

/* ------------------------------------------------------------------ IOMMU_TEST_CMD (drivers/iommu/iommufd/selftest.c) */

static long test_cmd(int fd, struct iommu_test_cmd *cmd)
{
	cmd->size = sizeof(*cmd);
	return xioctl(fd, IOMMU_TEST_CMD, cmd);
}

static long _do_mock_domain(const struct req *r, struct out *o)
{
	struct iommu_test_cmd cmd = { .op = IOMMU_TEST_OP_MOCK_DOMAIN };
	long rc;

	NEED_FD("fd", fd);
	NEED("ioas", ioas, NULL);
	cmd.id = ioas;
	rc = test_cmd(fd, &cmd);
	if (rc >= 0) {
		out_add(o, "stdev_id", "%u", cmd.mock_domain.out_stdev_id);
		out_add(o, "hwpt_id", "%u", cmd.mock_domain.out_hwpt_id);
		out_add(o, "idev_id", "%u", cmd.mock_domain.out_idev_id);
	}
	return rc;
}

static long _do_create_access(const struct req *r, struct out *o)
{
	struct iommu_test_cmd cmd = { .op = IOMMU_TEST_OP_CREATE_ACCESS };
	long rc;

	NEED_FD("fd", fd);
	NEED("ioas", ioas, NULL);
	OPT("flags", flags, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES, access_create_flags);
	cmd.id = ioas;
	cmd.create_access.flags = flags;
	rc = test_cmd(fd, &cmd);
	if (rc >= 0)
		out_add(o, "access_fd", "%u", cmd.create_access.out_access_fd);
	return rc;
}

static long _do_access_pages(const struct req *r, struct out *o)
{
	struct iommu_test_cmd cmd = { .op = IOMMU_TEST_OP_ACCESS_PAGES };
	long rc;

	NEED_FD("fd", fd);
	NEED_FD("access_fd", access_fd);
	NEED("iova", iova, NULL);
	NEED("length", length, NULL);
	OPT("uptr", uptr, 0, NULL);
	OPT("flags", flags, 0, access_pages_flags);
	cmd.id = access_fd;
	cmd.access_pages.iova = iova;
	cmd.access_pages.length = length;
	cmd.access_pages.uptr = uptr;
	cmd.access_pages.flags = flags;
	rc = test_cmd(fd, &cmd);
	if (rc >= 0)
		out_add(o, "access_pages_id", "%u", cmd.access_pages.out_access_pages_id);
	return rc;
}

static long _do_destroy_access_pages(const struct req *r, struct out *o)
{
	struct iommu_test_cmd cmd = { .op = IOMMU_TEST_OP_DESTROY_ACCESS_PAGES };

	NEED_FD("fd", fd);
	NEED_FD("access_fd", access_fd);
	NEED("id", id, NULL);
	(void)o;
	cmd.id = access_fd;
	cmd.destroy_access_pages.access_pages_id = id;
	return test_cmd(fd, &cmd);
}

static long _do_access_rw(const struct req *r, struct out *o)
{
	struct iommu_test_cmd cmd = { .op = IOMMU_TEST_OP_ACCESS_RW };

	NEED_FD("fd", fd);
	NEED_FD("access_fd", access_fd);
	NEED("iova", iova, NULL);
	NEED("length", length, NULL);
	NEED("uptr", uptr, NULL);
	OPT("flags", flags, 0, access_rw_flags);
	(void)o;
	cmd.id = access_fd;
	cmd.access_rw.iova = iova;
	cmd.access_rw.length = length;
	cmd.access_rw.uptr = uptr;
	cmd.access_rw.flags = flags;
	return test_cmd(fd, &cmd);
}

static long _do_md_check_refs(const struct req *r, struct out *o)
{
	struct iommu_test_cmd cmd = { .op = IOMMU_TEST_OP_MD_CHECK_REFS };

	NEED_FD("fd", fd);
	NEED("uptr", uptr, NULL);
	NEED("length", length, NULL);
	NEED("refs", refs, NULL);
	(void)o;
	cmd.check_refs.uptr = uptr;
	cmd.check_refs.length = length;
	cmd.check_refs.refs = refs;
	return test_cmd(fd, &cmd);
}

/*
 * DMABUF_GET: the uapi contract (and tools/testing/selftests/iommu) expect the new dma-buf fd
 * as the ioctl's return value. Reported as ret; the fds now open show where it went.
 */
static long _do_dmabuf_get(const struct req *r, struct out *o)
{
	struct iommu_test_cmd cmd = { .op = IOMMU_TEST_OP_DMABUF_GET };

	NEED_FD("fd", fd);
	NEED("length", length, NULL);
	(void)o;
	cmd.dmabuf_get.length = length;
	cmd.dmabuf_get.open_flags = O_CLOEXEC;
	return test_cmd(fd, &cmd);
}

/* ------------------------------------------------------------------ memory */

static long _do_memfd_create(const struct req *r, struct out *o)
{
	const char *name = arg_str(r, "name");
	long fd;

	OPT("size", size, 0, NULL);
	OPT("flags", flags, 0, memfd_flags);
	fd = sys_ret(memfd_create(name ? name : "vfio-mc", flags));
	if (fd < 0)
		return fd;
	if (size && ftruncate(fd, size) < 0) {
		long e = -errno;

		close(fd);
		return e;
	}
	out_add(o, "fd", "%ld", fd);
	return fd;
}

static long _do_mmap(const struct req *r, struct out *o)
{
	void *p;

	NEED("length", length, NULL);
	OPT("prot", prot, PROT_READ | PROT_WRITE, mmap_prot);
	OPT("flags", flags, MAP_SHARED | MAP_ANONYMOUS, mmap_flags);
	OPT("fd", fd, (unsigned long long)-1, NULL);
	OPT("offset", offset, 0, NULL);
	OPT("addr", addr, 0, NULL);
	p = mmap((void *)(uintptr_t)addr, length, prot, flags, (int)fd, offset);
	if (p == MAP_FAILED)
		return -errno;
	out_add(o, "addr", "0x%llx", (unsigned long long)(uintptr_t)p);
	return 0;
}

static long _do_munmap(const struct req *r, struct out *o)
{
	NEED("addr", addr, NULL);
	NEED("length", length, NULL);
	(void)o;
	return sys_ret(munmap((void *)(uintptr_t)addr, length));
}

/* Touches memory so that it is populated (and has known contents for ACCESS_RW). */
static long _do_memset(const struct req *r, struct out *o)
{
	NEED("addr", addr, NULL);
	NEED("length", length, NULL);
	OPT("byte", byte, 0, NULL);
	(void)o;
	memset((void *)(uintptr_t)addr, (int)byte, length);
	return 0;
}

/* ------------------------------------------------------------------ processes */

static int chan_open(long port);
static void send_hello(const char *extra);
static void sync_marker(unsigned long long seq);
static void send_line(const char *line);

static void list_fds(char *buf, size_t len)
{
	size_t used = 0;
	DIR *dp = opendir("/proc/self/fd");
	struct dirent *d;

	buf[0] = 0;
	while (dp && (d = readdir(dp))) {
		int fd = atoi(d->d_name);

		if (d->d_name[0] == '.' || fd == dirfd(dp) || fd == g_chan || fd <= 2)
			continue;
		used += snprintf(buf + used, len - used, "%s%d", used ? "," : "", fd);
		if (used >= len)
			break;
	}
	if (dp)
		closedir(dp);
	if (!buf[0])
		snprintf(buf, len, "-");
}

/* The open fds of this actor, beyond stdio and the command channel. */
static long _do_fds(const struct req *r, struct out *o)
{
	char fds[1024];

	(void)r;
	list_fds(fds, sizeof(fds));
	out_add(o, "fds", "%s", fds);
	return 0;
}

static long _do_getpid(const struct req *r, struct out *o)
{
	(void)r;
	out_add(o, "pid", "%ld", (long)getpid());
	return getpid();
}

/*
 * fork(2): the child is a new actor that inherits every fd; it drops the parent's channel
 * and opens its own port, then says hello there. The parent replies with the child's pid.
 */
static long _do_fork(const struct req *r, struct out *o)
{
	pid_t pid;

	NEED("port", port, NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		close(g_chan);
		g_chan = chan_open(port);
		if (g_chan < 0)
			_exit(127);
		g_port = port;
		g_forked_child = 1;
		send_hello("forked=1");
		return 0;
	}
	out_add(o, "pid", "%ld", (long)pid);
	return pid;
}

/* A fresh actor on another port: fork + exec of this image, inheriting no fd but stdio. */
static long _do_spawn(const struct req *r, struct out *o)
{
	char portstr[32];
	pid_t pid;

	NEED("port", port, NULL);
	snprintf(portstr, sizeof(portstr), "%llu", port);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		char *argv[] = { "vfio-mc-shim", "--port", portstr, "--allow", g_allow ? g_allow : "",
				 g_chan_dir ? "--chan-dir" : NULL, (char *)g_chan_dir, NULL };

		execv(g_self, argv);
		_exit(127);
	}
	out_add(o, "pid", "%ld", (long)pid);
	return pid;
}

static int fd_in_list(int fd, const char *list)
{
	for (const char *p = list; p && *p;) {
		if (atoi(p) == fd)
			return 1;
		p = strchr(p, ',');
		p = p ? p + 1 : NULL;
	}
	return 0;
}

/*
 * execve(2) of this image: the fds named in keep survive (FD_CLOEXEC cleared), every other
 * fd is closed by the exec. The old mm is released (exec_mmap -> mmput), which is what the
 * iommufd CHANGE_PROCESS handoff cares about. The new image answers this request's seq.
 */
static long _do_exec(const struct req *r, struct out *o)
{
	const char *keep = arg_str(r, "keep");
	char portstr[32], seqstr[32];
	DIR *dp;
	struct dirent *d;

	(void)o;
	dp = opendir("/proc/self/fd");
	if (!dp)
		return -errno;
	while ((d = readdir(dp))) {
		int fd = atoi(d->d_name);

		if (d->d_name[0] == '.' || fd == dirfd(dp))
			continue;
		if (fd <= 2)
			continue;
		fcntl(fd, F_SETFD, fd_in_list(fd, keep) && fd != g_chan ? 0 : FD_CLOEXEC);
	}
	closedir(dp);
	snprintf(portstr, sizeof(portstr), "%ld", g_port);
	snprintf(seqstr, sizeof(seqstr), "%llu", r->seq);
	{
		char *argv[] = { "vfio-mc-shim", "--port", portstr, "--allow", g_allow ? g_allow : "",
				 "--exec-seq", seqstr, g_chan_dir ? "--chan-dir" : NULL, (char *)g_chan_dir, NULL };

		execv(g_self, argv);
	}
	return -errno;
}

/* Reply, then exit with the given code; the host waits for the pid to disappear. */
static long _do_exit(const struct req *r, struct out *o)
{
	char line[64];

	OPT("code", code, 0, NULL);
	(void)o;
	sync_marker(r->seq);
	snprintf(line, sizeof(line), "%llu ret=0 errno=0\n", r->seq);
	send_line(line);
	_exit((int)code);
}

/* Waits until /proc/<pid> is gone (SIGCHLD is ignored, so exited actors are reaped at once). */
static long _do_wait_gone(const struct req *r, struct out *o)
{
	char path[64];
	struct stat st;

	NEED("pid", pid, NULL);
	OPT("timeout_ms", timeout_ms, 10000, NULL);
	(void)o;
	snprintf(path, sizeof(path), "/proc/%llu", pid);
	for (unsigned long long waited = 0; waited <= timeout_ms; waited += 5) {
		if (stat(path, &st) < 0)
			return 0;
		usleep(5000);
	}
	return -ETIMEDOUT;
}

/* VmPin (mm->pinned_vm) and VmLck (mm->locked_vm) from fs/proc/task_mmu.c:task_mem. */
static long _do_proc_status(const struct req *r, struct out *o)
{
	char path[64], line[256];
	FILE *f;
	int found = 0;

	OPT("pid", pid, (unsigned long long)getpid(), NULL);
	snprintf(path, sizeof(path), "/proc/%llu/status", pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long kb;

		if (sscanf(line, "VmPin: %lu kB", &kb) == 1) {
			out_add(o, "vm_pin_kb", "%lu", kb);
			found++;
		} else if (sscanf(line, "VmLck: %lu kB", &kb) == 1) {
			out_add(o, "vm_lck_kb", "%lu", kb);
			found++;
		}
	}
	fclose(f);
	/* a kernel thread or a zombie has no mm, hence no Vm* lines */
	return found == 2 ? 0 : -ESRCH;
}

/* Drops a capability from the effective set, like the selftests' drop_cap_ipc_lock(). */
static long _do_drop_cap(const struct req *r, struct out *o)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	NEED("cap", cap, caps);
	(void)o;
	if (syscall(SYS_capget, &hdr, data))
		return -errno;
	data[CAP_TO_INDEX(cap)].effective &= ~CAP_TO_MASK(cap);
	return sys_ret(syscall(SYS_capset, &hdr, data));
}

static long _do_setrlimit(const struct req *r, struct out *o)
{
	struct rlimit rl;

	NEED("resource", resource, rlimits);
	NEED("cur", cur, NULL);
	OPT("max", max, cur, NULL);
	(void)o;
	rl.rlim_cur = cur;
	rl.rlim_max = max;
	return sys_ret(setrlimit(resource, &rl));
}

/* Arms fail-nth for this actor's next uAPI call (the op after this one). */
static long _do_fail_nth(const struct req *r, struct out *o)
{
	NEED("n", n, NULL);
	(void)o;
	g_fail_nth = (long)n;
	return 0;
}

static long _do_sleep(const struct req *r, struct out *o)
{
	struct timespec ts;

	NEED("ms", ms, NULL);
	(void)o;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	return sys_ret(nanosleep(&ts, NULL));
}

/* Writes a line to the kernel log (to check the host's log capture by hand). */
static long _do_kmsg(const struct req *r, struct out *o)
{
	const char *text = arg_str(r, "text");
	char buf[512];

	(void)o;
	if (!text)
		return proto_err("missing argument text");
	snprintf(buf, sizeof(buf), "%s\n", text);
	return write_file("/dev/kmsg", buf);
}

/* ------------------------------------------------------------------ dispatch */

struct op {
	const char *name;
	long (*fn)(const struct req *r, struct out *o);
};

#define OP(name) { #name, _do_##name }
static const struct op ops[] = {
	OP(open), OP(close),
	OP(vfio_get_api_version), OP(vfio_check_extension), OP(vfio_set_iommu), OP(vfio_group_get_status),
	OP(vfio_group_set_container), OP(vfio_group_unset_container), OP(vfio_group_get_device_fd),
	OP(vfio_map_dma), OP(vfio_unmap_dma), OP(vfio_device_bind_iommufd), OP(vfio_device_attach_iommufd_pt),
	OP(mtty_create), OP(mtty_remove), OP(pci_group),
	OP(ioas_alloc), OP(ioas_map), OP(ioas_map_file), OP(ioas_unmap), OP(ioas_copy), OP(ioas_change_process),
	OP(option), OP(destroy),
	OP(mock_domain), OP(create_access), OP(access_pages), OP(destroy_access_pages), OP(access_rw),
	OP(md_check_refs), OP(dmabuf_get),
	OP(memfd_create), OP(mmap), OP(munmap), OP(memset),
	OP(getpid), OP(fds), OP(fork), OP(spawn), OP(exec), OP(exit), OP(wait_gone), OP(proc_status),
	OP(drop_cap), OP(setrlimit), OP(fail_nth), OP(sleep), OP(kmsg),
	{ NULL, NULL }
};
#undef OP

/* ------------------------------------------------------------------ channel */

static void send_line(const char *line)
{
	size_t len = strlen(line), done = 0;

	while (done < len) {
		ssize_t n = write(g_chan, line + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(3);
		done += n;
	}
}

static void sync_marker(unsigned long long seq)
{
	char buf[96];

	/* <4> = KERN_WARNING, so it reaches a console at loglevel=5 like WARN() output does */
	snprintf(buf, sizeof(buf), "<4>vfio-mc-sync %ld %llu\n", g_port, seq);
	write_file("/dev/kmsg", buf);
}

static void send_hello(const char *extra)
{
	char line[LINE_MAX_LEN], fds[1024];

	list_fds(fds, sizeof(fds));
	snprintf(line, sizeof(line), "0 hello pid=%ld port=%ld fds=%s%s%s\n", (long)getpid(), g_port, fds,
		 extra ? " " : "", extra ? extra : "");
	send_line(line);
}

/* In the VM: the virtio-serial port whose name is vfio-mc.<port> (drivers/char/virtio_console.c). */
static int open_virtio_port(long port)
{
	char want[32], path[PATH_MAX], name[64];
	struct dirent *d;
	DIR *dp;
	int fd = -1;

	snprintf(want, sizeof(want), "vfio-mc.%ld", port);
	dp = opendir("/sys/class/virtio-ports");
	if (!dp)
		return -1;
	while ((d = readdir(dp))) {
		FILE *f;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", d->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(name, sizeof(name), f)) {
			name[strcspn(name, "\n")] = 0;
			if (!strcmp(name, want)) {
				snprintf(path, sizeof(path), "/dev/%s", d->d_name);
				fd = open(path, O_RDWR | O_CLOEXEC);
			}
		}
		fclose(f);
		if (fd >= 0)
			break;
	}
	closedir(dp);
	return fd;
}

/* On the host: a unix socket <dir>/port<N>.sock that the TypeScript target listens on. */
static int open_unix_port(long port)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/port%ld.sock", g_chan_dir, port);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * virtio-serial ports are added asynchronously after the device probes (control messages
 * from the host, virtio_console.c:handle_control_message), so early at boot the port may
 * not be there yet: retry for a while.
 */
static int chan_open(long port)
{
	for (int tries = 0; tries < 500; tries++) {
		int fd = g_chan_dir ? open_unix_port(port) : open_virtio_port(port);

		if (fd >= 0)
			return fd;
		usleep(20000);
	}
	return -1;
}

static void handle(char *line)
{
	struct out o = { .len = 0 };
	char reply[LINE_MAX_LEN + 128];
	const struct op *op;
	struct req r;
	long rc;

	if (parse_req(line, &r)) {
		snprintf(reply, sizeof(reply), "%llu proto_error=malformed_request\n", r.seq);
		send_line(reply);
		return;
	}
	for (op = ops; op->name; op++)
		if (!strcmp(op->name, r.op))
			break;
	g_proto_err[0] = 0;
	g_fail_injected = -1;
	rc = op->name ? op->fn(&r, &o) : proto_err("unknown op %s", r.op);
	if (g_forked_child) {
		/* the fork child's hello was its answer; the parent answers this seq */
		g_forked_child = 0;
		return;
	}
	if (rc == PROTO_ERR) {
		g_fail_nth = 0;
		snprintf(reply, sizeof(reply), "%llu proto_error=%s\n", r.seq, g_proto_err);
	} else {
		if (g_fail_injected >= 0)
			out_add(&o, "fail_injected", "%d", g_fail_injected);
		snprintf(reply, sizeof(reply), "%llu ret=%ld errno=%s%.*s\n", r.seq, rc,
			 rc < 0 ? errno_name(-rc) : "0", (int)o.len, o.buf);
	}
	sync_marker(r.seq);
	send_line(reply);
}

/*
 * Reads newline-terminated requests. A virtio port reads 0 while the host side is not
 * connected (virtio_console.c:port_fops_read), so 0 there means "try again".
 */
static void serve(void)
{
	static char buf[LINE_MAX_LEN * 2];
	size_t have = 0;

	for (;;) {
		char *nl;
		ssize_t n = read(g_chan, buf + have, sizeof(buf) - 1 - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			_exit(2);
		if (n == 0) {
			if (g_chan_dir)
				_exit(0);
			usleep(20000);
			continue;
		}
		have += n;
		buf[have] = 0;
		while ((nl = memchr(buf, '\n', have))) {
			size_t used = nl - buf + 1;
			int chan_before = g_chan;

			*nl = 0;
			handle(buf);
			if (g_chan != chan_before) {
				/* a fork child: input buffered from the parent's channel is not ours */
				have = 0;
				break;
			}
			memmove(buf, buf + used, have - used);
			have -= used;
		}
		if (have >= sizeof(buf) - 1)
			have = 0; /* an over-long line: drop it */
	}
}

/* ------------------------------------------------------------------ layout dump */

#define SZ(s) printf("%-40s size=%zu\n", #s, sizeof(struct s))
#define IOC(c) printf("%-40s = 0x%08lx\n", #c, (unsigned long)(c))

/* Prints what the shim was compiled against, compared with uapi-layout-7.3.txt by the tests. */
static void print_layout(void)
{
	SZ(iommu_test_cmd);
	SZ(iommu_destroy);
	SZ(iommu_ioas_alloc);
	SZ(iommu_ioas_map);
	SZ(iommu_ioas_map_file);
	SZ(iommu_ioas_copy);
	SZ(iommu_ioas_unmap);
	SZ(iommu_option);
	SZ(iommu_ioas_change_process);
	SZ(vfio_iommu_type1_dma_map);
	SZ(vfio_iommu_type1_dma_unmap);
	SZ(vfio_device_bind_iommufd);
	SZ(vfio_device_attach_iommufd_pt);
	SZ(vfio_group_status);
	IOC(IOMMU_TEST_CMD);
	IOC(IOMMU_DESTROY);
	IOC(IOMMU_IOAS_ALLOC);
	IOC(IOMMU_IOAS_COPY);
	IOC(IOMMU_IOAS_MAP);
	IOC(IOMMU_IOAS_UNMAP);
	IOC(IOMMU_OPTION);
	IOC(IOMMU_IOAS_MAP_FILE);
	IOC(IOMMU_IOAS_CHANGE_PROCESS);
	IOC(VFIO_GET_API_VERSION);
	IOC(VFIO_CHECK_EXTENSION);
	IOC(VFIO_SET_IOMMU);
	IOC(VFIO_GROUP_GET_STATUS);
	IOC(VFIO_GROUP_SET_CONTAINER);
	IOC(VFIO_GROUP_UNSET_CONTAINER);
	IOC(VFIO_GROUP_GET_DEVICE_FD);
	IOC(VFIO_IOMMU_MAP_DMA);
	IOC(VFIO_IOMMU_UNMAP_DMA);
	IOC(VFIO_DEVICE_BIND_IOMMUFD);
	IOC(VFIO_DEVICE_ATTACH_IOMMUFD_PT);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: vfio-mc-shim --port N --allow PATH[,PATH|mdev:UUID|pci:DDDD:BB:DD.F...] [--chan-dir DIR] [--exec-seq S]\n"
		"       vfio-mc-shim --layout\n");
	exit(64);
}

int main(int argc, char **argv)
{
	unsigned long long exec_seq = 0;
	int have_exec_seq = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--layout")) {
			print_layout();
			return 0;
		} else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
			g_port = atol(argv[++i]);
		} else if (!strcmp(argv[i], "--allow") && i + 1 < argc) {
			g_allow = argv[++i];
		} else if (!strcmp(argv[i], "--chan-dir") && i + 1 < argc) {
			g_chan_dir = argv[++i];
		} else if (!strcmp(argv[i], "--exec-seq") && i + 1 < argc) {
			exec_seq = strtoull(argv[++i], NULL, 10);
			have_exec_seq = 1;
		} else {
			usage();
		}
	}
	if (g_port < 0 || !g_allow)
		usage();
	{
		ssize_t n = readlink("/proc/self/exe", g_self, sizeof(g_self) - 1);

		if (n > 0)
			g_self[n] = 0;
		else
			snprintf(g_self, sizeof(g_self), "/proc/self/exe");
	}
	/*
	 * A fresh actor (the supervisor, or one made by spawn) starts with stdio only: close
	 * whatever the launcher leaked. An exec'd image keeps the fds its request named.
	 */
	if (!have_exec_seq)
		syscall(SYS_close_range, 3U, ~0U, 0U);
	/* Exited children are reaped by the kernel at once: no zombies holding a pid. */
	signal(SIGCHLD, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	g_chan = chan_open(g_port);
	if (g_chan < 0) {
		fprintf(stderr, "vfio-mc-shim: cannot open channel for port %ld: %s\n", g_port, strerror(errno));
		return 1;
	}
	if (have_exec_seq) {
		/* The exec request is answered by the new image, on the same seq. */
		char line[LINE_MAX_LEN], fds[1024];

		list_fds(fds, sizeof(fds));
		sync_marker(exec_seq);
		snprintf(line, sizeof(line), "%llu ret=0 errno=0 pid=%ld fds=%s\n", exec_seq, (long)getpid(), fds);
		send_line(line);
	} else {
		send_hello(NULL);
	}
	serve();
	return 0;
}
