import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadPaths } from '../../../../config/resources/load';
import { doc, load, messages } from './_load';

const SE = (name: string) => doc('ServiceEntry', name, `  hosts: [${name}.example.com]`);

t.test('multi-document files: 1-based doc index, empty documents counted but skipped', async (t) => {
  const r = load(`${SE('a')}---\n---\n# only a comment\n---\n${SE('b')}`);
  t.same(r.messages, []);
  t.same(r.resources.serviceEntries.map((s) => [s.metadata.name, s.origin.doc]), [['a', 1], ['b', 4]]);
});

t.test('kind: List expands in place; items keep their document index', async (t) => {
  const list = `apiVersion: v1\nkind: List\nitems:\n- ${SE('x').trimEnd().split('\n').join('\n  ')}\n- ${SE('y').trimEnd().split('\n').join('\n  ')}\n`;
  const r = load(`${SE('first')}---\n${list}---\n${SE('last')}`);
  t.same(r.messages, []);
  t.same(r.resources.serviceEntries.map((s) => [s.metadata.name, s.origin.doc]), [['first', 1], ['x', 2], ['y', 2], ['last', 3]]);
  t.same(messages('apiVersion: v1\nkind: List\nitems: nope\n'), ['error CFG_ERR_INVALID_FIELD f.yaml:1: items: expected a list, got "nope"']);
});

t.test('namespace defaults to the proxy namespace; resources are grouped by kind in load order', async (t) => {
  const r = load(`${SE('a')}---\n${doc('Gateway', 'g', '  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]')}---\n${SE('b').replace('name: b', 'name: b\n  namespace: other')}`, 'prod');
  t.same(r.resources.serviceEntries.map((s) => `${s.metadata.namespace}/${s.metadata.name}`), ['prod/a', 'other/b']);
  t.equal(r.resources.gateways.length, 1);
  t.same(r.resources.gateways[0]!.metadata, { name: 'g', namespace: 'prod' });
});

t.test('resources are deep-frozen', async (t) => {
  const r = load(SE('a'));
  const se = r.resources.serviceEntries[0]!;
  t.ok(Object.isFrozen(r.resources));
  t.ok(Object.isFrozen(r.resources.serviceEntries));
  t.ok(Object.isFrozen(se.spec.hosts));
  t.throws(() => { (se.spec.hosts as string[]).push('x'); });
});

t.test('document-level problems', async (t) => {
  t.same(messages('- just\n- a list\n'), ['error CFG_ERR_INVALID_FIELD f.yaml:1: expected a resource (a mapping), got a list']);
  t.same(messages('apiVersion: networking.istio.io/v1\nmetadata: {name: x}\n'), ['error CFG_ERR_REQUIRED f.yaml:1: kind: missing required field']);
  t.same(messages('kind: ServiceEntry\nmetadata: {name: x}\nspec: {hosts: [a.b]}\n'), ['error CFG_ERR_REQUIRED f.yaml:1: ServiceEntry/x: apiVersion: missing required field']);
  t.same(messages('apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x}\n'), ['error CFG_ERR_REQUIRED f.yaml:1: ServiceEntry/x: spec: missing required field']);
  t.same(messages('apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nspec: {hosts: [a.b]}\n'), ['error CFG_ERR_REQUIRED f.yaml:1: ServiceEntry/?: metadata: missing required field']);
  // kubectl get -o yaml output loads: status and Kubernetes bookkeeping are ignored silently.
  t.same(messages(SE('a').replace('metadata:', 'status: {}\nmetadata:\n  uid: 1234\n  resourceVersion: "7"') ), []);
  t.same(messages(SE('a') + 'extra: 1\n'), ['warning CFG_WARN_ISTIO_REJECTS f.yaml:1: ServiceEntry/a: unknown field "extra" (Istio rejects unknown top-level fields)']);
  for (const v of ['networking.istio.io/v1alpha3', 'networking.istio.io/v1beta1', 'networking.istio.io/v1']) {
    t.same(messages(SE('a').replace('networking.istio.io/v1', v)), [], v);
  }
});

t.test('an alias bomb is refused, not expanded', async (t) => {
  let y = 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n';
  for (let i = 0; i < 8; i++) y += `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill('*' + String.fromCharCode(97 + i)).join(',')}]\n`;
  const m = messages(y);
  t.equal(m.length, 1);
  t.match(m[0], /^error CFG_ERR_PARSE f\.yaml:1: YAML parse error: /);
});

t.test('directories: *.yaml, *.yml, *.json sorted by name; dot-files and sub-directories skipped', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-load-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'b.yml'), SE('b'));
  fs.writeFileSync(path.join(dir, 'a.yaml'), SE('a'));
  fs.writeFileSync(path.join(dir, 'c.json'), JSON.stringify({ apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'c' }, spec: { hosts: ['c.example.com'] } }));
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'not config');
  fs.writeFileSync(path.join(dir, '.#a.yaml'), 'half-written: [');
  fs.mkdirSync(path.join(dir, 'sub.yaml'));
  const r = loadPaths([dir], { defaultNamespace: 'default' });
  t.same(r.messages, []);
  t.same(r.resources.serviceEntries.map((s) => [s.metadata.name, path.basename(s.origin.file)]), [['a', 'a.yaml'], ['b', 'b.yml'], ['c', 'c.json']]);
  // A file given directly is read whatever its name; duplicates across files are found.
  const again = loadPaths([dir, path.join(dir, 'a.yaml')], { defaultNamespace: 'default' });
  t.same(again.messages.map((m) => m.text), [`${path.join(dir, 'a.yaml')}:1: ServiceEntry/a: duplicate ServiceEntry default/a; first defined at ${path.join(dir, 'a.yaml')}:1`]);
  t.equal(again.resources.serviceEntries.length, 3);
});
