import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './helpers.js';

// `npm test` builds dist/ first (the pretest script), so these check the package a user gets.
const probe = `
  import { memmap, pageSize, MemjobError } from 'memjob';
  console.log(JSON.stringify({ resolved: import.meta.resolve('memjob'), memmap: typeof memmap, pageSize, error: MemjobError.name }));
`;

function importFromRepo(flags: string[]): { resolved: string; memmap: string; pageSize: number; error: string } {
  const out = execFileSync(process.execPath, [...flags, '--input-type=module', '-e', probe], { cwd: repoRoot, encoding: 'utf8' });
  return JSON.parse(out);
}

describe('the package', () => {
  it("resolves 'memjob' to the built dist/ by self-reference", () => {
    const result = importFromRepo([]);
    expect(result.resolved).toMatch(/\/dist\/index\.js$/);
    expect(result.memmap).toBe('function');
    expect(result.pageSize).toBeGreaterThan(0);
    expect(result.error).toBe('MemjobError');
  });

  it("resolves 'memjob' to src/ under tsx with the 'source' condition", () => {
    const result = importFromRepo(['--conditions=source', '--import', 'tsx']);
    expect(result.resolved).toMatch(/\/src\/index\.ts$/);
    expect(result.memmap).toBe('function');
  });

  it('ships type declarations where the exports map points', () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
    expect(pkg.type).toBe('module');
    expect(pkg.exports['.'].types).toBe('./dist/index.d.ts');
    expect(existsSync(join(repoRoot, 'dist', 'index.d.ts'))).toBe(true);
    const declarations = readFileSync(join(repoRoot, 'dist', 'memmap', 'memmap.d.ts'), 'utf8');
    expect(declarations).not.toMatch(/:\s*any\b/);
  });
});
