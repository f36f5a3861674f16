// Gateway rules beyond the broken fixtures.
import t from 'tap';
import { terminatesTls } from '../../../../config/resources/gateway';
import { doc, load, messages } from './_load';

const gw = (servers: string) => messages(doc('Gateway', 'g', `  selector: {istio: egressgateway}\n  servers:\n${servers}`));
const P = 'f.yaml:1: Gateway/g: ';

t.test('servers, port and protocol are required', async (t) => {
  t.same(messages(doc('Gateway', 'g', '  selector: {istio: x}')), [`error CFG_ERR_REQUIRED ${P}spec.servers: missing required field`]);
  t.same(messages(doc('Gateway', 'g', '  servers: []')), [`error CFG_ERR_REQUIRED ${P}spec.servers: must not be empty`]);
  t.same(gw('  - hosts: [a.b]'), [`error CFG_ERR_REQUIRED ${P}spec.servers[0].port: missing required field`]);
  t.same(gw('  - hosts: [a.b]\n    port: {number: 80}'), [`error CFG_ERR_REQUIRED ${P}spec.servers[0].port.protocol: missing required field`]);
  t.same(gw('  - hosts: []\n    port: {number: 80, protocol: HTTP}'), [`error CFG_ERR_REQUIRED ${P}spec.servers[0].hosts: must not be empty`]);
});

t.test('TLS certificates: SIMPLE needs both, credentialName or tlsCertificates replace them', async (t) => {
  t.same(gw('  - hosts: [a.b]\n    port: {number: 443, protocol: HTTPS}\n    tls: {mode: SIMPLE}'), [
    `error CFG_ERR_REQUIRED ${P}spec.servers[0].tls.serverCertificate: SIMPLE TLS requires serverCertificate (or credentialName)`,
    `error CFG_ERR_REQUIRED ${P}spec.servers[0].tls.privateKey: SIMPLE TLS requires privateKey (or credentialName)`,
  ]);
  t.same(gw('  - hosts: [a.b]\n    port: {number: 443, protocol: HTTPS}\n    tls: {mode: SIMPLE, credentialName: cnn-cert}'), []);
  t.same(gw('  - hosts: [a.b]\n    port: {number: 443, protocol: HTTPS}\n    tls: {mode: MUTUAL, credentialName: cnn-cert}'), [], 'credentialName carries the CA too');
  t.same(gw('  - hosts: [a.b]\n    port: {number: 443, protocol: HTTPS}\n    tls: {mode: SIMPLE, tlsCertificates: [{serverCertificate: /c, privateKey: /k}]}'), []);
  t.same(gw('  - hosts: [a.b]\n    port: {number: 443, protocol: TLS}\n    tls: {mode: ISTIO_MUTUAL}'), []);
  t.same(gw('  - hosts: [a.b]\n    port: {number: 443, protocol: TLS}\n    tls: {mode: PASSTHROUGH}'), []);
});

t.test('ISTIO_MUTUAL rejects every certificate field, with the path as written', async (t) => {
  t.same(gw('  - hosts: [a.b]\n    port: {number: 443, protocol: TLS}\n    tls: {mode: ISTIO_MUTUAL, server_certificate: /c, ca_certificates: /ca, credentialName: x}'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.servers[0].tls.server_certificate: ISTIO_MUTUAL TLS must not set serverCertificate (the workload identity is used)`,
    `error CFG_ERR_INVALID_FIELD ${P}spec.servers[0].tls.ca_certificates: ISTIO_MUTUAL TLS must not set caCertificates (the workload identity is used)`,
    `error CFG_ERR_INVALID_FIELD ${P}spec.servers[0].tls.credentialName: ISTIO_MUTUAL TLS must not set credentialName (the workload identity is used)`,
  ]);
});

t.test('an HTTPS server without tls is an error; plain HTTP with httpsRedirect is fine', async (t) => {
  t.same(gw('  - hosts: [a.b]\n    port: {number: 443, protocol: https}'), [
    `error CFG_ERR_REQUIRED ${P}spec.servers[0].tls: a server with protocol HTTPS needs tls settings (mode: PASSTHROUGH, SIMPLE, MUTUAL, ...)`,
  ]);
  t.same(gw('  - hosts: [a.b]\n    port: {number: 80, protocol: HTTP}\n    tls: {httpsRedirect: true}'), []);
});

t.test('terminatesTls: which server modes end TLS at the gateway', async (t) => {
  const r = load(doc('Gateway', 'g', `  servers:
  - {port: {number: 1, protocol: TLS}, hosts: [a], tls: {}}
  - {port: {number: 2, protocol: TLS}, hosts: [a], tls: {mode: PASSTHROUGH}}
  - {port: {number: 3, protocol: TLS}, hosts: [a], tls: {mode: AUTO_PASSTHROUGH}}
  - {port: {number: 4, protocol: TLS}, hosts: [a], tls: {mode: ISTIO_MUTUAL}}
  - {port: {number: 5, protocol: TLS}, hosts: [a], tls: {mode: SIMPLE, credentialName: c}}
  - {port: {number: 6, protocol: HTTP}, hosts: [a]}`));
  t.same(r.messages, []);
  t.same(r.resources.gateways[0]!.spec.servers.map((s) => terminatesTls(s.tls)), [false, false, false, true, true, false]);
});
