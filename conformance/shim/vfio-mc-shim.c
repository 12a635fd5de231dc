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
 * Every op is one row of ops[] (the end of this file): its name, its arguments (each bound
 * to a member of the op's argument struct, with a kind, a default and the names it accepts),
 * and either an ioctl made with that struct or an op_<name>() that is called with it. The
 * rows are parsed and checked in one place (parse_args), so no op sees a request that names
 * an unknown argument, misses a required one, or names a device outside the allow-list.
 * Struct layouts and ioctl numbers come from the kernel's uapi headers (make headers_install
 * of the target source) and from drivers/iommu/iommufd/iommufd_test.h of the same tree;
 * nothing here is hard-coded. `--layout` prints every uapi struct member the table binds,
 * `--ops` the table itself.
 *
 * After each reply the actor writes "vfio-mc-sync <port> <seq>" to /dev/kmsg: the printk
 * ring buffer is ordered, so once the host has seen that line on the console every kernel
 * message printed during the call has been seen too, and splats can be tied to the call.
 *
 * The shim opens no device path that was not named at start (--allow): exact paths, or
 * mdev:<uuid> which authorises that mdev's sysfs create/remove, its group node
 * /dev/vfio/<N> and its cdev /dev/vfio/devices/vfioX, or pci:<DDDD:BB:DD.F> which authorises
 * that PCI device's group node and GET_DEVICE_FD by its name (the shim never binds or unbinds
 * a PCI device: /init binds the named one to vfio-pci before the shim starts). An argument
 * that names a device has an allow-list kind (A_PATH, A_MDEV, A_PCI, A_DEVICE) and is
 * refused in parse_args before any op runs.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
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
/* the pinning test mdev's interface (conformance/mdev/) */
#include "vfio-mc-pin.h"

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

/* ------------------------------------------------------------------ requests and replies */

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

/* What an op adds to its reply line (after ret= and errno=). */
struct reply {
	unsigned long long seq;
	char buf[LINE_MAX_LEN];
	size_t len;
};

