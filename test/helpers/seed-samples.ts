// The seed sample folders (config/samples/s*) and the compile options the config-thread tests run
// them with, one sidecar and one gateway, as the proxy would.

import * as path from 'node:path';
import type { CompileOptions } from '../../config/compile/index';
import type { CompileReply } from '../../config/sources/compile-worker';

/** config/samples, from dist/test/helpers. */
export const SAMPLES = path.join(__dirname, '../../../config/samples');
export const SIDECAR: CompileOptions = { role: 'sidecar', namespace: 'default', labels: { app: 'sleep' }, outboundPolicy: 'ALLOW_ANY', certsDir: '/etc/certs' };
export const GATEWAY: CompileOptions = { role: 'gateway', namespace: 'istio-system', labels: { istio: 'egressgateway' }, outboundPolicy: 'ALLOW_ANY', certsDir: '/etc/certs' };

/** The reply of a config-thread run that must have built a snapshot. */
export function built(r: CompileReply): Extract<CompileReply, { kind: 'built' }> {
  if (r.kind !== 'built') throw new Error(`expected a built reply, got ${r.kind}${r.kind === 'failed' ? ': ' + r.message : ''}`);
  return r;
}
