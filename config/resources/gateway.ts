// Gateway: field table + Istio's own validation rules (Istio
// pkg/config/validation validateServer / validateTLSOptions).

import { ConfigErrorCode } from '../errors';
import { report } from './common';
import { ipError, isDns1123Label, partialWildcardError, wildcardDomainError } from './names';
import {
  arr, bool, enumOf, field, obj, port, protocol, required, schema, str, strList, strMap,
  type Locator, type Reporter,
} from './schema';
import type { GatewaySpec, Server, ServerTlsSettings } from './types';

const TLS_VERSION = enumOf('TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3');

const TLS_CERTIFICATE = schema('TLSCertificate', [
  field('serverCertificate', str()),
  field('privateKey', str()),
  field('caCertificates', str()),
]);

const SERVER_TLS = schema('ServerTLSSettings', [
  field('httpsRedirect', bool()),
  field('mode', enumOf('PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL')),
  field('serverCertificate', str()),
  field('privateKey', str()),
  field('caCertificates', str()),
  field('caCrl', str()),
  field('credentialName', str()),
  field('credentialNames', strList()),
  field('tlsCertificates', arr(obj(TLS_CERTIFICATE))),
  field('caCertCredentialName', str()),
  field('subjectAltNames', strList()),
  field('verifyCertificateSpki', strList()),
  field('verifyCertificateHash', strList()),
  field('minProtocolVersion', TLS_VERSION),
  field('maxProtocolVersion', TLS_VERSION),
  field('cipherSuites', strList()),
], checkServerTls);

const GATEWAY_PORT = schema('Port', [
  required('number', port()),
  required('protocol', protocol()),
  field('name', str()),
  field('targetPort', port()),
], (p: { name?: string; targetPort?: number }, loc: Locator, r: Reporter) => {
  // Both rejected by Istio (validateServerPort); sluice runs either as meant, so only `validate` fails them.
  if (p.name === undefined || p.name === '') r.warn(ConfigErrorCode.ISTIO_REJECTS, loc.at(p, 'name'), 'port name must be set (Istio rejects a server port without a name)');
  if (p.targetPort !== undefined && p.targetPort > 0) r.warn(ConfigErrorCode.ISTIO_REJECTS, loc.at(p, 'targetPort'), 'targetPort has no impact on Gateways (Istio rejects it)');
});

const SERVER = schema('Server', [
  required('port', obj(GATEWAY_PORT)),
  field('bind', str()),
  required('hosts', strList(true)),
  field('tls', obj(SERVER_TLS)),
  field('defaultEndpoint', str()),
  field('name', str()),
], checkServer);

export const GATEWAY_SPEC = schema('GatewaySpec', [
  required('servers', arr(obj(SERVER), true)),
  field('selector', strMap()),
], (g: GatewaySpec, loc: Locator, r: Reporter) => {
  const names = new Set<string>();
  for (const s of g.servers ?? []) {
    const name = s?.port?.name;
    if (name === undefined) continue;
    if (names.has(name)) r.error(ConfigErrorCode.INVALID_FIELD, loc.at(s!.port, 'name'), `port names in servers must be unique: duplicate name ${name}`);
    names.add(name);
  }
});

/** Protocols Istio's protocol.IsHTTP accepts. */
const HTTP_PROTOCOLS = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB', 'HTTP_PROXY']);

/** Modes that terminate TLS at the gateway with a certificate (vs. passing it through). */
export function terminatesTls(tls: ServerTlsSettings | undefined): boolean {
  const m = tls?.mode;
  return m === 'SIMPLE' || m === 'MUTUAL' || m === 'ISTIO_MUTUAL' || m === 'OPTIONAL_MUTUAL';
}

