/* SPDX-License-Identifier: GPL-2.0-only WITH Linux-syscall-note */
/*
 * vfio-mc-pin: the conformance target's pinning test mdev (conformance/mdev/vfio-mc-pin.c).
 * Its device-specific interface, shared by the driver, the shim and the C tests.
 *
 * One command structure, two ways in:
 *  - ioctl(device_fd, VFIO_MC_PIN_CMD, &cmd) on the VFIO device fd (vfio_device_fops_unl_ioctl
 *    passes ioctls it does not know to the driver's ops->ioctl);
 *  - write(2) of a text line to /sys/bus/mdev/devices/<uuid>/vfio_mc_pin/cmd, for the driver's
 *    "worker" when the caller must not hold a device fd (a second open of the device would
 *    change which close is the last one, which is what the device-close protocol is about).
 * Both return the kernel API's result: 0 / a positive count, or -errno (ioctl: -1 and errno;
 * the count is in cmd.result).
 */
#ifndef VFIO_MC_PIN_H
#define VFIO_MC_PIN_H

#include <linux/types.h>
#include <linux/ioctl.h>

/* the mdev type to create: /sys/class/vfio_mc_pin/vfio_mc_pin/mdev_supported_types/vfio_mc_pin-1 */
#define VFIO_MC_PIN_NAME "vfio_mc_pin"
#define VFIO_MC_PIN_TYPE "vfio_mc_pin-1"
#define VFIO_MC_PIN_MAX_INSTANCES 16

enum vfio_mc_pin_op {
	/* vfio_pin_pages(iova, length / PAGE_SIZE, READ|WRITE); result = pages pinned */
	VFIO_MC_PIN_OP_PIN = 1,
	/* vfio_unpin_pages(iova, length / PAGE_SIZE), whether or not this driver pinned them */
	VFIO_MC_PIN_OP_UNPIN = 2,
	/* vfio_dma_rw(iova, buffer at user address `data`, length, flags & VFIO_MC_PIN_RW_WRITE) */
	VFIO_MC_PIN_OP_RW = 3,
	/* bookkeeping without pinning: remember [iova, iova+length) as mapped (seed 002's driver) */
	VFIO_MC_PIN_OP_TRACK = 4,
	/* what the dma_unmap callback and close_device do: data = enum vfio_mc_pin_mode */
	VFIO_MC_PIN_OP_MODE = 5,
	/*
	 * the dma_unmap callback and close_device sleep `data` ms before they act (at most 10000;
	 * 0: no delay): a replay widens the window it needs another call to land in
	 */
	VFIO_MC_PIN_OP_DELAY = 6,
	/* the late driver's worker: vfio_unpin_pages() of every queued page; result = pages */
	VFIO_MC_PIN_OP_FLUSH = 7,
	/* the driver's record of the page at iova: result = VFIO_MC_PIN_PAGE_* bits | pins << 8 */
	VFIO_MC_PIN_OP_QUERY = 8,
};

enum vfio_mc_pin_mode {
	/* unpin in the dma_unmap callback and in close_device (kvmgt, vfio-ccw, vfio-ap) */
	VFIO_MC_PIN_COMPLIANT = 0,
	/* queue the unpin; VFIO_MC_PIN_OP_FLUSH from another thread does it later */
	VFIO_MC_PIN_LATE = 1,
	/* ignore the callback and close_device: never unpin (seed 004's non-compliant driver) */
	VFIO_MC_PIN_IGNORE = 2,
};

/* VFIO_MC_PIN_OP_QUERY result bits */
#define VFIO_MC_PIN_PAGE_TRACKED (1 << 0) /* the driver believes the page is mapped */
#define VFIO_MC_PIN_PAGE_PENDING (1 << 1) /* an unpin queued by the late driver */
#define VFIO_MC_PIN_PAGE_PINS_SHIFT 8	  /* vfio_pin_pages() references held */

#define VFIO_MC_PIN_RW_WRITE (1 << 0)

struct vfio_mc_pin_cmd {
	__u32 argsz;
	__u32 op;
	__u64 iova;
	__u64 length;
	__u64 data;
	__u32 flags;
	__u32 __reserved;
	__s64 result;
};

/* VFIO's ioctl type with a number far above the VFIO_BASE + n range include/uapi/linux/vfio.h uses */
#define VFIO_MC_PIN_CMD _IOWR(';', 0xe0, struct vfio_mc_pin_cmd)

#endif
