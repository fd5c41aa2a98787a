/*
 * PVH entry: QEMU jumps to pvh_start in 32-bit protected mode, paging and interrupts off,
 * with %ebx holding the physical address of struct hvm_start_info. The code is 32-bit
 * throughout, but it is assembled into an x86-64 ELF file, as FreeBSD's amd64 kernel is:
 * that is the only kind of kernel vmlane accepts.
 */
	.code32

/* Xen's ELF notes: PHYS32_ENTRY tells QEMU where to enter; GUEST_OS marks a FreeBSD kernel. */
#define XEN_ELFNOTE_GUEST_OS		6
#define XEN_ELFNOTE_PHYS32_ENTRY	18

	.section .note.Xen, "a", @note
	.p2align 2
	.long 4, 4, XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.long pvh_start
	.long 4, 8, XEN_ELFNOTE_GUEST_OS
	.asciz "Xen"
	.asciz "FreeBSD"

	.section .text.entry, "ax", @progbits
	.globl pvh_start
pvh_start:
	cli
	cld
	/* QEMU zeroes memory past the file's part of a segment; do it anyway, before the stack is used. */
	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	xorl %eax, %eax
	rep stosb
	movl $stack_top, %esp
	xorl %ebp, %ebp
	/* kmain(start_info), with the stack 16-byte aligned at the call as the i386 ABI wants. */
	subl $12, %esp
	pushl %ebx
	call kmain
	jmp vmlane_reset

/* Ends the VM: with no usable IDT every exception escalates to a triple fault, which QEMU
 * turns into a reset, and with -no-reboot into an exit. */
	.text
	.globl vmlane_reset
vmlane_reset:
	cli
	lidt null_idt
	int3
	/* Not reached. */
	jmp vmlane_hang

/* Stops for good: nothing can wake the CPU with interrupts off but an NMI, and then it halts again. */
	.globl vmlane_hang
vmlane_hang:
	cli
1:	hlt
	jmp 1b

	.section .rodata
	.p2align 3
null_idt:
	.word 0		/* limit */
	.long 0		/* base */

	.bss
	.p2align 4
stack:
	.space 16384
stack_top:
