/*
 * Lazy stubs for a child's fresh gRPC (fresh.c). At the fork, the child's
 * imports of gRPC core's functions are pointed at these stubs instead of the
 * inherited gRPC, which must never run again there; the first call through
 * any of them initialises the fresh copy (fs_stub_resolve), and later calls
 * go straight to it. A child that never calls gRPC never pays for that.
 *
 * Stub i is 16 bytes at fs_stubs + 16 * i: it puts i in %r11 (a scratch
 * register no call passes an argument in) and jumps to the common part,
 * which keeps every argument register (integer, vector, and %al's count of
 * vector arguments for variadic functions), asks fs_stub_resolve(i) for the
 * function's address in the fresh copy, restores the registers and jumps
 * there, so the callee sees the original call and returns to its caller.
 */
#if defined(__x86_64__)
#include "stubs.h"

	.text
	.globl	fs_stubs
	.hidden	fs_stubs
	.type	fs_stubs, @function
	.p2align 4
fs_stubs:
	.set	stub_index, 0
	.rept	FS_STUBS
	.p2align 4
	movl	$stub_index, %r11d
	jmp	fs_stub_common
	.set	stub_index, stub_index + 1
	.endr
	.size	fs_stubs, .-fs_stubs

	.type	fs_stub_common, @function
	.p2align 4
fs_stub_common:
	.cfi_startproc
	pushq	%rbp
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbp, 0
	movq	%rsp, %rbp
	.cfi_def_cfa_register %rbp
	pushq	%rdi
	pushq	%rsi
	pushq	%rdx
	pushq	%rcx
	pushq	%r8
	pushq	%r9
	pushq	%rax
	pushq	%r10
	subq	$128, %rsp
	andq	$-16, %rsp
	movdqu	%xmm0, 0(%rsp)
	movdqu	%xmm1, 16(%rsp)
	movdqu	%xmm2, 32(%rsp)
	movdqu	%xmm3, 48(%rsp)
	movdqu	%xmm4, 64(%rsp)
	movdqu	%xmm5, 80(%rsp)
	movdqu	%xmm6, 96(%rsp)
	movdqu	%xmm7, 112(%rsp)
	movl	%r11d, %edi
	call	fs_stub_resolve
	movq	%rax, %r11
	movdqu	0(%rsp), %xmm0
	movdqu	16(%rsp), %xmm1
	movdqu	32(%rsp), %xmm2
	movdqu	48(%rsp), %xmm3
	movdqu	64(%rsp), %xmm4
	movdqu	80(%rsp), %xmm5
	movdqu	96(%rsp), %xmm6
	movdqu	112(%rsp), %xmm7
	leaq	-64(%rbp), %rsp
	popq	%r10
	popq	%rax
	popq	%r9
	popq	%r8
	popq	%rcx
	popq	%rdx
	popq	%rsi
	popq	%rdi
	popq	%rbp
	.cfi_def_cfa %rsp, 8
	jmp	*%r11
	.cfi_endproc
	.size	fs_stub_common, .-fs_stub_common
#endif
	.section .note.GNU-stack,"",@progbits
