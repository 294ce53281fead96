/* How stacks are taken (--stack-mode). */
#ifndef MW_STACK_MODE_H
#define MW_STACK_MODE_H

enum stack_mode {
	STACK_AUTO,		/* CFI unwinding, frame-pointer rule where a module has no CFI */
	STACK_DWARF,		/* CFI unwinding only */
	STACK_FP,		/* kernel frame-pointer walk, cut where it cannot be trusted */
};

/* "auto", "dwarf", "fp". */
const char *stack_mode_name(enum stack_mode mode);
/* 0, or -1 for a name no mode has. */
int stack_mode_parse(const char *name, enum stack_mode *out);

#endif
