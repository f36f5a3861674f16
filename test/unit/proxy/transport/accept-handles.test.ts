// acceptHandles delivers every accepted connection with TCP_NODELAY set (Nagle off), whether the
// option was set once on the listening socket (Linux: accepted sockets inherit it) or per
// connection. The option is read by the kernel itself: python3 (which node-gyp needs here anyway)
// gets the accepted socket as its fd 3 and asks getsockopt.

import { spawn } from 'node:child_process';
import net from 'node:net';
import t from 'tap';
import { acceptHandles } from '../../../../proxy/transport/accept-handles';
import { tcpHandles, tcpHandlesUnavailableReason, type TcpHandle } from '../../../../proxy/transport/tcp-handle';

const skip = tcpHandles() === null ? `no bare TCP handles here: ${tcpHandlesUnavailableReason()}` : false;
if (skip !== false && process.env['CI'] === 'true') t.fail(`CI must test acceptHandles: ${skip}`);

/** TCP_NODELAY of the socket behind `fd`, as the kernel reports it to another process. */
function noDelayOf(fd: number): Promise<number> {
  const probe = 'import socket; s = socket.socket(fileno=3); print(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)); s.detach()';
  const child = spawn('python3', ['-c', probe], { stdio: ['ignore', 'pipe', 'inherit', fd] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += String(d)));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Number(out.trim())) : reject(new Error(`python3 exited ${code}`))));
  });
}

/** Listen, deliver the first connection's handle (through acceptHandles when `viaAcceptHandles`). */
async function acceptOne(t: tap.Test, viaAcceptHandles: boolean): Promise<TcpHandle> {
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<TcpHandle>((resolve) => {
    if (viaAcceptHandles) t.ok(acceptHandles(server, resolve), 'the server delivers bare handles');
    else server.on('connection', (s) => resolve((s as unknown as { _handle: TcpHandle })._handle));
  });
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  client.on('error', () => {});
  const handle = await accepted;
  t.teardown(() => {
    client.destroy();
    handle.close();
    server.close();
  });
  return handle;
}

t.test('an accepted handle has TCP_NODELAY set', { skip }, async (t) => {
  const handle = await acceptOne(t, true);
  t.equal(await noDelayOf(handle.fd), 1, 'TCP_NODELAY is on');
});

t.test('control: a connection net.Server accepts without noDelay has it off (the probe can say 0)', { skip }, async (t) => {
  const handle = await acceptOne(t, false);
  t.equal(await noDelayOf(handle.fd), 0, 'TCP_NODELAY is off');
});
