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
  t.same(gw('  - hosts: [a.b]\n    port: {number: 80, name: p80}'), [`error CFG_ERR_REQUIRED ${P}spec.servers[0].port.protocol: missing required field`]);
  t.same(gw('  - hosts: []\n    port: {number: 80, name: p80, protocol: HTTP}'), [`error CFG_ERR_REQUIRED ${P}spec.servers[0].hosts: must not be empty`]);
});

t.test('TLS certificates: SIMPLE needs both, credentialName or tlsCertificates replace them', async (t) => {
  t.same(gw('  - hosts: [a.b]\n    port: {number: 443, name: p443, protocol: HTTPS}\n    tls: {mode: SIMPLE}'), [
    `error CFG_ERR_REQUIRED ${P}spec.servers[0].tls.serverCertificate: SIMPLE TLS requires a server certificate`,
    `error CFG_ERR_REQUIRED ${P}spec.servers[0].tls.privateKey: SIMPLE TLS requires a private key`,
  ]);
  t.same(gw('  - hosts: [a.b]\n    port: {number: 443, name: p443, protocol: HTTPS}\n    tls: {mode: SIMPLE, credentialName: cnn-cert}'), []);
  t.same(gw('  - hosts: [a.b]\n    port: {number: 443, name: p443, protocol: HTTPS}\n    tls: {mode: MUTUAL, credentialName: cnn-cert}'), [], 'credentialName carries the CA too');
  t.same(gw('  - hosts: [a.b]\n    port: {number: 443, name: p443, protocol: HTTPS}\n    tls: {mode: SIMPLE, tlsCertificates: [{serverCertificate: /c, privateKey: /k}]}'), []);
  t.same(gw('  - hosts: [a.b]\n    port: {number: 443, name: p443, protocol: TLS}\n    tls: {mode: ISTIO_MUTUAL}'), []);
  t.same(gw('  - hosts: [a.b]\n    port: {number: 443, name: p443, protocol: TLS}\n    tls: {mode: PASSTHROUGH}'), []);
});

t.test('ISTIO_MUTUAL rejects every certificate field, with the path as written', async (t) => {
  t.same(gw('  - hosts: [a.b]\n    port: {number: 443, name: p443, protocol: TLS}\n    tls: {mode: ISTIO_MUTUAL, server_certificate: /c, ca_certificates: /ca, credentialName: x}'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.servers[0].tls.server_certificate: ISTIO_MUTUAL TLS cannot have associated server certificate`,
    `error CFG_ERR_INVALID_FIELD ${P}spec.servers[0].tls.ca_certificates: ISTIO_MUTUAL TLS cannot have associated CA bundle`,
    `error CFG_ERR_INVALID_FIELD ${P}spec.servers[0].tls.credentialName: ISTIO_MUTUAL TLS cannot have associated credentialName`,
  ]);
});

t.test('an HTTPS server without tls is an error; plain HTTP with httpsRedirect is fine', async (t) => {
  t.same(gw('  - hosts: [a.b]\n    port: {number: 443, name: p443, protocol: https}'), [
    `error CFG_ERR_REQUIRED ${P}spec.servers[0].tls: server must have TLS settings for HTTPS/TLS protocols`,
  ]);
  t.same(gw('  - hosts: [a.b]\n    port: {number: 80, name: p80, protocol: HTTP}\n    tls: {httpsRedirect: true}'), []);
  t.same(gw('  - hosts: [a.b]\n    port: {number: 80, name: p80, protocol: HTTP}\n    tls: {mode: SIMPLE, credentialName: c}'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.servers[0].tls: server cannot have TLS settings for plain text HTTP ports`,
  ]);
  t.same(gw('  - hosts: [a.b]\n    port: {number: 31400, name: tcp, protocol: TCP}\n    tls: {mode: PASSTHROUGH}'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.servers[0].tls: server cannot have TLS settings for non HTTPS/TLS ports`,
  ]);
});

t.test('Istio server rules: hosts are [ns/]FQDN or IP, port names unique and set, gateway name a DNS label', async (t) => {
  t.same(gw('  - hosts: [bookinfo, "ns/*.b.com", "1.2.3.4", "a*.b.com"]\n    port: {number: 80, name: http, protocol: HTTP}'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.servers[0].hosts[0]: short names (non FQDN) are not allowed`,
    `error CFG_ERR_INVALID_FIELD ${P}spec.servers[0].hosts[3]: domain name "a*.b.com" invalid (label "a*" invalid)`,
    `error CFG_ERR_INVALID_FIELD ${P}spec.servers[0].hosts[3]: partial wildcard "a*.b.com" not allowed`,
  ]);
  t.same(gw('  - hosts: [a.b]\n    port: {number: 80, name: http, protocol: HTTP}\n  - hosts: [a.b]\n    port: {number: 81, name: http, protocol: HTTP}'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.servers[1].port.name: port names in servers must be unique: duplicate name http`,
  ]);
  t.same(gw('  - hosts: [a.b]\n    port: {number: 80, protocol: HTTP}'), [
    `warning CFG_WARN_ISTIO_REJECTS ${P}spec.servers[0].port.name: port name must be set (Istio rejects a server port without a name)`,
  ]);
  t.same(messages(doc('Gateway', 'my.gw', '  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [a.b]}]')), [
    'error CFG_ERR_INVALID_FIELD f.yaml:1: Gateway/my.gw: metadata.name: invalid gateway name: "my.gw"',
  ]);
});

t.test('terminatesTls: which server modes end TLS at the gateway', async (t) => {
  const r = load(doc('Gateway', 'g', `  servers:
  - {port: {number: 1, name: p1, protocol: TLS}, hosts: [a.b], tls: {}}
  - {port: {number: 2, name: p2, protocol: TLS}, hosts: [a.b], tls: {mode: PASSTHROUGH}}
  - {port: {number: 3, name: p3, protocol: TLS}, hosts: [a.b], tls: {mode: AUTO_PASSTHROUGH}}
  - {port: {number: 4, name: p4, protocol: TLS}, hosts: [a.b], tls: {mode: ISTIO_MUTUAL}}
  - {port: {number: 5, name: p5, protocol: TLS}, hosts: [a.b], tls: {mode: SIMPLE, credentialName: c}}
  - {port: {number: 6, name: p6, protocol: HTTP}, hosts: [a.b]}`));
  t.same(r.messages, []);
  t.same(r.resources.gateways[0]!.spec.servers.map((s) => terminatesTls(s.tls)), [false, false, false, true, true, false]);
});
