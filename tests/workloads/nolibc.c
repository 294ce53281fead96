/* A static program with no C library at all, hence no allocator to probe:
 * it sleeps five seconds and exits. */
__asm__(".globl _start\n"
	"_start:\n"
	"	pushq $0\n"		/* struct timespec { 5, 0 } on the stack */
	"	pushq $5\n"
	"	movq %rsp, %rdi\n"
	"	xorl %esi, %esi\n"
	"	movl $35, %eax\n"	/* nanosleep */
	"	syscall\n"
	"	xorl %edi, %edi\n"
	"	movl $60, %eax\n"	/* exit */
	"	syscall\n");
