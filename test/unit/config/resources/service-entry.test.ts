// ServiceEntry rules beyond the broken fixtures (which pin the main messages exactly).
import t from 'tap';
import { doc, messages } from './_load';

const se = (spec: string) => messages(doc('ServiceEntry', 's', spec));
const P = 'f.yaml:1: ServiceEntry/s: ';

t.test('hosts: required and non-empty', async (t) => {
  t.same(se('  resolution: DNS'), [`error CFG_ERR_REQUIRED ${P}spec.hosts: missing required field`]);
  t.same(se('  hosts: []'), [`error CFG_ERR_REQUIRED ${P}spec.hosts: must not be empty`]);
  t.same(se('  hosts: [""]'), [`error CFG_ERR_INVALID_FIELD ${P}spec.hosts[0]: host must not be empty`]);
});

t.test('DNS with wildcard hosts is fine when endpoints are given; DNS_ROUND_ROBIN has the same rule', async (t) => {
  t.same(se('  hosts: ["*.example.com"]\n  resolution: DNS\n  endpoints: [{address: proxy.example.com}]'), []);
  t.same(se('  hosts: ["*.example.com"]\n  resolution: DNS_ROUND_ROBIN'),
    [`error CFG_ERR_INVALID_FIELD ${P}spec.hosts[0]: hosts must be FQDN if no endpoints are provided for resolution mode DNS_ROUND_ROBIN`]);
  t.same(se('  hosts: ["*.example.com"]'), [], 'NONE (default) accepts wildcards');
});

t.test('ports: duplicate numbers, unknown endpoint port names', async (t) => {
  t.same(se('  hosts: [a.b]\n  ports: [{number: 80, name: a}, {number: 80, name: b}]'), [`error CFG_ERR_INVALID_FIELD ${P}spec.ports[1].number: duplicate port number 80`]);
  t.same(se('  hosts: [a.b]\n  ports: [{number: 80, name: http}]\n  resolution: STATIC\n  endpoints: [{address: 198.18.0.1, ports: {htp: 8080}}]'),
    [`error CFG_ERR_INVALID_FIELD ${P}spec.endpoints[0].ports.htp: endpoint port "htp" is not a port name of this ServiceEntry`]);
  t.same(se('  hosts: [a.b]\n  ports: [{name: http}]'), [`error CFG_ERR_REQUIRED ${P}spec.ports[0].number: missing required field`]);
});

t.test('resolution NONE must not have endpoints; STATIC accepts workloadSelector instead', async (t) => {
  t.same(se('  hosts: [a.b]\n  resolution: NONE\n  endpoints: [{address: 198.18.0.1}]'), [`error CFG_ERR_INVALID_FIELD ${P}spec.endpoints: no endpoints should be provided for resolution NONE`]);
  t.same(se('  hosts: [a.b]\n  resolution: STATIC\n  workloadSelector: {labels: {app: a}}'), []);
  t.same(se('  hosts: [a.b]\n  resolution: STATIC\n  endpoints: [{address: "unix:///var/run/a.sock"}, {address: "2001:db8::1"}]'), []);
  t.same(se('  hosts: [a.b]\n  resolution: DNS\n  endpoints: [{ports: {}}]'), [`error CFG_ERR_REQUIRED ${P}spec.endpoints[0].address: missing required field`]);
});

t.test('addresses must be IPs or CIDRs', async (t) => {
  t.same(se('  hosts: [a.b]\n  addresses: [198.18.0.1, 198.18.0.0/16, "2001:db8::/32"]'), []);
  t.same(se('  hosts: [a.b]\n  addresses: [198.18.0.0/33, vip]'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.addresses[0]: "198.18.0.0/33" is not an IP address or CIDR`,
    `error CFG_ERR_INVALID_FIELD ${P}spec.addresses[1]: "vip" is not an IP address or CIDR`,
  ]);
});

t.test('enums: location and resolution', async (t) => {
  t.same(se('  hosts: [a.b]\n  location: EXTERNAL\n  resolution: dns'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.location: invalid value "EXTERNAL"; expected one of MESH_EXTERNAL, MESH_INTERNAL`,
    `error CFG_ERR_INVALID_FIELD ${P}spec.resolution: invalid value "dns"; did you mean "DNS"? (values are case-sensitive)`,
  ]);
});
