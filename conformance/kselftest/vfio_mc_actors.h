/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Processes for the tests `vfio-mc export kselftest` writes: a conformance path runs its uAPI
 * calls in several processes (a VMM, its forked child, the image it execs), in the order the
 * path gives. Each such process is an "actor": it runs vmc_actor_loop() and performs one call
 * per request from the test, which asserts the errno and reads VmPin/VmLck from
 * /proc/<pid>/status. An actor forks further actors and execs itself (keeping the fds it is
 * told to keep) to stand for the process's new image, so the test keeps driving it by pid.
 *
 * The calls use iommufd_utils.h where it has a helper; each vmc_* wrapper returns like the
 * ioctl: 0, or -1 with errno set to the actor's errno, for ASSERT_EQ(0, ...) and
 * EXPECT_ERRNO(E, ...).
 */
#ifndef __VFIO_MC_ACTORS_H
#define __VFIO_MC_ACTORS_H

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "iommufd_utils.h"

#define VMC_MAX_ACTORS 8
#define VMC_PAGE 4096UL

enum vmc_op {
	VMC_OPEN = 1,
	VMC_CLOSE,
	VMC_DROP_CAP_IPC_LOCK,
	VMC_RLIMIT_MODE_MM,
	VMC_SETRLIMIT_MEMLOCK,
	VMC_IOAS_ALLOC,
	VMC_MOCK_DOMAIN,
	VMC_MEMFD,
	VMC_MMAP,
	VMC_IOAS_MAP,
	VMC_IOAS_MAP_FILE,
	VMC_IOAS_COPY,
	VMC_IOAS_UNMAP,
	VMC_CHANGE_PROCESS,
	VMC_DESTROY,
	VMC_CREATE_ACCESS,
	VMC_ACCESS_PAGES,
	VMC_DESTROY_ACCESS_PAGES,
	VMC_FORK,
	VMC_EXEC,
	VMC_EXIT,
};

struct vmc_req {
	int op;
	uint64_t a[6];
	char path[64];
};

struct vmc_resp {
	int err;
	uint64_t out;
};

/* One actor: its request and response pipes (made before any actor exists) and its pid. */
struct vmc_actor {
	int req[2];
	int resp[2];
	pid_t pid;
};

static struct vmc_actor vmc_actors[VMC_MAX_ACTORS];

static int vmc_fd_in(int fd, const uint64_t *keep, int n)
{
	for (int i = 0; i < n; i++)
		if ((int)keep[i] == fd)
			return 1;
	return 0;
}

static int vmc_is_pipe(int fd)
{
	for (int i = 0; i < VMC_MAX_ACTORS; i++)
		if (fd == vmc_actors[i].req[0] || fd == vmc_actors[i].req[1] ||
		    fd == vmc_actors[i].resp[0] || fd == vmc_actors[i].resp[1])
			return 1;
	return 0;
}

static void vmc_actor_loop(int self, int hello);

/*
 * execve() of this test binary as the same actor; fds not kept (and not pipes) are closed.
 * The new image gets the actor's number and every actor's pipe fds on its command line.
 */
static int vmc_do_exec(int self, const uint64_t *keep, int nkeep)
{
	char arg[16], pipes[VMC_MAX_ACTORS * 48] = "";
	char *argv[] = { "vfio-mc-actor", "--vfio-mc-actor", arg, pipes, NULL };
	DIR *dp = opendir("/proc/self/fd");
	struct dirent *d;

	if (!dp)
		return -errno;
	while ((d = readdir(dp))) {
		int fd = atoi(d->d_name);

		if (d->d_name[0] == '.' || fd <= 2 || fd == dirfd(dp))
			continue;
		fcntl(fd, F_SETFD, vmc_fd_in(fd, keep, nkeep) || vmc_is_pipe(fd) ? 0 : FD_CLOEXEC);
	}
	closedir(dp);
	snprintf(arg, sizeof(arg), "%d", self);
	for (int i = 0; i < VMC_MAX_ACTORS; i++) {
		struct vmc_actor *a = &vmc_actors[i];

		snprintf(pipes + strlen(pipes), sizeof(pipes) - strlen(pipes), "%d,%d,%d,%d,%d;",
			 a->req[0], a->req[1], a->resp[0], a->resp[1], a->pid);
	}
	execv("/proc/self/exe", argv);
	return -errno;
}

static int vmc_drop_cap_ipc_lock(void)
{
	cap_t caps = cap_get_proc();
	cap_value_t v = CAP_IPC_LOCK;
	int rc;

	if (!caps)
		return -errno;
	rc = cap_set_flag(caps, CAP_EFFECTIVE, 1, &v, CAP_CLEAR) || cap_set_proc(caps) ? -errno : 0;
	cap_free(caps);
	return rc;
}

