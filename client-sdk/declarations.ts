// The declaration files an entry's types reach, and what each of them imports from outside:
// build.ts ships only those files, and the client-sdk's test checks what they import.
// Declaration files are tsc's own output, regular enough to read with patterns.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

const SPECIFIER_PATTERNS = [
  /^\s*(?:import|export)\b[^'";]*?\bfrom\s*['"]([^'"]+)['"]/gm, // import … from 'x', export … from 'x'
  /^\s*import\s*['"]([^'"]+)['"]/gm, // import 'x'
  /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g, // import("x").Type
  /^\/\/\/\s*<reference\s+(?:path|types)\s*=\s*['"]([^'"]+)['"]/gm, // /// <reference types="x" />
];

/** Every module a declaration file refers to, each once, in no particular order. */
export function moduleSpecifiers(source: string): string[] {
  const found = new Set<string>();
  for (const pattern of SPECIFIER_PATTERNS) {
    for (const match of source.matchAll(pattern)) if (match[1]) found.add(match[1]);
  }
  return [...found];
}

const isRelative = (specifier: string) => specifier.startsWith('./') || specifier.startsWith('../');

/** The declaration file a relative specifier of `from` names (`./x.ts`, `./x.js`, `./x` → x.d.ts). */
function resolveRelative(from: string, specifier: string): string {
  const base = path.resolve(path.dirname(from), specifier).replace(/\.(?:d\.ts|ts|js)$/, '');
  const file = [`${base}.d.ts`, path.join(base, 'index.d.ts')].find((candidate) => existsSync(candidate));
  if (!file) throw new Error(`${from} refers to ${specifier}, which has no declaration file`);
  return file;
}

/**
 * The declaration files reachable from `entry` through relative references, each with the
 * modules it imports from outside that set (packages, `node:` modules).
 */
export function reachableDeclarations(entry: string): Map<string, string[]> {
  const reached = new Map<string, string[]>();
  const pending = [path.resolve(entry)];
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    if (reached.has(file)) continue;
    const specifiers = moduleSpecifiers(readFileSync(file, 'utf8'));
    reached.set(file, specifiers.filter((specifier) => !isRelative(specifier)));
    for (const specifier of specifiers.filter(isRelative)) pending.push(resolveRelative(file, specifier));
  }
  return reached;
}