static void out_add(struct reply *o, const char *k, const char *fmt, ...)
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
	while ((tok = strtok_r(NULL, " ", &save))) {
		char *eq = strchr(tok, '=');

		if (!eq || r->n == MAX_ARGS)
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
static const struct flagname pin_ops[] = {
	F(VFIO_MC_PIN_OP_, PIN), F(VFIO_MC_PIN_OP_, UNPIN), F(VFIO_MC_PIN_OP_, RW), F(VFIO_MC_PIN_OP_, TRACK),
	F(VFIO_MC_PIN_OP_, MODE), F(VFIO_MC_PIN_OP_, DELAY), F(VFIO_MC_PIN_OP_, FLUSH), F(VFIO_MC_PIN_OP_, QUERY),
	{ 0 }
};
static const struct flagname pin_data[] = {
	F(VFIO_MC_PIN_, COMPLIANT), F(VFIO_MC_PIN_, LATE), F(VFIO_MC_PIN_, IGNORE), { 0 }
};
static const struct flagname pin_flags[] = { F(VFIO_MC_PIN_RW_, WRITE), { 0 } };
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

/* The ioctl under test, with fail-nth armed around it; arg is a pointer or a value. */
static long xioctl(int fd, unsigned long cmd, unsigned long arg)
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

/* A sysfs write under test (mdev create/remove), with fail-nth armed around it. */
static long xwrite_file(const char *path, const char *s)
{
	long rc;

	fail_nth_arm();
	rc = write_file(path, s);
	fail_nth_disarm();
	return rc;
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

/* The fds this actor holds beyond stdio and the command channel: "3,5", or "-". */
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

/* ------------------------------------------------------------------ the op table */

/*
 * What an argument is. Every kind but A_NUM is a string, kept as a const char * member
 * (pointing into the request line, which outlives the call). The allow-list kinds are
 * checked in parse_args, so an op function never sees a device the user did not name.
 */
enum arg_kind {
	A_NUM,    /* a number, or names from .names joined by '|' */
	A_STR,    /* any text */
	A_PATH,   /* a device node the allow-list names, or a node of an allowed mdev or PCI device */
	A_MDEV,   /* the uuid of an allowed mdev (mdev:<uuid>) */
	A_PCI,    /* the address DDDD:BB:DD.F of an allowed PCI device (pci:<bdf>) */
	A_DEVICE, /* an allowed mdev uuid or PCI address: a VFIO device name */
	A_FIXED,  /* not a request argument: .dflt is always stored (e.g. IOMMU_TEST_CMD's op) */
};

/* .off of the argument that is the fd an ioctl row is made on (not a struct member). */
#define AT_FD 0xffff

struct arg {
	const char *name;             /* as the request spells it; NULL ends the list */
	enum arg_kind kind;
	int required;
	unsigned long long dflt;      /* the value when optional and absent (A_NUM, A_FIXED) */
	const char *dflt_arg;         /* or: when absent, the value of this other argument */
	const struct flagname *names; /* A_NUM: names accepted besides numbers */
	const char *member;           /* where the value goes: for --layout and error messages */
	unsigned short off, size;
};

enum out_fmt {
	O_DEC, /* the member, unsigned decimal */
	O_HEX, /* the member, 0x hex */
	O_BIT, /* 1 when (member & .mask), else 0 */
	O_RET, /* the call's return value (a new fd, a pid) */
};

/* An output: printed as name=value when the call succeeded (returned >= 0). */
struct outf {
	const char *name;
	enum out_fmt fmt;
	unsigned long long mask;
	const char *member;
	unsigned short off, size;
};

#define MAX_OP_ARGS 9 /* 8 and the terminator */
#define MAX_OP_OUTS 4
#define ARG_BUF 256   /* the largest argument struct (struct iommu_test_cmd is 72 bytes) */

/*
 * One op: a name, an argument struct that the arguments are stored into, and either an
 * ioctl on the request's fd (.call == NULL) or a function called with the filled struct.
 */
struct op {
	const char *name;
	const char *type; /* the argument struct: "struct iommu_ioas_map" */
	size_t size;
	long (*call)(void *args, struct reply *rp); /* returns the result (>= 0), -errno or PROTO_ERR */
	unsigned long ioctl;
	const char *ioctl_name;
	int by_value; /* ioctl(fd, cmd, <the struct's first unsigned long>) instead of a pointer */
	int uapi;     /* the struct is the kernel's: --layout prints its members */
	const char *size_member; /* the argsz/size member, set to .size before the ioctl; or NULL */
	unsigned short size_off, size_size;
	struct arg args[MAX_OP_ARGS];
	struct outf outs[MAX_OP_OUTS];
};

/*
 * Row macros. Each row is written between "#define S <struct tag>" and "#undef S": S names
 * the argument struct, and AT(m) turns a member of it (m may be nested: mock_domain.out_hwpt_id)
 * into its name, offset and size.
 */
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
#define MSIZE(m) sizeof(((struct S *)0)->m)
#define AT(m) .member = #m, .off = offsetof(struct S, m), .size = MSIZE(m)
#define ROW(n) .name = #n, .type = "struct " STRINGIFY(S), .size = sizeof(struct S)

/* ioctl(fd, c, &struct S), with member szm (argsz or size) set to sizeof(struct S) */
#define IOCTL(n, c, szm) ROW(n), .ioctl = c, .ioctl_name = #c, .uapi = 1, \
	.size_member = #szm, .size_off = offsetof(struct S, szm), .size_size = MSIZE(szm)
/* ioctl(fd, c, &struct S) where S is not a uapi struct (an int the ioctl reads) */
#define IOCTL_PTR(n, c) ROW(n), .ioctl = c, .ioctl_name = #c
/* ioctl(fd, c, value): the first member of S (an unsigned long or a pointer) is the value */
#define IOCTL_VAL(n, c) ROW(n), .ioctl = c, .ioctl_name = #c, .by_value = 1
/* op_<n>(struct S *, reply) */
#define CALL(n) ROW(n), .call = op_##n

#define ARG(n, k, req, d, tab, m) { .name = #n, .kind = k, .required = req, .dflt = d, .names = tab, AT(m) }
#define IN(n, m) ARG(n, A_NUM, 1, 0, NULL, m)             /* a required number */
#define OPT(n, m, d) ARG(n, A_NUM, 0, d, NULL, m)         /* an optional number, default d */
#define NAMES(n, m, tab) ARG(n, A_NUM, 1, 0, tab, m)      /* required: a number or names from tab */
#define FLAGS(n, m, d, tab) ARG(n, A_NUM, 0, d, tab, m)   /* optional: names from tab, default d */
#define TEXT(n, m, k, req) ARG(n, k, req, 0, NULL, m)     /* a string of kind k */
#define OPT_AS(n, m, other) { .name = #n, .kind = A_NUM, .dflt_arg = #other, AT(m) }
#define SET(m, v) { .name = #m, .kind = A_FIXED, .dflt = v, AT(m) }
#define ON_FD { .name = "fd", .kind = A_NUM, .required = 1, .member = "(ioctl fd)", .off = AT_FD, .size = sizeof(int) }

#define OUT(n, f, m) { .name = #n, .fmt = f, AT(m) }
#define OUT_DEC(n, m) OUT(n, O_DEC, m)
#define OUT_HEX(n, m) OUT(n, O_HEX, m)
#define OUT_BIT(n, m, bit) { .name = #n, .fmt = O_BIT, .mask = bit, AT(m) }
#define OUT_RET(n) { .name = #n, .fmt = O_RET }

/* ------------------------------------------------------------------ arguments: parse, check, store */

static unsigned long long get_field(const void *p, unsigned size)
{
	switch (size) {
	case 1: return *(const uint8_t *)p;
	case 2: return *(const uint16_t *)p;
	case 4: return *(const uint32_t *)p;
	default: return *(const uint64_t *)p;
	}
}

static void put_field(void *p, unsigned size, unsigned long long v)
{
	switch (size) {
	case 1: *(uint8_t *)p = v; break;
	case 2: *(uint16_t *)p = v; break;
	case 4: *(uint32_t *)p = v; break;
	default: *(uint64_t *)p = v; break;
	}
}

/* v fits a field of size bytes, as an unsigned value or as a sign-extended negative one. */
static int fits(unsigned long long v, unsigned size)
{
	unsigned bits = size * 8;
	long long sv = (long long)v;

	if (bits >= 64)
		return 1;
	return (v >> bits) == 0 || (sv < 0 && sv >= -(1LL << (bits - 1)));
}

static int store_num(const struct arg *a, unsigned long long v, void *buf, int *fd)
{
	if (!fits(v, a->size))
		return proto_err("%s=%lld does not fit %s (%u bytes)", a->name, (long long)v, a->member, a->size), -1;
	if (a->off == AT_FD)
		*fd = (int)v;
	else
		put_field((char *)buf + a->off, a->size, v);
	return 0;
}

/* The allow-list checks of the string kinds that name a device. */
static int check_allowed(const struct arg *a, const char *v)
{
	char entry[128];

	switch (a->kind) {
	case A_PATH:
		if (!path_allowed(v))
			return proto_err("path %s is not in the allow-list", v), -1;
		return 0;
	case A_MDEV:
		if (!uuid_ok(v))
			return proto_err("malformed uuid %s", v), -1;
		snprintf(entry, sizeof(entry), "mdev:%s", v);
		if (!allow_has(entry))
			return proto_err("mdev %s is not in the allow-list", v), -1;
		return 0;
	case A_PCI:
		if (!bdf_ok(v))
			return proto_err("malformed bdf %s (want DDDD:BB:DD.F)", v), -1;
		snprintf(entry, sizeof(entry), "pci:%s", v);
		if (!allow_has(entry))
			return proto_err("pci device %s is not in the allow-list", v), -1;
		return 0;
	case A_DEVICE:
		snprintf(entry, sizeof(entry), "mdev:%.100s", v);
		if (allow_has(entry))
			return 0;
		snprintf(entry, sizeof(entry), "pci:%.100s", v);
		if (allow_has(entry))
			return 0;
		return proto_err("device %s is not in the allow-list", v), -1;
	default:
		return 0;
	}
}

static int store_arg(const struct arg *a, const char *v, void *buf, int *fd)
{
	unsigned long long n = a->dflt;

	if (a->kind == A_FIXED)
		return store_num(a, n, buf, fd);
	if (!v && a->required)
		return proto_err("missing argument %s", a->name), -1;
	if (a->kind != A_NUM) {
		if (v && check_allowed(a, v))
			return -1;
		memcpy((char *)buf + a->off, &v, sizeof(v)); /* NULL when absent */
		return 0;
	}
	if (v && parse_value(a->name, v, a->names, &n))
		return -1;
	return store_num(a, n, buf, fd);
}

static const struct arg *find_arg(const struct op *op, const char *name)
{
	for (const struct arg *a = op->args; a->name; a++)
		if (a->kind != A_FIXED && !strcmp(a->name, name))
			return a;
	return NULL;
}

/*
 * Fills the op's argument struct (zeroed first) and the ioctl fd from the request. Refuses
 * an argument the op does not take, one given twice, a missing required one, a value that
 * does not fit its member, and a device outside the allow-list. Returns 0 or -1.
 */
static int parse_args(const struct op *op, const struct req *r, void *buf, int *fd)
{
	memset(buf, 0, op->size);
	for (int i = 0; i < r->n; i++) {
		if (!find_arg(op, r->a[i].k))
			return proto_err("unknown argument %s for %s", r->a[i].k, op->name), -1;
		for (int j = 0; j < i; j++)
			if (!strcmp(r->a[j].k, r->a[i].k))
				return proto_err("argument %s given twice", r->a[i].k), -1;
	}
	for (const struct arg *a = op->args; a->name; a++)
		if (store_arg(a, a->kind == A_FIXED ? NULL : arg_str(r, a->name), buf, fd))
			return -1;
	/* defaults taken from another argument, once that one is stored */
	for (const struct arg *a = op->args; a->name; a++) {
		const struct arg *from = a->dflt_arg ? find_arg(op, a->dflt_arg) : NULL;

		if (from && !arg_str(r, a->name))
			put_field((char *)buf + a->off, a->size, get_field((char *)buf + from->off, from->size));
	}
	return 0;
}

/* An ioctl row: the size member is set, then the struct (or its first member) is passed. */
static long call_ioctl(const struct op *op, int fd, void *buf)
{
	unsigned long value = 0;

	if (op->size_member)
		put_field((char *)buf + op->size_off, op->size_size, op->size);
	if (!op->by_value)
		return xioctl(fd, op->ioctl, (unsigned long)buf);
	memcpy(&value, buf, op->size < sizeof(value) ? op->size : sizeof(value));
	return xioctl(fd, op->ioctl, value);
}

static void add_outputs(const struct op *op, const void *buf, long rc, struct reply *rp)
{
	for (const struct outf *f = op->outs; f->name; f++) {
		unsigned long long v = f->fmt == O_RET ? 0 : get_field((const char *)buf + f->off, f->size);

		switch (f->fmt) {
		case O_DEC: out_add(rp, f->name, "%llu", v); break;
		case O_HEX: out_add(rp, f->name, "0x%llx", v); break;
		case O_BIT: out_add(rp, f->name, "%d", !!(v & f->mask)); break;
		case O_RET: out_add(rp, f->name, "%ld", rc); break;
		}
	}
}

/* ------------------------------------------------------------------ argument structs of non-uapi ioctl rows */

struct no_args {
	char unused;
};

/* VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU: the argument is the value itself */
struct ioctl_value {
	unsigned long value;
};

/* VFIO_GROUP_SET_CONTAINER reads an int (the container fd) through its pointer */
struct container_fd {
	int fd;
};

/* VFIO_GROUP_GET_DEVICE_FD takes the device name string */
struct device_name {
	const char *name;
};

/* ------------------------------------------------------------------ functions of the rows that are not one ioctl */

/* ops that take one number or one string */
struct num_args {
	long n;
};

struct text_args {
	const char *s;
};

static long op_open(void *p, struct reply *rp)
{
	const struct text_args *a = p;
	long fd;

	fail_nth_arm();
	fd = sys_ret(open(a->s, O_RDWR));
	fail_nth_disarm();
	return fd;
}

static long op_close(void *p, struct reply *rp)
{
	const struct num_args *a = p;

	if (a->n == g_chan)
		return proto_err("fd %ld is the command channel", a->n);
	return sys_ret(close((int)a->n));
}

/* The group node and cdev of an mdev, when they exist. */
static void add_mdev_nodes(const char *uuid, struct reply *rp)
{
	char node[PATH_MAX];

	if (!mdev_group_path(uuid, node, sizeof(node))) {
		out_add(rp, "group_path", "%s", node);
		out_add(rp, "group", "%s", strrchr(node, '/') + 1);
	}
	if (!mdev_cdev_path(uuid, node, sizeof(node)))
		out_add(rp, "cdev_path", "%s", node);
}

struct mtty_args {
	const char *uuid;
	const char *type;
};

/* samples/vfio-mdev/mtty.c: creates the mdev through its type's sysfs create node. */
static long op_mtty_create(void *p, struct reply *rp)
{
	const struct mtty_args *a = p;
	const char *type = a->type ? a->type : "mtty-2";
	char path[PATH_MAX];
	long rc;

	if (strchr(type, '/') || strncmp(type, "mtty-", 5))
		return proto_err("bad mtty type %s", type);
	/* mdev_sysfs.c:mdev_type_add names types "<driver>-<name>": mtty-1, mtty-2 */
	snprintf(path, sizeof(path), "/sys/devices/virtual/mtty/mtty/mdev_supported_types/%s/create", type);
	rc = xwrite_file(path, a->uuid);
	if (rc < 0)
		return rc;
	add_mdev_nodes(a->uuid, rp);
	return 0;
}

static long op_mtty_remove(void *p, struct reply *rp)
{
	const struct mtty_args *a = p;
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/remove", a->uuid);
	return xwrite_file(path, "1");
}

/* conformance/mdev/vfio-mc-pin.c: an instance of the pinning test mdev's type. */
static long op_pin_create(void *p, struct reply *rp)
{
	const struct text_args *a = p;
	long rc = xwrite_file("/sys/devices/virtual/" VFIO_MC_PIN_NAME "/" VFIO_MC_PIN_NAME
			      "/mdev_supported_types/" VFIO_MC_PIN_TYPE "/create", a->s);

	if (rc < 0)
		return rc;
	add_mdev_nodes(a->s, rp);
	return 0;
}

static long op_pin_remove(void *p, struct reply *rp)
{
	const struct mtty_args a = { .uuid = ((const struct text_args *)p)->s };

	return op_mtty_remove((void *)&a, rp);
}

struct pin_line_args {
	const char *uuid;
	const char *line;
};

/*
 * The pinning mdev's worker: one command line to its sysfs node (vfio-mc-pin.h), so the
 * caller needs no device fd; the write's errno is the kernel API's result.
 */
static long op_pin_worker(void *p, struct reply *rp)
{
	const struct pin_line_args *a = p;
	char path[PATH_MAX];

	(void)rp;
	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/" VFIO_MC_PIN_NAME "/cmd", a->uuid);
	return xwrite_file(path, a->line);
}

/* Where an allowed PCI device is: its group node and its driver (read from sysfs; nothing is written). */
static long op_pci_group(void *p, struct reply *rp)
{
	const struct text_args *a = p;
	char node[PATH_MAX], link[PATH_MAX], target[PATH_MAX];
	ssize_t n;

	if (pci_group_path(a->s, node, sizeof(node)))
		return -errno;
	out_add(rp, "group_path", "%s", node);
	out_add(rp, "group", "%s", strrchr(node, '/') + 1);
	snprintf(link, sizeof(link), "/sys/bus/pci/devices/%s/driver", a->s);
	n = readlink(link, target, sizeof(target) - 1);
	if (n >= 0) {
		target[n] = 0;
		out_add(rp, "driver", "%s", strrchr(target, '/') ? strrchr(target, '/') + 1 : target);
	}
	return 0;
}

/* ------------------------------------------------------------------ memory */

struct memfd_args {
	const char *name;
	unsigned long long size;
	unsigned int flags;
};

static long op_memfd_create(void *p, struct reply *rp)
{
	const struct memfd_args *a = p;
	long fd;

	fd = sys_ret(memfd_create(a->name ? a->name : "vfio-mc", a->flags));
	if (fd >= 0 && a->size && ftruncate(fd, a->size) < 0) {
		long e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

struct mmap_args {
	unsigned long long addr, length, offset;
	int prot, flags, fd;
};

static long op_mmap(void *p, struct reply *rp)
{
	const struct mmap_args *a = p;
	void *m = mmap((void *)(uintptr_t)a->addr, a->length, a->prot, a->flags, a->fd, a->offset);

	if (m == MAP_FAILED)
		return -errno;
	out_add(rp, "addr", "0x%llx", (unsigned long long)(uintptr_t)m);
	return 0;
}

struct range_args {
	unsigned long long addr, length;
	unsigned char byte;
};

static long op_munmap(void *p, struct reply *rp)
{
	const struct range_args *a = p;

	return sys_ret(munmap((void *)(uintptr_t)a->addr, a->length));
}

/* Touches memory so that it is populated (and has known contents for ACCESS_RW). */
static long op_memset(void *p, struct reply *rp)
{
	const struct range_args *a = p;

	memset((void *)(uintptr_t)a->addr, a->byte, a->length);
	return 0;
}

/*
 * Device regions through the device fd (drivers/vfio/pci/vfio_pci_rdwr.c):
 * pread/pwrite of `size` bytes (1, 2 or 4, little endian, as PCI config is)
 * at `offset`, e.g. VFIO_PCI_CONFIG_REGION_INDEX's offset + PCI_COMMAND.
 */
struct region_rw_args {
	int fd, size;
	unsigned long long offset, value;
};

static long check_rw_size(int size)
{
	return size == 1 || size == 2 || size == 4 ? 0 : proto_err("size must be 1, 2 or 4, not %d", size);
}

static long op_pread(void *p, struct reply *rp)
{
	const struct region_rw_args *a = p;
	uint32_t v = 0;
	long rc = check_rw_size(a->size);

	if (rc)
		return rc;
	fail_nth_arm();
	rc = sys_ret(pread(a->fd, &v, a->size, a->offset));
	fail_nth_disarm();
	if (rc >= 0)
		out_add(rp, "value", "0x%x", v);
	return rc;
}

static long op_pwrite(void *p, struct reply *rp)
{
	const struct region_rw_args *a = p;
	uint32_t v = (uint32_t)a->value;
	long rc = check_rw_size(a->size);

	if (rc)
		return rc;
	fail_nth_arm();
	rc = sys_ret(pwrite(a->fd, &v, a->size, a->offset));
	fail_nth_disarm();
	return rc;
}

/*
 * A 32-bit load from a mapping, as the model's touch: SIGBUS (the fault
 * handler's VM_FAULT_SIGBUS) is caught and reported as sigbus=1 instead of
 * killing the actor. minflt is this thread's ru_minflt delta across the load:
 * a fault that installed a PTE counts, a SIGBUS and a load served by an
 * existing PTE do not (mm/memory.c:mm_account_fault).
 */
static sigjmp_buf load_env;

static void load_sigbus(int sig)
{
	(void)sig;
	siglongjmp(load_env, 1);
}

/*
 * Write the stack below the load's frame, where the kernel puts the SIGBUS
 * signal frame (several KB with the xsave area). In a forked actor those
 * pages can still be shared copy-on-write with its parent, or not yet
 * touched: the frame's write would then be a fault of its own, counted in
 * ru_minflt, and a SIGBUS would read as minflt=1 (seen when a touch slept on
 * memory_lock through a reset, then got SIGBUS, in a fresh actor).
 */
static void __attribute__((noinline)) load_prefault_stack(void)
{
	volatile char pad[64 * 1024];

	for (size_t i = 0; i < sizeof(pad); i += 1024)
		pad[i] = 0;
}

struct load_args {
	unsigned long long addr;
};

static long op_load(void *p, struct reply *rp)
{
	const struct load_args *a = p;
	struct sigaction sa = { .sa_handler = load_sigbus }, old;
	struct rusage before, after;
	volatile uint32_t v = 0;
	volatile int bus = 0;

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &old))
		return -errno;
	load_prefault_stack();
	getrusage(RUSAGE_THREAD, &before);
	if (sigsetjmp(load_env, 1) == 0)
		v = *(volatile uint32_t *)(uintptr_t)a->addr;
	else
		bus = 1;
	getrusage(RUSAGE_THREAD, &after);
	sigaction(SIGBUS, &old, NULL);
	out_add(rp, "sigbus", "%d", bus);
	out_add(rp, "value", "0x%x", bus ? 0 : v);
	out_add(rp, "minflt", "%ld", after.ru_minflt - before.ru_minflt);
	return 0;
}

/* ------------------------------------------------------------------ processes */

static long op_getpid(void *p, struct reply *rp)
{
	return getpid();
}

/* The open fds of this actor, beyond stdio and the command channel. */
static long op_fds(void *p, struct reply *rp)
{
	char fds[1024];

	list_fds(fds, sizeof(fds));
	out_add(rp, "fds", "%s", fds);
	return 0;
}

/*
 * fork(2): the child is a new actor that inherits every fd; it drops the parent's channel
 * and opens its own port, then says hello there. The parent replies with the child's pid.
 */
static long op_fork(void *p, struct reply *rp)
{
	const struct num_args *a = p;
	pid_t pid;

	pid = fork();
	if (pid != 0)
		return sys_ret(pid);
	close(g_chan);
	g_chan = chan_open(a->n);
	if (g_chan < 0)
		_exit(127);
	g_port = a->n;
	g_forked_child = 1;
	send_hello("forked=1");
	return 0;
}

/* A fresh actor on another port: fork + exec of this image, inheriting no fd but stdio. */
static long op_spawn(void *p, struct reply *rp)
{
	const struct num_args *a = p;
	char portstr[32];
	pid_t pid;

	snprintf(portstr, sizeof(portstr), "%ld", a->n);
	pid = fork();
	if (pid == 0) {
		char *argv[] = { "vfio-mc-shim", "--port", portstr, "--allow", g_allow ? g_allow : "",
				 g_chan_dir ? "--chan-dir" : NULL, (char *)g_chan_dir, NULL };

		execv(g_self, argv);
		_exit(127);
	}
	return sys_ret(pid);
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
static long op_exec(void *p, struct reply *rp)
{
	const struct text_args *a = p;
	char portstr[32], seqstr[32];
	DIR *dp;
	struct dirent *d;

	dp = opendir("/proc/self/fd");
	if (!dp)
		return -errno;
	while ((d = readdir(dp))) {
		int fd = atoi(d->d_name);

		if (d->d_name[0] == '.' || fd == dirfd(dp) || fd <= 2)
			continue;
		fcntl(fd, F_SETFD, fd_in_list(fd, a->s) && fd != g_chan ? 0 : FD_CLOEXEC);
	}
	closedir(dp);
	snprintf(portstr, sizeof(portstr), "%ld", g_port);
	snprintf(seqstr, sizeof(seqstr), "%llu", rp->seq);
	{
		char *argv[] = { "vfio-mc-shim", "--port", portstr, "--allow", g_allow ? g_allow : "",
				 "--exec-seq", seqstr, g_chan_dir ? "--chan-dir" : NULL, (char *)g_chan_dir, NULL };

		execv(g_self, argv);
	}
	return -errno;
}

/* Reply, then exit with the given code; the host waits for the pid to disappear. */
static long op_exit(void *p, struct reply *rp)
{
	const struct num_args *a = p;
	char line[64];

	sync_marker(rp->seq);
	snprintf(line, sizeof(line), "%llu ret=0 errno=0\n", rp->seq);
	send_line(line);
	_exit((int)a->n);
}

struct wait_args {
	long pid;
	unsigned long timeout_ms;
};

/* Waits until /proc/<pid> is gone (SIGCHLD is ignored, so exited actors are reaped at once). */
static long op_wait_gone(void *p, struct reply *rp)
{
	const struct wait_args *a = p;
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%ld", a->pid);
	for (unsigned long waited = 0; waited <= a->timeout_ms; waited += 5) {
		if (stat(path, &st) < 0)
			return 0;
		usleep(5000);
	}
	return -ETIMEDOUT;
}

/* VmPin (mm->pinned_vm) and VmLck (mm->locked_vm) from fs/proc/task_mmu.c:task_mem. */
static long op_proc_status(void *p, struct reply *rp)
{
	const struct num_args *a = p; /* n: the pid, 0 for this actor */
	char path[64], line[256];
	FILE *f;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%ld/status", a->n ? a->n : (long)getpid());
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long kb;

		if (sscanf(line, "VmPin: %lu kB", &kb) == 1) {
			out_add(rp, "vm_pin_kb", "%lu", kb);
			found++;
		} else if (sscanf(line, "VmLck: %lu kB", &kb) == 1) {
			out_add(rp, "vm_lck_kb", "%lu", kb);
			found++;
		}
	}
	fclose(f);
	/* a kernel thread or a zombie has no mm, hence no Vm* lines */
	return found == 2 ? 0 : -ESRCH;
}

struct cap_args {
	unsigned int cap;
};

/* Drops a capability from the effective set, like the selftests' drop_cap_ipc_lock(). */
static long op_drop_cap(void *p, struct reply *rp)
{
	const struct cap_args *a = p;
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	if (a->cap > CAP_LAST_CAP)
		return proto_err("cap %u is beyond CAP_LAST_CAP", a->cap);
	if (syscall(SYS_capget, &hdr, data))
		return -errno;
	data[CAP_TO_INDEX(a->cap)].effective &= ~CAP_TO_MASK(a->cap);
	return sys_ret(syscall(SYS_capset, &hdr, data));
}

struct rlimit_args {
	int resource;
	struct rlimit rl;
};

static long op_setrlimit(void *p, struct reply *rp)
{
	const struct rlimit_args *a = p;

	return sys_ret(setrlimit(a->resource, &a->rl));
}

/* Arms fail-nth for this actor's next uAPI call (the op after this one). */
static long op_fail_nth(void *p, struct reply *rp)
{
	const struct num_args *a = p;

	g_fail_nth = a->n;
	return 0;
}

static long op_sleep(void *p, struct reply *rp)
{
	const struct num_args *a = p;
	struct timespec ts = { .tv_sec = a->n / 1000, .tv_nsec = (a->n % 1000) * 1000000 };

	return sys_ret(nanosleep(&ts, NULL));
}

/* Writes a line to the kernel log (to check the host's log capture by hand). */
static long op_kmsg(void *p, struct reply *rp)
{
	const struct text_args *a = p;
	char buf[512];

	snprintf(buf, sizeof(buf), "%s\n", a->s);
	return write_file("/dev/kmsg", buf);
}

/* ------------------------------------------------------------------ gcov counters (the coverage flavour) */

/*
 * gcov_snapshot reads every .gcda under /sys/kernel/debug/gcov (the kernel writes the file from
 * its counters when it is opened, kernel/gcov/fs.c) and keeps a copy; what it replies is the
 * change since its previous snapshot, as text kept in this process for gcov_chunk to hand out
 * in pieces (a reply line is at most LINE_MAX_LEN). The format knows nothing of gcda: per file
 * that changed, "<path>|<length>|" then "<word>:<value>," for each 32-bit word that changed
 * (hex; a file seen for the first time sends its non-zero words), then ";". The host keeps the
 * same images (conformance/coverage/gcov-delta.ts) and parses them.
 */
#define GCOV_ROOT "/sys/kernel/debug/gcov"

struct gcov_image {
	char *path;
	uint32_t *words;
	size_t len; /* bytes */
};

static struct gcov_image *g_gcov;
static size_t g_gcov_n;
static char *g_gcov_text;
static size_t g_gcov_text_len, g_gcov_text_cap;

static void gcov_put(const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = g_gcov_text_cap - g_gcov_text_len;

		va_start(ap, fmt);
		n = vsnprintf(g_gcov_text ? g_gcov_text + g_gcov_text_len : NULL, g_gcov_text ? room : 0, fmt, ap);
		va_end(ap);
		if (n >= 0 && g_gcov_text && (size_t)n < room) {
			g_gcov_text_len += n;
			return;
		}
		g_gcov_text_cap = g_gcov_text_cap ? g_gcov_text_cap * 2 : 1 << 16;
		g_gcov_text = realloc(g_gcov_text, g_gcov_text_cap);
		if (!g_gcov_text)
			abort();
	}
}

/* The whole file (debugfs reports no size), or NULL. */
static uint32_t *gcov_read(const char *path, size_t *len)
{
	size_t cap = 1 << 14, n = 0;
	char *buf = malloc(cap);
	int fd = open(path, O_RDONLY);
	ssize_t r;

	if (fd < 0 || !buf) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	while ((r = read(fd, buf + n, cap - n)) > 0) {
		n += r;
		if (n == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
	}
	close(fd);
	*len = n;
	return (uint32_t *)buf;
}

static void gcov_file(const char *path)
{
	struct gcov_image *img = NULL;
	size_t len, words, sent = 0;
	uint32_t *now = gcov_read(path, &len);

	if (!now)
		return;
	for (size_t i = 0; i < g_gcov_n; i++)
		if (!strcmp(g_gcov[i].path, path))
			img = &g_gcov[i];
	if (!img) {
		g_gcov = realloc(g_gcov, (g_gcov_n + 1) * sizeof(*g_gcov));
		if (!g_gcov)
			abort();
		img = &g_gcov[g_gcov_n++];
		*img = (struct gcov_image){ .path = strdup(path) };
	}
	words = len / 4;
	for (size_t i = 0; i < words; i++) {
		uint32_t old = img->words && img->len == len ? img->words[i] : 0;

		if (now[i] == old)
			continue;
		if (!sent++)
			gcov_put("%s|%zu|", path + strlen(GCOV_ROOT) + 1, len);
		gcov_put("%zx:%x,", i, now[i]);
	}
	if (!sent && img->len != len)
		gcov_put("%s|%zu|", path + strlen(GCOV_ROOT) + 1, len);
	if (sent || img->len != len)
		gcov_put(";");
	free(img->words);
	img->words = now;
	img->len = len;
}

static void gcov_walk(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[PATH_MAX];

	if (!d)
		return;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);

		/* not "." and "..", but ".cache" of ~/.cache/vfio-mc/kernel/... is a directory to walk */
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (e->d_type == DT_DIR)
			gcov_walk(path);
		else if (e->d_type == DT_REG && l > 5 && !strcmp(e->d_name + l - 5, ".gcda"))
			gcov_file(path);
	}
	closedir(d);
}

