import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { memmap } from '../src/index.js';
import { runTsChild, scratchDir, startTsWorker } from './helpers.js';

const scratch = scratchDir('procs');
afterAll(() => scratch.remove());

async function ask(worker: Worker, msg: object): Promise<number> {
  worker.postMessage(msg);
  const [answer] = (await once(worker, 'message')) as [number];
  return answer;
}

describe('mappings across threads and processes', () => {
  it("a write through mode 'r' neither crashes the process nor reaches the file", async () => {
    const path = scratch.file('readonly.bin');
    const original = new Float64Array([1, 2, 3, 4]);
    writeFileSync(path, original);
    const before = readFileSync(path);
    const result = await runTsChild('write-readonly.ts', [path]);
    expect(result.signal).toBeNull();
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { readonly: boolean; seen: number[] };
    expect(report.readonly).toBe(true);
    // The writer sees its own private pages ...
    expect(report.seen[1]).toBe(1234);
    // ... and the file keeps every byte.
    expect(readFileSync(path).equals(before)).toBe(true);
  });

  it('two worker threads mapping one file see each other\'s writes, and so does the parent', async () => {
    const path = scratch.file('threads.bin');
    writeFileSync(path, new Float64Array(4));
    const a = startTsWorker('shared-writer.ts', { path });
    const b = startTsWorker('shared-writer.ts', { path });
    try {
      expect(await ask(a, { op: 'write', index: 0, value: 3.25 })).toBe(3.25);
      expect(await ask(b, { op: 'read', index: 0 })).toBe(3.25);
      expect(await ask(b, { op: 'write', index: 1, value: -8 })).toBe(-8);
      expect(await ask(a, { op: 'read', index: 1 })).toBe(-8);
      const parent = memmap(path, { dtype: 'float64', mode: 'r+' });
      expect(Array.from(parent.data.subarray(0, 2))).toEqual([3.25, -8]);
      parent.data[2] = 77;
      expect(await ask(a, { op: 'read', index: 2 })).toBe(77);
      expect(await ask(b, { op: 'read', index: 2 })).toBe(77);
      parent.close();
      a.postMessage({ op: 'close', index: 0 });
      b.postMessage({ op: 'close', index: 0 });
      const [[codeA], [codeB]] = await Promise.all([once(a, 'exit'), once(b, 'exit')]);
      expect([codeA, codeB]).toEqual([0, 0]);
    } finally {
      await Promise.all([a.terminate(), b.terminate()]);
    }
  });

  it('a worker thread terminated with live mappings exits cleanly (finalizers at teardown)', async () => {
    const path = scratch.file('teardown.bin');
    writeFileSync(path, new Float64Array(4));
    const worker = startTsWorker('shared-writer.ts', { path });
    expect(await ask(worker, { op: 'write', index: 3, value: 5 })).toBe(5);
    await worker.terminate();
    expect(new Float64Array(new Uint8Array(readFileSync(path)).buffer)[3]).toBe(5);
  });
});
