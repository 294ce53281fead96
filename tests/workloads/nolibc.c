/* A static program with no C library at all, hence no allocator to probe:
 * it waits in pause(2) until a signal kills it (the test does). */
__asm__(".globl _start\n"
	"_start:\n"
	"	movl $34, %eax\n"	/* pause */
	"	syscall\n"
	"	jmp _start\n");