static long op_gcov_snapshot(void *p, struct reply *rp)
{
	struct stat st;

	(void)p;
	if (stat(GCOV_ROOT, &st) < 0)
		return proto_err("no %s: not a coverage kernel (npm run kernel:build -- --coverage)", GCOV_ROOT);
	g_gcov_text_len = 0;
	gcov_put("");
	gcov_walk(GCOV_ROOT);
	out_add(rp, "size", "%zu", g_gcov_text_len);
	out_add(rp, "files", "%zu", g_gcov_n);
	return 0;
}

/* A piece of the last snapshot's text, from offset; "x" first, so the value is never a number. */
static long op_gcov_chunk(void *p, struct reply *rp)
{
	const struct num_args *a = p;
	size_t room = LINE_MAX_LEN - 200, off = (size_t)a->n, n;

	if (a->n < 0 || off > g_gcov_text_len)
		return proto_err("offset %ld is outside the snapshot (%zu bytes)", a->n, g_gcov_text_len);
	n = g_gcov_text_len - off < room ? g_gcov_text_len - off : room;
	out_add(rp, "data", "x%.*s", (int)n, g_gcov_text + off);
	return (long)n;
}

/* ------------------------------------------------------------------ the table */

/*
 * Adding an op: one row here, between "#define S <argument struct tag>" and "#undef S".
 * An ioctl on a uapi struct needs nothing else (IOCTL: the arguments name the members they
 * fill, OUT_* the members printed on success); anything else gets a struct <name>_args and
 * an op_<name>() above (CALL). conformance/README.md lists the ops.
 */
