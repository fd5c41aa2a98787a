/*
 * FreeBSD's native amd64 entry, as its loader enters a kernel: btext in 64-bit long mode,
 * paging on with the loader's tables (physical 0..1 GB mapped at 0 and at KERNBASE),
 * interrupts off, and the loader's stack holding two 32-bit physical addresses: modulep at
 * 4(%rsp) and kernend at 8(%rsp).
 */
	.code64

	.section .text.entry, "ax", @progbits
	.globl btext
	.type btext, @function
btext:
	/* Interrupts off, direction up, whatever the loader left in rflags. */
	pushq $2
	popfq
	movl 4(%rsp), %edi	/* modulep */
	movl 8(%rsp), %esi	/* kernend */
	/* Onto a stack of our own; a zero %rbp ends the backtrace. */
	movq $stack_top, %rsp
	xorl %ebp, %ebp
	call kmain
	jmp vmlane_reset
	.size btext, . - btext

/* Ends the VM: with no usable IDT every exception escalates to a triple fault, which QEMU
 * turns into a reset, and with -no-reboot into an exit. */
	.text
	.globl vmlane_reset
	.type vmlane_reset, @function
vmlane_reset:
	cli
	lidt null_idt
	int3
	/* Not reached. */
	jmp vmlane_hang
	.size vmlane_reset, . - vmlane_reset

/* Stops for good: nothing can wake the CPU with interrupts off but an NMI, and then it halts again. */
	.globl vmlane_hang
	.type vmlane_hang, @function
vmlane_hang:
	cli
1:	hlt
	jmp 1b
	.size vmlane_hang, . - vmlane_hang

	.section .rodata
	.p2align 3
null_idt:
	.word 0		/* limit */
	.quad 0		/* base */

	.bss
	.p2align 4
	.globl stack, stack_top
stack:
	.space 16384
stack_top:
