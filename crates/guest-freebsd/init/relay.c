/*
 * vmlane-relay's entry on FreeBSD: what it does is in relay.h. A static,
 * freestanding binary speaking raw system calls (syscall.h), built like
 * the init, so a FreeBSD image gets it without a FreeBSD sysroot on the
 * host; `vmlane image build` installs it as /usr/libexec/vmlane-relay.
 */
#include "syscall.h"
#include "freestanding.h"
#include "frame.h"
#include "hostframe.h"
#include "rawtty.h"
#include "pty.h"
#include "line.h"
#include "channel.h"
#include "share.h"
#include "relay.h"

__attribute__((noreturn, used)) void relay_start(long *ap);

/* `ap` points at argc, then argv and its NULL, then envp and its NULL. */
void
relay_start(long *ap)
{
	int argc = (int)ap[0];
	char **argv = (char **)(ap + 1);

	sys_exit(relay_main(argc, argv, argv + argc + 1));
}

FREESTANDING_ENTRY(relay_start);
