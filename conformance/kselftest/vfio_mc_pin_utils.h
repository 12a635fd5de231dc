/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers for the tests of the pinning test mdev (conformance/mdev/vfio-mc-pin.c): create and
 * remove an instance, send it commands, map and unmap DMA on a type1 container, read VmLck.
 */
#ifndef __VFIO_MC_PIN_UTILS_H
#define __VFIO_MC_PIN_UTILS_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/vfio.h>

#include "vfio-mc-pin.h"

#define PAGE 4096UL
#define IOVA 0x100000UL
#define TYPE_DIR "/sys/class/" VFIO_MC_PIN_NAME "/" VFIO_MC_PIN_NAME "/mdev_supported_types/" VFIO_MC_PIN_TYPE

static int sysfs_write(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	n = n < 0 ? -errno : 0;
	close(fd);
	return n;
}

static long vm_lck_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

/* An mdev of the test type with this uuid, and its group node. */
struct mdev {
	char uuid[37];
	char cmd[PATH_MAX];
	int group;
};

static int mdev_create(struct mdev *m, int n)
{
	char path[PATH_MAX], link[PATH_MAX];
	ssize_t len;

	snprintf(m->uuid, sizeof(m->uuid), "5f1d3a7e-0c0f-4c6b-9d6e-%012x", 0xbeef00 + n);
	if (sysfs_write(TYPE_DIR "/create", m->uuid))
		return -1;
	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/iommu_group", m->uuid);
	len = readlink(path, link, sizeof(link) - 1);
	if (len < 0)
		return -1;
	link[len] = 0;
	snprintf(path, sizeof(path), "/dev/vfio/%s", strrchr(link, '/') + 1);
	m->group = open(path, O_RDWR);
	snprintf(m->cmd, sizeof(m->cmd), "/sys/bus/mdev/devices/%s/" VFIO_MC_PIN_NAME "/cmd", m->uuid);
	return m->group < 0 ? -1 : 0;
}

static void mdev_remove(struct mdev *m)
{
	char path[PATH_MAX];

	if (m->group >= 0)
		close(m->group);
	snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/remove", m->uuid);
	sysfs_write(path, "1");
}

static long pin_cmd(int device, __u32 op, __u64 iova, __u64 length, __u64 data)
{
	struct vfio_mc_pin_cmd c = {
		.argsz = sizeof(c), .op = op, .iova = iova, .length = length, .data = data,
	};

	if (ioctl(device, VFIO_MC_PIN_CMD, &c))
		return -errno;
	return c.result;
}

#define query(fd, iova) pin_cmd(fd, VFIO_MC_PIN_OP_QUERY, iova, 0, 0)
#define PINS(n) ((long)(n) << VFIO_MC_PIN_PAGE_PINS_SHIFT)

static int map_dma(int container, void *vaddr, __u64 iova, __u64 size)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (__u64)(uintptr_t)vaddr,
		.iova = iova,
		.size = size,
	};

	return ioctl(container, VFIO_IOMMU_MAP_DMA, &map) ? -errno : 0;
}

static int unmap_dma(int container, __u64 iova, __u64 size)
{
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap), .iova = iova, .size = size,
	};

	return ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap) ? -errno : 0;
}

#endif