static int vmc_test_cmd(int fd, struct iommu_test_cmd *cmd)
{
	cmd->size = sizeof(*cmd);
	return ioctl(fd, IOMMU_TEST_CMD, cmd) ? -errno : 0;
}

#define VMC_ERR(x) ((x) ? -errno : 0)

/* Performs one request in the actor; returns 0 or -errno, with an output in *out. */
static int vmc_perform(int self, const struct vmc_req *r, uint64_t *out)
{
	const uint64_t *a = r->a;
	int fd = (int)a[0];
	__u32 id32 = 0;
	__u64 iova = a[3];
	struct rlimit rl = { a[0], a[0] };
	struct iommu_option opt = { .size = sizeof(opt), .option_id = IOMMU_OPTION_RLIMIT_MODE,
				    .op = IOMMU_OPTION_OP_SET, .val64 = 1 };
	struct iommu_ioas_change_process cp = { .size = sizeof(cp) };
	struct iommu_ioas_copy copy = { .size = sizeof(copy) };
	struct iommu_test_cmd tc = {};
	void *p;
	pid_t pid;

	switch (r->op) {
	case VMC_OPEN:
		fd = open(r->path, O_RDWR);
		*out = fd;
		return fd < 0 ? -errno : 0;
	case VMC_CLOSE:
		return VMC_ERR(close(fd));
	case VMC_DROP_CAP_IPC_LOCK:
		return vmc_drop_cap_ipc_lock();
	case VMC_RLIMIT_MODE_MM:
		return VMC_ERR(ioctl(fd, IOMMU_OPTION, &opt));
	case VMC_SETRLIMIT_MEMLOCK:
		return VMC_ERR(setrlimit(RLIMIT_MEMLOCK, &rl));
	case VMC_IOAS_ALLOC:
		if (_test_ioctl_ioas_alloc(fd, &id32))
			return -errno;
		*out = id32;
		return 0;
	case VMC_MOCK_DOMAIN:
		return VMC_ERR(_test_cmd_mock_domain(fd, a[1], NULL, NULL, NULL));
	case VMC_MEMFD:
		fd = memfd_create("guest", 0);
		if (fd < 0 || ftruncate(fd, a[0]))
			return -errno;
		*out = fd;
		return 0;
	case VMC_MMAP:
		p = mmap(NULL, a[0], PROT_READ | PROT_WRITE,
			 (int)a[1] < 0 ? MAP_SHARED | MAP_ANONYMOUS : MAP_SHARED, (int)a[1], 0);
		if (p == MAP_FAILED)
			return -errno;
		*out = (uintptr_t)p;
		return 0;
	case VMC_IOAS_MAP:
		return VMC_ERR(_test_ioctl_ioas_map(fd, a[1], (void *)(uintptr_t)a[2], a[4], &iova,
						    IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
							    IOMMU_IOAS_MAP_WRITEABLE));
	case VMC_IOAS_MAP_FILE:
		return VMC_ERR(_test_ioctl_ioas_map_file(fd, a[1], (int)a[2], a[5], a[4], &iova,
							 IOMMU_IOAS_MAP_FIXED_IOVA |
								 IOMMU_IOAS_MAP_READABLE |
								 IOMMU_IOAS_MAP_WRITEABLE));
	case VMC_IOAS_COPY:
		copy.dst_ioas_id = a[1];
		copy.src_ioas_id = a[2];
		copy.dst_iova = a[3];
		copy.src_iova = a[5];
		copy.length = a[4];
		copy.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			     IOMMU_IOAS_MAP_WRITEABLE;
		return VMC_ERR(ioctl(fd, IOMMU_IOAS_COPY, &copy));
	case VMC_IOAS_UNMAP:
		return VMC_ERR(_test_ioctl_ioas_unmap(fd, a[1], a[3], a[4], NULL));
	case VMC_CHANGE_PROCESS:
		return VMC_ERR(ioctl(fd, IOMMU_IOAS_CHANGE_PROCESS, &cp));
	case VMC_DESTROY:
		return VMC_ERR(_test_ioctl_destroy(fd, a[1]));
	case VMC_CREATE_ACCESS:
		if (_test_cmd_create_access(fd, a[1], &id32, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES))
			return -errno;
		*out = id32;
		return 0;
	case VMC_ACCESS_PAGES:
		tc.op = IOMMU_TEST_OP_ACCESS_PAGES;
		tc.id = a[1];
		tc.access_pages.iova = a[3];
		tc.access_pages.length = a[4];
		if (vmc_test_cmd(fd, &tc))
			return -errno;
		*out = tc.access_pages.out_access_pages_id;
		return 0;
	case VMC_DESTROY_ACCESS_PAGES:
		return VMC_ERR(_test_cmd_destroy_access_pages(fd, a[1], a[2]));
	case VMC_FORK:
		pid = fork();
		if (pid == 0)
			vmc_actor_loop((int)a[0], 0);
		*out = pid;
		return pid < 0 ? -errno : 0;
	case VMC_EXEC:
		return vmc_do_exec(self, a + 1, (int)a[0]);
	}
	return -EOPNOTSUPP;
}

