/**
 * Keeps the layering of DESIGN.md §1: a file's folder says what it may import.
 * src-shared: no Node built-ins, nothing from src-main or src-renderer.
 * src-main/engine: no electron, no React, nothing from src-main/host or src-renderer.
 * src-main/nbd: no electron, no host, no renderer.
 * src-renderer: no Node built-ins, nothing from src-main.
 */
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { builtinModules } from 'node:module';

const root = path.resolve(__dirname, '..');
const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

function files(dir: string): string[] {
  const out: string[] = [];
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...files(p));
    else if (/\.(ts|tsx)$/.test(e.name)) out.push(p);
  }
  return out;
}

function imports(file: string): string[] {
  const src = fs.readFileSync(file, 'utf8');
  const out: string[] = [];
  const re = /(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|require\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (let m = re.exec(src); m; m = re.exec(src)) out.push((m[1] ?? m[2] ?? m[3])!);
  return out;
}

function violations(dir: string, bad: (spec: string, resolved: string | null) => string | null): string[] {
  const out: string[] = [];
  for (const f of files(path.join(root, dir))) {
    for (const spec of imports(f)) {
      const resolved = spec.startsWith('.') ? path.relative(root, path.resolve(path.dirname(f), spec)) : null;
      const why = bad(spec, resolved);
      if (why) out.push(`${path.relative(root, f)} imports ${spec}: ${why}`);
    }
  }
  return out;
}

describe('layering (DESIGN.md §1)', () => {
  it('src-shared imports no Node built-ins and nothing from the processes', () => {
    expect(
      violations('src-shared', (s, r) =>
        builtins.has(s) ? 'Node built-in in the contract' : r && !r.startsWith('src-shared') ? 'outside src-shared' : null,
      ),
    ).toEqual([]);
  });

  it('the engine imports nothing from Electron, React, the hosts or the renderer', () => {
    expect(
      violations('src-main/engine', (s, r) =>
        s === 'electron' || s.startsWith('electron/')
          ? 'electron'
          : s === 'react' || s.startsWith('react-dom') || s.startsWith('@tanstack/')
            ? 'UI library'
            : r && (r.startsWith('src-main/host') || r.startsWith('src-renderer') || r.startsWith('src-main/nbd'))
              ? 'upward import'
              : null,
      ),
    ).toEqual([]);
  });

  it('the NBD server depends on the engine, never on the hosts or Electron', () => {
    expect(
      violations('src-main/nbd', (s, r) =>
        s === 'electron' ? 'electron' : r && (r.startsWith('src-main/host') || r.startsWith('src-renderer')) ? 'upward import' : null,
      ),
    ).toEqual([]);
  });

  it('the renderer sees only src-shared and its own files', () => {
    expect(
      violations('src-renderer', (s, r) =>
        builtins.has(s) ? 'Node built-in in the renderer' : r && !(r.startsWith('src-renderer') || r.startsWith('src-shared')) ? 'outside renderer/shared' : null,
      ),
    ).toEqual([]);
  });
});
