/* libbpf's messages: the last one is kept to explain a failure, and -vv
 * prints them all. */
#ifndef MW_BPFLOG_H
#define MW_BPFLOG_H

/* Routes libbpf's messages here; verbose is -v's count. */
void bpflog_install(int verbose);
/* ": <libbpf's last message>", or "" when it said nothing. */
const char *bpflog_detail(void);

#endif
