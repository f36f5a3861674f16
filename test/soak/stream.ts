// Deterministic bytes both ends of a soak transfer can produce without sending a copy: the AES-128-CTR
// keystream of a seed (hundreds of MB/s, so a 64 MiB transfer costs the generator well under a second).

import crypto from 'node:crypto';

const ZERO = Buffer.alloc(64 * 1024);
export const CHUNK = ZERO.length;

export class ByteStream {
  private readonly cipher: crypto.Cipher;

  constructor(seed: number) {
    const key = crypto.createHash('sha256').update('soak-key-' + seed).digest().subarray(0, 16);
    this.cipher = crypto.createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  }

  /** The next `n` bytes (n <= CHUNK). */
  next(n: number): Buffer {
    return this.cipher.update(ZERO.subarray(0, n));
  }
}
