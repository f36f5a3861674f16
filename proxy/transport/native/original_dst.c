// getOriginalDst(fd) -> [family, address, port] | null
//
// Reads the destination a connection had before an iptables REDIRECT rewrote it to our capture port,
// from the conntrack entry, exactly as Envoy's original_dst listener filter does:
//   getsockopt(fd, SOL_IP,   SO_ORIGINAL_DST = 80)      -> struct sockaddr_in   (IPv4)
//   getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST = 80) -> struct sockaddr_in6  (IPv6)
// Node has no getsockopt, hence this addon. It is deliberately tiny: one syscall on the common path,
// fixed-size stack buffers, no allocation outside N-API, no state, no threads.
//
// Results:
//   [4|6, "a.b.c.d" | "x::y", port]  the connection was redirected; this is where the app meant to go
//   null                             not redirected: no conntrack entry (ENOENT), conntrack/NAT not loaded
//                                    (ENOPROTOOPT), or the "original" destination is our own local address
//                                    (conntrack tracks un-NATed connections too; then orig dst == sockname)
//   throws Error{code: "EBADF"...}   anything else (bad fd, not a socket): a bug or a closed socket.

#include <node_api.h>

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

// From <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>; spelled out so the build needs
// no kernel headers. Both are 80: the numbers are part of the kernel ABI and never change.
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif
#ifndef SOL_IP
#define SOL_IP 0
#endif
#ifndef SOL_IPV6
#define SOL_IPV6 41
#endif

// Stable JS error codes: the errno names Node itself uses (err.code === 'EBADF').
static const char* errno_name(int err) {
  switch (err) {
    case EBADF: return "EBADF";
    case ENOTSOCK: return "ENOTSOCK";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case ENOENT: return "ENOENT";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOTCONN: return "ENOTCONN";
    case ENOSYS: return "ENOSYS";
    default: return "EUNKNOWN";
  }
}

static napi_value throw_errno(napi_env env, const char* syscall, int err) {
  char message[128];
  // strerror is not thread-safe in theory; N-API calls run on the JS thread of this env, and the text is
  // only decoration, the code is what callers match on.
  snprintf(message, sizeof(message), "getOriginalDst: %s: %s", syscall, strerror(err));
  napi_throw_error(env, errno_name(err), message);
  return NULL;
}

static int not_redirected(int err) {
  return err == ENOENT || err == ENOPROTOOPT;
}

static napi_value make_result(napi_env env, int family, const char* address, unsigned port) {
  napi_value result, v_family, v_address, v_port;
  if (napi_create_array_with_length(env, 3, &result) != napi_ok) return NULL;
  if (napi_create_uint32(env, (uint32_t)family, &v_family) != napi_ok) return NULL;
  if (napi_create_string_latin1(env, address, NAPI_AUTO_LENGTH, &v_address) != napi_ok) return NULL;
  if (napi_create_uint32(env, port, &v_port) != napi_ok) return NULL;
  if (napi_set_element(env, result, 0, v_family) != napi_ok) return NULL;
  if (napi_set_element(env, result, 1, v_address) != napi_ok) return NULL;
  if (napi_set_element(env, result, 2, v_port) != napi_ok) return NULL;
  return result;
}

static napi_value null_value(napi_env env) {
  napi_value v;
  napi_get_null(env, &v);
  return v;
}

static napi_value get_original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "getOriginalDst(fd): fd must be a non-negative integer");
    return NULL;
  }

  // The socket's own address: to tell "redirected" from "conntrack merely tracked a direct connection",
  // and to know whether the IPv6 query applies.
  struct sockaddr_storage local;
  socklen_t local_len = sizeof(local);
  memset(&local, 0, sizeof(local));
  if (getsockname(fd, (struct sockaddr*)&local, &local_len) != 0) return throw_errno(env, "getsockname", errno);

  // IPv4 first: covers AF_INET sockets and IPv4-mapped connections accepted by a dual-stack AF_INET6 listener
  // (the kernel answers SOL_IP on those from the socket's IPv4 addresses).
  struct sockaddr_in v4;
  socklen_t v4_len = sizeof(v4);
  memset(&v4, 0, sizeof(v4));
  if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &v4, &v4_len) == 0) {
    int same = 0;
    if (local.ss_family == AF_INET) {
      const struct sockaddr_in* l = (const struct sockaddr_in*)&local;
      same = l->sin_addr.s_addr == v4.sin_addr.s_addr && l->sin_port == v4.sin_port;
    } else if (local.ss_family == AF_INET6) {
      const struct sockaddr_in6* l = (const struct sockaddr_in6*)&local;
      same = IN6_IS_ADDR_V4MAPPED(&l->sin6_addr) && memcmp(&l->sin6_addr.s6_addr[12], &v4.sin_addr, 4) == 0 &&
             l->sin6_port == v4.sin_port;
    }
    if (same) return null_value(env);
    char text[INET_ADDRSTRLEN];
    if (inet_ntop(AF_INET, &v4.sin_addr, text, sizeof(text)) == NULL) return throw_errno(env, "inet_ntop", errno);
    return make_result(env, 4, text, ntohs(v4.sin_port));
  }
  int err = errno;
  if (!not_redirected(err)) return throw_errno(env, "getsockopt", err);
  if (local.ss_family != AF_INET6) return null_value(env);

  struct sockaddr_in6 v6;
  socklen_t v6_len = sizeof(v6);
  memset(&v6, 0, sizeof(v6));
  if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &v6, &v6_len) == 0) {
    const struct sockaddr_in6* l = (const struct sockaddr_in6*)&local;
    if (memcmp(&l->sin6_addr, &v6.sin6_addr, sizeof(v6.sin6_addr)) == 0 && l->sin6_port == v6.sin6_port) {
      return null_value(env);
    }
    char text[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof(text)) == NULL) return throw_errno(env, "inet_ntop", errno);
    return make_result(env, 6, text, ntohs(v6.sin6_port));
  }
  err = errno;
  if (not_redirected(err)) return null_value(env);
  return throw_errno(env, "getsockopt", err);
}

// setKeepAliveProbes(fd, intervalSeconds, probes) -> undefined
//
// DestinationRule connectionPool.tcp.tcpKeepalive `interval` and `probes` (TCP_KEEPINTVL,
// TCP_KEEPCNT), which Node's setKeepAlive cannot set (it sets SO_KEEPALIVE and TCP_KEEPIDLE only).
// Throws Error{code: "EBADF"...} when setsockopt fails.
static napi_value set_keepalive_probes(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd = -1, interval = 0, probes = 0;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &interval) != napi_ok ||
      napi_get_value_int32(env, argv[2], &probes) != napi_ok || fd < 0 || interval < 1 || probes < 1) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "setKeepAliveProbes(fd, intervalSeconds, probes): positive integers expected");
    return NULL;
  }
  int v = interval;
  if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &v, sizeof(v)) != 0) return throw_errno(env, "setsockopt", errno);
  v = probes;
  if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &v, sizeof(v)) != 0) return throw_errno(env, "setsockopt", errno);
  return NULL;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_value fn;
  if (napi_create_function(env, "getOriginalDst", NAPI_AUTO_LENGTH, get_original_dst, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "getOriginalDst", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "setKeepAliveProbes", NAPI_AUTO_LENGTH, set_keepalive_probes, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "setKeepAliveProbes", fn) != napi_ok) return NULL;
  return exports;
}
