/**
 * memjob's first demo (`npm start`): make a float64 file in /dev/shm (or the
 * OS temp folder), fill it through a memory map, then sum it chunk by chunk
 * through views of the same mapping and check the exact answer.
 *
 *   npm start                 # 512 MiB
 *   npm start -- --size 2G    # another size (K, M, G suffixes, base 1024)
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memmap } from 'memjob';

function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)([KMG]?)$/i.exec(text);
  if (!match) throw new Error(`--size: expected a size such as 512M or 2G, received "${text}"`);
  const scale = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[match[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Math.floor(Number(match[1]) * scale);
}

const sizeFlag = process.argv.indexOf('--size');
const bytes = parseSize(sizeFlag >= 0 ? (process.argv[sizeFlag + 1] ?? '') : '512M');
const n = Math.floor(bytes / 8);

const root = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
const folder = mkdtempSync(join(root, 'memjob-demo-'));
const cleanup = () => rmSync(folder, { recursive: true, force: true });
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

const path = join(folder, 'values.f64');
const started = performance.now();
const values = memmap(path, { dtype: 'float64', mode: 'w+', shape: [n] });
for (const chunk of values.chunks({ maxBytes: 64 * 1024 * 1024 })) {
  const first = chunk.offset / 8;
  const data = chunk.data;
  for (let i = 0; i < data.length; i++) data[i] = first + i;
}
values.flush();
values.close();
const written = performance.now();

// Reopen read-only, as a worker would, and sum window by window.
const reopened = memmap(path, { dtype: 'float64', mode: 'r' });
// Each window's partial sum is an exact double; the total may pass 2^53, so it is a bigint.
let sum = 0n;
for (const chunk of reopened.chunks({ maxBytes: 64 * 1024 * 1024 })) {
  const data = chunk.data;
  let partial = 0;
  for (let i = 0; i < data.length; i++) partial += data[i]!;
  sum += BigInt(partial);
}
reopened.close();
const summed = performance.now();

const expected = (BigInt(n) * BigInt(n - 1)) / 2n;
const gb = (n * 8) / 1e9;
console.log(`memjob demo: ${n.toLocaleString()} float64 values (${(gb * 1e9 / 1024 ** 2).toFixed(0)} MiB) in ${root}`);
console.log(`  fill through a w+ memmap : ${((written - started) / 1000).toFixed(2)} s`);
console.log(`  sum through an r memmap  : ${((summed - written) / 1000).toFixed(2)} s (${(gb / ((summed - written) / 1000)).toFixed(2)} GB/s)`);
console.log(`  sum = ${sum}, expected ${expected}: ${sum === expected ? 'exact' : 'WRONG'}`);
if (sum !== expected) process.exitCode = 1;
