// ServiceEntry: field table + Istio's own validation rules (Istio
// pkg/config/validation ValidateServiceEntry).

import { isIP } from 'node:net';
import { ConfigErrorCode } from '../errors';
import { checkLabels, report, WORKLOAD_SELECTOR } from './common';
import { fqdnError, isDns1123Label, partialWildcardError, subnetError, wildcardDomainError } from './names';
import {
  arr, enumOf, field, flowString, int, map, obj, port, protocol, required, schema, str, strList, strMap,
  type Locator, type Reporter,
} from './schema';
import type { ServiceEntrySpec, WorkloadEntry } from './types';

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
  field('addresses', arr(flowString())),
  field('ports', arr(obj(SERVICE_PORT))),
  field('location', enumOf('MESH_EXTERNAL', 'MESH_INTERNAL')),
  field('resolution', enumOf('NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN', 'DYNAMIC_DNS')),
  field('endpoints', arr(obj(WORKLOAD_ENTRY))),
  field('workloadSelector', obj(WORKLOAD_SELECTOR)),
  field('exportTo', strList()),
  field('subjectAltNames', strList()),
], checkServiceEntry);

/** Protocols Istio's protocol.IsHTTP / IsTLS accept: a name alone tells HTTP hosts apart (Host header, SNI). */
const HTTP_OR_TLS = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB', 'HTTP_PROXY', 'HTTPS', 'TLS']);

/** Istio ValidateServiceEntry (pkg/config/validation), check by check, with its messages. */
function checkServiceEntry(spec: ServiceEntrySpec, loc: Locator, r: Reporter): void {
  const E = ConfigErrorCode.INVALID_FIELD;
  const W = ConfigErrorCode.TRAP;
  const resolution = spec.resolution ?? 'NONE';
  const endpoints = (spec.endpoints ?? []).filter((e) => e !== null);
  const hosts = (spec.hosts ?? []).filter((h): h is string => h !== null);

  if (spec.workloadSelector !== undefined && spec.endpoints !== undefined) {
    r.error(E, loc.at(spec, 'workloadSelector'), 'only one of WorkloadSelector or Endpoints is allowed in Service Entry');
  }
  (spec.hosts ?? []).forEach((h, i) => {
    if (h === null) return;
    const at = loc.at(spec, 'hosts', i);
    if (h === '*') {
      r.error(E, at, `invalid host ${h}`);
      return;
    }
    report(r, at, wildcardDomainError(h));
    const partial = partialWildcardError(h);
    if (partial !== null) r.warn(W, at, partial);
  });

  let cidr = false;
  (spec.addresses ?? []).forEach((a, i) => {
    if (a === null) return;
    cidr ||= a.includes('/');
    report(r, loc.at(spec, 'addresses', i), subnetError(a));
  });
  if (cidr && resolution !== 'NONE' && resolution !== 'STATIC') {
    r.error(E, loc.at(spec, 'addresses'), 'CIDR addresses are allowed only for NONE/STATIC resolution types');
  }

  const portNames = new Set<string>();
  const portNumbers = new Set<number>();
  (spec.ports ?? []).forEach((p) => {
    if (p === null) return;
    if (p.name !== undefined) {
      if (portNames.has(p.name)) r.error(E, loc.at(p, 'name'), `service entry port name "${p.name}" already defined`);
      portNames.add(p.name);
      if (!isDns1123Label(p.name)) r.error(E, loc.at(p, 'name'), `invalid port name: ${p.name}`);
    }
    if (p.number !== undefined) {
      if (portNumbers.has(p.number)) r.error(E, loc.at(p, 'number'), `service entry port ${p.number} already defined`);
      portNumbers.add(p.number);
    }
    if (p.targetPort !== undefined && resolution === 'NONE') r.warn(W, loc.at(p, 'targetPort'), 'targetPort has no effect when resolution mode is NONE');
  });

  switch (resolution) {
    case 'NONE':
      if (endpoints.length > 0) r.error(E, loc.at(spec, 'endpoints'), 'no endpoints should be provided for resolution type none');
      if (spec.workloadSelector !== undefined) r.warn(W, loc.at(spec, 'workloadSelector'), 'workloadSelector should not be set when resolution mode is NONE');
      break;
    case 'STATIC':
      for (const ep of endpoints) checkEndpoint(ep, portNames, false, loc, r);
      if (spec.endpoints === undefined && spec.workloadSelector === undefined) {
        // Istio accepts it (WorkloadEntries may select it); sluice reads no WorkloadEntries.
        r.warn(W, loc.at(spec, 'endpoints'), 'resolution STATIC without endpoints: sluice has no endpoints for it (it reads no WorkloadEntry), requests get 503 UH');
      }
      break;
    case 'DNS':
    case 'DNS_ROUND_ROBIN':
      if (endpoints.length === 0) {
        (spec.hosts ?? []).forEach((h, i) => {
          if (h !== null && h !== '*' && fqdnError(h) !== null) {
            r.error(E, loc.at(spec, 'hosts', i), `hosts must be FQDN if no endpoints are provided for resolution mode ${resolution}`);
          }
        });
      }
      if (resolution === 'DNS_ROUND_ROBIN' && endpoints.length > 1) {
        r.error(E, loc.at(spec, 'endpoints'), `there must only be 0 or 1 endpoint for resolution mode ${resolution}`);
      }
      for (const ep of endpoints) checkEndpoint(ep, portNames, true, loc, r);
      if (spec.workloadSelector !== undefined) r.warn(W, loc.at(spec, 'workloadSelector'), `workloadSelector should not be set when resolution mode is ${resolution}`);
      if ((spec.addresses?.length ?? 0) > 0 && hosts.length > 1 && (spec.ports ?? []).some((p) => p !== null && !HTTP_OR_TLS.has(p.protocol ?? 'TCP'))) {
        r.warn(W, loc.at(spec, 'hosts'), 'service entry can not have more than one host specified simultaneously with address and tcp port');
      }
      break;
    default:
      r.error(E, loc.at(spec, 'resolution'), `unsupported resolution type ${resolution}`);
  }

  // Plain TCP cannot tell the hosts apart (no Host header, no SNI), unless the hosts are ignored (NONE).
  if (resolution !== 'NONE' && hosts.length > 1 && (spec.ports ?? []).some((p) => p !== null && !HTTP_OR_TLS.has(p.protocol ?? ''))) {
    r.error(E, loc.at(spec, 'ports'), 'multiple hosts provided with non-HTTP, non-TLS ports');
  }
}

