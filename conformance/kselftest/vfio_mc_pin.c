// SPDX-License-Identifier: GPL-2.0-only
/*
 * The pinning test mdev (conformance/mdev/vfio-mc-pin.c) on a VFIO type1v2 container that
 * holds only its emulated group (no IOMMU domain, so its pins charge locked_vm: VmLck).
 * Every step asserts its errno; the driver's record and VmLck are checked where they change.
 * Runs in the test VM next to the kernel's iommufd selftests (npm run kernel:selftests).
 */
#include <pthread.h>
#include <sys/mman.h>

#include "kselftest_harness.h"
#include "vfio_mc_pin_utils.h"

FIXTURE(pin)
{
	struct mdev m;
	int container;
	int device;
	char *buf;
};

FIXTURE_SETUP(pin)
{
	self->m.group = -1;
	ASSERT_EQ(0, mdev_create(&self->m, 0));
	self->container = open("/dev/vfio/vfio", O_RDWR);
	ASSERT_LE(0, self->container);
	ASSERT_EQ(0, ioctl(self->m.group, VFIO_GROUP_SET_CONTAINER, &self->container));
	ASSERT_EQ(0, ioctl(self->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	self->device = ioctl(self->m.group, VFIO_GROUP_GET_DEVICE_FD, self->m.uuid);
	ASSERT_LE(0, self->device);
	self->buf = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
	memset(self->buf, 0x5a, 4 * PAGE);
	ASSERT_EQ(0, map_dma(self->container, self->buf, IOVA, 4 * PAGE));
}

FIXTURE_TEARDOWN(pin)
{
	if (self->device >= 0)
		close(self->device);
	close(self->container);
	mdev_remove(&self->m);
}

/* vfio_pin_pages() charges dma->mm without a domain; vfio_unpin_pages() uncharges it. */
TEST_F(pin, pin_unpin)
{
	ASSERT_EQ(0, vm_lck_kb());
	ASSERT_EQ(2, pin_cmd(self->device, VFIO_MC_PIN_OP_PIN, IOVA, 2 * PAGE, 0));
	ASSERT_EQ(PINS(1) | VFIO_MC_PIN_PAGE_TRACKED, query(self->device, IOVA));
	ASSERT_EQ(8, vm_lck_kb());
	ASSERT_EQ(0, pin_cmd(self->device, VFIO_MC_PIN_OP_UNPIN, IOVA, 2 * PAGE, 0));
	ASSERT_EQ(VFIO_MC_PIN_PAGE_TRACKED, query(self->device, IOVA));
	ASSERT_EQ(0, vm_lck_kb());
	/* no dma at that IOVA: vfio_iommu_type1_pin_pages() says EINVAL */
	ASSERT_EQ(-EINVAL, pin_cmd(self->device, VFIO_MC_PIN_OP_PIN, 64 * IOVA, PAGE, 0));
	ASSERT_EQ(-EINVAL, pin_cmd(self->device, VFIO_MC_PIN_OP_PIN, IOVA + 1, PAGE, 0));
}

/* vfio_dma_rw() reads and writes guest memory through the IOVA and pins nothing. */
TEST_F(pin, dma_rw)
{
	char page[64];

	memset(page, 0, sizeof(page));
	ASSERT_EQ(0, pin_cmd(self->device, VFIO_MC_PIN_OP_RW, IOVA + PAGE, sizeof(page),
			     (uintptr_t)page));
	ASSERT_EQ(0x5a, page[0]);
	memset(page, 0xc3, sizeof(page));
	{
		struct vfio_mc_pin_cmd c = {
			.argsz = sizeof(c), .op = VFIO_MC_PIN_OP_RW, .iova = IOVA + PAGE,
			.length = sizeof(page), .data = (uintptr_t)page,
			.flags = VFIO_MC_PIN_RW_WRITE,
		};

		ASSERT_EQ(0, ioctl(self->device, VFIO_MC_PIN_CMD, &c));
	}
	ASSERT_EQ((char)0xc3, self->buf[PAGE]);
	ASSERT_EQ(0x5a, self->buf[PAGE + sizeof(page)]);
	ASSERT_EQ(0, vm_lck_kb());
	/* an IOVA outside every dma: vfio_iommu_type1_dma_rw_chunk() finds no dma */
	ASSERT_EQ(-EINVAL, pin_cmd(self->device, VFIO_MC_PIN_OP_RW, 64 * IOVA, sizeof(page),
				   (uintptr_t)page));
}

/* A compliant driver unpins in its dma_unmap callback, so UNMAP_DMA returns at once. */
TEST_F(pin, unmap_compliant)
{
	ASSERT_EQ(1, pin_cmd(self->device, VFIO_MC_PIN_OP_PIN, IOVA, PAGE, 0));
	ASSERT_EQ(4, vm_lck_kb());
	ASSERT_EQ(0, unmap_dma(self->container, IOVA, 4 * PAGE));
	ASSERT_EQ(0, query(self->device, IOVA));
	ASSERT_EQ(0, vm_lck_kb());
}

/* Bookkeeping without pinning: 7.3 notifies only dmas with pins, so the view goes stale (seed 002). */
TEST_F(pin, track_only_view_goes_stale)
{
	ASSERT_EQ(0, pin_cmd(self->device, VFIO_MC_PIN_OP_TRACK, IOVA, 2 * PAGE, 0));
	ASSERT_EQ(VFIO_MC_PIN_PAGE_TRACKED, query(self->device, IOVA));
	ASSERT_EQ(0, unmap_dma(self->container, IOVA, 4 * PAGE));
	ASSERT_EQ(VFIO_MC_PIN_PAGE_TRACKED, query(self->device, IOVA));
	ASSERT_EQ(0, vm_lck_kb());
}

struct unmapper {
	int container;
	int ret;
};

static void *unmap_thread(void *arg)
{
	struct unmapper *u = arg;

	u->ret = unmap_dma(u->container, IOVA, 4 * PAGE);
	return NULL;
}

/*
 * A late driver queues the unpin; vfio_dma_do_unmap() notifies again and again (at most 10
 * retries, then BUG_ON) until the worker has unpinned. With a 300 ms callback the worker's
 * flush from this thread lands within the retries, and UNMAP_DMA returns 0.
 */
TEST_F(pin, unmap_late_worker_in_time)
{
	struct unmapper u = { .container = self->container, .ret = 1 };
	pthread_t t;

	ASSERT_EQ(0, pin_cmd(self->device, VFIO_MC_PIN_OP_MODE, 0, 0, VFIO_MC_PIN_LATE));
	ASSERT_EQ(0, pin_cmd(self->device, VFIO_MC_PIN_OP_DELAY, 0, 0, 300));
	ASSERT_EQ(1, pin_cmd(self->device, VFIO_MC_PIN_OP_PIN, IOVA, PAGE, 0));
	ASSERT_EQ(0, pthread_create(&t, NULL, unmap_thread, &u));
	usleep(450 * 1000);
	ASSERT_EQ(1, u.ret); /* still in UNMAP_DMA */
	ASSERT_EQ(VFIO_MC_PIN_PAGE_PENDING | PINS(1), query(self->device, IOVA));
	/* the worker, through sysfs: it holds no device fd */
	ASSERT_EQ(0, sysfs_write(self->m.cmd, "flush"));
	ASSERT_EQ(0, pthread_join(t, NULL));
	ASSERT_EQ(0, u.ret);
	ASSERT_EQ(0, query(self->device, IOVA));
	ASSERT_EQ(0, vm_lck_kb());
}

/* close_device: the compliant driver unpins everything, and forgets its view. */
TEST_F(pin, close_compliant)
{
	ASSERT_EQ(2, pin_cmd(self->device, VFIO_MC_PIN_OP_PIN, IOVA, 2 * PAGE, 0));
	ASSERT_EQ(8, vm_lck_kb());
	ASSERT_EQ(0, close(self->device));
	self->device = -1;
	ASSERT_EQ(0, vm_lck_kb());
	ASSERT_EQ(0, unmap_dma(self->container, IOVA, 4 * PAGE));
}

/*
 * close_device of a late driver only queues; its worker unpins after the last close, when
 * vfio_unpin_pages() refuses (WARN in vfio_assert_device_open): the page stays pinned and
 * charged (seed 004).
 */
TEST_F(pin, close_late_worker_too_late)
{
	ASSERT_EQ(0, sysfs_write(self->m.cmd, "mode late"));
	ASSERT_EQ(1, pin_cmd(self->device, VFIO_MC_PIN_OP_PIN, IOVA, PAGE, 0));
	ASSERT_EQ(0, close(self->device));
	self->device = -1;
	ASSERT_EQ(4, vm_lck_kb());
	ASSERT_EQ(0, sysfs_write(self->m.cmd, "flush"));
	ASSERT_EQ(4, vm_lck_kb());
	/* bad commands are refused with EINVAL */
	ASSERT_EQ(-EINVAL, sysfs_write(self->m.cmd, "mode sloppy"));
	ASSERT_EQ(-EINVAL, sysfs_write(self->m.cmd, "pin 0x100000"));
}

/* A second instance in the same container: both are on the device list and hear the unmap. */
TEST_F(pin, second_instance)
{
	struct mdev m2 = { .group = -1 };
	int dev2;

	ASSERT_EQ(0, mdev_create(&m2, 1));
	ASSERT_EQ(0, ioctl(m2.group, VFIO_GROUP_SET_CONTAINER, &self->container));
	dev2 = ioctl(m2.group, VFIO_GROUP_GET_DEVICE_FD, m2.uuid);
	ASSERT_LE(0, dev2);
	ASSERT_EQ(1, pin_cmd(dev2, VFIO_MC_PIN_OP_PIN, IOVA + PAGE, PAGE, 0));
	ASSERT_EQ(1, pin_cmd(self->device, VFIO_MC_PIN_OP_PIN, IOVA, PAGE, 0));
	ASSERT_EQ(8, vm_lck_kb());
	ASSERT_EQ(0, unmap_dma(self->container, IOVA, 4 * PAGE));
	ASSERT_EQ(0, query(dev2, IOVA + PAGE));
	ASSERT_EQ(0, query(self->device, IOVA));
	ASSERT_EQ(0, vm_lck_kb());
	ASSERT_EQ(0, close(dev2));
	ASSERT_EQ(0, ioctl(m2.group, VFIO_GROUP_UNSET_CONTAINER));
	mdev_remove(&m2);
}

TEST_HARNESS_MAIN
