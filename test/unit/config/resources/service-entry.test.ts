// ServiceEntry rules beyond the broken fixtures (which pin the main messages exactly).
import t from 'tap';
import { doc, messages } from './_load';

const se = (spec: string) => messages(doc('ServiceEntry', 's', spec));
const P = 'f.yaml:1: ServiceEntry/s: ';

t.test('hosts: required and non-empty', async (t) => {
  t.same(se('  resolution: DNS'), [`error CFG_ERR_REQUIRED ${P}spec.hosts: missing required field`]);
  t.same(se('  hosts: []'), [`error CFG_ERR_REQUIRED ${P}spec.hosts: must not be empty`]);
  t.same(se('  hosts: [""]'), [`error CFG_ERR_INVALID_FIELD ${P}spec.hosts[0]: empty domain name not allowed`]);
});

t.test('DNS with wildcard hosts is fine when endpoints are given; DNS_ROUND_ROBIN has the same rule', async (t) => {
  t.same(se('  hosts: ["*.example.com"]\n  resolution: DNS\n  endpoints: [{address: proxy.example.com}]'), []);
  t.same(se('  hosts: ["*.example.com"]\n  resolution: DNS_ROUND_ROBIN'),
    [`error CFG_ERR_INVALID_FIELD ${P}spec.hosts[0]: hosts must be FQDN if no endpoints are provided for resolution mode DNS_ROUND_ROBIN`]);
  t.same(se('  hosts: ["*.example.com"]'), [], 'NONE (default) accepts wildcards');
});

t.test('ports: duplicate numbers, unknown endpoint port names', async (t) => {
  t.same(se('  hosts: [a.b]\n  ports: [{number: 80, name: a}, {number: 80, name: b}]'), [`error CFG_ERR_INVALID_FIELD ${P}spec.ports[1].number: service entry port 80 already defined`]);
  t.same(se('  hosts: [a.b]\n  ports: [{number: 80, name: http}]\n  resolution: STATIC\n  endpoints: [{address: 198.18.0.1, ports: {htp: 8080}}]'),
    [`error CFG_ERR_INVALID_FIELD ${P}spec.endpoints[0].ports.htp: endpoint port 8080 is not defined by the service entry`]);
  t.same(se('  hosts: [a.b]\n  ports: [{name: http}]'), [`error CFG_ERR_REQUIRED ${P}spec.ports[0].number: missing required field`]);
});

t.test('resolution NONE must not have endpoints; STATIC accepts workloadSelector instead', async (t) => {
  t.same(se('  hosts: [a.b]\n  resolution: NONE\n  endpoints: [{address: 198.18.0.1}]'), [`error CFG_ERR_INVALID_FIELD ${P}spec.endpoints: no endpoints should be provided for resolution type none`]);
  t.same(se('  hosts: [a.b]\n  resolution: STATIC\n  workloadSelector: {labels: {app: a}}'), []);
  t.same(se('  hosts: [a.b]\n  resolution: STATIC\n  endpoints: [{address: "unix:///var/run/a.sock"}, {address: "2001:db8::1"}]'), []);
  t.same(se('  hosts: [a.b]\n  resolution: DNS\n  endpoints: [{ports: {}}]'), [`error CFG_ERR_REQUIRED ${P}spec.endpoints[0].address: address is required`]);
});

t.test('addresses must be IPs or CIDRs', async (t) => {
  t.same(se('  hosts: [a.b]\n  addresses: [198.18.0.1, 198.18.0.0/16, "2001:db8::/32"]'), []);
  t.same(se('  hosts: [a.b]\n  addresses: [198.18.0.0/33, vip]'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.addresses[0]: 198.18.0.0/33 is not a valid CIDR block`,
    `error CFG_ERR_INVALID_FIELD ${P}spec.addresses[1]: vip is not a valid IP`,
  ]);
});

t.test('Istio parity: empty selector, flow-sequence IPv6, CIDR needs NONE/STATIC, DNS_ROUND_ROBIN has one endpoint, selector wildcards', async (t) => {
  t.same(se('  hosts: [example.com]\n  workloadSelector: {}'), [
    `warning CFG_WARN_TRAP ${P}spec.workloadSelector: workload selector specified without labels: it selects every workload in the namespace`,
    `warning CFG_WARN_TRAP ${P}spec.workloadSelector: workloadSelector should not be set when resolution mode is NONE`,
  ]);
  t.same(se('  hosts: [example.com]\n  addresses: [1.2.3.4, 001:db8::]\n  resolution: STATIC\n  endpoints: [{address: 198.18.0.1}]'), []);
  t.same(se('  hosts: [example.com]\n  addresses: [1.2.3.4/16]\n  resolution: DNS'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.addresses: CIDR addresses are allowed only for NONE/STATIC resolution types`,
  ]);
  t.same(se('  hosts: [example.com]\n  resolution: DNS_ROUND_ROBIN\n  endpoints: [{address: a.example.com}, {address: b.example.com}]'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.endpoints: there must only be 0 or 1 endpoint for resolution mode DNS_ROUND_ROBIN`,
  ]);
  t.same(se('  hosts: [example.com]\n  workloadSelector: {labels: {val: "*"}}'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.workloadSelector.labels.val: wildcard is not supported in selector: "val=*"`,
    `warning CFG_WARN_TRAP ${P}spec.workloadSelector: workloadSelector should not be set when resolution mode is NONE`,
  ]);
  t.same(se('  hosts: [a.example.com, b.example.com]\n  ports: [{number: 5432, name: pg, protocol: TCP}]\n  resolution: DNS'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.ports: multiple hosts provided with non-HTTP, non-TLS ports`,
    `warning CFG_WARN_TRAP ${P}spec.ports[0]: TCP port 5432 without addresses: on a sidecar this ServiceEntry captures all traffic to port 5432, whatever the destination IP; set addresses`,
  ]);
});

t.test('enums: location and resolution', async (t) => {
  t.same(se('  hosts: [a.b]\n  location: EXTERNAL\n  resolution: dns'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.location: invalid value "EXTERNAL"; expected one of MESH_EXTERNAL, MESH_INTERNAL`,
    `error CFG_ERR_INVALID_FIELD ${P}spec.resolution: invalid value "dns"; did you mean "DNS"? (values are case-sensitive)`,
  ]);
});
