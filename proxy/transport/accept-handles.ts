// Accepting bare TCP handles (proxy/transport/tcp-handle.ts) from a listening net.Server, so that a
// connection taking the TCP fast path never costs a net.Socket; one that needs streams (TLS, HTTP,
// inspection) is wrapped in a net.Socket by `socketFor`, exactly as net.Server does on accept.
//
// net.Server keeps doing the listening (bind, address lookup, errors, and in a cluster worker the
// primary's round-robin hand-over of accepted connections); only its accept callback is replaced.
// Node delivers every accepted connection by calling `onconnection(status, clientHandle)` on the
// server's `_handle`: libuv's accept on a real listening handle, or cluster's child.js for a worker,
// whose `_handle` is a stand-in fed by the primary. Both are plain properties that net sets once
// the server listens.

import net from 'node:net';
import { uvError, type TcpHandle } from './tcp-handle';

type AcceptingHandle = { onconnection?: unknown; setNoDelay?: unknown };

/**
 * After `server` listens: deliver its connections as bare handles, with TCP_NODELAY set, to
 * `onHandle` instead of 'connection' events. Returns false (nothing changed) when the server has
 * no such handle.
 *
 * On Linux an accepted socket inherits TCP_NODELAY from its listening socket, so where this process
 * holds the listening socket it is set there once instead of on every connection (a syscall each).
 * A cluster worker's `_handle` is the primary's stand-in, without the socket: per connection there.
 */
export function acceptHandles(server: net.Server, onHandle: (client: TcpHandle) => void): boolean {
  const handle = (server as unknown as { _handle?: AcceptingHandle | null })._handle;
  if (handle === null || handle === undefined || typeof handle.onconnection !== 'function') return false;
  const inherited = process.platform === 'linux' && typeof handle.setNoDelay === 'function' && (handle as Pick<TcpHandle, 'setNoDelay'>).setNoDelay(true) === 0;
  handle.onconnection = (status: number, client: TcpHandle | undefined): void => {
    // net.Server reports a failed accept (EMFILE...) as an 'error' event; so does this.
    if (status < 0 || client === undefined) {
      server.emit('error', uvError(status, 'accept'));
      return;
    }
    if (!inherited) client.setNoDelay(true);
    onHandle(client);
  };
  return true;
}

/** A net.Socket for an accepted handle, as net.Server makes one (reading starts at once). */
export function socketFor(client: TcpHandle): net.Socket {
  const options = { handle: client, allowHalfOpen: true, readable: true, writable: true, noDelay: true };
  return new net.Socket(options as net.SocketConstructorOpts);
}
