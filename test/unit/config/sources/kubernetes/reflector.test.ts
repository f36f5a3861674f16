// List-then-watch against the test API server: paging, a store that follows ADDED/MODIFIED/DELETED,
// a watch timed out by the server resumed from its resourceVersion, failures retried with back-off
// (tiny delays here, so the test stays fast; no timing is asserted), objects of another kind kept out.
import t, { type Test } from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeClient, type KubeApiError, type KubeObject } from '../../../../../config/sources/kubernetes/client';
import { fromKubeconfig } from '../../../../../config/sources/kubernetes/kubeconfig';
import { Reflector } from '../../../../../config/sources/kubernetes/reflector';
import { KubeApiServer } from '../../../../helpers/kube-api-server/server';
import { writeKubeconfig } from '../../../../helpers/kube-api-server/kubectl';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !ok(); i++) await sleep(25);
  if (!ok()) throw new Error(`timed out waiting for ${what}`);
}

async function setup(t: Test, timing: { pageSize?: number; watchTimeoutSeconds?: number } = {}) {
  const api = new KubeApiServer();
  const server = await api.listen();
  t.teardown(() => api.close());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-reflector-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const client = new KubeClient(fromKubeconfig(writeKubeconfig(dir, { server })));
  t.teardown(() => client.close());
  const errors: KubeApiError[] = [];
  let changes = 0;
  const reflector = (accept?: (o: KubeObject) => boolean): Reflector => {
    const r = new Reflector({
      client, path: '/api/v1/namespaces/default/services', apiVersion: 'v1', kind: 'Service',
      onChange: () => changes++, onError: (e) => errors.push(e),
      ...(accept !== undefined ? { accept } : {}),
      timing: { pageSize: 2, backoffBaseMs: 5, backoffMaxMs: 20, ...timing },
    });
    t.teardown(() => r.stop());
    return r;
  };
  return { api, errors, reflector, changes: () => changes };
}

const svc = (name: string, namespace = 'default'): KubeObject => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { ports: [] } });

t.test('lists in pages, then follows the watch', async (t) => {
  const { api, reflector } = await setup(t);
  for (const n of ['a', 'b', 'c', 'd', 'e']) api.put(svc(n) as never);
  api.put(svc('elsewhere', 'other') as never);
  const r = reflector();
  r.start();
  await r.synced;
  t.same([...r.store.keys()], ['default/a', 'default/b', 'default/c', 'default/d', 'default/e'], 'one namespace, every page');
  t.equal(api.requests.filter((q) => q.includes('/services?limit=2')).length, 3, 'three pages of two');
  t.equal(r.store.get('default/a')?.kind, 'Service', 'kind filled in for list items');
  await until('the watch', () => api.openWatches('services') === 1);
  api.put({ ...svc('f'), spec: { ports: [{ port: 80 }] } } as never);
  api.remove('v1', 'Service', 'default', 'a');
  await until('the events', () => r.store.has('default/f') && !r.store.has('default/a'));
  t.pass('ADDED and DELETED applied');
});

t.test('a watch the server ends is resumed from the last resourceVersion, with no new list', async (t) => {
  const { api, reflector } = await setup(t, { watchTimeoutSeconds: 1 });
  api.put(svc('a') as never);
  const r = reflector();
  r.start();
  await r.synced;
  await until('the watch', () => api.openWatches('services') === 1);
  api.put(svc('b') as never);
  const rv = String(api.store.resourceVersion);
  // timeoutSeconds is between 1 and 2 here: the server ends the stream, the reflector watches again.
  await until('a second watch', () => api.requests.filter((q) => q.includes('watch=true')).length >= 2);
  const second = api.requests.filter((q) => q.includes('watch=true'))[1]!;
  t.match(second, new RegExp(`resourceVersion=${rv}&`), 'resumed where the stream stopped');
  t.equal(api.requests.filter((q) => q.includes('limit=')).length, 1, 'no re-list');
});

t.test('failures back off and retry; an ERROR event ends the watch; foreign kinds are kept out', async (t) => {
  const { api, errors, reflector } = await setup(t);
  api.put(svc('a') as never);
  api.failNext(3);
  const seen: string[] = [];
  const r = reflector((o) => {
    if (o.kind !== 'Service') seen.push(String(o.kind));
    return o.kind === 'Service';
  });
  r.start();
  await r.synced;
  t.same(errors.map((e) => `${e.status} ${e.reason}`), ['500 InternalError', '500 InternalError', '500 InternalError'], 'each failure reported, then the list succeeded');
  await until('the watch', () => api.openWatches('services') === 1);
  api.injectEvent('services', { type: 'ADDED', object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm', namespace: 'default', resourceVersion: '1' } } });
  api.injectEvent('services', { type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 500, reason: 'InternalError', message: 'etcd is sad' } });
  await until('the ERROR to be reported', () => errors.length === 4);
  t.match(errors[3], { status: 500, message: 'etcd is sad' });
  t.same(seen, ['ConfigMap']);
  t.notOk(r.store.has('default/cm'), 'the ConfigMap is not stored');
  await until('the watch again', () => api.openWatches('services') === 1);

  api.forbid('services');
  api.dropWatches();
  await until('403s', () => errors.filter((e) => e.status === 403).length >= 2);
  t.match(errors.find((e) => e.status === 403), { reason: 'Forbidden' });
  t.same([...r.store.keys()], ['default/a'], 'the store is kept while the server refuses');
});
