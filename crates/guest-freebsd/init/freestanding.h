/*
 * What each of vmlane's freestanding FreeBSD programs (the init, the
 * relay) needs besides its system calls: memset and memcpy, and the note
 * that brands it FreeBSD's. Included once, by the program's own .c file.
 */
#ifndef VMLANE_FREESTANDING_H
#define VMLANE_FREESTANDING_H

/*
 * The compiler may emit calls to these for struct copies and zeroing, even
 * when freestanding.
 */
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);

void *
memset(void *dst, int c, size_t n)
{
	unsigned char *d = dst;

	while (n-- > 0)
		*d++ = (unsigned char)c;
	return dst;
}

void *
memcpy(void *dst, const void *src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;

	while (n-- > 0)
		*d++ = *s++;
	return dst;
}

/*
 * FreeBSD ABI tag note (NT_FREEBSD_ABI_TAG = 1, name "FreeBSD"), the brand
 * crt1 normally adds. EI_OSABI = 9 alone already brands the binary; the
 * note is a second, preferred brand. osrel 1300000 (13.0) keeps the kernel's
 * "osrel too high" check happy on FreeBSD 13 and later.
 */
__asm__(
    ".section .note.tag,\"a\",@note\n"
    ".p2align 2\n"
    ".long 8\n"
    ".long 4\n"
    ".long 1\n"
    ".asciz \"FreeBSD\"\n"
    ".long 1300000\n"
    ".text\n");

/*
 * The program's entry: the kernel enters _start with rdi pointing at argc
 * (sys/amd64/amd64/exec_machdep.c: exec_setregs), as crt1's _start takes
 * it. Clear the frame pointer for debuggers, align the stack as the SysV
 * ABI wants before a call, call `function`, and never return.
 */
#define FREESTANDING_ENTRY(function)			\
	__asm__(".text\n"				\
	    ".globl _start\n"				\
	    ".type _start,@function\n"			\
	    "_start:\n"					\
	    "	xorl %ebp, %ebp\n"			\
	    "	andq $-16, %rsp\n"			\
	    "	call " #function "\n"			\
	    "	ud2\n"					\
	    ".size _start, .-_start\n")

#endif
