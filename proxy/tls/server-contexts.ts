// SecureContexts for TLS that sluice terminates (gateway SIMPLE / MUTUAL / ISTIO_MUTUAL servers),
// built once per distinct set of files and rebuilt when a file changes on disk, so a certificate
// rotation takes effect for new connections without a restart while open connections keep theirs.
// File reads happen here (reload time), never per connection.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import tls from 'node:tls';
import type { DownstreamTls } from '../../config/compile/snapshot';
import { fileStamp, RECHECK_MS } from './file-stamp';

interface Entry {
  context: tls.SecureContext;
  /** mtimes of the files when the context was built */
  stamp: string;
  checkedAt: number;
}

export class ServerTlsContexts {
  private readonly entries = new Map<string, Entry>();

  /** The current context for these settings; throws (with the file named) when files are unreadable. */
  get(t: DownstreamTls, now: number = Date.now()): tls.SecureContext {
    const key = t.certFile + '\0' + t.keyFile + '\0' + (t.caFile ?? '') + '\0' + t.minVersion + '\0' + t.maxVersion + '\0' + (t.cipherSuites ?? []).join(':');
    const e = this.entries.get(key);
    if (e !== undefined && now - e.checkedAt < RECHECK_MS) return e.context;
    const stamp = fileStamp([t.certFile, t.keyFile, t.caFile]);
    if (e !== undefined && e.stamp === stamp) {
      e.checkedAt = now;
      return e.context;
    }
    const context = tls.createSecureContext({
      cert: fs.readFileSync(t.certFile),
      key: fs.readFileSync(t.keyFile),
      ca: t.caFile === null ? undefined : fs.readFileSync(t.caFile),
      minVersion: t.minVersion,
      maxVersion: t.maxVersion,
      ciphers: t.cipherSuites === null ? undefined : t.cipherSuites.join(':'),
      // OpenSSL refuses to resume a session on a context that verifies peers (MUTUAL) unless a session
      // id context is set ("session id context uninitialized": the resuming client gets an internal
      // error alert). tls.Server sets one itself; contexts used with a bare TLSSocket must.
      sessionIdContext: createHash('sha256').update(key).digest('hex').slice(0, 32),
    });
    this.entries.set(key, { context, stamp, checkedAt: now });
    return context;
  }
}
