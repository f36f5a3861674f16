// A running proxy reloading from files does the load + compile on its config thread and
// still behaves as before: an invalid file is rejected with the same error messages the in-thread
// load gives and the last good snapshot stays; a valid change is applied, and the snapshot in
// force is the one the in-thread compile gives. Real Runtime, real files, real watcher; bounded waits.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import { Runtime } from '../../../../proxy/runtime';
import { compile } from '../../../../config/compile/index';
import { loadPaths } from '../../../../config/resources/load';

const se = (name: string) => `apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: { name: ${name} }\nspec:\n  hosts: [${name}.example.com]\n  ports: [{ number: 80, name: http, protocol: HTTP }]\n  resolution: STATIC\n  endpoints: [{ address: 198.18.0.9 }]\n`;
const vs = 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: { name: r }\nspec:\n  hosts: [b.example.com]\n  http:\n  - match: [{ uri: { regex: "/v[0-9]+/.*" } }]\n    route: [{ destination: { host: b.example.com, subset: v1 } }]\n';

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await sleep(50);
  if (!ok()) throw new Error(`timed out waiting for ${what}`);
}

t.test('reload off the event loop: invalid rejected with the in-thread messages (last good kept), valid applied as compiled in-thread', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-reload-'));
  const file = path.join(dir, 'config.yaml');
  fs.writeFileSync(file, se('a'));
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({ write(chunk, _enc, done) { logs.push(JSON.parse(String(chunk))); done(); } });
  const opts = {
    role: 'sidecar' as const, configPaths: [file], embeddedConfig: null, namespace: 'default', labels: { app: 'sleep' },
    admin: { host: '127.0.0.1', port: 0 }, prometheusPort: null, healthPort: null, outboundPort: 15001, inboundPort: 15006,
    certsDir: dir, outboundPolicy: 'ALLOW_ANY' as const, accessLog: 'off', accessLogFormat: 'istio' as const, concurrency: 1,
    httpProxyPort: null, capture: false, logger: pino({ level: 'info' }, sink),
  };
  const rt = await Runtime.start(opts);
  t.teardown(async () => {
    await rt.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const counter = (name: string): number => { const s = rt.stats.get(name); return s !== undefined && s.kind !== 'histogram' ? s.value : 0; };
  const first = rt.snapshot!;
  t.ok(first.clusters.has('outbound|80||a.example.com'));

  fs.writeFileSync(file, se('a') + '---\n' + se('b').replace('STATIC', 'SOMETIMES') + '---\n' + vs);
  await until('the rejection', () => counter('sluice.config.rejected') >= 1);
  t.equal(rt.snapshot, first, 'the last good snapshot stays in force');
  const want = loadPaths([file], { defaultNamespace: 'default' }).messages.filter((m) => m.level === 'error').map((m) => m.text);
  t.ok(want.length > 0);
  const rejected = logs.find((l) => l['msg'] === 'config rejected; keeping the last good config');
  t.same(rejected?.['errors'], want, 'the same error messages as the in-thread load');

  fs.writeFileSync(file, se('a') + '---\n' + se('b') + '---\n' + vs + '---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: { name: b }\nspec: { host: b.example.com, subsets: [{ name: v1 }] }\n');
  await until('the new config', () => counter('sluice.config.applied') >= 1);
  const now = rt.snapshot!;
  t.not(now.version, first.version);
  const inThread = compile(loadPaths([file], { defaultNamespace: 'default' }).resources, {
    role: 'sidecar', namespace: 'default', labels: { app: 'sleep' }, outboundPolicy: 'ALLOW_ANY', certsDir: dir,
  });
  t.same(now, inThread, 'the snapshot in force is the in-thread compile of the file');
  t.ok(Object.isFrozen(now) && Object.isFrozen(now.clusters.get('outbound|80|v1|b.example.com')), 'frozen');
  t.equal(counter('sluice.config.rejected'), 1);
});
