// writeBodyChunk / endBody (h1-body.ts) over a real loopback socket: whichever way a message goes
// out (head and a small body joined into one Buffer, or corked writes for a large or chunked body),
// the peer receives exactly head + framed body, byte for byte, non-ASCII latin1 head bytes included.

import net from 'node:net';
import t from 'tap';
import { endBody, writeBodyChunk } from '../../../../proxy/l7/h1-body';

async function pair(t: { teardown(fn: () => unknown): void }): Promise<{ client: net.Socket; received: () => Promise<Buffer> }> {
  let got: Promise<Buffer> = Promise.resolve(Buffer.alloc(0));
  const server = net.createServer((s) => {
    got = new Promise((resolve) => {
      const parts: Buffer[] = [];
      s.on('data', (c: Buffer) => parts.push(c));
      s.on('end', () => resolve(Buffer.concat(parts)));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise<void>((r) => client.once('connect', () => r()));
  t.teardown(() => client.destroy());
  return { client, received: () => got };
}

const HEAD = 'HTTP/1.1 200 OK\r\nx-latin1: caf\u00e9\r\n';

for (const size of [0, 1, 12, 16 * 1024, 16 * 1024 + 1, 200_000]) {
  for (const chunked of [false, true]) {
    t.test(`${chunked ? 'chunked' : 'content-length'} body of ${size} bytes`, async (t) => {
      const { client, received } = await pair(t);
      const body = Buffer.alloc(size);
      for (let i = 0; i < size; i++) body[i] = (i * 7) & 0xff;
      const head = HEAD + (chunked ? 'transfer-encoding: chunked\r\n\r\n' : `content-length: ${size}\r\n\r\n`);
      if (size > 0) {
        writeBodyChunk(client, head, chunked, body);
        endBody(client, null, chunked);
      } else endBody(client, head, chunked);
      client.end();
      const got = await received();
      const framed = !chunked || size === 0
        ? body
        : Buffer.concat([Buffer.from(size.toString(16) + '\r\n', 'latin1'), body, Buffer.from('\r\n', 'latin1')]);
      const expected = Buffer.concat([Buffer.from(head, 'latin1'), framed, Buffer.from(chunked ? '0\r\n\r\n' : '', 'latin1')]);
      t.equal(got.length, expected.length, 'length');
      t.ok(got.equals(expected), 'bytes');
    });
  }
}

t.test('a second chunk after the head went out is written as is', async (t) => {
  const { client, received } = await pair(t);
  writeBodyChunk(client, 'H\r\n\r\n', false, Buffer.from('ab'));
  writeBodyChunk(client, null, false, Buffer.from('cd'));
  client.end();
  t.equal((await received()).toString('latin1'), 'H\r\n\r\nabcd');
});
