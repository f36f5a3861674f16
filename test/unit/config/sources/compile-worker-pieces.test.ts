// The config thread sends its snapshot in pieces (snapshot-pieces.ts) and the proxy's thread takes
// them a slice at a time: with pieces cut tiny, every seed sample still arrives as the in-thread
// compile (values, order, prototypes, freezing, sharing), lookups answer the same, and a reload
// whose taking is cancelled (the source closed) rejects and releases its port. Real worker thread.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { CompileWorker } from '../../../../config/sources/compile-worker';
import { receivePieces, splitGraph } from '../../../../config/sources/snapshot-pieces';
import { compile } from '../../../../config/compile/index';
import { loadPaths } from '../../../../config/resources/load';
import { findListener } from '../../../../config/compile/lookup';
import { scaleYaml } from '../../../../bench/config-scale';
import { SAMPLES, SIDECAR, GATEWAY, built } from '../../../helpers/seed-samples';
import { sameShape, sameSharing } from '../../../helpers/same-graph';


t.test('tiny pieces, taken one per turn: every seed sample arrives as the in-thread compile', async (t) => {
  const worker = new CompileWorker({ pieceBytes: 32, sliceMs: 0 });
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
      t.ok(splitGraph(want, 32).pieces.length > 1, `${s} ${opts.role}: goes in several pieces`);
      const got = built(await worker.run([dir], load, opts, ''));
      t.same(got.messages, inThread.messages, `${s} ${opts.role}: load messages`);
      const problems: string[] = [];
      sameShape(want, got.snapshot, 'snapshot', problems);
      t.same(problems, [], `${s} ${opts.role}: same values, key order, prototypes, freezing`);
      t.equal(sameSharing(want, got.snapshot).broken, 0, `${s} ${opts.role}: same sharing`);
      for (const l of want.listeners.values()) {
        t.equal(findListener(got.snapshot!, l.address, l.port)?.name, findListener(want, l.address, l.port)?.name, `${s} ${opts.role}: ${l.name} found`);
      }
    }
  }
});

t.test('a 300-service reload in pieces of the default size equals the in-thread compile', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-pieces-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'scale.yaml'), scaleYaml(300));
  const worker = new CompileWorker({ pieceBytes: 16 * 1024 });
  t.teardown(() => worker.close());
  const load = { defaultNamespace: 'default' };
  const want = compile(loadPaths([dir], load).resources, SIDECAR);
  t.ok(splitGraph(want, 16 * 1024).pieces.length > 20, 'many pieces');
  const got = built(await worker.run([dir], load, SIDECAR, ''));
  const problems: string[] = [];
  sameShape(want, got.snapshot, 'snapshot', problems);
  t.same(problems, []);
  t.equal(sameSharing(want, got.snapshot).broken, 0);
  t.equal(got.snapshot!.clusters.size, want.clusters.size);
});

t.test('taking stops when cancelled: the reload rejects, nothing is assembled', async (t) => {
  const root = { list: Array.from({ length: 500 }, (_, i) => ({ i, name: 'n' + i })) };
  const split = splitGraph(root, 64);
  t.ok(split.pieces.length > 10);
  const { port1, port2 } = new MessageChannel();
  for (const p of split.pieces) port1.postMessage(p);
  port1.close();
  let turns = 0;
  await t.rejects(receivePieces(port2, split.pieces.length, split.raw, () => ++turns > 2, 0), /config worker closed/);
  t.equal(turns, 3, 'stopped at the first turn after the cancel');

  const short = new MessageChannel();
  short.port1.postMessage(split.pieces[0]);
  short.port1.close();
  await t.rejects(receivePieces(short.port2, 2, false, () => false, 0), /piece 2 of 2 missing/, 'a missing piece is an error');
});
