// Builds what other projects import as `kiln/client-sdk`: compiled JS for the client and
// type declarations for everything its types reach (the router's types among them).
// tsc emits JS for every file the client's types reach; only the client's own JS is kept,
// so nothing of the server ships.
import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';

const here = import.meta.dirname;
const dist = path.join(here, 'dist');
rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [path.join(here, '..', 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(here, 'tsconfig.json')], { stdio: 'inherit' });

function removeForeignJs(folder: string) {
  for (const entry of readdirSync(folder)) {
    const full = path.join(folder, entry);
    if (statSync(full).isDirectory()) removeForeignJs(full);
    else if (entry.endsWith('.js') && !full.startsWith(path.join(dist, 'client-sdk') + path.sep)) rmSync(full);
  }
}
removeForeignJs(dist);
