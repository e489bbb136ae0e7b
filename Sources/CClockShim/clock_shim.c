#include <sys/timex.h>
#include "clock_shim.h"

int vaktpost_clock_synchronized(void) {
    struct timex tx = {0};
    int state = adjtimex(&tx);
    return state != TIME_ERROR && (tx.status & STA_UNSYNC) == 0;
}
