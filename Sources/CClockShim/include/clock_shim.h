#ifndef VAKTPOST_CLOCK_SHIM_H
#define VAKTPOST_CLOCK_SHIM_H

/// 1 when the kernel considers the wall clock synchronised (adjtimex: not TIME_ERROR and
/// STA_UNSYNC clear), 0 when not. <sys/timex.h> is not part of Swift's Glibc module.
int vaktpost_clock_synchronized(void);

#endif
