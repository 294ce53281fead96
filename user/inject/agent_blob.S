/* The agent (user/inject/agent, an ELF built by the Makefile), embedded. */
	.section .rodata
	.p2align 12
	.globl	mw_agent_blob
	.globl	mw_agent_blob_end
mw_agent_blob:
	.incbin	"agent.elf"
mw_agent_blob_end:
	.section .note.GNU-stack, "", @progbits
