// Start a real sluice gateway Runtime in-process on loopback with config text, its access log in a
// temp file, and tear it down with the test. Upstreams are real servers the test starts.

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Runtime, type RunOptions } from '../../proxy/runtime';

export interface TestGateway {
  readonly rt: Runtime;
  readonly accessLogFile: string;
  /** flushed access-log lines so far */
  lines(): Promise<string[]>;
  stat(name: string): number | undefined;
}

export { freePort } from './free-port';

export async function startTestRuntime(t: { teardown(fn: () => unknown): void }, text: string, overrides: Partial<RunOptions> = {}): Promise<TestGateway> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-test-'));
  const accessLogFile = path.join(dir, 'access.log');
  const opts: RunOptions = {
    role: 'gateway',
    configPaths: [],
    embeddedConfig: { name: path.join(dir, 'config.yaml'), text },
    namespace: 'istio-system',
    labels: { istio: 'egressgateway' },
    admin: { host: '127.0.0.1', port: 0 },
    prometheusPort: null,
    healthPort: null,
    outboundPort: 15001,
    inboundPort: 15006,
    certsDir: dir,
    outboundPolicy: 'ALLOW_ANY',
    accessLog: accessLogFile,
    accessLogFormat: 'istio',
    concurrency: 1,
    httpProxyPort: null,
    capture: false,
    logger: pino({ level: 'silent' }),
    ...overrides,
  };
  const rt = await Runtime.start(opts);
  t.teardown(async () => {
    await rt.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    rt,
    accessLogFile,
    async lines() {
      await rt.flushAccessLog();
      return fs.existsSync(accessLogFile) ? fs.readFileSync(accessLogFile, 'utf8').split('\n').filter((l) => l !== '') : [];
    },
    stat(name: string) {
      const s = rt.stats.get(name);
      return s === undefined || s.kind === 'histogram' ? undefined : s.value;
    },
  };
}

/** One raw HTTP exchange over a fresh TCP connection: what the client sees, byte for byte. */
export function rawExchange(port: number, request: string | Buffer, opts: { endAfterWrite?: boolean; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let data = '';
    s.setEncoding('latin1');
    s.on('data', (c: string) => (data += c));
    s.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? resolve(data) : reject(e)));
    s.on('close', () => resolve(data));
    s.setTimeout(opts.timeoutMs ?? 5000, () => s.destroy());
    s.write(request);
    if (opts.endAfterWrite) s.end();
  });
}

/**
 * The smallest gateway config: `host` (port 80, `protocol`, default HTTP) is one STATIC endpoint on
 * loopback, a Gateway `gw` (selector istio=egressgateway) serves it on `gwPort`, and VirtualService
 * `vs` applies `http` (YAML list items, default: route everything to the host).
 */
export function oneUpstreamConfig(o: { gwPort: number; upstreamPort: number; host?: string; http?: string; protocol?: string }): string {
  const host = o.host ?? 'up.example';
  const protocol = o.protocol ?? 'HTTP';
  const portName = protocol.toLowerCase();
  const http = o.http ?? `  - route: [{ destination: { host: ${host}, port: { number: 80 } } }]`;
  return `
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: { name: up, namespace: default }
spec:
  hosts: [${host}]
  ports: [{ number: 80, name: ${portName}, protocol: ${protocol} }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { ${portName}: ${o.upstreamPort} } }]
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  selector: { istio: egressgateway }
  servers: [{ port: { number: ${o.gwPort}, name: http, protocol: HTTP }, hosts: [${host}] }]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: vs, namespace: default }
spec:
  hosts: [${host}]
  gateways: [gw]
  http:
${http}
`;
}
