// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-mc-pin: a test mdev that pins guest pages, for vfio-mc's conformance target.
 *
 * In the spirit of samples/vfio-mdev/mtty.c, but the device does nothing a guest would see:
 * it is a puppet of the test. Through its device-specific interface (vfio-mc-pin.h) the test
 * makes it call the emulated-IOMMU kernel API (vfio_pin_pages, vfio_unpin_pages, vfio_dma_rw),
 * keep per-page bookkeeping without pinning (seed 002's driver), and choose what its
 * dma_unmap callback and close_device do: unpin at once (compliant), queue the unpin for a
 * later command from another thread (late), or nothing (ignore, seed 004's non-compliant
 * driver). It only ever touches IOVAs the test names, through its own vfio_device.
 *
 * Locking: mdev_state->lock guards the page table and the settings only; it is never held
 * across a vfio_* call, so the driver adds no lock of its own to the iommu->lock /
 * device_list_lock order it is used to examine (drivers/vfio/vfio_iommu_type1.c).
 */
#include <linux/delay.h>
#include <linux/mdev.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/sysfs.h>
#include <linux/uaccess.h>
#include <linux/vfio.h>
#include <linux/xarray.h>

#include "vfio-mc-pin.h"

MODULE_DESCRIPTION("vfio-mc pinning test mdev");
MODULE_LICENSE("GPL");

#define MAX_DELAY_MS 10000
/* one vfio_pin_pages() call pins at most this many pages (it wants a pages[] array) */
#define MAX_PIN_PAGES 16

struct mdev_state {
	struct vfio_device vdev;
	struct mutex lock;
	/* iova >> PAGE_SHIFT -> xa_mk_value(VFIO_MC_PIN_PAGE_* | pins << 8) */
	struct xarray pages;
	enum vfio_mc_pin_mode mode;
	unsigned int delay_ms;
	/* between open_device and close_device */
	bool open;
	unsigned long callbacks;
};

static struct mdev_type pin_type = {
	.sysfs_name = "1",
	.pretty_name = "vfio-mc pinning test device",
};
static struct mdev_type *pin_types[] = { &pin_type };

static const struct class pin_class = { .name = VFIO_MC_PIN_NAME };
static struct device pin_parent_dev;
static struct mdev_parent pin_parent;
static const struct vfio_device_ops pin_dev_ops;

static unsigned long page_bits(struct mdev_state *s, u64 pfn)
{
	void *e = xa_load(&s->pages, pfn);

	return e ? xa_to_value(e) : 0;
}

static void set_page_bits(struct mdev_state *s, u64 pfn, unsigned long bits)
{
	if (bits)
		xa_store(&s->pages, pfn, xa_mk_value(bits), GFP_KERNEL);
	else
		xa_erase(&s->pages, pfn);
}

static unsigned long pins_of(unsigned long bits)
{
	return bits >> VFIO_MC_PIN_PAGE_PINS_SHIFT;
}

static unsigned long with_pins(unsigned long bits, unsigned long pins)
{
	return (bits & ((1UL << VFIO_MC_PIN_PAGE_PINS_SHIFT) - 1)) |
	       (pins << VFIO_MC_PIN_PAGE_PINS_SHIFT);
}

/* Pages [iova, iova + length) as a pfn range; -EINVAL unless page aligned and not empty. */
static int page_range(u64 iova, u64 length, u64 *first, u64 *n)
{
	if (!length || !PAGE_ALIGNED(iova) || !PAGE_ALIGNED(length) ||
	    iova + length < iova)
		return -EINVAL;
	*first = iova >> PAGE_SHIFT;
	*n = length >> PAGE_SHIFT;
	return 0;
}

static int do_pin(struct mdev_state *s, u64 iova, u64 length)
{
	struct page *pages[MAX_PIN_PAGES];
	u64 first, n, i;
	int ret = page_range(iova, length, &first, &n);

	if (ret)
		return ret;
	if (n > MAX_PIN_PAGES)
		return -E2BIG;
	ret = vfio_pin_pages(&s->vdev, iova, n, IOMMU_READ | IOMMU_WRITE, pages);
	if (ret <= 0)
		return ret;
	/* A pin teaches the driver the range (machines/kernel/type1-mdev.ts learn()). */
	mutex_lock(&s->lock);
	for (i = 0; i < ret; i++) {
		unsigned long b = page_bits(s, first + i);

		set_page_bits(s, first + i,
			      with_pins(b, pins_of(b) + 1) | VFIO_MC_PIN_PAGE_TRACKED);
	}
	mutex_unlock(&s->lock);
	return ret;
}

/* vfio_unpin_pages() returns nothing; it WARNs on a closed device or an IOVA without a dma. */
static int do_unpin(struct mdev_state *s, u64 iova, u64 length)
{
	u64 first, n, i;
	int ret = page_range(iova, length, &first, &n);

	if (ret)
		return ret;
	if (n > MAX_PIN_PAGES)
		return -E2BIG;
	vfio_unpin_pages(&s->vdev, iova, n);
	mutex_lock(&s->lock);
	for (i = 0; i < n; i++) {
		unsigned long b = page_bits(s, first + i);

		if (pins_of(b))
			set_page_bits(s, first + i, with_pins(b, pins_of(b) - 1));
	}
	mutex_unlock(&s->lock);
	return 0;
}

static int do_rw(struct mdev_state *s, u64 iova, u64 length, u64 uaddr, bool write)
{
	void *buf;
	int ret;

	if (!length || length > PAGE_SIZE)
		return -EINVAL;
	buf = kzalloc(length, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	ret = -EFAULT;
	if (write && copy_from_user(buf, u64_to_user_ptr(uaddr), length))
		goto out;
	ret = vfio_dma_rw(&s->vdev, iova, buf, length, write);
	if (!ret && !write && copy_to_user(u64_to_user_ptr(uaddr), buf, length))
		ret = -EFAULT;
out:
	kfree(buf);
	return ret;
}

static int do_track(struct mdev_state *s, u64 iova, u64 length)
{
	u64 first, n, i;
	int ret = page_range(iova, length, &first, &n);

	if (ret)
		return ret;
	if (n > MAX_PIN_PAGES)
		return -E2BIG;
	mutex_lock(&s->lock);
	for (i = 0; i < n; i++)
		set_page_bits(s, first + i,
			      page_bits(s, first + i) | VFIO_MC_PIN_PAGE_TRACKED);
	mutex_unlock(&s->lock);
	return 0;
}

struct pinned {
	u64 pfn;
	unsigned long pins;
};

/*
 * The driver forgets the pages in [first, first + n) (n == 0: every page): they leave its
 * view, and with `unpin` their pins move to out[] (at most MAX_PIN_PAGES of them, the
 * caller loops) for vfio_unpin_pages() after the lock is dropped; with `queue` pinned
 * pages are marked pending for the late driver's worker. Returns the count put in out[].
 */
static int forget_range(struct mdev_state *s, u64 first, u64 n, bool unpin, bool queue,
			struct pinned *out)
{
	unsigned long index;
	void *e;
	int k = 0;

	xa_for_each(&s->pages, index, e) {
		unsigned long b = xa_to_value(e) & ~VFIO_MC_PIN_PAGE_TRACKED;

		if (n && (index < first || index >= first + n))
			continue;
		if (pins_of(b) && queue)
			b |= VFIO_MC_PIN_PAGE_PENDING;
		if (pins_of(b) && unpin && k < MAX_PIN_PAGES) {
			out[k].pfn = index;
			out[k++].pins = pins_of(b);
			b = with_pins(b, 0) & ~VFIO_MC_PIN_PAGE_PENDING;
		}
		set_page_bits(s, index, b);
	}
	return k;
}

static void unpin_all(struct mdev_state *s, struct pinned *p, int k)
{
	int i;
	unsigned long j;

	for (i = 0; i < k; i++)
		for (j = 0; j < p[i].pins; j++)
			vfio_unpin_pages(&s->vdev, p[i].pfn << PAGE_SHIFT, 1);
}

/* What the callback (a range) and close_device (n == 0) do in the driver's current mode. */
static void forget_and_act(struct mdev_state *s, u64 first, u64 n)
{
	struct pinned p[MAX_PIN_PAGES];
	int k;

	do {
		mutex_lock(&s->lock);
		k = forget_range(s, first, n, s->mode == VFIO_MC_PIN_COMPLIANT,
				 s->mode == VFIO_MC_PIN_LATE, p);
		mutex_unlock(&s->lock);
		unpin_all(s, p, k);
	} while (k == MAX_PIN_PAGES);
}

/* The late driver's worker: unpin every page the callback or close_device queued. */
static int do_flush(struct mdev_state *s)
{
	struct pinned p[MAX_PIN_PAGES];
	unsigned long index;
	void *e;
	int k, total = 0;

	do {
		k = 0;
		mutex_lock(&s->lock);
		xa_for_each(&s->pages, index, e) {
			unsigned long b = xa_to_value(e);

			if (!(b & VFIO_MC_PIN_PAGE_PENDING) || k == MAX_PIN_PAGES)
				continue;
			p[k].pfn = index;
			p[k++].pins = pins_of(b);
			set_page_bits(s, index, with_pins(b, 0) & ~VFIO_MC_PIN_PAGE_PENDING);
		}
		mutex_unlock(&s->lock);
		unpin_all(s, p, k);
		total += k;
	} while (k == MAX_PIN_PAGES);
	return total;
}

static long run_cmd(struct mdev_state *s, struct vfio_mc_pin_cmd *c)
{
	int ret;

	switch (c->op) {
	case VFIO_MC_PIN_OP_PIN:
		return do_pin(s, c->iova, c->length);
	case VFIO_MC_PIN_OP_UNPIN:
		return do_unpin(s, c->iova, c->length);
	case VFIO_MC_PIN_OP_RW:
		return do_rw(s, c->iova, c->length, c->data, c->flags & VFIO_MC_PIN_RW_WRITE);
	case VFIO_MC_PIN_OP_TRACK:
		return do_track(s, c->iova, c->length);
	case VFIO_MC_PIN_OP_MODE:
		if (c->data > VFIO_MC_PIN_IGNORE)
			return -EINVAL;
		mutex_lock(&s->lock);
		s->mode = c->data;
		mutex_unlock(&s->lock);
		return 0;
	case VFIO_MC_PIN_OP_DELAY:
		if (c->data > MAX_DELAY_MS)
			return -EINVAL;
		mutex_lock(&s->lock);
		s->delay_ms = c->data;
		mutex_unlock(&s->lock);
		return 0;
	case VFIO_MC_PIN_OP_FLUSH:
		return do_flush(s);
	case VFIO_MC_PIN_OP_QUERY:
		if (!PAGE_ALIGNED(c->iova))
			return -EINVAL;
		mutex_lock(&s->lock);
		ret = page_bits(s, c->iova >> PAGE_SHIFT);
		mutex_unlock(&s->lock);
		return ret;
	}
	return -EOPNOTSUPP;
}

/*
 * ops->dma_unmap: T1:vfio_notify_dma_unmap() calls it with device_list_lock held and
 * iommu->lock dropped, for a dma with pages in its pfn_list. The optional delay widens the
 * window in which another thread can take iommu->lock (U6), or the worker can unpin between
 * the retries of a late driver.
 */
static void pin_dma_unmap(struct vfio_device *vdev, u64 iova, u64 length)
{
	struct mdev_state *s = container_of(vdev, struct mdev_state, vdev);
	unsigned int delay;
	u64 first, n;

	mutex_lock(&s->lock);
	s->callbacks++;
	delay = s->delay_ms;
	mutex_unlock(&s->lock);
	if (delay)
		msleep(delay);
	if (page_range(iova, length, &first, &n))
		return;
	if (s->mode != VFIO_MC_PIN_IGNORE)
		forget_and_act(s, first, n);
}

static int pin_open_device(struct vfio_device *vdev)
{
	struct mdev_state *s = container_of(vdev, struct mdev_state, vdev);

	mutex_lock(&s->lock);
	s->open = true;
	mutex_unlock(&s->lock);
	return 0;
}

/*
 * ops->close_device: a driver must unpin everything here (the late one queues it, the
 * ignoring one keeps its pins); every driver forgets its view.
 */
static void pin_close_device(struct vfio_device *vdev)
{
	struct mdev_state *s = container_of(vdev, struct mdev_state, vdev);
	unsigned int delay;

	mutex_lock(&s->lock);
	delay = s->delay_ms;
	mutex_unlock(&s->lock);
	if (delay)
		msleep(delay);
	mutex_lock(&s->lock);
	s->open = false;
	mutex_unlock(&s->lock);
	forget_and_act(s, 0, 0);
}

static long pin_ioctl(struct vfio_device *vdev, unsigned int cmd, unsigned long arg)
{
	struct mdev_state *s = container_of(vdev, struct mdev_state, vdev);
	struct vfio_mc_pin_cmd c;
	long ret;

	switch (cmd) {
	case VFIO_DEVICE_GET_INFO: {
		struct vfio_device_info info = {};
		unsigned long minsz = offsetofend(struct vfio_device_info, num_irqs);

		if (copy_from_user(&info, (void __user *)arg, minsz))
			return -EFAULT;
		if (info.argsz < minsz)
			return -EINVAL;
		info.flags = VFIO_DEVICE_FLAGS_PCI;
		info.num_regions = VFIO_PCI_NUM_REGIONS;
		info.num_irqs = VFIO_PCI_NUM_IRQS;
		return copy_to_user((void __user *)arg, &info, minsz) ? -EFAULT : 0;
	}
	case VFIO_DEVICE_RESET:
		return 0;
	case VFIO_MC_PIN_CMD:
		if (copy_from_user(&c, (void __user *)arg, sizeof(c)))
			return -EFAULT;
		if (c.argsz < sizeof(c) || c.__reserved)
			return -EINVAL;
		ret = run_cmd(s, &c);
		c.result = ret;
		if (copy_to_user((void __user *)arg, &c, sizeof(c)))
			return -EFAULT;
		return ret < 0 ? ret : 0;
	}
	return -ENOTTY;
}

/*
 * sysfs: vfio_mc_pin/cmd takes one line: "pin IOVA LENGTH", "unpin IOVA LENGTH",
 * "track IOVA LENGTH", "mode compliant|late|ignore", "delay MS", "flush" (numbers as strtoull
 * base 0: 0x... hex or decimal); vfio_mc_pin/state shows the driver's record.
 */
static const char *const mode_names[] = {
	[VFIO_MC_PIN_COMPLIANT] = "compliant", [VFIO_MC_PIN_LATE] = "late",
	[VFIO_MC_PIN_IGNORE] = "ignore",
};

static int parse_line(const char *buf, struct vfio_mc_pin_cmd *c)
{
	char name[16], arg[16] = "";
	int n = sscanf(buf, "%15s %15s %lli", name, arg, (long long *)&c->length);

	if (n < 1)
		return -EINVAL;
	if (!strcmp(name, "flush") && n == 1) {
		c->op = VFIO_MC_PIN_OP_FLUSH;
		return 0;
	}
	if (!strcmp(name, "mode") && n == 2) {
		c->op = VFIO_MC_PIN_OP_MODE;
		c->data = sysfs_match_string(mode_names, arg);
		return (long long)c->data < 0 ? -EINVAL : 0;
	}
	if (!strcmp(name, "delay") && n == 2) {
		c->op = VFIO_MC_PIN_OP_DELAY;
		return kstrtoull(arg, 0, &c->data);
	}
	if (n != 3)
		return -EINVAL;
	if (!strcmp(name, "pin"))
		c->op = VFIO_MC_PIN_OP_PIN;
	else if (!strcmp(name, "unpin"))
		c->op = VFIO_MC_PIN_OP_UNPIN;
	else if (!strcmp(name, "track"))
		c->op = VFIO_MC_PIN_OP_TRACK;
	else
		return -EINVAL;
	return kstrtoull(arg, 0, &c->iova);
}

static ssize_t cmd_store(struct device *dev, struct device_attribute *attr,
			 const char *buf, size_t count)
{
	struct mdev_state *s = dev_get_drvdata(dev);
	struct vfio_mc_pin_cmd c = { .argsz = sizeof(c) };
	long ret = parse_line(buf, &c);

	if (ret)
		return ret;
	ret = run_cmd(s, &c);
	return ret < 0 ? ret : count;
}
static DEVICE_ATTR_WO(cmd);

static ssize_t state_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct mdev_state *s = dev_get_drvdata(dev);
	unsigned long index;
	void *e;
	int len;

	mutex_lock(&s->lock);
	len = sysfs_emit(buf, "mode=%s delay_ms=%u open=%d callbacks=%lu\n", mode_names[s->mode],
			 s->delay_ms, s->open, s->callbacks);
	xa_for_each(&s->pages, index, e)
		len += sysfs_emit_at(buf, len, "iova=0x%lx%s%s pins=%lu\n", index << PAGE_SHIFT,
				     xa_to_value(e) & VFIO_MC_PIN_PAGE_TRACKED ? " tracked" : "",
				     xa_to_value(e) & VFIO_MC_PIN_PAGE_PENDING ? " pending" : "",
				     pins_of(xa_to_value(e)));
	mutex_unlock(&s->lock);
	return len;
}
static DEVICE_ATTR_RO(state);

static struct attribute *pin_attrs[] = { &dev_attr_cmd.attr, &dev_attr_state.attr, NULL };
static const struct attribute_group pin_group = { .name = VFIO_MC_PIN_NAME, .attrs = pin_attrs };
static const struct attribute_group *pin_groups[] = { &pin_group, NULL };

static int pin_init_dev(struct vfio_device *vdev)
{
	struct mdev_state *s = container_of(vdev, struct mdev_state, vdev);

	mutex_init(&s->lock);
	xa_init(&s->pages);
	s->mode = VFIO_MC_PIN_COMPLIANT;
	return 0;
}

static void pin_release_dev(struct vfio_device *vdev)
{
	struct mdev_state *s = container_of(vdev, struct mdev_state, vdev);

	xa_destroy(&s->pages);
	mutex_destroy(&s->lock);
}

static int pin_probe(struct mdev_device *mdev)
{
	struct mdev_state *s;
	int ret;

	s = vfio_alloc_device(mdev_state, vdev, &mdev->dev, &pin_dev_ops);
	if (IS_ERR(s))
		return PTR_ERR(s);
	ret = vfio_register_emulated_iommu_dev(&s->vdev);
	if (ret) {
		vfio_put_device(&s->vdev);
		return ret;
	}
	dev_set_drvdata(&mdev->dev, s);
	return 0;
}

static void pin_remove(struct mdev_device *mdev)
{
	struct mdev_state *s = dev_get_drvdata(&mdev->dev);

	vfio_unregister_group_dev(&s->vdev);
	vfio_put_device(&s->vdev);
}

static const struct vfio_device_ops pin_dev_ops = {
	.name = "vfio-mc-pin",
	.init = pin_init_dev,
	.release = pin_release_dev,
	.open_device = pin_open_device,
	.close_device = pin_close_device,
	.ioctl = pin_ioctl,
	.dma_unmap = pin_dma_unmap,
	.bind_iommufd = vfio_iommufd_emulated_bind,
	.unbind_iommufd = vfio_iommufd_emulated_unbind,
	.attach_ioas = vfio_iommufd_emulated_attach_ioas,
	.detach_ioas = vfio_iommufd_emulated_detach_ioas,
};

static struct mdev_driver pin_driver = {
	.device_api = VFIO_DEVICE_API_PCI_STRING,
	.max_instances = VFIO_MC_PIN_MAX_INSTANCES,
	.driver = {
		.name = VFIO_MC_PIN_NAME,
		.owner = THIS_MODULE,
		.mod_name = KBUILD_MODNAME,
		.dev_groups = pin_groups,
	},
	.probe = pin_probe,
	.remove = pin_remove,
};

static void pin_parent_release(struct device *dev)
{
}

static int __init pin_init(void)
{
	int ret = mdev_register_driver(&pin_driver);

	if (ret)
		return ret;
	ret = class_register(&pin_class);
	if (ret)
		goto err_driver;
	pin_parent_dev.class = &pin_class;
	pin_parent_dev.release = pin_parent_release;
	dev_set_name(&pin_parent_dev, "%s", VFIO_MC_PIN_NAME);
	ret = device_register(&pin_parent_dev);
	if (ret)
		goto err_put;
	ret = mdev_register_parent(&pin_parent, &pin_parent_dev, &pin_driver, pin_types,
				   ARRAY_SIZE(pin_types));
	if (ret)
		goto err_device;
	return 0;

err_device:
	device_del(&pin_parent_dev);
err_put:
	put_device(&pin_parent_dev);
	class_unregister(&pin_class);
err_driver:
	mdev_unregister_driver(&pin_driver);
	return ret;
}

static void __exit pin_exit(void)
{
	mdev_unregister_parent(&pin_parent);
	device_unregister(&pin_parent_dev);
	class_unregister(&pin_class);
	mdev_unregister_driver(&pin_driver);
}

module_init(pin_init);
module_exit(pin_exit);
