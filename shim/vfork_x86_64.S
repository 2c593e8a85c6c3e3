/*
 * vfork() cannot be wrapped by a C function: the child runs on the parent's
 * stack until it execs, and returning through a wrapper's frame would corrupt
 * what the parent returns through later. This entry point calls
 * fs_vfork_target() (which notes the vfork and returns libc's vfork) and then
 * jumps to it, so libc's vfork returns straight to our caller, in both
 * processes.
 */
#if defined(__x86_64__)
	.text
	.globl	vfork
	.type	vfork, @function
vfork:
	.cfi_startproc
	sub	$8, %rsp		/* align the stack for the call */
	.cfi_adjust_cfa_offset 8
	call	fs_vfork_target
	add	$8, %rsp
	.cfi_adjust_cfa_offset -8
	jmp	*%rax
	.cfi_endproc
	.size	vfork, .-vfork
#endif
	.section .note.GNU-stack,"",@progbits
