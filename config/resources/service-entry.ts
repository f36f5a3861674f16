// ServiceEntry: field table + Istio's own validation rules (ENVOY-ISTIO.md §3.5; Istio
// pkg/config/validation ValidateServiceEntry).

import { isIP } from 'node:net';
import { ConfigErrorCode } from '../errors';
import { WORKLOAD_SELECTOR } from './common';
import {
  arr, enumOf, field, int, map, obj, port, protocol, required, schema, str, strList, strMap,
  type Locator, type Reporter,
} from './schema';
import type { ServiceEntrySpec } from './types';

const SERVICE_PORT = schema('ServicePort', [
  required('number', port()),
  field('protocol', protocol()),
  required('name', str()),
  field('targetPort', port()),
]);

const WORKLOAD_ENTRY = schema('WorkloadEntry', [
  field('address', str()),
  field('ports', map(port())),
  field('labels', strMap()),
  field('network', str()),
  field('locality', str()),
  field('weight', int(0, 4294967295)),
  field('serviceAccount', str()),
]);

export const SERVICE_ENTRY_SPEC = schema('ServiceEntrySpec', [
  required('hosts', strList(true)),
  field('addresses', strList()),
  field('ports', arr(obj(SERVICE_PORT))),
  field('location', enumOf('MESH_EXTERNAL', 'MESH_INTERNAL')),
  field('resolution', enumOf('NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN', 'DYNAMIC_DNS')),
  field('endpoints', arr(obj(WORKLOAD_ENTRY))),
  field('workloadSelector', obj(WORKLOAD_SELECTOR)),
  field('exportTo', strList()),
  field('subjectAltNames', strList()),
], checkServiceEntry);

function isIpOrCidr(s: string): boolean {
  const slash = s.indexOf('/');
  if (slash < 0) return isIP(s) !== 0;
  const ip = s.slice(0, slash);
  const bits = s.slice(slash + 1);
  const max = isIP(ip) === 4 ? 32 : isIP(ip) === 6 ? 128 : -1;
  return max > 0 && /^\d+$/.test(bits) && Number(bits) <= max;
}

function checkServiceEntry(spec: ServiceEntrySpec, loc: Locator, r: Reporter): void {
  const E = ConfigErrorCode.INVALID_FIELD;
  const resolution = spec.resolution ?? 'NONE';
  const endpoints = spec.endpoints ?? [];
  const hasEndpoints = spec.endpoints !== undefined && spec.endpoints.length > 0;

  (spec.hosts ?? []).forEach((h, i) => {
    if (h === null) return;
    const at = loc.at(spec, 'hosts', i);
    if (h === '') r.error(E, at, 'host must not be empty');
    else if (h === '*') r.error(E, at, 'host "*" is not allowed; use a domain such as "*.example.com"');
    else if ((resolution === 'DNS' || resolution === 'DNS_ROUND_ROBIN') && !hasEndpoints && h.includes('*')) {
      r.error(E, at, `hosts must be FQDN if no endpoints are provided for resolution mode ${resolution}`);
    }
  });

  (spec.addresses ?? []).forEach((a, i) => {
    if (a !== null && !isIpOrCidr(a)) r.error(E, loc.at(spec, 'addresses', i), `"${a}" is not an IP address or CIDR`);
  });

  const portNames = new Set<string>();
  const portNumbers = new Set<number>();
  (spec.ports ?? []).forEach((p) => {
    if (p === null) return;
    if (p.name !== undefined) {
      if (portNames.has(p.name)) r.error(E, loc.at(p, 'name'), `duplicate port name "${p.name}"`);
      portNames.add(p.name);
    }
    if (p.number !== undefined) {
      if (portNumbers.has(p.number)) r.error(E, loc.at(p, 'number'), `duplicate port number ${p.number}`);
      portNumbers.add(p.number);
    }
  });

  if (hasEndpoints && spec.workloadSelector !== undefined) {
    r.error(E, loc.at(spec, 'workloadSelector'), 'only one of workloadSelector or endpoints may be set');
  }
  if (resolution === 'NONE' && hasEndpoints) {
    r.error(E, loc.at(spec, 'endpoints'), 'no endpoints should be provided for resolution NONE');
  }
  if (resolution === 'STATIC' && !hasEndpoints && spec.workloadSelector === undefined) {
    r.error(ConfigErrorCode.REQUIRED, loc.at(spec, 'endpoints'), 'resolution STATIC needs endpoints with IP addresses');
  }
  endpoints.forEach((ep) => {
    if (ep === null) return;
    if (resolution === 'STATIC' && ep.address !== undefined && isIP(ep.address) === 0 && !ep.address.startsWith('unix://')) {
      r.error(E, loc.at(ep, 'address'), `"${ep.address}" is not an IP address (required for resolution STATIC)`);
    }
    if (ep.address === undefined && resolution !== 'NONE') {
      r.error(ConfigErrorCode.REQUIRED, loc.at(ep, 'address'), 'missing required field');
    }
    for (const name of Object.keys(ep.ports ?? {})) {
      if (!portNames.has(name)) {
        r.error(E, loc.at(ep.ports!, name), `endpoint port "${name}" is not a port name of this ServiceEntry`);
      }
    }
  });
}