/** Istio validateTLSOptions (server side), with its messages. */
function checkServerTls(tls: ServerTlsSettings, loc: Locator, r: Reporter): void {
  const E = ConfigErrorCode.INVALID_FIELD;
  const R = ConfigErrorCode.REQUIRED;
  const mode = tls.mode ?? 'PASSTHROUGH';
  if ((tls.minProtocolVersion === 'TLSV1_0' || tls.minProtocolVersion === 'TLSV1_1') && (tls.cipherSuites?.length ?? 0) === 0) {
    r.warn(ConfigErrorCode.TRAP, loc.at(tls, 'minProtocolVersion'),
      'TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include compatible ciphers.');
  }
  if (mode === 'ISTIO_MUTUAL') {
    const what = { serverCertificate: 'server certificate', privateKey: 'private key', caCertificates: 'CA bundle', credentialName: 'credentialName' } as const;
    for (const f of ['serverCertificate', 'privateKey', 'caCertificates', 'credentialName'] as const) {
      if (tls[f] !== undefined && tls[f] !== '') r.error(E, loc.at(tls, f), `ISTIO_MUTUAL TLS cannot have associated ${what[f]}`);
    }
    return;
  }
  if ((mode === 'PASSTHROUGH' || mode === 'AUTO_PASSTHROUGH') &&
    (tls.caCrl !== undefined || tls.serverCertificate !== undefined || tls.privateKey !== undefined || tls.caCertificates !== undefined || tls.credentialName !== undefined)) {
    r.warn(ConfigErrorCode.TRAP, loc.at(tls), `${mode} mode does not use certificates, they will be ignored`);
  }
  const credential = tls.credentialName !== undefined || (tls.credentialNames?.length ?? 0) > 0 || (tls.tlsCertificates?.length ?? 0) > 0;
  if ((mode === 'SIMPLE' || mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL') && credential) {
    // Credentials are fetched (SDS); Istio checks nothing more, CRL included.
    return;
  }
  if (mode === 'SIMPLE') {
    if (tls.serverCertificate === undefined) r.error(R, loc.at(tls, 'serverCertificate'), 'SIMPLE TLS requires a server certificate');
    if (tls.privateKey === undefined) r.error(R, loc.at(tls, 'privateKey'), 'SIMPLE TLS requires a private key');
  } else if (mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL') {
    if (tls.serverCertificate === undefined) r.error(R, loc.at(tls, 'serverCertificate'), 'MUTUAL TLS requires a server certificate');
    if (tls.privateKey === undefined) r.error(R, loc.at(tls, 'privateKey'), 'MUTUAL TLS requires a private key');
    if (tls.caCertificates === undefined) r.error(R, loc.at(tls, 'caCertificates'), 'MUTUAL TLS requires a client CA bundle');
  }
  if (tls.caCrl !== undefined && mode === 'SIMPLE') r.error(E, loc.at(tls, 'caCrl'), 'CRL is not supported with SIMPLE TLS');
}

/** Istio validateServer: hosts, bind, and TLS settings that fit the port's protocol. */
function checkServer(s: Server, loc: Locator, r: Reporter): void {
  (s.hosts ?? []).forEach((h, i) => {
    if (h !== null) for (const m of gatewayHostErrors(h)) r.error(ConfigErrorCode.INVALID_FIELD, loc.at(s, 'hosts', i), m);
  });
  if (s.bind !== undefined && s.bind !== '') {
    if (s.bind.startsWith('unix://')) {
      if (s.port?.number !== undefined && s.port.number !== 0) r.error(ConfigErrorCode.INVALID_FIELD, loc.at(s, 'bind'), `port number must be 0 for unix domain socket: ${s.port.number}`);
    } else {
      report(r, loc.at(s, 'bind'), ipError(s.bind));
    }
  }
  const p = s.port?.protocol;
  if (p === undefined) return;
  const isTls = p === 'HTTPS' || p === 'TLS';
  if (isTls && s.tls === undefined) {
    r.error(ConfigErrorCode.REQUIRED, loc.at(s, 'tls'), 'server must have TLS settings for HTTPS/TLS protocols');
  } else if (!isTls && s.tls !== undefined) {
    if (HTTP_PROTOCOLS.has(p)) {
      // Only httpsRedirect (a pass-through server without certificates) makes sense on plain HTTP.
      const passthrough = (s.tls.mode ?? 'PASSTHROUGH') === 'PASSTHROUGH' || s.tls.mode === 'AUTO_PASSTHROUGH';
      if (!passthrough || s.tls.caCertificates !== undefined || s.tls.privateKey !== undefined || s.tls.serverCertificate !== undefined) {
        r.error(ConfigErrorCode.INVALID_FIELD, loc.at(s, 'tls'), 'server cannot have TLS settings for plain text HTTP ports');
      }
    } else {
      r.error(ConfigErrorCode.INVALID_FIELD, loc.at(s, 'tls'), 'server cannot have TLS settings for non HTTPS/TLS ports');
    }
  }
  if (!HTTP_PROTOCOLS.has(p) && s.tls?.httpsRedirect === true) {
    r.warn(ConfigErrorCode.TRAP, loc.at(s.tls, 'httpsRedirect'), 'tls.httpsRedirect should only be used with http servers');
  }
}

/** Istio ValidateNamespaceSlashWildcardHostname(host, isGateway=true): `[ns/]dnsName`, IPs allowed, no short names. */
function gatewayHostErrors(host: string): string[] {
  const errors: string[] = [];
  let name = host;
  const slash = host.indexOf('/');
  if (slash >= 0) {
    const ns = host.slice(0, slash);
    name = host.slice(slash + 1);
    if (ns === '' || name === '') errors.push('config namespace and dnsName in host entry cannot be empty');
    if (ns !== '*' && ns !== '.' && !isDns1123Label(ns)) errors.push(`invalid namespace value "${ns}" in gateway`);
  }
  if (name !== '*' && !name.includes('.')) errors.push('short names (non FQDN) are not allowed');
  const domain = wildcardDomainError(name);
  if (domain !== null && ipError(name) !== null) errors.push(domain);
  const partial = partialWildcardError(name);
  if (partial !== null) errors.push(partial);
  return errors;
}
