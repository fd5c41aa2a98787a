/*
 * The host's share as vmlane's init and vmlane-relay mount it: p9fs (over
 * virtio, the only transport p9fs has) read-only on SHARE_MOUNT_POINT. The
 * kernel must have virtio_p9fs and p9fs built in: the minimal root holds no
 * modules, and without the transport the mount fails with a bare EINVAL.
 * Needs sys_nmount, sys_mkdir and MNT_RDONLY (syscall.h, or a test's own).
 */
#ifndef VMLANE_SHARE_H
#define VMLANE_SHARE_H

#define SHARE_MOUNT_POINT "/host"

/*
 * nmount(2) takes name/value iovec pairs; string values include their NUL,
 * flag options like "ro" have an empty value.
 */
static void
iov_pair(struct iovec *iov, unsigned int *n, const char *name,
    const char *value)
{
	size_t nl = 0, vl = 0;

	while (name[nl] != '\0')
		nl++;
	iov[*n].iov_base = (void *)name;
	iov[*n].iov_len = nl + 1;
	if (value != 0) {
		while (value[vl] != '\0')
			vl++;
		vl++;
	}
	iov[*n + 1].iov_base = (void *)value;
	iov[*n + 1].iov_len = vl;
	*n += 2;
}

/* Whether a Run request's share is one a FreeBSD guest mounts. */
static int
share_is_p9fs(const char *fstype)
{
	static const char *const kinds[] = { "p9fs", "9p" };

	for (unsigned int k = 0; k < 2; k++) {
		const char *a = fstype, *b = kinds[k];

		while (*a != '\0' && *a == *b)
			a++, b++;
		if (*a == *b)
			return 1;
	}
	return 0;
}

/*
 * Mounts the share tagged `tag` on SHARE_MOUNT_POINT, made first when the
 * root lacks it (a full image). Returns 0 or -errno, with the kernel's
 * reason in `errmsg` when it gave one.
 */
static long
share_mount(const char *tag, char *errmsg, size_t errlen)
{
	struct iovec iov[10];
	unsigned int n = 0;

	(void)sys_mkdir(SHARE_MOUNT_POINT, 0755);
	iov_pair(iov, &n, "fstype", "p9fs");
	iov_pair(iov, &n, "fspath", SHARE_MOUNT_POINT);
	iov_pair(iov, &n, "from", tag);
	iov_pair(iov, &n, "ro", 0);
	errmsg[0] = '\0';
	iov[n].iov_base = "errmsg";
	iov[n].iov_len = sizeof("errmsg");
	iov[n + 1].iov_base = errmsg;
	iov[n + 1].iov_len = errlen;
	n += 2;
	return sys_nmount(iov, n, MNT_RDONLY);
}

#endif
