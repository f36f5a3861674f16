// Gateway: field table + Istio's own validation rules (ENVOY-ISTIO.md §3.6; Istio
// pkg/config/validation validateServer / validateTLSOptions).

import { ConfigErrorCode } from '../errors';
import {
  arr, bool, enumOf, field, obj, port, protocol, required, schema, str, strList, strMap,
  type Locator, type Reporter,
} from './schema';
import type { Server, ServerTlsSettings } from './types';

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
]);

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
], null);

/** Modes that terminate TLS at the gateway with a certificate (vs. passing it through). */
export function terminatesTls(tls: ServerTlsSettings | undefined): boolean {
  const m = tls?.mode;
  return m === 'SIMPLE' || m === 'MUTUAL' || m === 'ISTIO_MUTUAL' || m === 'OPTIONAL_MUTUAL';
}

function checkServerTls(tls: ServerTlsSettings, loc: Locator, r: Reporter): void {
  const mode = tls.mode ?? 'PASSTHROUGH';
  const hasCredential = tls.credentialName !== undefined || (tls.credentialNames?.length ?? 0) > 0;
  const hasCertList = (tls.tlsCertificates?.length ?? 0) > 0;
  if ((mode === 'SIMPLE' || mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL') && !hasCredential && !hasCertList) {
    for (const f of ['serverCertificate', 'privateKey'] as const) {
      if (tls[f] === undefined) r.error(ConfigErrorCode.REQUIRED, loc.at(tls, f), `${mode} TLS requires ${f} (or credentialName)`);
    }
  }
  if ((mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL') && !hasCredential && tls.caCertificates === undefined && tls.caCertCredentialName === undefined) {
    r.error(ConfigErrorCode.REQUIRED, loc.at(tls, 'caCertificates'), `${mode} TLS requires caCertificates (or credentialName) to verify client certificates`);
  }
  if (mode === 'ISTIO_MUTUAL') {
    for (const f of ['serverCertificate', 'privateKey', 'caCertificates', 'credentialName'] as const) {
      if (tls[f] !== undefined) r.error(ConfigErrorCode.INVALID_FIELD, loc.at(tls, f), `ISTIO_MUTUAL TLS must not set ${f} (the workload identity is used)`);
    }
  }
}

function checkServer(s: Server, loc: Locator, r: Reporter): void {
  const p = s.port?.protocol;
  if ((p === 'HTTPS' || p === 'TLS') && s.tls === undefined) {
    r.error(ConfigErrorCode.REQUIRED, loc.at(s, 'tls'), `a server with protocol ${p} needs tls settings (mode: PASSTHROUGH, SIMPLE, MUTUAL, ...)`);
  }
}

