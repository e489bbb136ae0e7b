#ifndef VAKTPOST_CCURL_SHIM_H
#define VAKTPOST_CCURL_SHIM_H
#include <curl/curl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

/* curl_easy_setopt and curl_easy_getinfo are variadic; Swift gets one typed wrapper per argument type. */
static inline CURLcode ccurl_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode ccurl_setopt_ptr(CURL *h, CURLoption o, const void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode ccurl_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode ccurl_getinfo_ptr(CURL *h, CURLINFO i, void *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode ccurl_getinfo_off(CURL *h, CURLINFO i, curl_off_t *v) { return curl_easy_getinfo(h, i, v); }
/* CURLVERSION_NOW is a macro aliasing the newest enum value; it does not import. */
static inline curl_version_info_data *ccurl_version_info(void) { return curl_version_info(CURLVERSION_NOW); }
static inline int ccurl_feature_http2(void) { return CURL_VERSION_HTTP2; }
/* TCP_USER_TIMEOUT and SO_KEEPALIVE of a socket; -1 when it cannot be read. */
static inline int ccurl_set_user_timeout(int fd, unsigned int ms) { return setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms); }
static inline long ccurl_user_timeout(int fd) { unsigned int v = 0; socklen_t n = sizeof v; return getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, &n) == 0 ? (long)v : -1; }
static inline int ccurl_keepalive(int fd) { int v = 0; socklen_t n = sizeof v; return getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &n) == 0 ? v : -1; }
/* A connected TCP socket's retransmission timeout before backoff (srtt + 4 rttvar, from its
   measured round trips), in microseconds; -1 when it is not a connected TCP socket (still
   connecting, closed, another kind). Not tcpi_rto, which doubles with every backoff: a limit
   taken from it would grow while the peer is silent, which is what the limit is there to end. */
static inline long ccurl_rto_estimate(int fd) {
    struct tcp_info i; socklen_t n = sizeof i;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &i, &n) != 0 || i.tcpi_state != TCP_ESTABLISHED) return -1;
    return (long)i.tcpi_rtt + 4L * (long)i.tcpi_rttvar;
}
/* The local port a socket is bound to (IPv4 or IPv6); -1 when it has none. */
static inline int ccurl_local_port(int fd) {
    struct sockaddr_storage a; socklen_t n = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &n) != 0) return -1;
    if (a.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&a)->sin_port);
    if (a.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
    return -1;
}
#endif