/*
 * The actor's life: perform requests until told to exit. Never returns. An exec'd image says
 * hello first: that is the answer to the exec request its old image took.
 */
static void vmc_actor_loop(int self, int hello)
{
	struct vmc_actor *me = &vmc_actors[self];
	struct vmc_resp resp = {};
	struct vmc_req r;

	signal(SIGCHLD, SIG_IGN); /* forked actors are reaped by the kernel */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (hello && write(me->resp[1], &resp, sizeof(resp)) != sizeof(resp))
		_exit(1);
	while (read(me->req[0], &r, sizeof(r)) == sizeof(r)) {
		resp = (struct vmc_resp){};
		if (r.op == VMC_EXIT) {
			/* answer first: the test waits for the pid to be gone */
			if (write(me->resp[1], &resp, sizeof(resp)) != sizeof(resp))
				break;
			_exit(0);
		}
		resp.err = -vmc_perform(self, &r, &resp.out);
		if (write(me->resp[1], &resp, sizeof(resp)) != sizeof(resp))
			break;
	}
	_exit(1);
}

/* In main(): an exec'd actor image goes back to its loop instead of running the tests. */
static void vmc_actor_main(int argc, char **argv)
{
	const char *p;

	if (argc != 4 || strcmp(argv[1], "--vfio-mc-actor"))
		return;
	p = argv[3];
	for (int i = 0; i < VMC_MAX_ACTORS && p && *p; i++) {
		struct vmc_actor *a = &vmc_actors[i];

		sscanf(p, "%d,%d,%d,%d,%d", &a->req[0], &a->req[1], &a->resp[0], &a->resp[1], &a->pid);
		p = strchr(p, ';');
		p = p ? p + 1 : NULL;
	}
	vmc_actor_loop(atoi(argv[2]), 1);
}

/* Makes every actor's pipes (inherited by all actors, so any actor can fork any other). */
static int vmc_pipes(void)
{
	for (int i = 0; i < VMC_MAX_ACTORS; i++)
		if (pipe(vmc_actors[i].req) || pipe(vmc_actors[i].resp))
			return -1;
	return 0;
}

/* Starts actor `n` as a child of the test process. */
static int vmc_spawn(int n)
{
	pid_t pid = fork();

	if (pid == 0)
		vmc_actor_loop(n, 0);
	vmc_actors[n].pid = pid;
	return pid < 0 ? -1 : 0;
}

/* One call in actor n; returns like the syscall (0, or -1 and errno). */
static long vmc_call(int n, int op, uint64_t *out, const char *path, int nargs, ...)
{
	struct vmc_req r = { .op = op };
	struct vmc_resp resp;
	va_list ap;

	va_start(ap, nargs);
	for (int i = 0; i < nargs && i < 6; i++)
		r.a[i] = va_arg(ap, uint64_t);
	va_end(ap);
	if (path)
		snprintf(r.path, sizeof(r.path), "%s", path);
	if (write(vmc_actors[n].req[1], &r, sizeof(r)) != sizeof(r) ||
	    read(vmc_actors[n].resp[0], &resp, sizeof(resp)) != sizeof(resp)) {
		errno = EPIPE;
		return -1;
	}
	if (out)
		*out = resp.out;
	/* exit: reap an actor this process forked, else wait until the kernel has reaped it */
	if (op == VMC_EXIT && waitpid(vmc_actors[n].pid, NULL, 0) < 0)
		while (kill(vmc_actors[n].pid, 0) == 0)
			usleep(1000);
	errno = resp.err;
	return resp.err ? -1 : 0;
}

#define VMC_U(x) ((uint64_t)(x))
#define vmc_open(n, path, out) vmc_call(n, VMC_OPEN, out, path, 0)
#define vmc_close(n, fd) vmc_call(n, VMC_CLOSE, NULL, NULL, 1, VMC_U(fd))
#define vmc_drop_cap(n) vmc_call(n, VMC_DROP_CAP_IPC_LOCK, NULL, NULL, 0)
#define vmc_rlimit_mode_mm(n, fd) vmc_call(n, VMC_RLIMIT_MODE_MM, NULL, NULL, 1, VMC_U(fd))
#define vmc_setrlimit_memlock(n, bytes) \
	vmc_call(n, VMC_SETRLIMIT_MEMLOCK, NULL, NULL, 1, VMC_U(bytes))