/** Istio validateWorkloadEntry (STATIC: IP or unix://) and the DNS branch (IP or FQDN) for one endpoint. */
function checkEndpoint(ep: WorkloadEntry, portNames: ReadonlySet<string>, allowFqdn: boolean, loc: Locator, r: Reporter): void {
  const E = ConfigErrorCode.INVALID_FIELD;
  const addr = ep.address;
  if (addr === undefined || addr === '') {
    if (ep.network === undefined && !loc.wasRejected(ep, 'address')) r.error(ConfigErrorCode.REQUIRED, loc.at(ep, 'address'), 'address is required');
    else if (ep.network !== undefined) r.warn(ConfigErrorCode.TRAP, loc.at(ep, 'address'), `address is unset with network "${ep.network}"`);
  } else if (addr.startsWith('unix://')) {
    if (allowFqdn) r.error(E, loc.at(ep, 'address'), `endpoint address "${addr}" is not a valid FQDN or an IP address`);
    else {
      const p = addr.slice('unix://'.length);
      if (p === '') r.error(E, loc.at(ep, 'address'), 'unix address must not be empty');
      else if (!p.startsWith('@') && (!p.startsWith('/') || p.endsWith('/'))) r.error(E, loc.at(ep, 'address'), `${p} is not an absolute path to a file`);
      if (ep.ports !== undefined && Object.keys(ep.ports).length > 0) r.error(E, loc.at(ep, 'ports'), `unix endpoint ${addr} must not include ports`);
    }
  } else if (isIP(addr) === 0) {
    if (!allowFqdn) r.error(E, loc.at(ep, 'address'), `endpoint address "${addr}" is not a valid IP address`);
    else if (fqdnError(addr) !== null) r.error(E, loc.at(ep, 'address'), `endpoint address "${addr}" is not a valid FQDN or an IP address`);
  }
  for (const [name, port] of Object.entries(ep.ports ?? {})) {
    const at = loc.at(ep.ports!, name);
    if (!portNames.has(name)) r.error(E, at, `endpoint port ${port} is not defined by the service entry`);
    if (!isDns1123Label(name)) r.error(E, at, `invalid port name: ${name}`);
  }
  checkLabels(ep.labels, loc, r);
}