static const struct op ops[] = {
	/* ---- files */
#define S text_args
	{ CALL(open), .args = { TEXT(path, s, A_PATH, 1) }, .outs = { OUT_RET(fd) } },
#undef S
#define S num_args
	{ CALL(close), .args = { IN(fd, n) } },
#undef S

	/* ---- VFIO type1 container (include/uapi/linux/vfio.h) */
#define S no_args
	{ IOCTL_VAL(vfio_get_api_version, VFIO_GET_API_VERSION), .args = { ON_FD } },
	{ IOCTL_VAL(vfio_group_unset_container, VFIO_GROUP_UNSET_CONTAINER), .args = { ON_FD } },
#undef S
#define S ioctl_value
	{ IOCTL_VAL(vfio_check_extension, VFIO_CHECK_EXTENSION), .args = { ON_FD, NAMES(ext, value, vfio_ext) } },
	{ IOCTL_VAL(vfio_set_iommu, VFIO_SET_IOMMU), .args = { ON_FD, NAMES(type, value, vfio_ext) } },
#undef S
#define S vfio_group_status
	{ IOCTL(vfio_group_get_status, VFIO_GROUP_GET_STATUS, argsz), .args = { ON_FD },
	  .outs = { OUT_BIT(viable, flags, VFIO_GROUP_FLAGS_VIABLE),
		    OUT_BIT(container_set, flags, VFIO_GROUP_FLAGS_CONTAINER_SET) } },
#undef S
#define S container_fd
	{ IOCTL_PTR(vfio_group_set_container, VFIO_GROUP_SET_CONTAINER), .args = { ON_FD, IN(container, fd) } },
#undef S
#define S device_name
	{ IOCTL_VAL(vfio_group_get_device_fd, VFIO_GROUP_GET_DEVICE_FD),
	  .args = { ON_FD, TEXT(name, name, A_DEVICE, 1) }, .outs = { OUT_RET(device_fd) } },
#undef S
#define S vfio_iommu_type1_dma_map
	{ IOCTL(vfio_map_dma, VFIO_IOMMU_MAP_DMA, argsz),
	  .args = { ON_FD, IN(vaddr, vaddr), IN(iova, iova), IN(size, size),
		    FLAGS(flags, flags, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE, map_dma_flags) } },
#undef S
	/* vfio_dma_do_unmap copies size back only on success */
#define S vfio_iommu_type1_dma_unmap
	{ IOCTL(vfio_unmap_dma, VFIO_IOMMU_UNMAP_DMA, argsz),
	  .args = { ON_FD, OPT(iova, iova, 0), OPT(size, size, 0), FLAGS(flags, flags, 0, unmap_dma_flags) },
	  .outs = { OUT_DEC(size, size) } },
#undef S

	/* ---- VFIO device fd (include/uapi/linux/vfio.h, drivers/vfio/pci/vfio_pci_core.c) */
#define S vfio_device_info
	{ IOCTL(vfio_device_get_info, VFIO_DEVICE_GET_INFO, argsz), .args = { ON_FD },
	  .outs = { OUT_DEC(flags, flags), OUT_BIT(reset, flags, VFIO_DEVICE_FLAGS_RESET),
		    OUT_DEC(num_regions, num_regions) } },
#undef S
#define S vfio_region_info
	{ IOCTL(vfio_device_get_region_info, VFIO_DEVICE_GET_REGION_INFO, argsz), .args = { ON_FD, IN(index, index) },
	  .outs = { OUT_HEX(offset, offset), OUT_HEX(size, size), OUT_DEC(flags, flags) } },
#undef S
#define S no_args
	{ IOCTL_VAL(vfio_device_reset, VFIO_DEVICE_RESET), .args = { ON_FD } },
#undef S
#define S region_rw_args
	{ CALL(pread), .args = { IN(fd, fd), IN(offset, offset), OPT(size, size, 4) } },
	{ CALL(pwrite), .args = { IN(fd, fd), IN(offset, offset), IN(value, value), OPT(size, size, 4) } },
#undef S

	/* ---- VFIO device cdev + iommufd */
#define S vfio_device_bind_iommufd
	{ IOCTL(vfio_device_bind_iommufd, VFIO_DEVICE_BIND_IOMMUFD, argsz),
	  .args = { ON_FD, IN(iommufd, iommufd) }, .outs = { OUT_DEC(devid, out_devid) } },
#undef S
#define S vfio_device_attach_iommufd_pt
	{ IOCTL(vfio_device_attach_iommufd_pt, VFIO_DEVICE_ATTACH_IOMMUFD_PT, argsz),
	  .args = { ON_FD, IN(pt_id, pt_id) }, .outs = { OUT_DEC(pt_id, pt_id) } },
#undef S

	/* ---- devices: mtty mdevs (samples/vfio-mdev/mtty.c) and the allowed PCI device */
#define S mtty_args
	{ CALL(mtty_create), .args = { TEXT(uuid, uuid, A_MDEV, 1), TEXT(type, type, A_STR, 0) } },
	{ CALL(mtty_remove), .args = { TEXT(uuid, uuid, A_MDEV, 1) } },
#undef S
#define S text_args
	{ CALL(pci_group), .args = { TEXT(bdf, s, A_PCI, 1) } },
	{ CALL(pin_create), .args = { TEXT(uuid, s, A_MDEV, 1) } },
	{ CALL(pin_remove), .args = { TEXT(uuid, s, A_MDEV, 1) } },
#undef S
#define S pin_line_args
	{ CALL(pin_worker), .args = { TEXT(uuid, uuid, A_MDEV, 1), TEXT(line, line, A_STR, 1) } },
#undef S
	/* the pinning mdev's device-specific ioctl on its device fd (vfio-mc-pin.h) */
#define S vfio_mc_pin_cmd
	{ IOCTL_PTR(pin_cmd, VFIO_MC_PIN_CMD),
	  .args = { SET(argsz, sizeof(struct vfio_mc_pin_cmd)), ON_FD, NAMES(op, op, pin_ops), OPT(iova, iova, 0),
		    OPT(length, length, 0), FLAGS(data, data, 0, pin_data), FLAGS(flags, flags, 0, pin_flags) },
	  .outs = { OUT_DEC(result, result) } },
#undef S

	/* ---- iommufd (include/uapi/linux/iommufd.h) */
#define S iommu_ioas_alloc
	{ IOCTL(ioas_alloc, IOMMU_IOAS_ALLOC, size), .args = { ON_FD }, .outs = { OUT_DEC(ioas_id, out_ioas_id) } },
#undef S
#define S iommu_ioas_map
	{ IOCTL(ioas_map, IOMMU_IOAS_MAP, size),
	  .args = { ON_FD, IN(ioas, ioas_id), IN(vaddr, user_va), IN(length, length), OPT(iova, iova, 0),
		    FLAGS(flags, flags, IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE, ioas_map_flags) },
	  .outs = { OUT_HEX(iova, iova) } },
#undef S
#define S iommu_ioas_map_file
	{ IOCTL(ioas_map_file, IOMMU_IOAS_MAP_FILE, size),
	  .args = { ON_FD, IN(ioas, ioas_id), IN(mfd, fd), IN(length, length), OPT(start, start, 0),
		    OPT(iova, iova, 0),
		    FLAGS(flags, flags, IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE, ioas_map_flags) },
	  .outs = { OUT_HEX(iova, iova) } },
#undef S
#define S iommu_ioas_unmap
	{ IOCTL(ioas_unmap, IOMMU_IOAS_UNMAP, size),
	  .args = { ON_FD, IN(ioas, ioas_id), IN(iova, iova), IN(length, length) },
	  .outs = { OUT_HEX(length, length) } },
#undef S
#define S iommu_ioas_copy
	{ IOCTL(ioas_copy, IOMMU_IOAS_COPY, size),
	  .args = { ON_FD, IN(dst_ioas, dst_ioas_id), IN(src_ioas, src_ioas_id), IN(src_iova, src_iova),
		    IN(length, length), OPT(dst_iova, dst_iova, 0),
		    FLAGS(flags, flags, IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE, ioas_map_flags) },
	  .outs = { OUT_HEX(dst_iova, dst_iova) } },
#undef S
#define S iommu_ioas_change_process
	{ IOCTL(ioas_change_process, IOMMU_IOAS_CHANGE_PROCESS, size), .args = { ON_FD } },
#undef S
#define S iommu_option
	{ IOCTL(option, IOMMU_OPTION, size),
	  .args = { ON_FD, NAMES(option_id, option_id, option_ids), NAMES(op, op, option_ops),
		    OPT(object_id, object_id, 0), OPT(val64, val64, 0) },
	  .outs = { OUT_DEC(val64, val64) } },
#undef S
#define S iommu_destroy
	{ IOCTL(destroy, IOMMU_DESTROY, size), .args = { ON_FD, IN(id, id) } },
#undef S

	/* ---- IOMMU_TEST_CMD (drivers/iommu/iommufd/selftest.c:iommufd_test) */
#define S iommu_test_cmd
	{ IOCTL(mock_domain, IOMMU_TEST_CMD, size),
	  .args = { SET(op, IOMMU_TEST_OP_MOCK_DOMAIN), ON_FD, IN(ioas, id) },
	  .outs = { OUT_DEC(stdev_id, mock_domain.out_stdev_id), OUT_DEC(hwpt_id, mock_domain.out_hwpt_id),
		    OUT_DEC(idev_id, mock_domain.out_idev_id) } },
	{ IOCTL(create_access, IOMMU_TEST_CMD, size),
	  .args = { SET(op, IOMMU_TEST_OP_CREATE_ACCESS), ON_FD, IN(ioas, id),
		    FLAGS(flags, create_access.flags, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES, access_create_flags) },
	  .outs = { OUT_DEC(access_fd, create_access.out_access_fd) } },
	{ IOCTL(access_pages, IOMMU_TEST_CMD, size),
	  .args = { SET(op, IOMMU_TEST_OP_ACCESS_PAGES), ON_FD, IN(access_fd, id), IN(iova, access_pages.iova),
		    IN(length, access_pages.length), OPT(uptr, access_pages.uptr, 0),
		    FLAGS(flags, access_pages.flags, 0, access_pages_flags) },
	  .outs = { OUT_DEC(access_pages_id, access_pages.out_access_pages_id) } },
	{ IOCTL(destroy_access_pages, IOMMU_TEST_CMD, size),
	  .args = { SET(op, IOMMU_TEST_OP_DESTROY_ACCESS_PAGES), ON_FD, IN(access_fd, id),
		    IN(id, destroy_access_pages.access_pages_id) } },
	{ IOCTL(access_rw, IOMMU_TEST_CMD, size),
	  .args = { SET(op, IOMMU_TEST_OP_ACCESS_RW), ON_FD, IN(access_fd, id), IN(iova, access_rw.iova),
		    IN(length, access_rw.length), IN(uptr, access_rw.uptr),
		    FLAGS(flags, access_rw.flags, 0, access_rw_flags) } },
	{ IOCTL(md_check_refs, IOMMU_TEST_CMD, size),
	  .args = { SET(op, IOMMU_TEST_OP_MD_CHECK_REFS), ON_FD, IN(uptr, check_refs.uptr),
		    IN(length, check_refs.length), IN(refs, check_refs.refs) } },
	/*
	 * DMABUF_GET: the uapi contract (and tools/testing/selftests/iommu) expect the new dma-buf
	 * fd as the ioctl's return value. Reported as ret; the fds now open show where it went.
	 */
	{ IOCTL(dmabuf_get, IOMMU_TEST_CMD, size),
	  .args = { SET(op, IOMMU_TEST_OP_DMABUF_GET), SET(dmabuf_get.open_flags, O_CLOEXEC), ON_FD,
		    IN(length, dmabuf_get.length) } },
#undef S

	/* ---- memory */
#define S memfd_args
	{ CALL(memfd_create), .args = { TEXT(name, name, A_STR, 0), OPT(size, size, 0), FLAGS(flags, flags, 0, memfd_flags) },
	  .outs = { OUT_RET(fd) } },
#undef S
#define S mmap_args
	{ CALL(mmap),
	  .args = { IN(length, length), FLAGS(prot, prot, PROT_READ | PROT_WRITE, mmap_prot),
		    FLAGS(flags, flags, MAP_SHARED | MAP_ANONYMOUS, mmap_flags), OPT(fd, fd, -1ULL),
		    OPT(offset, offset, 0), OPT(addr, addr, 0) } },
#undef S
#define S range_args
	{ CALL(munmap), .args = { IN(addr, addr), IN(length, length) } },
	{ CALL(memset), .args = { IN(addr, addr), IN(length, length), OPT(byte, byte, 0) } },
#undef S
#define S load_args
	{ CALL(load), .args = { IN(addr, addr) } },
#undef S

	/* ---- processes (fork, exec, exit, proc_status get their bookkeeping in target/session.ts) */
#define S no_args
	{ CALL(getpid), .outs = { OUT_RET(pid) } },
	{ CALL(fds) },
#undef S
#define S num_args
	{ CALL(fork), .args = { IN(port, n) }, .outs = { OUT_RET(pid) } },
	{ CALL(spawn), .args = { IN(port, n) }, .outs = { OUT_RET(pid) } },
	{ CALL(exit), .args = { OPT(code, n, 0) } },
	{ CALL(proc_status), .args = { OPT(pid, n, 0) } },
	{ CALL(fail_nth), .args = { IN(n, n) } },
	{ CALL(sleep), .args = { IN(ms, n) } },
#undef S
#define S no_args
	{ CALL(gcov_snapshot) },
#undef S
#define S num_args
	{ CALL(gcov_chunk), .args = { IN(offset, n) } },
#undef S
#define S text_args
	{ CALL(exec), .args = { TEXT(keep, s, A_STR, 0) } },
	{ CALL(kmsg), .args = { TEXT(text, s, A_STR, 1) } },
#undef S
#define S wait_args
	{ CALL(wait_gone), .args = { IN(pid, pid), OPT(timeout_ms, timeout_ms, 10000) } },
#undef S
#define S cap_args
	{ CALL(drop_cap), .args = { NAMES(cap, cap, caps) } },
#undef S
#define S rlimit_args
	{ CALL(setrlimit),
	  .args = { NAMES(resource, resource, rlimits), IN(cur, rl.rlim_cur), OPT_AS(max, rl.rlim_max, cur) } },
#undef S
};

