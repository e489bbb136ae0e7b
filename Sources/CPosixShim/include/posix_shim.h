#ifndef VAKTPOST_POSIX_SHIM_H
#define VAKTPOST_POSIX_SHIM_H

#include <sys/types.h>

/// 1 when the kernel considers the wall clock synchronised (adjtimex: not TIME_ERROR and
/// STA_UNSYNC clear), 0 when not. <sys/timex.h> is not part of Swift's Glibc module.
int vaktpost_clock_synchronized(void);

/// The peer of a connected unix socket (SO_PEERCRED): 0 on success, -1 with errno.
/// struct ucred needs _GNU_SOURCE, which Swift's Glibc module does not define.
int vaktpost_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid);

/// Sends one sd_notify datagram ("READY=1", "STATUS=...", "WATCHDOG=1") to $NOTIFY_SOCKET.
/// 1 when sent, 0 when not under systemd (no NOTIFY_SOCKET), -1 with errno on failure.
int vaktpost_sd_notify(const char *state);

/// The same to the socket at `path`, with descriptor `fd` attached (SCM_RIGHTS) unless it is -1:
/// "FDSTORE=1" hands systemd a copy to keep. 0 when `path` is NULL or empty.
int vaktpost_sd_notify_to(const char *path, const char *state, int fd);

#endif
