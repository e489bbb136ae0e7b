#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timex.h>
#include <sys/un.h>
#include <unistd.h>
#include "posix_shim.h"

int vaktpost_clock_synchronized(void) {
    struct timex tx = {0};
    int state = adjtimex(&tx);
    return state != TIME_ERROR && (tx.status & STA_UNSYNC) == 0;
}

int vaktpost_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}

/* The sd_notify protocol (systemd's sd_notify(3), "NOTIFY_SOCKET"): one datagram to a unix
   socket whose path may be abstract (leading '@'), with one descriptor attached for FDSTORE=1.
   No libsystemd needed. */
int vaktpost_sd_notify_to(const char *path, const char *state, int fd) {
    if (path == NULL || path[0] == '\0') return 0;
    size_t n = strlen(path);
    struct sockaddr_un addr;
    if (n >= sizeof addr.sun_path) { errno = ENAMETOOLONG; return -1; }
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path, n);
    if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    struct iovec iov = { .iov_base = (void *)state, .iov_len = strlen(state) };
    union { char buffer[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg = { .msg_name = &addr, .msg_namelen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n),
                          .msg_iov = &iov, .msg_iovlen = 1 };
    if (fd >= 0) {
        msg.msg_control = control.buffer;
        msg.msg_controllen = sizeof control.buffer;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    ssize_t sent = sendmsg(s, &msg, MSG_NOSIGNAL);
    int saved = errno;
    close(s);
    errno = saved;
    return sent < 0 ? -1 : 1;
}

int vaktpost_sd_notify(const char *state) {
    return vaktpost_sd_notify_to(getenv("NOTIFY_SOCKET"), state, -1);
}