#define N_OPS (sizeof(ops) / sizeof(ops[0]))

static const struct op *find_op(const char *name)
{
	for (size_t i = 0; i < N_OPS; i++)
		if (!strcmp(ops[i].name, name))
			return &ops[i];
	return NULL;
}

/*
 * The table's own consistency, checked at start (a mistake in a row is a shim bug, not a
 * request error): struct sizes, member sizes, string members, default-from references,
 * duplicate names.
 */
static void check_table(void)
{
	for (size_t i = 0; i < N_OPS; i++) {
		const struct op *op = &ops[i];
		const char *bad = NULL;

		if (op->size > ARG_BUF)
			bad = "argument struct larger than ARG_BUF";
		if (!op->call && !op->ioctl_name)
			bad = "neither a call nor an ioctl";
		for (size_t j = 0; j < i; j++)
			if (!strcmp(ops[j].name, op->name))
				bad = "op name used twice";
		for (const struct arg *a = op->args; a->name && !bad; a++) {
			if (a->size != 1 && a->size != 2 && a->size != 4 && a->size != 8)
				bad = "an argument member is not 1, 2, 4 or 8 bytes";
			else if (a->kind != A_NUM && a->kind != A_FIXED && a->size != sizeof(char *))
				bad = "a string argument whose member is not a pointer";
			else if (a->off == AT_FD ? op->call != NULL : a->off + a->size > op->size)
				bad = "ON_FD in a CALL row, or a member outside the struct";
			else if (a->dflt_arg && !find_arg(op, a->dflt_arg))
				bad = "OPT_AS names no argument of the op";
			else if (a->kind != A_FIXED && find_arg(op, a->name) != a)
				bad = "argument name used twice";
		}
		if (bad) {
			fprintf(stderr, "vfio-mc-shim: op %s: %s\n", op->name, bad);
			exit(70);
		}
	}
}

