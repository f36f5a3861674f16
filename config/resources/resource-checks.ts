// Istio's rules that need a resource's metadata as well as its spec (the spec tables see only the
// spec): exportTo relative to the resource's namespace, and the Gateway's name.

import { ConfigErrorCode } from '../errors';
import { checkExportTo } from './common';
import { isDns1123Label } from './names';
import type { Locator, Reporter } from './schema';
import type { Resource } from './types';

export function checkResource(r: Resource, loc: Locator, rep: Reporter): void {
  const ns = r.metadata.namespace;
  switch (r.kind) {
    case 'Gateway':
      // A Gateway's name becomes part of route and listener names.
      if (!isDns1123Label(r.metadata.name)) rep.error(ConfigErrorCode.INVALID_FIELD, 'metadata.name', `invalid gateway name: "${r.metadata.name}"`);
      break;
    case 'ServiceEntry':
      checkExportTo(r.spec.exportTo, ns, r.spec, loc, rep, { serviceEntry: true, drWithSelector: false });
      break;
    case 'VirtualService':
      checkExportTo(r.spec.exportTo, ns, r.spec, loc, rep, { serviceEntry: false, drWithSelector: false });
      break;
    case 'DestinationRule':
      checkExportTo(r.spec.exportTo, ns, r.spec, loc, rep, { serviceEntry: false, drWithSelector: r.spec.workloadSelector !== undefined });
      break;
  }
}
