import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ConfigErrorCode } from '../../../config/errors';
import { FLAG, ProxyError, ProxyErrorCode, connectErrorCode, rescue, rescueFor } from '../../../proxy/errors';

const ROOT = path.join(__dirname, '..', '..', '..', '..');
const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const CODE = /((?:PRX|CFG|CAP|CLI)_(?:ERR|WARN)_[A-Z_]+)/;

/** Every stable error code the TypeScript sources define or throw. */
function sourceCodes(): Set<string> {
  const found = new Set<string>();
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) for (const m of fs.readFileSync(p, 'utf8').matchAll(new RegExp(`'${CODE.source}'`, 'g'))) found.add(m[1]!);
    }
  };
  walk(path.join(ROOT, 'proxy'));
  walk(path.join(ROOT, 'config'));
  return found;
}

t.test('the README documents every error code, and only codes that exist', async (t) => {
  const found = sourceCodes();
  for (const code of [...Object.values(ProxyErrorCode), ...Object.values(ConfigErrorCode)]) t.ok(found.has(code), `${code} is found by the source scan`);
  t.ok(found.size > 20, `found ${found.size} codes`);
  for (const code of found) t.ok(README.includes('`' + code + '`'), `${code} is in README.md`);
  const documented = new Set([...README.matchAll(new RegExp('`' + CODE.source + '`', 'g'))].map((m) => m[1]!));
  for (const d of documented) t.ok(found.has(d), `${d} in README.md exists in the code`);
});

t.test('failures map to Envoy statuses, flags and details', async (t) => {
  const uf = rescue(new ProxyError(ProxyErrorCode.UPSTREAM_CONNECT, 'refused'));
  t.same([uf.status, uf.flags, uf.details], [503, 'UF', 'upstream_reset_before_response_started{connection_failure}']);
  t.same([rescueFor(ProxyErrorCode.NO_ROUTE).status, rescueFor(ProxyErrorCode.NO_ROUTE).flags], [404, 'NR']);
  t.equal(rescueFor(ProxyErrorCode.NO_HEALTHY_UPSTREAM).body, 'no healthy upstream');
  t.equal(rescueFor(ProxyErrorCode.UPSTREAM_TIMEOUT).status, 504);
  t.equal(rescue(new Error('a bug')).status, 503, 'unknown errors are an upstream reset, never a crash');
});

t.test('socket errors are classified by code', async (t) => {
  const err = (code: string) => Object.assign(new Error(code), { code });
  t.equal(connectErrorCode(err('ECONNREFUSED')), ProxyErrorCode.UPSTREAM_CONNECT);
  t.equal(connectErrorCode(err('ETIMEDOUT')), ProxyErrorCode.UPSTREAM_CONNECT_TIMEOUT);
  t.equal(connectErrorCode(err('ENOTFOUND')), ProxyErrorCode.DNS_FAILED);
  t.equal(connectErrorCode(err('DEPTH_ZERO_SELF_SIGNED_CERT')), ProxyErrorCode.UPSTREAM_TLS);
  t.equal(connectErrorCode(err('ERR_TLS_CERT_ALTNAME_INVALID')), ProxyErrorCode.UPSTREAM_TLS);
});

t.test('response flags are spelled only in proxy/errors.ts: every other file takes them from FLAG or the RESCUE table', async (t) => {
  const spelled = Object.values(FLAG).filter((f) => f !== FLAG.NONE);
  const literal = new RegExp(`'(?:${spelled.join('|')})(?:,[A-Z]+)*'|\\bflags?: '-'|addFlag\\('`);
  const bad: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && p !== path.join(ROOT, 'proxy', 'errors.ts')) {
        fs.readFileSync(p, 'utf8').split('\n').forEach((line, i) => {
          if (literal.test(line)) bad.push(`${path.relative(ROOT, p)}:${i + 1}: ${line.trim()}`);
        });
      }
    }
  };
  walk(path.join(ROOT, 'proxy'));
  t.same(bad, [], bad.join('\n'));
  t.equal(rescueFor(ProxyErrorCode.NO_FILTER_CHAIN).flags, FLAG.NO_ROUTE_FOUND);
});
