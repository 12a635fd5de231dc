// SPDX-License-Identifier: GPL-2.0-only
/*
 * U6 (spec/findings/U6-device-list-lock-order.md): vfio_iommu_type1 takes device_list_lock
 * inside iommu->lock (vfio_notify_dma_unmap, register_device), and a driver that unpins in its
 * dma_unmap callback, as it must, takes iommu->lock inside device_list_lock. The pinning test
 * mdev (conformance/mdev/vfio-mc-pin.c) is such a driver. Both tests fail on 7.3.4 and pass
 * with conformance/kernel/patches/0003.
 */
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "vfio_mc_pin_utils.h"

#define CIRCULAR "possible circular locking dependency"

/* An mdev of the test type in a fresh type1v2 container, its device open, 4 pages mapped. */
struct setup {
	struct mdev m;
	int container;
	int device;
	char *buf;
};

static int setup_container(struct setup *s, int n)
{
	s->m.group = -1;
	if (mdev_create(&s->m, n))
		return -1;
	s->container = open("/dev/vfio/vfio", O_RDWR);
	if (s->container < 0 || ioctl(s->m.group, VFIO_GROUP_SET_CONTAINER, &s->container) ||
	    ioctl(s->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		return -1;
	s->device = ioctl(s->m.group, VFIO_GROUP_GET_DEVICE_FD, s->m.uuid);
	s->buf = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (s->device < 0 || s->buf == MAP_FAILED)
		return -1;
	memset(s->buf, 0, 4 * PAGE);
	return map_dma(s->container, s->buf, IOVA, 4 * PAGE);
}

/* lockdep is on and has not switched itself off after an earlier report (/proc/lockdep_stats). */
static int lockdep_active(void)
{
	char line[128];
	int on = -1;
	FILE *f = fopen("/proc/lockdep_stats", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, " debug_locks: %d", &on) == 1)
			break;
	if (f)
		fclose(f);
	return on == 1;
}

/* Whether a kernel message since `fd` was opened (at the end of the log) contains `text`. */
static int kmsg_since(int fd, const char *text)
{
	char rec[8192];
	ssize_t n;

	while ((n = read(fd, rec, sizeof(rec) - 1)) > 0 || (n < 0 && errno == EPIPE)) {
		if (n <= 0)
			continue;
		rec[n] = 0;
		if (strstr(rec, text))
			return 1;
	}
	return 0;
}

/* A compliant driver's callback unpins: lockdep must find no cycle (U6's first half). */
TEST(notify_unpin_lockdep)
{
	struct setup s;
	int kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);

	ASSERT_LE(0, kmsg);
	ASSERT_LE(0, lseek(kmsg, 0, SEEK_END));
	if (!lockdep_active())
		SKIP(return, "lockdep is off (CONFIG_PROVE_LOCKING unset, or it reported already)");
	ASSERT_EQ(0, setup_container(&s, 0x10));
	ASSERT_EQ(1, pin_cmd(s.device, VFIO_MC_PIN_OP_PIN, IOVA, PAGE, 0));
	ASSERT_EQ(0, unmap_dma(s.container, IOVA, 4 * PAGE));
	ASSERT_EQ(0, query(s.device, IOVA));
	ASSERT_EQ(0, kmsg_since(kmsg, CIRCULAR));
	close(s.device);
	close(s.container);
	mdev_remove(&s.m);
}

static void *unmap_thread(void *arg)
{
	struct setup *s = arg;

	unmap_dma(s->container, IOVA, 4 * PAGE);
	return NULL;
}

/*
 * The deadlock itself, in a helper process (a deadlocked task cannot be killed): its UNMAP_DMA
 * sits in the callback with device_list_lock held (a 1 s delay before the unpin) while its
 * other thread opens a second mdev of the container (register_device). The helper reports
 * over a pipe when both calls have returned.
 */
static void helper(int done_fd)
{
	struct setup s;
	struct mdev m2 = { .group = -1 };
	pthread_t t;
	char ok = 1;
	int dev2;

	if (setup_container(&s, 0x11) || mdev_create(&m2, 0x12) ||
	    ioctl(m2.group, VFIO_GROUP_SET_CONTAINER, &s.container) ||
	    pin_cmd(s.device, VFIO_MC_PIN_OP_PIN, IOVA, PAGE, 0) != 1 ||
	    pin_cmd(s.device, VFIO_MC_PIN_OP_DELAY, 0, 0, 1000))
		_exit(2);
	pthread_create(&t, NULL, unmap_thread, &s);
	usleep(300 * 1000); /* the unmap is in the callback now, holding device_list_lock */
	dev2 = ioctl(m2.group, VFIO_GROUP_GET_DEVICE_FD, m2.uuid);
	pthread_join(t, NULL);
	if (dev2 < 0 || write(done_fd, &ok, 1) != 1)
		_exit(3);
	close(dev2);
	close(s.device);
	ioctl(m2.group, VFIO_GROUP_UNSET_CONTAINER);
	close(s.container);
	mdev_remove(&m2);
	mdev_remove(&s.m);
	_exit(0);
}

/* The kernel stacks of the helper's threads, for the log of a deadlock. */
static void dump_stacks(struct __test_metadata *_metadata, pid_t pid)
{
	char path[64], line[256];
	struct dirent *d;
	DIR *dp;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	dp = opendir(path);
	while (dp && (d = readdir(dp))) {
		FILE *f;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stack", pid, d->d_name);
		f = fopen(path, "r");
		TH_LOG("task %s:", d->d_name);
		while (f && fgets(line, sizeof(line), f))
			TH_LOG("  %s", strtok(line, "\n"));
		if (f)
			fclose(f);
	}
	if (dp)
		closedir(dp);
}

TEST(unmap_notify_vs_open_no_deadlock)
{
	struct pollfd p;
	int fds[2];
	pid_t pid;
	char ok = 0;
	int status;

	ASSERT_EQ(0, pipe(fds));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		helper(fds[1]);
	p = (struct pollfd){ .fd = fds[0], .events = POLLIN };
	/* both calls take about 1 s; a deadlock never answers (the helper stays in D state) */
	ASSERT_EQ(1, poll(&p, 1, 10 * 1000)) {
		TH_LOG("UNMAP_DMA and GET_DEVICE_FD did not return in 10 s: deadlock");
		dump_stacks(_metadata, pid);
	}
	ASSERT_EQ(1, read(fds[0], &ok, 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST_HARNESS_MAIN
