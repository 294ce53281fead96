/* The agent blob (user/inject/agent, built by the Makefile), embedded. */
	.section .rodata
	.p2align 12
	.globl	mw_agent_blob
	.globl	mw_agent_blob_end
mw_agent_blob:
	.incbin	"agent.bin"
mw_agent_blob_end:
	.section .note.GNU-stack, "", @progbits
