// Builds what other projects import as `kiln/client-sdk`: compiled JS for the client and
// type declarations for everything its types reach (the router's types among them).
// tsc emits JS and declarations for every file the client's imports reach; only the client's
// own JS is kept, so nothing of the server ships, and only the declarations reachable from
// the client's index.d.ts, so its types load nothing but tRPC (see declarations.ts).
import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { reachableDeclarations } from './declarations.ts';

const here = import.meta.dirname;
const dist = path.join(here, 'dist');
rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [path.join(here, '..', 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(here, 'tsconfig.json')], { stdio: 'inherit' });

const clientFolder = path.join(dist, 'client-sdk') + path.sep;
const declarations = new Set(reachableDeclarations(path.join(clientFolder, 'index.d.ts')).keys());

/** Removes what the package does not need; says whether the folder is empty afterwards. */
function prune(folder: string): boolean {
  let kept = 0;
  for (const entry of readdirSync(folder)) {
    const full = path.join(folder, entry);
    const needed = statSync(full).isDirectory()
      ? !prune(full)
      : entry.endsWith('.d.ts')
        ? declarations.has(full)
        : entry.endsWith('.js') && full.startsWith(clientFolder);
    if (needed) kept++;
    else rmSync(full, { recursive: true });
  }
  return kept === 0;
}
prune(dist);
