// sluice validate over the broken fixtures (exact lines, written in each fixture as `# expect:`)
// and over every sample folder (must be clean).

import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { validatePaths } from '../../../config/validate';

const ROOT = path.resolve(__dirname, '../../../..');
const BROKEN = path.join(ROOT, 'test/fixtures/broken');
const SAMPLES = path.join(ROOT, 'config/samples');
const opts = { defaultNamespace: 'default' };

t.test('each broken fixture yields exactly the lines it declares', async (t) => {
  const files = fs.readdirSync(BROKEN).filter((f) => f.endsWith('.yaml')).sort();
  t.ok(files.length >= 30, 'fixtures found');
  for (const f of files) {
    const file = path.join(BROKEN, f);
    const expected = fs.readFileSync(file, 'utf8').split('\n')
      .filter((l) => l.startsWith('# expect: '))
      .map((l) => l.slice('# expect: '.length).split('FILE').join(file));
    t.ok(expected.length > 0, `${f} declares its expected output`);
    const r = validatePaths([file], opts);
    t.same(r.lines, expected, f);
    t.equal(r.ok, !r.messages.some((m) => m.level === 'error'), `${f}: ok iff no error`);
  }
});

t.test('errors come before warnings, whatever the load order', async (t) => {
  const warnFirst = path.join(BROKEN, 'unknown-field.yaml');
  const errLater = path.join(BROKEN, 'vs-weights-zero.yaml');
  const r = validatePaths([warnFirst, errLater], opts);
  t.equal(r.ok, false);
  t.same(r.messages.map((m) => m.level), ['error', 'warning', 'warning']);
  t.match(r.lines[0], /total destination weight = 0/);
});

t.test('every sample folder validates with no errors and no warnings', async (t) => {
  const dirs: string[] = [];
  for (const d of fs.readdirSync(SAMPLES).sort()) {
    const p = path.join(SAMPLES, d);
    if (!fs.statSync(p).isDirectory()) continue;
    dirs.push(p);
    for (const sub of fs.readdirSync(p)) if (fs.statSync(path.join(p, sub)).isDirectory()) dirs.push(path.join(p, sub));
  }
  const names = dirs.map((d) => path.relative(SAMPLES, d));
  for (const want of ['s1', 's2', 's2m', 's3', 's4', 's4m', 's5', 's6', 's7', 's8', 's9', 's10']) t.ok(names.includes(want), `sample ${want} exists`);
  for (const d of dirs) {
    const r = validatePaths([d], opts);
    t.same(r.lines, [], path.relative(SAMPLES, d));
    t.equal(r.ok, true);
  }
});

t.test('a missing path is an error, an empty directory a warning', async (t) => {
  const missing = path.join(BROKEN, 'does-not-exist.yaml');
  const r = validatePaths([missing], opts);
  t.equal(r.ok, false);
  t.match(r.lines[0], new RegExp(`^${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:0: cannot read: ENOENT`));
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-empty-'));
  t.teardown(() => fs.rmSync(empty, { recursive: true, force: true }));
  const e = validatePaths([empty], opts);
  t.equal(e.ok, true);
  t.same(e.lines, [`${empty}:0: no *.yaml, *.yml, *.json files in this directory`]);
});
