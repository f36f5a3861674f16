// Reloads compiled on a worker thread: the snapshot that comes back is the one the
// in-thread compile gives — same values, same key order, same prototypes (immutable Map/Set), as
// frozen, RegExps intact, lookups answering the same — for every seed sample as sidecar and as
// gateway; unchanged bytes need no work; an invalid config comes back with exactly the in-thread
// messages and no snapshot. Real files in a temp directory, a real worker thread.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CompileWorker } from '../../../../config/sources/compile-worker';
import { compile } from '../../../../config/compile/index';
import { loadPaths } from '../../../../config/resources/load';
import { findListener, findVirtualHost, selectChain } from '../../../../config/compile/lookup';
import { SAMPLES, SIDECAR, GATEWAY, built } from '../../../helpers/seed-samples';
import { sameShape } from '../../../helpers/same-graph';


function tempConfig(t: { teardown(fn: () => void): void }, files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-compile-worker-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

t.test('off-thread snapshots equal the in-thread compile for every seed sample, sidecar and gateway', async (t) => {
  const worker = new CompileWorker();
  t.teardown(() => worker.close());
  const samples = fs.readdirSync(SAMPLES).filter((d) => /^s\d/.test(d)).sort();
  t.ok(samples.length >= 10, 'the seed samples are there');
  for (const s of samples) {
    const dir = path.join(SAMPLES, s);
    for (const opts of [SIDECAR, GATEWAY]) {
      const load = { defaultNamespace: opts.namespace };
      const inThread = loadPaths([dir], load);
      if (inThread.messages.some((m) => m.level === 'error')) continue;
      const want = compile(inThread.resources, opts);
      const got = built(await worker.run([dir], load, opts, ''));
      t.same(got.messages, inThread.messages, `${s} ${opts.role}: load messages`);
      const problems: string[] = [];
      sameShape(want, got.snapshot, 'snapshot', problems);
      t.same(problems, [], `${s} ${opts.role}: same values, key order, prototypes, freezing`);
    }
  }
});

t.test('the received snapshot is immutable and its lookups answer as the original', async (t) => {
  const dir = path.join(SAMPLES, 's9');
  const worker = new CompileWorker();
  t.teardown(() => worker.close());
  const snap = built(await worker.run([dir], { defaultNamespace: 'default' }, SIDECAR, '')).snapshot!;
  const want = compile(loadPaths([dir], { defaultNamespace: 'default' }).resources, SIDECAR);
  t.throws(() => (snap.clusters as Map<string, unknown>).set('x', null), /immutable/);
  t.throws(() => (snap.listeners as Map<string, unknown>).delete('0.0.0.0_80'), /immutable/);
  t.throws(() => { (snap as { version: string }).version = 'x'; }, TypeError);
  let compared = 0;
  for (const l of want.listeners.values()) {
    const got = findListener(snap, l.address, l.port);
    t.equal(got?.name, l.name);
    const chain = selectChain(got!, { isTls: false, sni: null, alpn: ['http/1.1'], dstIp: '198.18.0.1' });
    const wantChain = selectChain(l, { isTls: false, sni: null, alpn: ['http/1.1'], dstIp: '198.18.0.1' });
    t.equal(chain?.name, wantChain?.name);
    if (chain?.filter.kind === 'http' && wantChain?.filter.kind === 'http') {
      for (const vh of wantChain.filter.routeConfig.virtualHosts) {
        for (const d of vh.domains) {
          t.equal(findVirtualHost(chain.filter.routeConfig, d)?.name, findVirtualHost(wantChain.filter.routeConfig, d)?.name, d);
          compared++;
        }
      }
    }
  }
  t.ok(compared > 0, `${compared} domains looked up`);
});

t.test('unchanged bytes: no load, no compile; an invalid config: the in-thread messages and no snapshot', async (t) => {
  const good = 'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: { name: a }\nspec:\n  hosts: [a.example.com]\n  ports: [{ number: 80, name: http, protocol: HTTP }]\n  resolution: DNS\n';
  const dir = tempConfig(t, { 'a.yaml': good });
  const worker = new CompileWorker();
  t.teardown(() => worker.close());
  const load = { defaultNamespace: 'default' };
  const first = built(await worker.run([dir], load, SIDECAR, ''));
  t.equal((await worker.run([dir], load, SIDECAR, first.fingerprint)).kind, 'unchanged');

  fs.writeFileSync(path.join(dir, 'b.yaml'), 'kind: ServiceEntry\nmetadata: { name: b }\nspec: { hosts: [b.example.com], resolution: SOMETIMES }\n---\nkind: [');
  const bad = built(await worker.run([dir], load, SIDECAR, first.fingerprint));
  const want = loadPaths([dir], load).messages;
  t.ok(want.filter((m) => m.level === 'error').length >= 2, 'several errors');
  t.same(bad.messages, want, 'the same messages in the same order');
  t.equal(bad.snapshot, null);
  t.not(bad.fingerprint, first.fingerprint);
});

t.test('close() rejects a run and refuses new ones', async (t) => {
  const worker = new CompileWorker();
  const running = worker.run([path.join(SAMPLES, 's2')], { defaultNamespace: 'default' }, SIDECAR, '');
  worker.close();
  await t.rejects(running, /closed/);
  await t.rejects(worker.run([], { defaultNamespace: 'default' }, SIDECAR, ''), /closed/);
});