#define vmc_ioas_alloc(n, fd, out) vmc_call(n, VMC_IOAS_ALLOC, out, NULL, 1, VMC_U(fd))
#define vmc_mock_domain(n, fd, ioas) \
	vmc_call(n, VMC_MOCK_DOMAIN, NULL, NULL, 2, VMC_U(fd), VMC_U(ioas))
#define vmc_memfd(n, size, out) vmc_call(n, VMC_MEMFD, out, NULL, 1, VMC_U(size))
#define vmc_mmap(n, length, fd, out) vmc_call(n, VMC_MMAP, out, NULL, 2, VMC_U(length), VMC_U(fd))
#define vmc_ioas_map(n, fd, ioas, vaddr, iova, length)                                    \
	vmc_call(n, VMC_IOAS_MAP, NULL, NULL, 5, VMC_U(fd), VMC_U(ioas), VMC_U(vaddr), \
		 VMC_U(iova), VMC_U(length))
#define vmc_ioas_map_file(n, fd, ioas, mfd, iova, length, start)                               \
	vmc_call(n, VMC_IOAS_MAP_FILE, NULL, NULL, 6, VMC_U(fd), VMC_U(ioas), VMC_U(mfd), \
		 VMC_U(iova), VMC_U(length), VMC_U(start))
#define vmc_ioas_copy(n, fd, dst, src, dst_iova, length, src_iova)                           \
	vmc_call(n, VMC_IOAS_COPY, NULL, NULL, 6, VMC_U(fd), VMC_U(dst), VMC_U(src), \
		 VMC_U(dst_iova), VMC_U(length), VMC_U(src_iova))
#define vmc_ioas_unmap(n, fd, ioas, iova, length)                                  \
	vmc_call(n, VMC_IOAS_UNMAP, NULL, NULL, 5, VMC_U(fd), VMC_U(ioas), VMC_U(0), \
		 VMC_U(iova), VMC_U(length))
#define vmc_change_process(n, fd) vmc_call(n, VMC_CHANGE_PROCESS, NULL, NULL, 1, VMC_U(fd))
#define vmc_destroy(n, fd, id) vmc_call(n, VMC_DESTROY, NULL, NULL, 2, VMC_U(fd), VMC_U(id))
#define vmc_create_access(n, fd, ioas, out) \
	vmc_call(n, VMC_CREATE_ACCESS, out, NULL, 2, VMC_U(fd), VMC_U(ioas))
#define vmc_access_pages(n, fd, access, iova, length, out)                               \
	vmc_call(n, VMC_ACCESS_PAGES, out, NULL, 5, VMC_U(fd), VMC_U(access), VMC_U(0), \
		 VMC_U(iova), VMC_U(length))
#define vmc_destroy_access_pages(n, fd, access, id) \
	vmc_call(n, VMC_DESTROY_ACCESS_PAGES, NULL, NULL, 3, VMC_U(fd), VMC_U(access), VMC_U(id))
/* actor n forks actor m */
#define vmc_fork(n, m) vmc_call(n, VMC_FORK, (uint64_t *)&vmc_actors[m].pid, NULL, 1, VMC_U(m))
#define vmc_exit(n) vmc_call(n, VMC_EXIT, NULL, NULL, 0)
/* actor n execs itself keeping these fds (up to 5) */
#define vmc_exec(n, nkeep, ...) vmc_call(n, VMC_EXEC, NULL, NULL, 1 + (nkeep), VMC_U(nkeep), ##__VA_ARGS__)

/* VmPin or VmLck ("VmPin:") of actor n in kB, read as signed (a counter driven below 0 wraps). */
static long vmc_status_kb(int n, const char *field)
{
	char path[64], line[256];
	unsigned long long kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", vmc_actors[n].pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, field, strlen(field)))
			sscanf(line + strlen(field), "%llu", &kb);
	if (f)
		fclose(f);
	return (long)(int64_t)kb;
}

#define vmc_vm_pin_kb(n) vmc_status_kb(n, "VmPin:")
#define vmc_vm_lck_kb(n) vmc_status_kb(n, "VmLck:")

/* Teardown: every actor still alive exits. */
static void vmc_exit_all(void)
{
	for (int n = VMC_MAX_ACTORS - 1; n >= 0; n--)
		if (vmc_actors[n].pid > 0 && kill(vmc_actors[n].pid, 0) == 0)
			vmc_exit(n);
}

#endif
