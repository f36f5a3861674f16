// The body of the config worker thread (compile-worker.ts starts it): read the files, and when
// their bytes changed, load + validate + compile them here, off the proxy's event loop, and post
// the snapshot back (structured clone) with every message. Same steps, same order and same
// messages as the in-thread path (files.ts FileSource.load + proxy/runtime.ts build).

import { parentPort } from 'node:worker_threads';
import { compile } from '../compile/index';
import { loadFiles, readPaths } from '../resources/load';
import { fingerprintOf, merge } from './files';
import type { CompileReply, CompileRequest } from './compile-worker';

function handle(req: CompileRequest): CompileReply {
  try {
    const read = readPaths(req.paths);
    const fingerprint = fingerprintOf(read.files, read.messages);
    if (fingerprint === req.fingerprint) return { id: req.id, kind: 'unchanged', fingerprint };
    const loaded = merge(read.messages, loadFiles(read.files, req.load));
    // Like Runtime.build: a config with load errors is not compiled.
    const snapshot = loaded.messages.some((m) => m.level === 'error') ? null : compile(loaded.resources, req.compile);
    return { id: req.id, kind: 'built', fingerprint, messages: loaded.messages, snapshot };
  } catch (e) {
    return { id: req.id, kind: 'failed', message: `config worker: ${(e as Error).stack ?? String(e)}` };
  }
}

parentPort?.on('message', (req: CompileRequest) => {
  parentPort!.postMessage(handle(req));
});
