// The smallest Kubernetes API client that list/watch needs, on node:http/node:https: GET a JSON
// document, and stream a watch (one JSON event per line of a chunked response). Not
// @kubernetes/client-node: its v1 installs about 80 MB, its v2 needs Node >= 22 (sluice supports
// 20), and list/watch is a few hundred lines of it that sluice uses.
//
// Errors: an HTTP error answers with a Status object (kind: Status, code, reason, message): it
// becomes a KubeApiError with those, so callers branch on `status` (410 re-list, 403 RBAC...).

import http from 'node:http';
import https from 'node:https';
import type { ClusterAccess } from './kubeconfig';

export class KubeApiError extends Error {
  readonly code = 'CFG_ERR_KUBE_API';
  /** HTTP status (or the Status object's `code`); 0 when the request never got an answer. */
  readonly status: number;
  /** Status `reason` (NotFound, Forbidden, Expired...), or the socket error's code. */
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

export interface WatchEvent {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  readonly object: KubeObject;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; uid?: string; labels?: Record<string, string>; annotations?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

export interface Watch {
  /** Resolves when the server ends the stream (timeoutSeconds), rejects on a broken connection or an HTTP error. */
  readonly done: Promise<void>;
  close(): void;
}

/** A line longer than this is not an event any sane server sends: the watch is dropped (memory stays bounded). */
const MAX_EVENT_BYTES = 32 * 1024 * 1024;
/** A list page or a discovery document that takes longer than this is given up on (and retried). */
const REQUEST_TIMEOUT_MS = 60_000;

export class KubeClient {
  readonly access: ClusterAccess;
  private readonly agent: http.Agent;
  private readonly secure: boolean;

  constructor(access: ClusterAccess) {
    this.access = access;
    this.secure = access.server.protocol === 'https:';
    const keepAlive = { keepAlive: true, maxSockets: 64 };
    this.agent = this.secure
      ? new https.Agent({
        ...keepAlive,
        ...(access.ca !== null ? { ca: access.ca } : {}),
        ...(access.cert !== null ? { cert: access.cert } : {}),
        ...(access.key !== null ? { key: access.key } : {}),
        ...(access.serverName !== null ? { servername: access.serverName } : {}),
        rejectUnauthorized: !access.insecureSkipTlsVerify,
      })
      : new http.Agent(keepAlive);
  }

  close(): void {
    this.agent.destroy();
  }

  /** GET `path` (with query) and parse the JSON answer. */
  get(path: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const req = this.request(path, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => reject(socketError(e)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if ((res.statusCode ?? 0) >= 300) {
            reject(statusError(res.statusCode ?? 0, text));
            return;
          }
          try {
            resolve(JSON.parse(text));
          } catch (e) {
            reject(new KubeApiError(res.statusCode ?? 0, 'BadResponse', `GET ${path}: invalid JSON: ${(e as Error).message}`));
          }
        });
      });
      req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new KubeApiError(0, 'Timeout', `GET ${path}: no answer in ${REQUEST_TIMEOUT_MS / 1000} s`)));
      req.on('error', (e) => reject(socketError(e)));
      req.end();
    });
  }

  /**
   * GET `path` as a watch: `onEvent` for each line. `idleMs`: no byte for that long means a dead
   * connection (a server ends a watch after its timeoutSeconds; a silent one is a lost one).
   */
  watch(path: string, onEvent: (e: WatchEvent) => void, idleMs: number): Watch {
    let req: http.ClientRequest | null = null;
    let res: http.IncomingMessage | null = null;
    /** Why we ended the stream ourselves (null: closed by close(), a normal end). */
    let ended: KubeApiError | null | undefined;
    // Destroying with an error would emit it on the socket; we destroy plainly and settle ourselves.
    const end = (why: KubeApiError | null): void => {
      if (ended !== undefined) return;
      ended = why;
      (res ?? req)?.destroy();
    };
    const done = new Promise<void>((resolve, reject) => {
      const settle = (fallback: KubeApiError | null): void => {
        const why = ended !== undefined ? ended : fallback;
        if (why === null) resolve();
        else reject(why);
      };
      req = this.request(path, (r) => {
        res = r;
        if ((r.statusCode ?? 0) >= 300) {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => reject(statusError(r.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'))));
          r.on('error', (e) => reject(socketError(e)));
          return;
        }
        let pending = '';
        r.setEncoding('utf8');
        r.on('data', (chunk: string) => {
          pending += chunk;
          let nl: number;
          while (ended === undefined && (nl = pending.indexOf('\n')) >= 0) {
            const line = pending.slice(0, nl).trim();
            pending = pending.slice(nl + 1);
            if (line === '') continue;
            let event: WatchEvent;
            try {
              event = JSON.parse(line) as WatchEvent;
            } catch (e) {
              end(new KubeApiError(0, 'BadResponse', `watch ${path}: invalid event: ${(e as Error).message}`));
              return;
            }
            onEvent(event);
          }
          if (pending.length > MAX_EVENT_BYTES) end(new KubeApiError(0, 'BadResponse', `watch ${path}: an event over ${MAX_EVENT_BYTES} bytes`));
        });
        r.on('error', () => undefined); // `close` settles
        // The server ends a watch with the last chunk (its timeoutSeconds); a close without it is a cut connection.
        r.on('close', () => settle(r.complete ? null : new KubeApiError(0, 'ECONNRESET', `watch ${path}: connection closed mid-stream`)));
      });
      req.setTimeout(idleMs, () => end(new KubeApiError(0, 'Timeout', `watch ${path}: silent for ${Math.round(idleMs / 1000)} s`)));
      req.on('error', (e) => {
        if (res === null) settle(socketError(e));
      });
      req.on('close', () => {
        if (res === null) settle(new KubeApiError(0, 'ECONNRESET', `watch ${path}: closed before an answer`));
      });
      req.end();
    });
    done.catch(() => undefined); // the caller awaits it; never an unhandled rejection after close()
    return { done, close: () => end(null) };
  }

  private request(path: string, onResponse: (res: http.IncomingMessage) => void): http.ClientRequest {
    const a = this.access;
    const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': 'sluice' };
    const token = a.token();
    if (token !== null) headers['Authorization'] = `Bearer ${token}`;
    else if (a.basicAuth !== null) headers['Authorization'] = `Basic ${a.basicAuth}`;
    const base = a.server.pathname.replace(/\/$/, '');
    const options: http.RequestOptions = {
      host: a.server.hostname.replace(/^\[|\]$/g, ''),
      port: a.server.port === '' ? (this.secure ? 443 : 80) : Number(a.server.port),
      path: base + path,
      method: 'GET',
      headers,
      agent: this.agent,
    };
    return this.secure ? https.request(options, onResponse) : http.request(options, onResponse);
  }
}

function socketError(e: Error): KubeApiError {
  if (e instanceof KubeApiError) return e;
  const code = (e as NodeJS.ErrnoException).code ?? 'Error';
  return new KubeApiError(0, code, e.message);
}

/** The Status object of an error answer, or what the status line says when the body is not one. */
export function statusError(httpStatus: number, body: string): KubeApiError {
  try {
    const s = JSON.parse(body) as { kind?: string; code?: number; reason?: string; message?: string };
    if (s.kind === 'Status') return new KubeApiError(s.code ?? httpStatus, s.reason ?? '', s.message ?? body);
  } catch {
    // not JSON: fall through
  }
  return new KubeApiError(httpStatus, http.STATUS_CODES[httpStatus] ?? '', body.slice(0, 200) || `HTTP ${httpStatus}`);
}
