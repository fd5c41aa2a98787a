/*
 * The stub's entry and exits. QEMU enters pvh_start in 32-bit protected mode, paging and
 * interrupts off, with %ebx holding the physical address of struct hvm_start_info. The
 * stub runs 32-bit code until enter_kernel switches to long mode and jumps to the kernel.
 */
	.code32

/* Xen's PVH note: QEMU's -kernel finds the 32-bit entry point in it. */
#define XEN_ELFNOTE_PHYS32_ENTRY	18

#define MSR_EFER	0xc0000080
#define EFER_LME	0x100
#define CR4_PAE		0x20
#define CR0_PE		0x1
#define CR0_PG		0x80000000
#define SEL_CODE64	0x08
#define SEL_DATA	0x10

	.section .note.Xen, "a", @note
	.p2align 2
	.long 4, 4, XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.long pvh_start

	.section .text.entry, "ax", @progbits
	.globl pvh_start
pvh_start:
	cli
	cld
	/* The start info lives in the firmware's low memory, not in the bss zeroed here. */
	movl %ebx, %esi
	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	xorl %eax, %eax
	rep stosb
	movl $stack_top, %esp
	xorl %ebp, %ebp
	/* stub_main(start_info), the stack 16-byte aligned at the call. */
	subl $12, %esp
	pushl %esi
	call stub_main
	jmp vmlane_reset

	.text

/*
 * Ends the VM: with an empty IDT the breakpoint escalates to a triple fault, which QEMU
 * turns into a reset, and with -no-reboot into an exit.
 */
	.globl vmlane_reset
vmlane_reset:
	cli
	lidt null_idt
	int3
1:	hlt
	jmp 1b

/*
 * Enters the kernel as FreeBSD's BIOS loader does: PAE paging on the page tables stub_main
 * built, long mode, a 64-bit code segment, then a jump to the kernel's entry with
 * 0(%rsp) a return address nobody uses, 4(%rsp) modulep and 8(%rsp) kernend, both 32 bits.
 * The values come from boot_entry, boot_modulep and boot_kernend in memory: rdmsr and
 * wrmsr clobber %edx, so no register carries them across.
 */
	.globl enter_kernel
enter_kernel:
	cli
	movl %cr4, %eax
	orl $CR4_PAE, %eax
	movl %eax, %cr4
	movl $boot_pml4, %eax
	movl %eax, %cr3
	movl $MSR_EFER, %ecx
	rdmsr
	orl $EFER_LME, %eax
	wrmsr
	/* Paging with EFER.LME set activates long mode, in compatibility mode until the jump. */
	movl %cr0, %eax
	orl $(CR0_PG | CR0_PE), %eax
	movl %eax, %cr0
	lgdt gdt_desc
	ljmp $SEL_CODE64, $long_mode

	.code64
long_mode:
	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	/* The stub's own stack: nothing returns to the stub any more. */
	movl $stack_top, %esp
	subq $16, %rsp
	movl $0, (%rsp)
	movl boot_modulep(%rip), %eax
	movl %eax, 4(%rsp)
	movl boot_kernend(%rip), %eax
	movl %eax, 8(%rsp)
	movl $0, 12(%rsp)
	movq boot_entry(%rip), %rax
	jmp *%rax
	.code32

/*
 * The C code's memcpy, memmove and memset (the compiler may also call them by itself):
 * string instructions, a dword at a time where possible, as TCG runs those fastest.
 */
	.globl memcpy
memcpy:
	pushl %esi
	pushl %edi
	movl 12(%esp), %edi
	movl 16(%esp), %esi
	movl 20(%esp), %ecx
	movl %edi, %eax
	movl %ecx, %edx
	shrl $2, %ecx
	rep movsl
	movl %edx, %ecx
	andl $3, %ecx
	rep movsb
	popl %edi
	popl %esi
	ret

	.globl memmove
memmove:
	pushl %esi
	pushl %edi
	movl 12(%esp), %edi
	movl 16(%esp), %esi
	movl 20(%esp), %ecx
	movl %edi, %eax
	/* Forwards unless the destination starts inside the source. */
	movl %edi, %edx
	subl %esi, %edx
	cmpl %ecx, %edx
	jae 1f
	leal -1(%esi,%ecx), %esi
	leal -1(%edi,%ecx), %edi
	std
	rep movsb
	cld
	jmp 2f
1:	rep movsb
2:	popl %edi
	popl %esi
	ret

	.globl memset
memset:
	pushl %edi
	movl 8(%esp), %edi
	movzbl 12(%esp), %eax
	movl 16(%esp), %ecx
	movl %edi, %edx
	/* The byte in all four lanes of %eax. */
	imull $0x01010101, %eax, %eax
	pushl %ecx
	shrl $2, %ecx
	rep stosl
	popl %ecx
	andl $3, %ecx
	rep stosb
	movl %edx, %eax
	popl %edi
	ret

	.section .rodata
	.p2align 3
gdt:
	.quad 0				/* null */
	.quad 0x00209a0000000000	/* 64-bit code: present, ring 0, execute/read, L */
	.quad 0x00cf92000000ffff	/* flat data: present, ring 0, read/write, 4 GiB */
gdt_end:
	.p2align 2
gdt_desc:
	.word gdt_end - gdt - 1
	.long gdt
null_idt:
	.word 0
	.long 0

	.bss
	.p2align 4
	.space 16384
stack_top:
