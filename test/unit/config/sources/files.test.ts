// FileSource against a real temp directory: plain writes, editor-style rename-over, and the
// Kubernetes ConfigMap `..data` symlink swap. Waits are bounded; nothing asserts on durations.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FileSource } from '../../../../config/sources/files';
import type { LoadResult } from '../../../../config/resources/load';

interface HasTeardown { teardown(fn: () => void): void }

const se = (name: string) => `apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: ${name}\nspec:\n  hosts: [${name}.example.com]\n`;
const names = (r: LoadResult) => r.resources.serviceEntries.map((s) => s.metadata.name);

/** Collects onChange results; next() resolves with the next one (bounded, so a missing event fails instead of hanging). */
class Changes {
  readonly seen: LoadResult[] = [];
  private waiter: ((r: LoadResult) => void) | null = null;
  readonly push = (r: LoadResult): void => {
    this.seen.push(r);
    const w = this.waiter;
    this.waiter = null;
    if (w !== null) w(r);
  };
  next(already = this.seen.length): Promise<LoadResult> {
    if (this.seen.length > already) return Promise.resolve(this.seen[already]!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no change reported within 5s')), 5000);
      this.waiter = (r) => { clearTimeout(timer); resolve(r); };
    });
  }
}

function tempDir(t: HasTeardown): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-files-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function start(t: HasTeardown, paths: string[]): { source: FileSource; changes: Changes; initial: LoadResult } {
  const changes = new Changes();
  const source = new FileSource(paths, { defaultNamespace: 'default' }, changes.push);
  t.teardown(() => source.close());
  const initial = source.load();
  source.start();
  return { source, changes, initial };
}

t.test('directory: a new file is picked up; invalid YAML reported, then fixed', async (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'a.yaml'), se('a'));
  const { changes, initial } = start(t, [dir]);
  t.same(names(initial), ['a']);

  fs.writeFileSync(path.join(dir, 'b.yaml'), se('b'));
  const r1 = await changes.next();
  t.same(names(r1), ['a', 'b']);
  t.same(r1.messages, []);

  const n = changes.seen.length;
  fs.writeFileSync(path.join(dir, 'b.yaml'), 'kind: [');
  const r2 = await changes.next(n);
  t.equal(r2.messages[0]?.code, 'CFG_ERR_PARSE');
  t.equal(r2.messages[0]?.level, 'error');

  const m = changes.seen.length;
  fs.writeFileSync(path.join(dir, 'b.yaml'), se('b2'));
  const r3 = await changes.next(m);
  t.same(names(r3), ['a', 'b2']);
});

t.test('file path: an editor saving by rename-over is seen; unrelated files cause no reload', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'cnn.yaml');
  fs.writeFileSync(file, se('one'));
  const { changes, initial } = start(t, [file]);
  t.same(names(initial), ['one']);

  // Something unrelated in the same directory (an editor's swap file): no change to report.
  fs.writeFileSync(path.join(dir, '.cnn.yaml.swp'), 'x');
  fs.writeFileSync(path.join(dir, 'other.yaml'), se('other'));
  await sleep(400); // let that event's debounce window pass
  t.equal(changes.seen.length, 0, 'no onChange for files outside the watched path');

  const tmp = path.join(dir, '.cnn.yaml.tmp');
  fs.writeFileSync(tmp, se('two'));
  fs.renameSync(tmp, file);
  const r = await changes.next();
  t.same(names(r), ['two']);

  // The watch survives the rename (we watch the directory, not the replaced inode).
  const n = changes.seen.length;
  fs.writeFileSync(tmp, se('three'));
  fs.renameSync(tmp, file);
  t.same(names(await changes.next(n)), ['three']);
  t.equal(changes.seen.length, n + 1, 'one save, one change');
});

/** Lays out a directory the way kubelet mounts a ConfigMap: FILE -> ..data/FILE, ..data -> ..<timestamp>. */
function configMapVersion(mount: string, version: string, files: Record<string, string>): void {
  const dir = path.join(mount, `..${version}`);
  fs.mkdirSync(dir);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  fs.symlinkSync(`..${version}`, path.join(mount, '..data_tmp'));
  fs.renameSync(path.join(mount, '..data_tmp'), path.join(mount, '..data')); // the atomic swap
  for (const name of Object.keys(files)) {
    const link = path.join(mount, name);
    if (!fs.existsSync(link)) fs.symlinkSync(path.join('..data', name), link);
  }
}

for (const mode of ['directory', 'file'] as const) {
  t.test(`Kubernetes ConfigMap ..data symlink swap (watching the ${mode})`, async (t) => {
    const mount = tempDir(t);
    configMapVersion(mount, '2024_01_01_00_00_00.1', { 'cnn.yaml': se('v1') });
    const { changes, initial } = start(t, [mode === 'directory' ? mount : path.join(mount, 'cnn.yaml')]);
    t.same(initial.messages, [], 'hidden ..data entries are not read as config');
    t.same(names(initial), ['v1']);

    configMapVersion(mount, '2024_01_01_00_01_00.2', { 'cnn.yaml': se('v2') });
    const r = await changes.next();
    t.same(names(r), ['v2']);
    t.equal(r.resources.serviceEntries[0]!.origin.file, path.join(mount, 'cnn.yaml'), 'origin names the path the user gave');
  });
}

t.test('close() stops reporting', async (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'a.yaml'), se('a'));
  const { source, changes } = start(t, [dir]);
  source.close();
  fs.writeFileSync(path.join(dir, 'b.yaml'), se('b'));
  await sleep(400);
  t.equal(changes.seen.length, 0);
});