/* ------------------------------------------------------------------ dispatch */

/* Parses the request into the op's argument struct, makes the call, adds the outputs. */
static long run_op(const struct op *op, const struct req *r, struct reply *rp)
{
	_Alignas(16) unsigned char args[ARG_BUF];
	int fd = -1;
	long rc;

	if (parse_args(op, r, args, &fd))
		return PROTO_ERR;
	rc = op->call ? op->call(args, rp) : call_ioctl(op, fd, args);
	if (rc >= 0)
		add_outputs(op, args, rc, rp);
	return rc;
}

static void handle(char *line)
{
	static struct reply rp;
	char reply[LINE_MAX_LEN + 128];
	const struct op *op;
	struct req r;
	long rc;

	if (parse_req(line, &r)) {
		snprintf(reply, sizeof(reply), "%llu proto_error=malformed_request\n", r.seq);
		send_line(reply);
		return;
	}
	rp.seq = r.seq;
	rp.len = 0;
	g_proto_err[0] = 0;
	g_fail_injected = -1;
	op = find_op(r.op);
	rc = op ? run_op(op, &r, &rp) : proto_err("unknown op %s", r.op);
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
			out_add(&rp, "fail_injected", "%d", g_fail_injected);
		snprintf(reply, sizeof(reply), "%llu ret=%ld errno=%s%.*s\n", r.seq, rc,
			 rc < 0 ? errno_name(-rc) : "0", (int)rp.len, rp.buf);
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

/* ------------------------------------------------------------------ --layout and --ops */

/*
 * Every ioctl number and every uapi struct member the table binds, as this binary was
 * compiled. conformance/shim/layout.ts compiles the same names against the target tree's
 * headers alone and compares (a shim built against other headers would differ).
 */
static void print_layout(void)
{
	for (size_t i = 0; i < N_OPS; i++) {
		const struct op *op = &ops[i];
		const char *tag = op->type + strlen("struct ");

		if (!op->ioctl_name)
			continue;
		printf("ioctl %s 0x%08lx\n", op->ioctl_name, op->ioctl);
		if (!op->uapi)
			continue;
		printf("struct %s size=%zu\n", tag, op->size);
		printf("field %s.%s off=%u size=%u\n", tag, op->size_member, op->size_off, op->size_size);
		for (const struct arg *a = op->args; a->name; a++)
			if (a->off != AT_FD)
				printf("field %s.%s off=%u size=%u\n", tag, a->member, a->off, a->size);
		for (const struct outf *f = op->outs; f->name; f++)
			if (f->fmt != O_RET)
				printf("field %s.%s off=%u size=%u\n", tag, f->member, f->off, f->size);
	}
}

static const char *const kind_names[] = {
	[A_NUM] = "num", [A_STR] = "text", [A_PATH] = "path", [A_MDEV] = "mdev",
	[A_PCI] = "pci", [A_DEVICE] = "device", [A_FIXED] = "fixed",
};

/* The table: "<op> <ioctl|call> arg:kind[?] ... -> out ..." (? marks an optional argument). */
static void print_ops(void)
{
	for (size_t i = 0; i < N_OPS; i++) {
		const struct op *op = &ops[i];

		printf("%s %s", op->name, op->ioctl_name ? op->ioctl_name : "call");
		for (const struct arg *a = op->args; a->name; a++)
			if (a->kind != A_FIXED)
				printf(" %s:%s%s", a->name, kind_names[a->kind], a->required ? "" : "?");
		if (op->outs[0].name)
			printf(" ->");
		for (const struct outf *f = op->outs; f->name; f++)
			printf(" %s", f->name);
		printf("\n");
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: vfio-mc-shim --port N --allow PATH[,PATH|mdev:UUID|pci:DDDD:BB:DD.F...] [--chan-dir DIR] [--exec-seq S]\n"
		"       vfio-mc-shim --layout | --ops\n");
	exit(64);
}

int main(int argc, char **argv)
{
	unsigned long long exec_seq = 0;
	int have_exec_seq = 0;

	check_table();
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--layout")) {
			print_layout();
			return 0;
		} else if (!strcmp(argv[i], "--ops")) {
			print_ops();
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
