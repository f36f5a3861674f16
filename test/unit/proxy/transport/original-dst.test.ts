// Without root: the addon loads, and a connection that was never REDIRECTed reports null (the capture
// listener then knows the peer dialled 15001 directly). The redirected case needs iptables in a network
// namespace: test/e2e/capture.test.ts.

import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { once } from 'node:events';
import { ProxyError, ProxyErrorCode } from '../../../../proxy/errors';
import {
  defaultAddonPath,
  getOriginalDst,
  originalDstSupport,
  ORIGINAL_DST_ADDON_ENV,
  resetOriginalDstForTests,
} from '../../../../proxy/transport/original-dst';

interface Pair {
  readonly accepted: net.Socket;
  readonly client: net.Socket;
}

/** One real TCP connection on loopback: the accepted (server-side) socket and the client socket. */
async function connectedPair(t: Test, host: string): Promise<Pair> {
  const server = net.createServer();
  server.listen(0, host);
  await once(server, 'listening');
  t.teardown(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client = net.connect(port, host);
  await once(client, 'connect');
  const [socket] = await accepted;
  t.teardown(() => {
    socket.destroy();
    client.destroy();
  });
  return { accepted: socket, client };
}

function hasIpv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(0, '::1', () => s.close(() => resolve(true)));
  });
}

t.test('the addon built by `npm run build` loads', async (t) => {
  const support = originalDstSupport();
  t.ok(fs.existsSync(defaultAddonPath()), `addon present at ${defaultAddonPath()} (run \`npm run build:addon\`)`);
  t.equal(support.ok, true, support.reason);
  t.match(support.reason, /original_dst\.node/);
});

t.test('a direct (not redirected) IPv4 loopback connection has no original destination', async (t) => {
  const { accepted, client } = await connectedPair(t, '127.0.0.1');
  t.equal(getOriginalDst(accepted), null, 'server side');
  t.equal(getOriginalDst(client), null, 'client side');
});

t.test('a direct IPv6 loopback connection has no original destination', async (t) => {
  if (!(await hasIpv6Loopback())) {
    t.comment('SKIP: ::1 is not available on this host (IPv6 disabled)');
    if (process.env.CI === 'true') t.fail('IPv6 loopback unavailable on CI');
    return;
  }
  const { accepted } = await connectedPair(t, '::1');
  t.equal(getOriginalDst(accepted), null);
});

t.test('an IPv4 connection accepted by a dual-stack listener (IPv4-mapped) has no original destination', async (t) => {
  if (!(await hasIpv6Loopback())) {
    t.comment('SKIP: IPv6 is disabled, no dual-stack listener');
    return;
  }
  const server = net.createServer();
  server.listen({ port: 0, host: '::', ipv6Only: false });
  await once(server, 'listening');
  t.teardown(() => server.close());
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  t.teardown(() => client.destroy());
  const [socket] = await accepted;
  t.teardown(() => socket.destroy());
  t.match(socket.localAddress, /^::ffff:127\.0\.0\.1$/, 'really an IPv4-mapped AF_INET6 socket');
  t.equal(getOriginalDst(socket), null);
});

t.test('a destroyed socket throws PRX_ERR_ORIGINAL_DST instead of guessing', async (t) => {
  const { accepted } = await connectedPair(t, '127.0.0.1');
  accepted.destroy();
  const err = (() => {
    try {
      getOriginalDst(accepted);
      return null;
    } catch (e) {
      return e;
    }
  })();
  t.type(err, ProxyError);
  t.equal((err as ProxyError).code, ProxyErrorCode.ORIGINAL_DST);
});

t.test('a missing addon is reported with the reason, and every call throws', async (t) => {
  const before = process.env[ORIGINAL_DST_ADDON_ENV];
  process.env[ORIGINAL_DST_ADDON_ENV] = '/nonexistent/sluice/original_dst.node';
  resetOriginalDstForTests();
  t.teardown(() => {
    if (before === undefined) delete process.env[ORIGINAL_DST_ADDON_ENV];
    else process.env[ORIGINAL_DST_ADDON_ENV] = before;
    resetOriginalDstForTests();
  });
  const support = originalDstSupport();
  t.equal(support.ok, false);
  t.match(support.reason, /\/nonexistent\/sluice\/original_dst\.node/);
  t.match(support.reason, /SLUICE_ORIGINAL_DST_ADDON/);
  t.match(support.reason, /npm run build:addon/);
  const { accepted } = await connectedPair(t, '127.0.0.1');
  t.throws(() => getOriginalDst(accepted), { code: ProxyErrorCode.ORIGINAL_DST });
});

t.test('the env override loads the addon from another path', async (t) => {
  const before = process.env[ORIGINAL_DST_ADDON_ENV];
  process.env[ORIGINAL_DST_ADDON_ENV] = defaultAddonPath();
  resetOriginalDstForTests();
  t.teardown(() => {
    if (before === undefined) delete process.env[ORIGINAL_DST_ADDON_ENV];
    else process.env[ORIGINAL_DST_ADDON_ENV] = before;
    resetOriginalDstForTests();
  });
  const support = originalDstSupport();
  t.equal(support.ok, true, support.reason);
  t.match(support.reason, /from SLUICE_ORIGINAL_DST_ADDON/);
});
